package machines

import "github.com/siderolabs/talos/pkg/machinery/config"

// controlPlaneConfigs are the running configs of the configured control planes, whose
// cluster.network.cni decides whether the cluster has a CNI (kubelet.RuntimeNetworkError).
// The caller holds em.mu.
func (em *Emulator) controlPlaneConfigs() []config.Provider {
	var configs []config.Provider

	for _, n := range em.nodes {
		if n.configured() && n.isControlPlane() {
			configs = append(configs, n.running)
		}
	}

	return configs
}
