// Command kubelet-feature-gates prints the feature gates a kubelet of this Kubernetes version
// accepts, registered as the kubelet registers them: the Kubernetes gates (pkg/features), the
// logging gates (cmd/kubelet/app/server.go) and the metrics gates (pkg/kubelet/server). A
// kubelet refuses to start on a gate it does not know, or on a locked gate set against its
// default (component-base/featuregate: "unrecognized feature gate", "feature is locked to").
//
// Output: one JSON object, gate name -> {"default": bool, "locked": bool}. The collection's
// table of them (plugins/module_utils/feature_gates.py) is compared with it by the tests.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	logsapi "k8s.io/component-base/logs/api/v1"
	metricsfeatures "k8s.io/component-base/metrics/features"
	_ "k8s.io/kubernetes/pkg/features" // registers the Kubernetes gates at init, as in the kubelet
)

type gate struct {
	Default bool `json:"default"`
	Locked  bool `json:"locked"`
}

func main() {
	gates := utilfeature.DefaultMutableFeatureGate
	for _, add := range []func() error{
		func() error { return logsapi.AddFeatureGates(gates) },
		func() error { return metricsfeatures.AddFeatureGates(gates) },
	} {
		if err := add(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	known := map[string]gate{}
	// GetAll leaves out the gates not yet available at this version (PreAlpha), as SetFromMap refuses them
	for name, spec := range gates.GetAll() {
		known[string(name)] = gate{Default: spec.Default, Locked: spec.LockToDefault}
	}
	if err := json.NewEncoder(os.Stdout).Encode(known); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
