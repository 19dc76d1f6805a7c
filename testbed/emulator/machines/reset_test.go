package machines

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"

	"solanaops.testbed/emulator/internal/testutil"
)

// awaitBoot waits until n is up again after a reboot.
func awaitBoot(t *testing.T, em *Emulator, n *Node) {
	t.Helper()

	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		em.mu.Lock()
		up := !n.off
		em.mu.Unlock()

		if up {
			return
		}
	}

	t.Fatal("the node never booted")
}

func kubeletState(em *Emulator, n *Node) (string, string) {
	em.mu.Lock()
	defer em.mu.Unlock()

	svc := n.services["kubelet"]
	if svc == nil {
		return "absent", ""
	}

	policy := ""
	if n.disk.MemoryCheckpoint != nil {
		policy = n.disk.MemoryCheckpoint.Policy
	}

	return svc.state, policy
}

// A change of the memory manager's policy needs the kubelet's state wiped: staged, a plain
// reboot leaves the kubelet refusing its checkpoint; staged, then a reset of EPHEMERAL, boots it
// cleanly (the kubelet does not run, nor write its checkpoint, while the machine is down).
func TestResetWipesTheKubeletState(t *testing.T) {
	n := hwNode(t, "w1", "127.0.1.43", "")
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}
	input := testutil.NewInput(t)

	withKubelet := func(extra string) []byte {
		raw := string(testutil.GenConfig(t, input, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, ""))

		return []byte(strings.Replace(raw, "\n    kubelet:\n", "\n    kubelet:\n        extraConfig:\n"+extra, 1))
	}

	static := withKubelet("            memoryManagerPolicy: Static\n            kubeReserved: {memory: 1Gi}\n" +
		"            systemReserved: {memory: 1Gi}\n            evictionHard: {memory.available: 2Gi}\n" +
		"            reservedMemory: [{numaNode: 0, limits: {memory: 2Gi}}, {numaNode: 1, limits: {memory: 2Gi}}]\n")
	none := withKubelet("            memoryManagerPolicy: None\n")

	apply(t, em, n, static) // installs and reboots
	awaitBoot(t, em, n)

	if state, policy := kubeletState(em, n); state != "Running" || policy != "Static" {
		t.Fatalf("after the install: kubelet %s, checkpoint policy %q", state, policy)
	}

	if _, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: none, Mode: machine.ApplyConfigurationRequest_STAGED}, true); err != nil {
		t.Fatal(err)
	}

	if state, _ := kubeletState(em, n); state != "Running" || n.running.K8sKubeletConfig().ExtraConfig()["memoryManagerPolicy"] != "Static" {
		t.Fatalf("a staged config took effect before a reboot (kubelet %s)", state)
	}

	em.mu.Lock()
	em.rebootNode(n, "test")
	em.mu.Unlock()
	awaitBoot(t, em, n)

	if n.running.K8sKubeletConfig().ExtraConfig()["memoryManagerPolicy"] != "None" {
		t.Fatal("the staged config did not boot")
	}

	if state, policy := kubeletState(em, n); state != "Waiting" || policy != "Static" {
		t.Fatalf("a reboot alone: kubelet %s with the checkpoint of policy %q, want it refusing the Static checkpoint", state, policy)
	}

	for name, c := range map[string]struct {
		req *machine.ResetRequest
		err string
	}{
		"unknown label": {&machine.ResetRequest{SystemPartitionsToWipe: []*machine.ResetPartitionSpec{{Label: "VAR", Wipe: true}}},
			`failed to get volume status with label "VAR"`},
		"labels with USER_DISKS": {&machine.ResetRequest{Mode: machine.ResetRequest_USER_DISKS, SystemPartitionsToWipe: []*machine.ResetPartitionSpec{{Label: "EPHEMERAL", Wipe: true}}},
			"wipe mode USER_DISKS doesn't support SystemPartitionsToWipe"},
		"the whole disk": {&machine.ResetRequest{}, "not emulated"},
	} {
		if err := em.Reset(n, c.req); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", name, err, c.err)
		}
	}

	// back to the Static policy, staged, then EPHEMERAL wiped: the kubelet starts afresh under it
	if _, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: static, Mode: machine.ApplyConfigurationRequest_STAGED}, true); err != nil {
		t.Fatal(err)
	}

	if err := em.Reset(n, &machine.ResetRequest{Reboot: true, Graceful: true,
		SystemPartitionsToWipe: []*machine.ResetPartitionSpec{{Label: "EPHEMERAL", Wipe: true}}}); err != nil {
		t.Fatal(err)
	}

	awaitBoot(t, em, n)

	if state, policy := kubeletState(em, n); state != "Running" || policy != "Static" {
		t.Fatalf("after the reset: kubelet %s, checkpoint policy %q", state, policy)
	}

	if em.Maintenance(n) {
		t.Fatal("wiping EPHEMERAL lost the config (STATE)")
	}

	// STATE wiped, powered off: the next boot is in maintenance mode
	if err := em.Reset(n, &machine.ResetRequest{SystemPartitionsToWipe: []*machine.ResetPartitionSpec{{Label: "STATE", Wipe: true}}}); err != nil {
		t.Fatal(err)
	}

	if !n.off {
		t.Fatal("a reset without reboot leaves the machine on")
	}

	em.SetPower(n, true)

	if !em.Maintenance(n) {
		t.Fatal("after wiping STATE the machine booted a config")
	}
}
