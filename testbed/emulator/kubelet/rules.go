package kubelet

// What the kubelet checks when it starts, and refuses to start over (it exits; Talos restarts it
// forever): the CPU manager's and the memory manager's settings against the machine, and the
// memory manager's checkpoint (/var/lib/kubelet/memory_manager_state) against what this start
// computes. Sources (Kubernetes v1.36.3): cmd/kubelet/app/server.go getReservedCPUs;
// pkg/kubelet/cm/cpumanager/cpu_manager.go NewManager; pkg/kubelet/cm/memorymanager/memory_manager.go
// validateReservedMemory, getTotalMemoryTypeReserved; policy_static.go NewPolicyStatic,
// getDefaultMachineState, validateState; state/state_checkpoint.go restoreState. Talos clears
// cpu_manager_state when the CPU manager policy changes, never memory_manager_state
// (internal/app/machined/pkg/controllers/k8s/kubelet_service.go).

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"solanaops.testbed/emulator/kernel"
)

// MemoryCheckpoint is what the memory manager keeps in memory_manager_state that a later start
// compares: its policy and, with Static, the machine state per NUMA node (bytes per resource).
type MemoryCheckpoint struct {
	Policy  string                      `json:"policyName"`
	Machine map[int]map[string]MemTable `json:"machineState,omitempty"`
}

// MemTable is one resource of one NUMA node in the static policy's machine state.
type MemTable struct {
	Total          string `json:"totalMemSize"`
	SystemReserved string `json:"systemReserved"`
	Allocatable    string `json:"allocatable"`
}

// Start is the kubelet's start on this machine with its config: the checkpoint it writes, or
// the error it exits with (as `failed to run Kubelet: ...` or `start memory manager error: ...`).
func Start(m Machine, previous *MemoryCheckpoint) (*MemoryCheckpoint, error) {
	cfg := Config(m)

	reserved, _ := cfg["reservedSystemCPUs"].(string)
	if reserved != "" {
		for _, cpu := range cpusetMembers(reserved) {
			if cpu >= m.CPUs {
				return nil, fmt.Errorf("failed to run Kubelet: reserved-cpus: %s is not a subset of online-cpus: 0-%d", reserved, m.CPUs-1)
			}
		}
	}

	if policy, _ := cfg["cpuManagerPolicy"].(string); policy == "static" && reserved == "" &&
		milli(lookup(cfg, "kubeReserved", "cpu"))+milli(lookup(cfg, "systemReserved", "cpu")) == 0 {
		return nil, fmt.Errorf("failed to run Kubelet: [cpumanager] the static policy requires systemreserved.cpu + kubereserved.cpu to be greater than zero")
	}

	policy, _ := cfg["memoryManagerPolicy"].(string)
	if policy == "" {
		policy = "None"
	}

	now := &MemoryCheckpoint{Policy: policy}

	if policy == "Static" {
		perNode, err := reservedMemory(cfg, m.Memory.NUMA)
		if err != nil {
			return nil, fmt.Errorf("failed to run Kubelet: %w", err)
		}

		if err := sumsMatch(cfg, perNode, m.Memory); err != nil {
			return nil, fmt.Errorf("failed to run Kubelet: %w", err)
		}

		now.Machine = machineState(perNode, m.Memory)
	}

	if previous != nil {
		if previous.Policy != now.Policy {
			return nil, fmt.Errorf("could not restore state from checkpoint: [memorymanager] configured policy %q differs from state checkpoint policy %q, "+
				"please drain this node and delete the memory manager checkpoint file %q before restarting Kubelet",
				now.Policy, previous.Policy, "/var/lib/kubelet/memory_manager_state")
		}

		if now.Policy == "Static" && !maps.EqualFunc(previous.Machine, now.Machine, maps.Equal) {
			return nil, fmt.Errorf("start memory manager error: [memorymanager] the expected machine state is different from the real one")
		}
	}

	return now, nil
}

// reservedMemory is reservedMemory summed per NUMA node and resource, in bytes.
func reservedMemory(cfg map[string]any, numa int) (map[int]map[string]*big.Int, error) {
	perNode := map[int]map[string]*big.Int{}

	entries, _ := cfg["reservedMemory"].([]any)
	for _, e := range entries {
		entry, _ := e.(map[string]any)
		node := intOr(entry["numaNode"], -1)

		if node < 0 || node >= numa {
			return nil, fmt.Errorf("the reserved memory configuration references a NUMA node %d that does not exist on this machine", node)
		}

		limits, _ := entry["limits"].(map[string]any)
		for resource, q := range limits {
			s, _ := q.(string)
			if perNode[node] == nil {
				perNode[node] = map[string]*big.Int{}
			}

			if perNode[node][resource] == nil {
				perNode[node][resource] = new(big.Int)
			}

			perNode[node][resource].Add(perNode[node][resource], bytesOf(s))
		}
	}

	return perNode, nil
}

// sumsMatch: per resource, reservedMemory adds up to the node allocatable reservation (kube +
// system reserved, plus the hard eviction threshold for memory).
func sumsMatch(cfg map[string]any, perNode map[int]map[string]*big.Int, mem kernel.Memory) error {
	want := map[string]*big.Int{"memory": reservationBytes(cfg, mem)}

	for _, key := range []string{"kubeReserved", "systemReserved"} {
		section, _ := cfg[key].(map[string]any)
		for resource, q := range section {
			if s, _ := q.(string); strings.HasPrefix(resource, "hugepages-") {
				if want[resource] == nil {
					want[resource] = new(big.Int)
				}

				want[resource].Add(want[resource], bytesOf(s))
			}
		}
	}

	total := map[string]*big.Int{}

	for _, node := range perNode {
		for resource, b := range node {
			if total[resource] == nil {
				total[resource] = new(big.Int)
			}

			total[resource].Add(total[resource], b)
			if want[resource] == nil {
				want[resource] = new(big.Int)
			}
		}
	}

	if want["memory"].Sign() == 0 {
		return fmt.Errorf("[memorymanager] you should specify the system reserved memory")
	}

	for _, resource := range slices.Sorted(maps.Keys(want)) {
		got := total[resource]
		if got == nil {
			got = new(big.Int)
		}

		if got.Cmp(want[resource]) != 0 {
			return fmt.Errorf("the total amount %q of type %q is not equal to the value %q determined by Node Allocatable feature",
				quantity(got), resource, quantity(want[resource]))
		}
	}

	return nil
}

// machineState is the static policy's default machine state: per NUMA node, each huge page
// pool and the memory, with what reservedMemory keeps of it.
func machineState(perNode map[int]map[string]*big.Int, mem kernel.Memory) map[int]map[string]MemTable {
	state := map[int]map[string]MemTable{}

	for node := range mem.NUMA {
		reservedOf := func(resource string) *big.Int {
			if b := perNode[node][resource]; b != nil {
				return b
			}

			return new(big.Int)
		}
		table := map[string]MemTable{}
		huge := new(big.Int)

		for _, pool := range mem.Pools {
			resource := map[uint64]string{kernel.PageSize2M: "hugepages-2Mi", kernel.PageSize1G: "hugepages-1Gi"}[pool.SizeKB]
			total := new(big.Int).SetUint64(pool.PerNode[node] * pool.SizeKB * 1024)
			huge.Add(huge, total)
			table[resource] = memTable(total, reservedOf(resource))
		}

		total := new(big.Int).SetUint64(mem.NodeTotalKB(node) * 1024)
		entry := memTable(total, reservedOf("memory"))
		entry.Allocatable = new(big.Int).Sub(new(big.Int).Sub(total, reservedOf("memory")), huge).String()
		table["memory"] = entry
		state[node] = table
	}

	return state
}

func memTable(total, reserved *big.Int) MemTable {
	return MemTable{Total: total.String(), SystemReserved: reserved.String(), Allocatable: new(big.Int).Sub(total, reserved).String()}
}

// quantity prints bytes as resource.Quantity's canonical form does for whole binary units.
func quantity(b *big.Int) string {
	for _, unit := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if q, r := new(big.Int).QuoRem(b, big.NewInt(unit.size), new(big.Int)); r.Sign() == 0 && q.Sign() > 0 {
			return q.String() + unit.suffix
		}
	}

	return b.String()
}
