package talosapi

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/emptypb"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/machines"
)

// configuredNode is a control plane past its install reboot, its API served; it returns the
// emulator, the node and a probe saying whether the API refuses connections (a configured node
// answers an insecure call with a TLS handshake failure instead).
func configuredNode(t *testing.T, address string) (*machines.Emulator, *machines.Node, func() bool) {
	t.Helper()

	em := emulator(t, machines.NodeSpec{Name: "n1", Address: address,
		Hardware: kernel.Hardware{Memory: "8Gi", Disks: []kernel.Disk{{DevPath: "/dev/vda", Size: "100Gi"}}}})
	em.RebootDelay = 100 * time.Millisecond
	n := em.Node("n1")
	addr := serve(t, em, n)

	refused := func() bool {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(testutil.InsecureTLS())))
		if err != nil {
			t.Fatal(err)
		}

		defer conn.Close() //nolint:errcheck

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()

		_, err = machine.NewMachineServiceClient(conn).Version(ctx, &emptypb.Empty{})

		return err != nil && strings.Contains(err.Error(), "connection refused")
	}

	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, ""))

	for deadline := time.Now().Add(5 * time.Second); em.Maintenance(n) || refused(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node never came back configured from its install")
		}
	}

	return em, n, refused
}

// waitRefused polls until the API refuses connections and returns when that was.
func waitRefused(t *testing.T, refused func() bool, within time.Duration) time.Time {
	t.Helper()

	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if refused() {
			return time.Now()
		}
	}

	t.Fatalf("the API still answers %s later", within)

	return time.Time{}
}

// TestShutdownAnswersBeforeTheNodeGoesDown: Talos replies to Shutdown at once and shuts down in
// the background, so the reply proves nothing about the node being down: it still answers for
// the shutdown delay, then refuses connections; a second request does not restart the delay.
func TestShutdownAnswersBeforeTheNodeGoesDown(t *testing.T) {
	em, n, refused := configuredNode(t, "127.0.1.37")
	em.ShutdownDelay = 1500 * time.Millisecond
	server := &machineServer{em: em, self: n}

	asked := time.Now()

	reply, err := server.Shutdown(context.Background(), &machine.ShutdownRequest{Force: true})
	if err != nil || len(reply.Messages) != 1 {
		t.Fatalf("Shutdown: %v %v", reply, err)
	}

	if took := time.Since(asked); took > 500*time.Millisecond {
		t.Errorf("the reply took %s: Talos answers before it shuts down", took)
	}

	if refused() {
		t.Fatal("the API refuses connections as soon as the reply arrives: the node must still answer")
	}

	time.Sleep(500 * time.Millisecond)

	if _, err = server.Shutdown(context.Background(), &machine.ShutdownRequest{}); err != nil {
		t.Fatalf("a second Shutdown while shutting down: %v", err)
	}

	down := waitRefused(t, refused, 5*time.Second)
	if took := down.Sub(asked); took < 1400*time.Millisecond || took > 2500*time.Millisecond {
		t.Errorf("the node went down %s after the request, want about the shutdown delay (1.5s) from the first request", took)
	}

	time.Sleep(300 * time.Millisecond)

	if !refused() || em.Maintenance(n) {
		t.Error("the node should stay down, configured, until powered on")
	}
}

// TestAShutdownThatHangsKeepsTheNodeUpUntilPoweredOff: the control socket's fault switch makes
// one node's shutdown take an hour; powering on (a running machine) changes nothing, powering
// off ends the shutdown, and powering on boots a node that then stays up.
func TestAShutdownThatHangsKeepsTheNodeUpUntilPoweredOff(t *testing.T) {
	em, n, refused := configuredNode(t, "127.0.1.38")
	em.ShutdownDelay = 200 * time.Millisecond

	sock := filepath.Join(t.TempDir(), "control.sock")

	stop, err := em.ServeControl(sock)
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(stop)

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	control := func(action string) {
		t.Helper()

		resp, err := client.Post("http://emulator/"+action, "", nil)
		if err != nil {
			t.Fatal(err)
		}

		resp.Body.Close() //nolint:errcheck

		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", action, resp.Status)
		}
	}

	control("shutdown-delay?node=n1&delay=1h")

	if _, err = (&machineServer{em: em, self: n}).Shutdown(context.Background(), &machine.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}

	control("power-on?node=n1")
	time.Sleep(time.Second)

	if refused() {
		t.Fatal("a node whose shutdown hangs must keep answering")
	}

	control("power-off?node=n1")
	waitRefused(t, refused, 2*time.Second)
	control("shutdown-delay?node=n1&delay=")
	control("power-on?node=n1")

	for deadline := time.Now().Add(2 * time.Second); refused(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node did not boot when powered on")
		}
	}

	time.Sleep(500 * time.Millisecond) // more than the default delay: the hung shutdown is over

	if refused() {
		t.Error("the powered-off shutdown came back: the node went down again")
	}

	resp, err := client.Post("http://emulator/shutdown-delay?node=n1&delay=soon", "", nil)
	if err != nil {
		t.Fatal(err)
	}

	resp.Body.Close() //nolint:errcheck

	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a delay that is no duration: %s, want 400", resp.Status)
	}

}
