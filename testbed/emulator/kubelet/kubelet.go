// Package kubelet is the emulated kubelet: the KubeletConfiguration Talos writes to
// /etc/kubernetes/kubelet.yaml and the Node object the kubelet registers, both pure functions
// of the running machine config and the machine's kernel view. Real kubelets compute
// capacity from cAdvisor; here it is the emulated kernel's memory view (package kernel), so
// the same rules decide what /proc/meminfo and the Node report.
package kubelet

import (
	"fmt"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"gopkg.in/yaml.v3"

	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/release"
)

// ConfigPath is where Talos writes the kubelet's configuration.
const ConfigPath = "/etc/kubernetes/kubelet.yaml"

// Machine is what the kubelet's view derives from.
type Machine struct {
	// Config is the running machine config (a configured machine).
	Config       config.Provider
	ControlPlane bool
	// NodeName is the Node's name (the hostname).
	NodeName string
	Address  string
	CPUs     int
	Memory   kernel.Memory
	// BootID is the machine's /proc/sys/kernel/random/boot_id and TalosVersion the release it
	// booted: the kubelet reports both in the Node's nodeInfo (bootID, osImage from os-release)
	BootID       string
	TalosVersion string
}

// Config is the kubelet's extraConfig (KubeletConfig's config, or machine.kubelet.extraConfig:
// machinery's K8sKubeletConfig, which KubeletConfigController reads,
// internal/app/machined/pkg/controllers/k8s/kubelet_config.go) with the fields Talos always sets
// or defaults (NewKubeletConfiguration in talos' kubelet_spec.go): a subset, enough for what is
// inspected.
func Config(m Machine) map[string]any {
	var cfg map[string]any
	if kc := m.Config.K8sKubeletConfig(); kc != nil {
		cfg = maps.Clone(kc.ExtraConfig())
	}

	if cfg == nil {
		cfg = map[string]any{}
	}

	cfg["apiVersion"] = "kubelet.config.k8s.io/v1beta1"
	cfg["kind"] = "KubeletConfiguration"
	cfg["port"] = constants.KubeletPort
	cfg["staticPodPath"] = constants.ManifestsDirectory
	cfg["rotateCertificates"] = true
	cfg["protectKernelDefaults"] = true

	if _, ok := cfg["clusterDomain"]; !ok {
		if network := m.Config.K8sNetworkConfig(); network != nil {
			cfg["clusterDomain"] = network.DNSDomain()
		}
	}

	if reserved, ok := cfg["systemReserved"].(map[string]any); !ok || len(reserved) == 0 {
		memory := constants.KubeletSystemReservedMemoryWorker
		if m.ControlPlane {
			memory = constants.KubeletSystemReservedMemoryControlPlane
		}

		cfg["systemReserved"] = map[string]any{
			"cpu": constants.KubeletSystemReservedCPU, "memory": memory,
			"pid": constants.KubeletSystemReservedPid, "ephemeral-storage": constants.KubeletSystemReservedEphemeralStorage,
		}
	}

	if taints := registerWithTaints(m, cfg); len(taints) > 0 {
		cfg["registerWithTaints"] = taints
	}

	return cfg
}

// registerWithTaints is the kubelet's registerWithTaints (kubelet_spec.go): extraConfig's, plus
// each taint Talos registers with whose key it lacks, unless the node skips registration or
// extraArgs set register-with-taints. Talos v1.14 registers with every taint of the node config
// in key order, v1.13 with the control-plane taint only (release.RegistersConfigTaints).
func registerWithTaints(m Machine, cfg map[string]any) []any {
	taints, _ := cfg["registerWithTaints"].([]any)

	node := m.Config.K8sNodeConfig()
	if node == nil || node.SkipNodeRegistration() {
		return taints
	}

	if kc := m.Config.K8sKubeletConfig(); kc != nil && len(kc.ExtraArgs()["register-with-taints"]) > 0 {
		return taints
	}

	has := func(key string) bool {
		return slices.ContainsFunc(taints, func(t any) bool {
			tm, _ := t.(map[string]any)

			return tm["key"] == key
		})
	}

	for _, t := range DesiredTaints(m) {
		if has(t.Key) || (!release.RegistersConfigTaints(m.TalosVersion) && (!m.ControlPlane || t.Key != constants.LabelNodeRoleControlPlane)) {
			continue
		}

		taint := map[string]any{"key": t.Key, "effect": t.Effect}
		if t.Value != "" {
			taint["value"] = t.Value
		}

		taints = append(taints, taint)
	}

	if release.RegistersConfigTaints(m.TalosVersion) {
		slices.SortStableFunc(taints, func(a, b any) int {
			ka, _ := a.(map[string]any)["key"].(string)
			kb, _ := b.(map[string]any)["key"].(string)

			return strings.Compare(ka, kb)
		})
	}

	return taints
}

// ConfigYAML is /etc/kubernetes/kubelet.yaml.
func ConfigYAML(m Machine) ([]byte, error) {
	return yaml.Marshal(Config(m))
}

// Resources is what the kubelet reports as capacity and allocatable:
//
//	capacity: cpu = CPUs, memory = MemTotal, hugepages-<size> = pool bytes, pods = maxPods (110)
//	allocatable: cpu = CPUs - |reservedSystemCPUs| if set, else - (kube+system reserved cpu);
//	memory = MemTotal - huge pages - kube/system reserved memory - evictionHard memory.available
//	(default 100Mi, the kubelet's).
func Resources(m Machine) (capacity, allocatable map[string]string) {
	cfg := Config(m)
	mem := m.Memory
	cpus := int64(m.CPUs)

	memoryBytes := new(big.Int).SetUint64(mem.TotalKB * 1024)
	capacity = map[string]string{
		"cpu":    fmt.Sprint(cpus),
		"memory": fmt.Sprintf("%dKi", mem.TotalKB),
		"pods":   fmt.Sprint(intOr(cfg["maxPods"], 110)),
	}
	allocatable = maps.Clone(capacity)

	hugeBytes := new(big.Int)

	for _, size := range []struct {
		kb       uint64
		resource string
	}{{kernel.PageSize2M, "hugepages-2Mi"}, {kernel.PageSize1G, "hugepages-1Gi"}} {
		bytes := new(big.Int).SetUint64(mem.Pool(size.kb).Total() * size.kb * 1024)
		capacity[size.resource] = bytes.String()
		allocatable[size.resource] = bytes.String()
		hugeBytes.Add(hugeBytes, bytes)
	}

	reservedMilli := int64(0)
	if set, ok := cfg["reservedSystemCPUs"].(string); ok && set != "" {
		reservedMilli = int64(len(cpusetMembers(set))) * 1000
	} else {
		for _, key := range []string{"kubeReserved", "systemReserved"} {
			reservedMilli += milli(lookup(cfg, key, "cpu"))
		}
	}

	allocatable["cpu"] = fmt.Sprintf("%dm", cpus*1000-reservedMilli)

	free := new(big.Int).Sub(memoryBytes, hugeBytes)
	free.Sub(free, reservationBytes(cfg, mem))
	allocatable["memory"] = free.String()

	return capacity, allocatable
}

// defaultMemoryAvailable is the kubelet's default hard eviction threshold for memory
// (pkg/kubelet/apis/config/v1beta1 DefaultEvictionHard).
const defaultMemoryAvailable = "100Mi"

// reservationBytes is the memory the Node allocatable feature reserves: kube and system reserved
// memory plus the hard eviction threshold of memory.available. Without evictionHard the kubelet's
// defaults apply; a given evictionHard stands alone unless mergeDefaultEvictionSettings merges
// the defaults into it (kubelet config v1beta1 defaults; eviction.ParseThresholdConfig). A
// percentage is of the machine's memory capacity.
func reservationBytes(cfg map[string]any, mem kernel.Memory) *big.Int {
	reserved := new(big.Int)
	for _, key := range []string{"kubeReserved", "systemReserved"} {
		reserved.Add(reserved, bytesOf(lookup(cfg, key, "memory")))
	}

	hard, given := cfg["evictionHard"].(map[string]any)
	threshold, set := hard["memory.available"].(string)

	if !set && (!given || cfg["mergeDefaultEvictionSettings"] == true) {
		threshold = defaultMemoryAvailable
	}

	if percent, ok := strings.CutSuffix(threshold, "%"); ok {
		var p big.Int
		if _, ok := p.SetString(percent, 10); ok {
			share := new(big.Int).Mul(new(big.Int).SetUint64(mem.TotalKB*1024), &p)

			return reserved.Add(reserved, share.Quo(share, big.NewInt(100)))
		}
	}

	return reserved.Add(reserved, bytesOf(threshold))
}

func lookup(cfg map[string]any, section, key string) string {
	m, _ := cfg[section].(map[string]any)
	v, _ := m[key].(string)

	return v
}

func intOr(v any, fallback int) int {
	if i, ok := v.(int); ok {
		return i
	}

	return fallback
}

var quantityRE = regexp.MustCompile(`^([0-9]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// milli parses a CPU quantity ("500m", "2") into millicores; "" is 0.
func milli(q string) int64 {
	m := quantityRE.FindStringSubmatch(q)
	if m == nil {
		return 0
	}

	v, _ := new(big.Int).SetString(m[1], 10)
	if m[2] == "m" {
		return v.Int64()
	}

	return v.Int64() * 1000
}

// bytesOf parses a memory quantity ("512Mi", "1G", "100") into bytes; "" is 0.
func bytesOf(q string) *big.Int {
	m := quantityRE.FindStringSubmatch(q)
	if m == nil {
		return new(big.Int)
	}

	v, _ := new(big.Int).SetString(m[1], 10)
	factor := map[string]int64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]

	return v.Mul(v, big.NewInt(factor))
}

// cpusetMembers expands "0-1,32-33" into its CPUs.
func cpusetMembers(set string) []int {
	var cpus []int

	for part := range strings.SplitSeq(set, ",") {
		var lo, hi int
		if _, err := fmt.Sscanf(part, "%d-%d", &lo, &hi); err != nil {
			if _, err := fmt.Sscanf(part, "%d", &lo); err != nil {
				continue
			}

			hi = lo
		}

		for c := lo; c <= hi; c++ {
			cpus = append(cpus, c)
		}
	}

	return cpus
}

// NodeManifest is the Node the kubelet registers with its own identity: only the labels a
// kubelet sets on itself (kubernetes.io/hostname, os, arch: pkg/kubelet/kubelet_node_status.go
// initialNode) and the taints of its config's registerWithTaints, which NodeRestriction lets
// a node set at creation only. machine.nodeLabels and nodeTaints come later, from Talos'
// NodeApplyController (package machines, nodeapply.go; DesiredLabels, DesiredTaints).
func NodeManifest(m Machine) map[string]any {
	labels := map[string]any{
		"kubernetes.io/hostname": m.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}

	taints := []any{}

	if registered, ok := Config(m)["registerWithTaints"].([]any); ok {
		taints = append(taints, registered...)
	}

	capacity, allocatable := Resources(m)
	kubeletVersion := m.Config.K8sKubeletConfig().Image()
	kubeletVersion = kubeletVersion[strings.LastIndex(kubeletVersion, ":")+1:]

	return map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{
			"name": m.NodeName, "labels": labels,
			"annotations": map[string]any{KwokAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		"spec": map[string]any{"taints": taints},
		"status": map[string]any{
			"capacity": capacity, "allocatable": allocatable,
			"addresses": []any{
				map[string]any{"type": "InternalIP", "address": m.Address},
				map[string]any{"type": "Hostname", "address": m.NodeName},
			},
			"nodeInfo": map[string]any{"kubeletVersion": kubeletVersion, "osImage": "Talos (" + m.TalosVersion + ")",
				"bootID": m.BootID, "operatingSystem": "linux", "architecture": "amd64"},
		},
	}
}

// Taint is a Node taint as Talos' NodeTaintSpec holds it.
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
	// TimeAdded is kept as the API server has it (NoExecute taints), so rewriting a Node
	// does not change taints it does not mean to.
	TimeAdded string `json:"timeAdded,omitempty"`
}

// DesiredLabels are the labels Talos puts on the machine's Node: the node config's
// (KubeNodeConfig, or .machine.nodeLabels), which includes the control-plane role on control
// planes (machinery's v1alpha1 K8sNodeConfig, controllers/k8s/node_label_spec.go).
func DesiredLabels(m Machine) map[string]string {
	var labels map[string]string
	if node := m.Config.K8sNodeConfig(); node != nil {
		labels = maps.Clone(node.Labels())
	}

	if labels == nil {
		labels = map[string]string{}
	}

	return labels
}

// DesiredAnnotations are the node config's annotations (controllers/k8s/node_annotation_spec.go).
func DesiredAnnotations(m Machine) map[string]string {
	var annotations map[string]string
	if node := m.Config.K8sNodeConfig(); node != nil {
		annotations = maps.Clone(node.Annotations())
	}

	if annotations == nil {
		annotations = map[string]string{}
	}

	return annotations
}

// DesiredTaints are the taints Talos puts on the machine's Node, in key order: the node
// config's ("value:Effect" or "Effect"), which includes the control-plane taint on control
// planes unless scheduling on them is allowed (machinery's v1alpha1 K8sNodeConfig,
// controllers/k8s/node_taint_spec.go).
func DesiredTaints(m Machine) []Taint {
	node := m.Config.K8sNodeConfig()
	if node == nil {
		return nil
	}

	configured := node.Taints()
	taints := make([]Taint, 0, len(configured))

	for _, k := range slices.Sorted(maps.Keys(configured)) {
		value, effect, found := strings.Cut(configured[k], ":")
		if !found {
			value, effect = "", value
		}

		taints = append(taints, Taint{Key: k, Value: value, Effect: effect})
	}

	return taints
}

// KwokAnnotation marks the Nodes kwok keeps Ready (testbed/kwok/stages.yaml); a powered-off
// node loses it, so its lease expires and the node controller marks it NotReady.
const KwokAnnotation = "kwok.x-k8s.io/node"
