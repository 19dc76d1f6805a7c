package machines

import (
	"maps"
	"testing"

	"solanaops.testbed/emulator/kubelet"
)

// Talos' ownership rules (node_apply.go ApplyLabels/ApplyTaints): take over what is absent,
// own what already matches, leave foreign values alone, remove owned keys no longer wanted.
func TestApplyKVOwnership(t *testing.T) {
	current := map[string]string{"kubernetes.io/hostname": "w1", "team": "ops", "old": "x", "same": "1"}
	owned := map[string]bool{"old": true}

	applyKV(current, owned, map[string]string{"team": "dev", "new": "y", "same": "1"})

	want := map[string]string{"kubernetes.io/hostname": "w1", "team": "ops", "new": "y", "same": "1"}
	if !maps.Equal(current, want) {
		t.Errorf("labels: got %v, want %v", current, want)
	}

	if !maps.Equal(owned, map[string]bool{"new": true, "same": true}) {
		t.Errorf("owned: %v", owned)
	}
}

func TestApplyTaintsOwnership(t *testing.T) {
	registered := kubelet.Taint{Key: "solana.io/validator", Value: "true", Effect: "NoSchedule"}
	notReady := kubelet.Taint{Key: "node.kubernetes.io/not-ready", Effect: "NoExecute", TimeAdded: "2026-12-01T00:00:00Z"}
	owned := map[string]bool{}

	// the taint the kubelet registered with is found equal: owned, nothing changes
	got := applyTaints([]kubelet.Taint{notReady, registered}, owned, []kubelet.Taint{registered})
	if len(got) != 2 || got[0] != notReady || got[1] != registered || !owned["solana.io/validator"] {
		t.Fatalf("equal taint: got %v, owned %v", got, owned)
	}

	// a foreign taint of the same key with another value is left alone and not owned
	foreign := kubelet.Taint{Key: "dedicated", Value: "x", Effect: "NoSchedule"}
	owned = map[string]bool{}

	got = applyTaints([]kubelet.Taint{foreign}, owned, []kubelet.Taint{{Key: "dedicated", Value: "y", Effect: "NoSchedule"}})
	if got[0] != foreign || owned["dedicated"] {
		t.Errorf("foreign taint: got %v, owned %v", got, owned)
	}

	// an owned taint no longer wanted goes; an absent wanted one is added
	owned = map[string]bool{"gone": true}

	got = applyTaints([]kubelet.Taint{{Key: "gone", Effect: "NoSchedule"}}, owned, []kubelet.Taint{registered})
	if len(got) != 1 || got[0] != registered || owned["gone"] || !owned[registered.Key] {
		t.Errorf("owned taint removed, wanted added: got %v, owned %v", got, owned)
	}
}
