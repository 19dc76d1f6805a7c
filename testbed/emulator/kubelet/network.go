package kubelet

import (
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
)

// RuntimeNetworkError is why the container runtime's network is not ready, "" when it is.
// Talos deploys the CNI of cluster.network.cni (flannel by default, or the custom manifests);
// with `none` nothing installs one, so containerd's CRI status reports NetworkReady=false
// with reason NetworkPluginNotReady and go-cni's ErrCNINotInitialized
// (containerd internal/cri/server/status.go), and the kubelet wraps it as "container runtime
// network not ready: <condition>" (pkg/kubelet/kubelet.go updateRuntimeUp;
// pkg/kubelet/container/runtime.go RuntimeCondition.String).
func RuntimeNetworkError(cfg config.Provider) string {
	if cfg.Cluster() == nil || cfg.Cluster().Network() == nil || cfg.Cluster().Network().CNI().Name() != constants.NoneCNI {
		return ""
	}

	return "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady " +
		"message:Network plugin returns error: cni plugin not initialized"
}

// withNetworkStatus adds NodeConditions to a Node manifest's status when there are any (the
// hook NodeManifest calls on what it returns).
func withNetworkStatus(manifest map[string]any, m Machine) map[string]any {
	if conditions := NodeConditions(m); conditions != nil {
		manifest["status"].(map[string]any)["conditions"] = conditions
	}

	return manifest
}

// NodeConditions are the conditions the kubelet posts when the runtime network is not ready:
// Ready=False, reason KubeletNotReady, the error as message (pkg/kubelet/nodestatus/setters.go
// ReadyCondition); nil when it is ready, so kwok (testbed/kwok/stages.yaml) keeps the Node
// Ready as a kubelet would. The node lifecycle controller of the real controller-manager then
// taints the Node node.kubernetes.io/not-ready itself.
func NodeConditions(m Machine) []any {
	message := RuntimeNetworkError(m.Config)
	if message == "" {
		return nil
	}

	condition := func(kind, status, reason, message string) map[string]any {
		return map[string]any{"type": kind, "status": status, "reason": reason, "message": message}
	}

	return []any{
		condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		condition("Ready", "False", "KubeletNotReady", message),
	}
}
