// Package release is what the emulator knows of the Talos releases its machines run: which
// installer tags boot, which release a machine behaves as, and what differs between the
// releases. The emulator is built on machinery v1.14.1; whatever v1.13 does differently is
// decided here, each rule citing the Talos source it follows (README.md "Releases").
package release

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	yaml "go.yaml.in/yaml/v4"
)

// Releases are the Talos releases the machines emulate, oldest first: the newest patch of each
// minor the module proxy serves machinery for. An installer vX.Y.Z of one of these minors up to
// that patch boots, and the machine behaves as that release (an older patch reports its own tag).
var Releases = []string{"v1.13.9", "v1.14.1"}

// Latest is the newest release: the boot media of a machine whose NODES.yaml names none.
func Latest() string { return Releases[len(Releases)-1] }

var tagRE = regexp.MustCompile(`^v([0-9]+)\.([0-9]+)\.([0-9]+)$`)

// parse splits a release tag vX.Y.Z; ok is false for anything else (pre-releases included).
func parse(tag string) (minor string, patch int, ok bool) {
	m := tagRE.FindStringSubmatch(tag)
	if m == nil {
		return "", 0, false
	}

	patch, _ = strconv.Atoi(m[3])

	return m[1] + "." + m[2], patch, true
}

// Emulated is the release of Releases a machine running tag behaves as: the one of the same
// minor, when tag is not newer; "" when tag cannot boot.
func Emulated(tag string) string {
	minor, patch, ok := parse(tag)
	if !ok {
		return ""
	}

	for _, r := range Releases {
		if m, limit, _ := parse(r); m == minor && patch <= limit {
			return r
		}
	}

	return ""
}

// Bootable reports whether an installer tagged tag can boot on the emulated machines.
func Bootable(tag string) bool { return Emulated(tag) != "" }

// BootableRange describes the bootable tags for error messages ("v1.13.0 to v1.13.9, v1.14.0 to v1.14.1").
func BootableRange() string {
	var b bytes.Buffer

	for i, r := range Releases {
		if i > 0 {
			b.WriteString(", ")
		}

		minor, _, _ := parse(r)
		fmt.Fprintf(&b, "v%s.0 to %s", minor, r)
	}

	return b.String()
}

// is113 says whether a machine running tag behaves as Talos v1.13 (the older of the two lines).
func is113(tag string) bool { return Emulated(tag) == Releases[0] }

// AppliesInPlace: from v1.14 machined's ApplyConfiguration applies every change in place:
// it refuses the REBOOT mode outside maintenance mode, AUTO always becomes NO_REBOOT (there is
// no "needs a reboot" decision any more), and only a request past its dry run cancels a
// pending try-mode rollback; v1.13's AUTO reboots for changes it cannot apply immediately,
// REBOOT reboots, and any non-try request cancels the rollback
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go ApplyConfiguration, both tags).
func AppliesInPlace(tag string) bool { return !is113(tag) }

// ValidatesAtRuntime: v1.14.1 machined validates an applied config in one call reporting every
// error (ValidateAtRuntime); v1.13.9 validates the config, then runs the runtime checks
// (Validate, RuntimeValidate; v1alpha1_server.go ApplyConfiguration, both tags).
func ValidatesAtRuntime(tag string) bool { return !is113(tag) }

// RebootModeRemovedError is v1.14.1 machined's answer to a REBOOT apply on a configured machine.
const RebootModeRemovedError = "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead"

// RegistersConfigTaints: from v1.14 the kubelet registers with every taint of the node config
// (KubeNodeConfig, or .machine.nodeTaints plus the control-plane taint), so a worker can carry
// its taints from registration on; v1.13 registers with the control-plane taint only
// (internal/app/machined/pkg/controllers/k8s/kubelet_spec.go, both tags; kubelet_config.go
// RegisterWithTaints in v1.14.1).
func RegistersConfigTaints(tag string) bool { return !is113(tag) }

// FinalControlPlaneConfigs: from v1.14 machined derives "final-kube-apiserver" etc. from each
// control-plane component's config resource and renders the static pod from it, stamping its
// version (internal/app/machined/pkg/controllers/k8s/control_plane_final.go and
// control_plane_static_pod.go, v1.14.1); v1.13.9 has no final resources and stamps the config
// resource's own version. talosctl v1.14.1 upgrade-k8s watches whichever exists
// (pkg/cluster/kubernetes/talos_managed.go watchControlPlaneConfig).
func FinalControlPlaneConfigs(tag string) bool { return !is113(tag) }

// StockInstallerPublished: ghcr.io/siderolabs/installer is published for v1.13 releases; from
// v1.14 the installer comes from the Image Factory only (v1.14.1 CHANGELOG.md "Default Installer
// Image": "The ghcr.io/siderolabs/installer image is no longer published with releases").
func StockInstallerPublished(tag string) bool { return is113(tag) }

// v114Warnings are the validation warnings machinery v1.14.1 adds for deprecated v1alpha1
// sections that v1.13.9 accepts silently (config/types/v1alpha1/v1alpha1_validation.go Validate).
var v114Warnings = []string{
	".machine.files is deprecated; use dedicated configuration documents instead",
	".machine.baseRuntimeSpecOverrides is deprecated; use a CRIBaseRuntimeSpecConfig document instead",
}

// AdjustV113Validation turns machinery v1.14.1's validation of cfg (cfg.Validate's warnings
// and error) into v1.13.9's, for a machine running v1.13: no v1.14 deprecation warnings, and
// .machine.install required where the mode installs ("install instructions are required in
// %q mode", v1.13.9 config/types/v1alpha1/v1alpha1_validation.go; v1.14 makes the section
// optional, UnattendedInstallConfig replacing it), reported as machinery reports a v1alpha1
// error (config/container/validate.go).
func AdjustV113Validation(cfg config.Provider, mode validation.RuntimeMode, warnings []string, err error) ([]string, error) {
	warnings = slices.DeleteFunc(warnings, func(w string) bool { return slices.Contains(v114Warnings, w) })

	raw := cfg.RawV1Alpha1()
	if err == nil && mode.RequiresInstall() && raw != nil && raw.MachineConfig != nil && raw.MachineConfig.MachineInstall == nil { //nolint:staticcheck // the legacy section is what v1.13 requires
		v1alpha1 := multierror.Append(nil, fmt.Errorf("install instructions are required in %q mode", mode))
		err = multierror.Append(nil, fmt.Errorf("v1alpha1.Config: %w", v1alpha1))
	}

	return warnings, err
}

// v113SchemaText (v113_schema.go) is, for every config document kind machinery v1.13.9
// registers, the YAML keys its types accept, written by the generator in release/v113schema
// from the v1.13.9 module (its comment says how to run it). Machinery v1.14.1 registers these
// kinds too (TestV113KindsRegisteredInV114) and 45 more (KubeletConfig, KubeNodeConfig,
// SysctlConfig, UnattendedInstallConfig, ...).

// keySchema is a document kind's accepted keys: path ("." the document, "a.b" nested structs,
// "[]" a sequence's element, "*" a map's value) to the keys a mapping there may have; a path
// it lacks accepts anything (a scalar, any value).
type keySchema map[string]keySet

type keySet struct {
	anyKey bool
	names  []string
}

var v113Schema = sync.OnceValue(func() map[string]keySchema {
	schemas := map[string]keySchema{}

	for line := range strings.Lines(v113SchemaText) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), " ")
		kind, path, keys := fields[0], fields[1], fields[2]

		if schemas[kind] == nil {
			schemas[kind] = keySchema{}
		}

		schemas[kind][path] = keySet{anyKey: keys == "*", names: strings.Split(keys, ",")}
	}

	return schemas
})

func childPath(path, key string) string {
	if path == "." {
		return key
	}

	return path + "." + key
}

// unknownKeys are the keys of node (at path) the schema lacks, as v1.13.9's strict decoding
// reports them: nested maps of the unknown keys and their values, lists for sequences.
func (s keySchema) unknownKeys(path string, node *yaml.Node) any {
	switch node.Kind { //nolint:exhaustive // scalars have no keys
	case yaml.MappingNode:
		set, checked := s[path]
		if !checked {
			return nil
		}

		var unknown map[string]any

		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i].Value, node.Content[i+1]

			next := childPath(path, "*")
			if !set.anyKey {
				if !slices.Contains(set.names, key) {
					if unknown == nil {
						unknown = map[string]any{}
					}

					unknown[key] = val

					continue
				}

				next = childPath(path, key)
			}

			if inner := s.unknownKeys(next, val); inner != nil {
				if unknown == nil {
					unknown = map[string]any{}
				}

				unknown[key] = inner
			}
		}

		if unknown == nil {
			return nil
		}

		return unknown
	case yaml.SequenceNode:
		var unknown []any

		for _, item := range node.Content {
			if inner := s.unknownKeys(childPath(path, "[]"), item); inner != nil {
				unknown = append(unknown, inner)
			}
		}

		if unknown == nil {
			return nil
		}

		return unknown
	}

	return nil
}

// CheckDocuments refuses, on a machine running tag, a config v1.13.9's config loader refuses
// and machinery v1.14.1 (which the emulator loads configs with) accepts: a document of a kind
// v1.13 does not know, or a key v1.13's type for a known kind lacks (the keys v1.14 added).
// Its decoder reads the documents in order and the first that fails to decode is the error
// (pkg/machinery/config/configloader/internal/decoder/decoder.go parse and decode;
// config/internal/registry/registry.go New; the strict check is
// github.com/siderolabs/gen/xyaml CheckUnknownKeys). v1.14 machines refuse nothing here. YAML
// that does not parse, and documents without an apiVersion, are left to the loader.
func CheckDocuments(tag string, raw []byte) error {
	if !is113(tag) {
		return nil
	}

	dec := yaml.NewDecoder(bytes.NewReader(raw))

	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}

			return nil //nolint:nilerr // the loader reports it
		}

		for _, manifest := range doc.Content {
			if manifest.Kind != yaml.MappingNode {
				continue
			}

			if err := checkDocument(manifest); err != nil {
				return err
			}
		}
	}
}

func checkDocument(manifest *yaml.Node) error {
	apiVersion, kind, name := value(manifest, "apiVersion"), value(manifest, "kind"), value(manifest, "name")

	switch {
	case kind == "" && apiVersion == "":
		kind = "v1alpha1" // the machine config itself
	case kind == "" || apiVersion == "":
		return nil // the loader's error
	}

	schema, known := v113Schema()[kind]
	if !known {
		return fmt.Errorf("error decoding document %s/%s/%s (line %d): %q %q: not registered",
			apiVersion, kind, name, manifest.Line, kind, apiVersion)
	}

	if unknown := schema.unknownKeys(".", manifest); unknown != nil {
		summary, err := yaml.Marshal(unknown)
		if err != nil {
			return err
		}

		return fmt.Errorf("error decoding document %s/%s/%s (line %d): unknown keys found during decoding:\n%s",
			apiVersion, kind, name, manifest.Line, summary)
	}

	return nil
}

// value is a top-level scalar of a YAML mapping, "" when absent.
func value(mapping *yaml.Node, key string) string {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if k := mapping.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return mapping.Content[i+1].Value
		}
	}

	return ""
}
