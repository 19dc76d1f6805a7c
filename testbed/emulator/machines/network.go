package machines

import (
	"errors"

	"github.com/siderolabs/talos/pkg/machinery/config"

	"solanaops.testbed/emulator/kubelet"
)

// ErrSkipCheck is a health check's answer when it does not apply (Talos' conditions.ErrSkipAssertion),
// reported as "SKIP".
var ErrSkipCheck = errors.New("SKIP")

// cniDisabled tells whether the cluster runs without a CNI (cluster.network.cni none): Talos'
// health then skips "all k8s nodes to report ready" and "coredns to report ready"
// (pkg/cluster/check/default.go cniDisabledStatus, from the BootstrapManifestsConfig the
// control plane's config renders).
func (em *Emulator) cniDisabled() bool {
	em.mu.Lock()
	defer em.mu.Unlock()

	return kubelet.RuntimeNetworkError(em.controlPlaneConfigs()) != ""
}

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
