package kubelet

import (
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"

	"solanaops.testbed/emulator/kernel"
)

func workerMachine(t *testing.T, options ...generate.Option) Machine {
	t.Helper()

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", options...)
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := input.Config(machinetype.TypeWorker)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	loaded, err := configloader.NewFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}

	hw := kernel.Hardware{CPUs: 8, Memory: "64Gi"}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	return Machine{Config: loaded, NodeName: "w1", Address: "127.0.1.20", CPUs: 8, Memory: kernel.MemoryOf(hw, nil)}
}

// TestNodeWithoutCNI: with cluster.network.cni none the kubelet posts Ready=False with the
// runtime's network error; with the default CNI it posts no conditions (kwok keeps it Ready).
func TestNodeWithoutCNI(t *testing.T) {
	status := NodeManifest(workerMachine(t, generate.WithClusterCNIConfig(&v1alpha1.CNIConfig{CNIName: "none"})))["status"].(map[string]any)

	conditions, _ := status["conditions"].([]any)
	if len(conditions) == 0 {
		t.Fatal("a Node without a CNI should carry the kubelet's conditions")
	}

	ready := conditions[len(conditions)-1].(map[string]any)
	want := "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady " +
		"message:Network plugin returns error: cni plugin not initialized"

	if ready["type"] != "Ready" || ready["status"] != "False" || ready["reason"] != "KubeletNotReady" || ready["message"] != want {
		t.Errorf("Ready condition = %v", ready)
	}

	flannel := NodeManifest(workerMachine(t))["status"].(map[string]any)
	if _, ok := flannel["conditions"]; ok {
		t.Errorf("with flannel the kubelet's network is ready: no conditions, got %v", flannel["conditions"])
	}
}
