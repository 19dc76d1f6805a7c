package machines

// What Talos v1.14.1 publishes about a node's Kubernetes components, from its running config
// (internal/app/machined/pkg/controllers/k8s, v1.14.1), and what talosctl upgrade-k8s reads:
//
//   - controlplane/{APIServer,ControllerManager,Scheduler}Configs: "kube-apiserver" etc. from
//     the config (control_plane.go), and "final-kube-apiserver" etc. derived from those
//     (control_plane_final.go), each with its own version counter, bumped only when its spec
//     changes;
//   - k8s/StaticPods rendered from the final- resources (control_plane_static_pod.go,
//     internal/k8stemplates), annotated talos.dev/config-version = the final resource's
//     version, once etcd is up;
//   - k8s/KubeletSpecs/kubelet (kubelet_spec.go): the kubelet image and its flags;
//   - config/MachineConfigs/v1alpha1: the running config (what upgrade-k8s patches).
//
// The static pods' mirror pods are the kubelet's (mirrorpods.go).

import (
	"fmt"
	"maps"
	"slices"

	"github.com/cosi-project/runtime/pkg/resource"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
)

// controlPlaneComponents are the static pods of a control plane, in Talos' (and upgrade-k8s')
// order.
var controlPlaneComponents = []string{k8s.APIServerID, k8s.ControllerManagerID, k8s.SchedulerID}

// componentImage is the image the config names for a control-plane component (machinery's
// merged accessors: the Kube*Config documents or .cluster.apiServer/controllerManager/
// scheduler.image, defaulting to Talos' repository at the default version); ok is false when
// the config disables the component (or has none).
func componentImage(cfg config.Config, id string) (image string, extraArgs map[string][]string, ok bool) {
	switch id {
	case k8s.APIServerID:
		if c := cfg.K8sAPIServerConfig(); c != nil {
			return c.Image(), c.ExtraArgs(), true
		}
	case k8s.ControllerManagerID:
		if c := cfg.K8sControllerManagerConfig(); c != nil && c.Enabled() {
			return c.Image(), c.ExtraArgs(), true
		}
	case k8s.SchedulerID:
		if c := cfg.K8sSchedulerConfig(); c != nil && c.Enabled() {
			return c.Image(), c.ExtraArgs(), true
		}
	}

	return "", nil, false
}

// flagArgs is a binary and its flags as --key=value, keys sorted (argsbuilder's form).
func flagArgs(binary string, extra map[string][]string) []string {
	args := []string{binary}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		for _, v := range extra[k] {
			args = append(args, fmt.Sprintf("--%s=%s", k, v))
		}
	}

	return args
}

func argValues(extra map[string][]string) map[string]k8s.ArgValues {
	if len(extra) == 0 {
		return nil
	}

	out := make(map[string]k8s.ArgValues, len(extra))
	for k, v := range extra {
		out[k] = k8s.ArgValues{Values: v}
	}

	return out
}

// controlPlaneConfigResources are a control plane's component config resources, the
// config-derived and (withFinal, v1.14) the final one of each component. Only the fields the
// emulator runs with are filled in (the image, extra args); Args of the final ones is the
// static pod's command (v1.13 renders it from the config-derived one).
func controlPlaneConfigResources(cfg config.Config, withFinal bool) []ownedResource {
	var out []ownedResource

	finals := []bool{false}
	if withFinal {
		finals = append(finals, true)
	}

	for _, id := range controlPlaneComponents {
		image, extra, ok := componentImage(cfg, id)
		if !ok {
			continue
		}

		command := flagArgs("/usr/local/bin/"+id, extra)

		switch id {
		case k8s.APIServerID:
			for _, final := range finals {
				r := k8s.NewAPIServerConfig(k8s.APIServerConfigID)
				owner := "k8s.ControlPlaneAPIServerController"
				*r.TypedSpec() = k8s.APIServerConfigSpec{Image: image, ExtraArgs: argValues(extra)}

				if final {
					r = k8s.NewAPIServerConfig(k8s.FinalAPIServerConfigID)
					owner = "k8s.ControlPlaneAPIServerFinalController"
					*r.TypedSpec() = k8s.APIServerConfigSpec{Image: image, Args: command}
				}

				out = append(out, ownedResource{owner, r})
			}
		case k8s.ControllerManagerID:
			for _, final := range finals {
				r := k8s.NewControllerManagerConfig(k8s.ControllerManagerConfigID)
				owner := "k8s.ControlPlaneControllerManagerController"
				*r.TypedSpec() = k8s.ControllerManagerConfigSpec{Enabled: true, Image: image, ExtraArgs: argValues(extra)}

				if final {
					r = k8s.NewControllerManagerConfig(k8s.FinalControllerManagerConfigID)
					owner = "k8s.ControlPlaneControllerManagerFinalController"
					*r.TypedSpec() = k8s.ControllerManagerConfigSpec{Enabled: true, Image: image, Args: command}
				}

				out = append(out, ownedResource{owner, r})
			}
		case k8s.SchedulerID:
			for _, final := range finals {
				r := k8s.NewSchedulerConfig(k8s.SchedulerConfigID)
				owner := "k8s.ControlPlaneSchedulerController"
				*r.TypedSpec() = k8s.SchedulerConfigSpec{Enabled: true, Image: image, ExtraArgs: argValues(extra)}

				if final {
					r = k8s.NewSchedulerConfig(k8s.FinalSchedulerConfigID)
					owner = "k8s.ControlPlaneSchedulerFinalController"
					*r.TypedSpec() = k8s.SchedulerConfigSpec{Enabled: true, Image: image, Args: command}
				}

				out = append(out, ownedResource{owner, r})
			}
		}
	}

	return out
}

// kubeletSpec is the KubeletSpec's image and flags (the config's extraArgs; the flags Talos
// adds itself are not emulated).
func kubeletSpec(cfg config.Config) *k8s.KubeletSpec {
	spec := k8s.NewKubeletSpec(k8s.NamespaceName, k8s.KubeletID)
	if kc := cfg.K8sKubeletConfig(); kc != nil {
		spec.TypedSpec().Image = kc.Image()
		spec.TypedSpec().Args = flagArgs("--config=/etc/kubernetes/kubelet.yaml", kc.ExtraArgs())[1:]
	}

	return spec
}

// machineConfigResource is config/MachineConfigs/v1alpha1, the running config.
func machineConfigResource(cfg config.Provider) ownedResource {
	return ownedResource{"", configres.NewMachineConfigWithID(cfg, configres.ActiveID)}
}

// staticPodManifest is the static pod Talos renders for a component (k8stemplates
// apiserver.go/controller-manager.go/scheduler.go): its labels, the config version annotation
// upgrade-k8s waits on, a host-network container named after the component with the image
// and the final resource's command. Probes, volumes and security settings are left out.
func staticPodManifest(id, image string, command []string, configVersion resource.Version) map[string]any {
	version := ""
	if v, err := compatibility.KubernetesVersionFromImageRef(image); err == nil {
		version = v.String()
	}

	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":      id,
			"namespace": "kube-system",
			"annotations": map[string]any{
				constants.AnnotationStaticPodConfigVersion:  configVersion.String(),
				constants.AnnotationStaticPodSecretsVersion: "1",
			},
			"labels": map[string]any{
				"tier":                         "control-plane",
				"k8s-app":                      id,
				"component":                    id,
				"app.kubernetes.io/name":       id,
				"app.kubernetes.io/version":    version,
				"app.kubernetes.io/component":  "control-plane",
				"app.kubernetes.io/managed-by": "Talos",
			},
		},
		"spec": map[string]any{
			"hostNetwork":       true,
			"priorityClassName": "system-cluster-critical",
			"containers": []any{map[string]any{
				"name":    id,
				"image":   image,
				"command": anySlice(command),
			}},
		},
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}

	return out
}

// componentConfigMetadata is the metadata of the config resource a component's static pod is
// rendered from: the final one (v1.14) or the config-derived one (v1.13).
func componentConfigMetadata(id string, final bool) *resource.Metadata {
	switch id {
	case k8s.APIServerID:
		return k8s.NewAPIServerConfig(map[bool]string{true: k8s.FinalAPIServerConfigID, false: k8s.APIServerConfigID}[final]).Metadata()
	case k8s.ControllerManagerID:
		return k8s.NewControllerManagerConfig(map[bool]string{true: k8s.FinalControllerManagerConfigID, false: k8s.ControllerManagerConfigID}[final]).Metadata()
	default:
		return k8s.NewSchedulerConfig(map[bool]string{true: k8s.FinalSchedulerConfigID, false: k8s.SchedulerConfigID}[final]).Metadata()
	}
}
