package kubelet

import (
	"strings"
	"testing"

	"solanaops.testbed/emulator/kernel"
)

// worker is a 2-NUMA-node worker whose kubelet extraConfig is given as YAML lines (indented
// for machine.kubelet.extraConfig), with 1000 2 MiB pages.
func worker(t *testing.T, extraConfig string) Machine {
	t.Helper()

	loaded := workerConfig(t, func(raw string) string {
		return strings.Replace(raw, "\n    kubelet:\n", "\n    kubelet:\n        extraConfig:\n"+extraConfig, 1)
	})

	hw := kernel.Hardware{CPUs: 8, NUMANodes: 2, Memory: "64Gi"}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	return Machine{Config: loaded, NodeName: "w1", CPUs: 8, Memory: kernel.MemoryOf(hw, []string{"hugepagesz=2M", "hugepages=1000"})}
}

const static = `            memoryManagerPolicy: Static
            kubeReserved: {memory: 1Gi}
            systemReserved: {memory: 1Gi}
            evictionHard: {memory.available: 2Gi}
`

func TestTheKubeletRefusesWhatItRefuses(t *testing.T) {
	for name, c := range map[string]struct{ extra, err string }{
		"reserved CPUs outside the machine": {"            reservedSystemCPUs: 0-8\n",
			"reserved-cpus: 0-8 is not a subset of online-cpus: 0-7"},
		"static CPU manager without a CPU reservation": {"            cpuManagerPolicy: static\n            systemReserved: {memory: 1Gi}\n",
			"the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero"},
		"reservedMemory short of the reservations": {static + "            reservedMemory: [{numaNode: 0, limits: {memory: 2Gi}}, {numaNode: 1, limits: {memory: 1Gi}}]\n",
			`the total amount "3Gi" of type "memory" is not equal to the value "4Gi" determined by Node Allocatable feature`},
		// the kubelet's 100Mi joins a merged evictionHard without memory.available
		"merged eviction default not counted": {"            memoryManagerPolicy: Static\n            kubeReserved: {memory: 1Gi}\n            systemReserved: {memory: 1Gi}\n" +
			"            evictionHard: {nodefs.available: 10%}\n            mergeDefaultEvictionSettings: true\n" +
			"            reservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}, {numaNode: 1, limits: {memory: 1Gi}}]\n",
			`the total amount "2Gi" of type "memory" is not equal to the value "2148Mi"`},
		// Talos' own systemReserved (384Mi on a worker) when the dict is empty
		"Talos' systemReserved not counted": {"            memoryManagerPolicy: Static\n            kubeReserved: {memory: 1Gi}\n" +
			"            evictionHard: {memory.available: 1Gi}\n" +
			"            reservedMemory: [{numaNode: 0, limits: {memory: 1Gi}}, {numaNode: 1, limits: {memory: 1Gi}}]\n",
			`the total amount "2Gi" of type "memory" is not equal to the value "2432Mi"`},
		"a NUMA node the machine lacks": {static + "            reservedMemory: [{numaNode: 2, limits: {memory: 4Gi}}]\n",
			"references a NUMA node 2 that does not exist on this machine"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Start(worker(t, c.extra), nil)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func TestTheMemoryManagerCheckpoint(t *testing.T) {
	good := static + "            reservedMemory: [{numaNode: 0, limits: {memory: 2Gi}}, {numaNode: 1, limits: {memory: 2Gi}}]\n"

	first, err := Start(worker(t, good), nil)
	if err != nil || first.Policy != "Static" || first.Machine[1]["hugepages-2Mi"].Total != "1048576000" {
		t.Fatalf("first start: %+v, %v", first, err)
	}

	if again, err := Start(worker(t, good), first); err != nil || again == nil {
		t.Errorf("the same inputs start again: %v", err)
	}

	// other reservations: the per-node machine state differs from the checkpoint
	moved := static + "            reservedMemory: [{numaNode: 0, limits: {memory: 3Gi}}, {numaNode: 1, limits: {memory: 1Gi}}]\n"
	if _, err := Start(worker(t, moved), first); err == nil || !strings.Contains(err.Error(), "the expected machine state is different from the real one") {
		t.Errorf("moved reservations: %v", err)
	}

	// another policy: the checkpoint's policy is refused
	if _, err := Start(worker(t, "            memoryManagerPolicy: None\n"), first); err == nil ||
		!strings.Contains(err.Error(), `configured policy "None" differs from state checkpoint policy "Static"`) {
		t.Errorf("policy change: %v", err)
	}
}
