package machines

import (
	"testing"
	"time"

	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/process"
)

// A shutdown stops the node's programs first and powers off (its API refusing connections)
// only once they have stopped, as machined stops etcd and the kubelet before apid.
func TestShutdownStopsTheProgramsBeforeTheAPI(t *testing.T) {
	n := hwNode(t, "c1", "127.0.1.39", "")
	em := &Emulator{nodes: []*Node{n}, log: t.Logf, ShutdownDelay: 100 * time.Millisecond}

	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, ""))
	awaitBoot(t, em, n)

	em.mu.Lock()
	n.rt.procs = map[string]*process.Process{"etcd": nil} // a program the reconcile loop has not stopped yet
	em.mu.Unlock()

	state := func() (bool, bool, bool) {
		em.mu.Lock()
		defer em.mu.Unlock()

		return n.halting, n.off, em.canServe(n)
	}

	em.Shutdown(n)

	if halting, off, serving := state(); halting || off || !serving {
		t.Fatalf("right after the request: halting %v, off %v, serving %v; want the node running as before", halting, off, serving)
	}

	time.Sleep(400 * time.Millisecond)

	if halting, off, serving := state(); !halting || off || !serving {
		t.Fatalf("after the delay, a program still running: halting %v, off %v, serving %v; want halting, the API up", halting, off, serving)
	}

	em.mu.Lock()
	n.rt.procs = nil
	em.mu.Unlock()

	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if halting, off, serving := state(); !halting && off && !serving {
			return
		}

		if time.Now().After(deadline) {
			t.Fatal("the programs stopped but the node did not power off")
		}
	}
}
