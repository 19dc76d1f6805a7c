package kubelet

import (
	"reflect"
	"strings"
	"testing"

	"solanaops.testbed/emulator/kernel"
)

// TestResources: huge pages from the kernel view are capacity, and leave allocatable memory.
func TestResources(t *testing.T) {
	loaded := workerConfig(t, nil)

	hw := kernel.Hardware{CPUs: 8, NUMANodes: 1, Memory: "64Gi"}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	mem := kernel.MemoryOf(hw, []string{"hugepagesz=1G", "hugepages=4"})
	capacity, allocatable := Resources(Machine{Config: loaded, NodeName: "w1", Address: "127.0.1.20", CPUs: 8, Memory: mem})

	// MemTotal = 64Gi - (64Gi/64 + 64Mi) = 65994752 Ki; allocatable = that - 4Gi of pages
	// - 384Mi (Talos' worker systemReserved) - 100Mi (the kubelet's eviction default)
	want := map[string]string{"cpu": "8", "memory": "65994752Ki", "hugepages-1Gi": "4294967296", "hugepages-2Mi": "0", "pods": "110"}
	for k, v := range want {
		if capacity[k] != v {
			t.Errorf("capacity[%s] = %s, want %s", k, capacity[k], v)
		}
	}

	if got, want := allocatable["memory"], "62776147968"; got != want {
		t.Errorf("allocatable memory = %s, want %s", got, want)
	}

	if got := allocatable["cpu"]; got != "7950m" {
		t.Errorf("allocatable cpu = %s, want 7950m (50m systemReserved)", got)
	}
}

// TestRegisterWithTaints: a v1.14 kubelet registers with every taint of the node config (a
// worker's own included, in key order); a v1.13 worker's with none (only control planes
// register with their taint there).
func TestRegisterWithTaints(t *testing.T) {
	loaded := workerConfig(t, func(raw string) string {
		return strings.Replace(raw, "\nmachine:\n", "\nmachine:\n    nodeTaints: {solana.io/dedicated: \"validator:NoSchedule\", a.io/b: NoExecute}\n", 1)
	})

	m := Machine{Config: loaded, NodeName: "w1", TalosVersion: "v1.14.1"}
	want := []any{
		map[string]any{"key": "a.io/b", "effect": "NoExecute"},
		map[string]any{"key": "solana.io/dedicated", "value": "validator", "effect": "NoSchedule"},
	}

	if got := Config(m)["registerWithTaints"]; !reflect.DeepEqual(got, want) {
		t.Errorf("v1.14: registerWithTaints %v, want %v", got, want)
	}

	m.TalosVersion = "v1.13.9"
	if got, ok := Config(m)["registerWithTaints"]; ok {
		t.Errorf("v1.13 worker: registerWithTaints %v, want none", got)
	}
}
