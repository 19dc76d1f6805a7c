package kubelet

import (
	"github.com/siderolabs/talos/pkg/machinery/config"
)

// RuntimeNetworkError is why a node's container runtime network is not ready, "" when it is.
// The CNI is deployed cluster-wide by the control planes' bootstrap manifests: flannel when the
// config has one (a KubeFlannelCNIConfig document, or cluster.network.cni flannel, its default;
// machinery's K8sFlannelCNIConfig, which v1.14.1's control_plane.go reads), or the external
// manifests (KubeExternalManifestConfig, cluster.network.cni.urls, extraManifests; the emulator
// takes any as a CNI). When no configured control plane has either, nothing installs one, containerd's CRI status reports
// NetworkReady=false with reason NetworkPluginNotReady and go-cni's ErrCNINotInitialized
// (containerd internal/cri/server/status.go), and the kubelet wraps it as "container runtime
// network not ready: <condition>" (pkg/kubelet/kubelet.go updateRuntimeUp;
// pkg/kubelet/container/runtime.go RuntimeCondition.String).
func RuntimeNetworkError(controlPlanes []config.Provider) string {
	if len(controlPlanes) == 0 {
		return ""
	}

	for _, cfg := range controlPlanes {
		if cfg.K8sFlannelCNIConfig() != nil || len(cfg.K8sExternalManifestConfigs()) > 0 {
			return ""
		}
	}

	return "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady " +
		"message:Network plugin returns error: cni plugin not initialized"
}

// AddNetworkConditions puts into a Node manifest (NodeManifest) the conditions the kubelet
// posts when the runtime network is not ready: Ready=False, reason KubeletNotReady, the error
// as message (pkg/kubelet/nodestatus/setters.go ReadyCondition). With a CNI it adds none and
// kwok (testbed/kwok/stages.yaml) keeps the Node Ready as a kubelet would. For a NotReady Node
// kwok only renews the Lease, so the node lifecycle controller of the real controller-manager
// sees a live kubelet reporting NotReady and taints the Node node.kubernetes.io/not-ready.
func AddNetworkConditions(manifest map[string]any, controlPlanes []config.Provider) {
	message := RuntimeNetworkError(controlPlanes)
	if message == "" {
		return
	}

	condition := func(kind, status, reason, message string) map[string]any {
		return map[string]any{"type": kind, "status": status, "reason": reason, "message": message}
	}

	manifest["status"].(map[string]any)["conditions"] = []any{
		condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		condition("Ready", "False", "KubeletNotReady", message),
	}
}
