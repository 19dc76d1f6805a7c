package kubelet

import (
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"

	"solanaops.testbed/emulator/kernel"
)

func workerMachine(t *testing.T, patch func(string) string, options ...generate.Option) Machine {
	t.Helper()

	loaded := workerConfig(t, patch, options...)

	hw := kernel.Hardware{CPUs: 8, Memory: "64Gi"}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	return Machine{Config: loaded, NodeName: "w1", Address: "127.0.1.20", CPUs: 8, Memory: kernel.MemoryOf(hw, nil)}
}

// TestNodeWithoutCNI: when every control plane says cluster.network.cni none the kubelet
// posts Ready=False with the runtime's network error; with the default CNI, or one control
// plane deploying flannel, it posts no conditions (kwok keeps the Node Ready).
func TestNodeWithoutCNI(t *testing.T) {
	none := workerMachine(t, func(raw string) string {
		return strings.Replace(raw, "\n        dnsDomain: cluster.local\n", "\n        dnsDomain: cluster.local\n        cni:\n            name: none\n", 1)
	})
	flannel := workerMachine(t, nil)

	manifest := NodeManifest(flannel)
	AddNetworkConditions(manifest, []config.Provider{none.Config, none.Config})

	conditions, _ := manifest["status"].(map[string]any)["conditions"].([]any)
	if len(conditions) == 0 {
		t.Fatal("a Node without a CNI should carry the kubelet's conditions")
	}

	ready := conditions[len(conditions)-1].(map[string]any)
	want := "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady " +
		"message:Network plugin returns error: cni plugin not initialized"

	if ready["type"] != "Ready" || ready["status"] != "False" || ready["reason"] != "KubeletNotReady" || ready["message"] != want {
		t.Errorf("Ready condition = %v", ready)
	}

	for name, controlPlanes := range map[string][]config.Provider{
		"flannel": {flannel.Config}, "one control plane deploys flannel": {none.Config, flannel.Config}, "no control plane yet": nil,
	} {
		manifest := NodeManifest(none)
		AddNetworkConditions(manifest, controlPlanes)

		if conditions, ok := manifest["status"].(map[string]any)["conditions"]; ok {
			t.Errorf("%s: the runtime network is ready, so no conditions; got %v", name, conditions)
		}
	}
}

// TestNodeInfoNamesTheBoot: the kubelet reports the machine's boot ID and the booted release,
// so a Node proves which boot registered it (the upgrade's Ready gate compares the boot ID).
func TestNodeInfoNamesTheBoot(t *testing.T) {
	m := workerMachine(t, nil)
	m.BootID, m.TalosVersion = "0b9d6a4e-1c2f-4f3a-9d8e-2a7b5c1e0f11", "v1.13.8"

	info := NodeManifest(m)["status"].(map[string]any)["nodeInfo"].(map[string]any)
	if info["bootID"] != m.BootID || info["osImage"] != "Talos (v1.13.8)" {
		t.Errorf("nodeInfo = %v", info)
	}
}

// TestNoCNIWithoutFlannelDocument: in the v1.14 layout flannel runs only when a control plane's
// config has the KubeFlannelCNIConfig document (talosctl gen config puts it in control-plane
// configs; machinery's K8sFlannelCNIConfig, v1.14.1 controllers/k8s/control_plane.go).
func TestNoCNIWithoutFlannelDocument(t *testing.T) {
	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithVersionContract(config.TalosVersion1_14))
	if err != nil {
		t.Fatal(err)
	}

	cp, err := input.Config(machinetype.TypeControlPlane)
	if err != nil {
		t.Fatal(err)
	}

	if got := RuntimeNetworkError([]config.Provider{cp}); got != "" {
		t.Errorf("with KubeFlannelCNIConfig: %q, want a CNI", got)
	}

	patch, err := configpatcher.LoadPatch([]byte("apiVersion: v1alpha1\nkind: KubeFlannelCNIConfig\n$patch: delete\n"))
	if err != nil {
		t.Fatal(err)
	}

	out, err := configpatcher.Apply(configpatcher.WithConfig(cp), []configpatcher.Patch{patch})
	if err != nil {
		t.Fatal(err)
	}

	without, err := out.Config()
	if err != nil {
		t.Fatal(err)
	}

	if without.K8sFlannelCNIConfig() != nil || RuntimeNetworkError([]config.Provider{without}) == "" {
		t.Error("without KubeFlannelCNIConfig the cluster has no CNI")
	}
}
