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
func is113(tag string) bool { return Emulated(tag) == "v1.13.9" }

// ApplyRebootModeRemoved: from v1.14 machined refuses ApplyConfiguration's REBOOT mode outside
// maintenance mode and AUTO never reboots (it always becomes NO_REBOOT: every change is applied
// in place, there is no "needs a reboot" decision any more); in v1.13 AUTO reboots for changes
// that cannot be applied immediately and REBOOT reboots
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go ApplyConfiguration, both tags).
func ApplyRebootModeRemoved(tag string) bool { return !is113(tag) }

// RebootModeRemovedError is v1.14.1 machined's answer to a REBOOT apply on a configured machine.
const RebootModeRemovedError = "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead"

// RegistersConfigTaints: from v1.14 the kubelet registers with every taint of the node config
// (KubeNodeConfig, or .machine.nodeTaints plus the control-plane taint), so a worker can carry
// its taints from registration on; v1.13 registers with the control-plane taint only
// (internal/app/machined/pkg/controllers/k8s/kubelet_spec.go, both tags; kubelet_config.go
// RegisterWithTaints in v1.14.1).
func RegistersConfigTaints(tag string) bool { return !is113(tag) }

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

// AdjustV113Validation turns machinery v1.14.1's validation of cfg into v1.13.9's, for a
// machine running v1.13 (call it on cfg.Validate's result): no v1.14 deprecation warnings, and
// .machine.install required where the mode installs ("install instructions are required in
// %q mode", v1.13.9 config/types/v1alpha1/v1alpha1_validation.go; v1.14 makes the section
// optional, UnattendedInstallConfig replacing it), reported as machinery reports a v1alpha1
// error (config/container/validate.go).
func AdjustV113Validation(cfg config.Provider, mode validation.RuntimeMode) func([]string, error) ([]string, error) {
	return func(warnings []string, err error) ([]string, error) {
		warnings = slices.DeleteFunc(warnings, func(w string) bool { return slices.Contains(v114Warnings, w) })

		raw := cfg.RawV1Alpha1()
		if err == nil && mode.RequiresInstall() && raw != nil && raw.MachineConfig != nil && raw.MachineConfig.MachineInstall == nil { //nolint:staticcheck // the legacy section is what v1.13 requires
			v1alpha1 := multierror.Append(nil, fmt.Errorf("install instructions are required in %q mode", mode))
			err = multierror.Append(nil, fmt.Errorf("v1alpha1.Config: %w", v1alpha1))
		}

		return warnings, err
	}
}

// v113Kinds are the config document kinds machinery v1.13.9 registers: every
// registry.Register call under pkg/machinery/config/types of the v1.13.9 module, its constant
// resolved (network.DefaultActionConfig is "NetworkDefaultActionConfig"); "v1alpha1" is the
// machine config itself. Machinery v1.14.1 registers them all (TestV113KindsRegisteredInV114)
// and 45 more (KubeletConfig, KubeNodeConfig, SysctlConfig, UnattendedInstallConfig, ...).
var v113Kinds = []string{
	"BlackholeRouteConfig", "BondConfig", "BridgeConfig", "DHCPv4Config", "DHCPv6Config",
	"DummyLinkConfig", "EnvironmentConfig", "EthernetConfig",
	"EventSinkConfig", "ExistingVolumeConfig", "ExtensionServiceConfig", "ExternalVolumeConfig",
	"HCloudVIPConfig", "HostnameConfig", "ImageVerificationConfig", "KmsgLogConfig",
	"KubeSpanConfig", "KubeSpanEndpointsConfig", "Layer2VIPConfig", "LinkAliasConfig",
	"LinkConfig", "NetworkDefaultActionConfig", "NetworkRuleConfig", "OOMConfig", "PCIDriverRebindConfig", "RawVolumeConfig",
	"RegistryAuthConfig", "RegistryMirrorConfig", "RegistryTLSConfig", "ResolverConfig",
	"RoutingRuleConfig", "SideroLinkConfig", "StaticHostConfig", "SwapVolumeConfig",
	"TCPProbeConfig", "TimeSyncConfig", "TrustedRootsConfig", "UserVolumeConfig", "VLANConfig",
	"VRFConfig", "VolumeConfig", "WatchdogTimerConfig", "WireguardConfig", "ZswapConfig",
	"v1alpha1",
}

// CheckDocumentKinds refuses, on a machine running tag, a config with a document kind its
// release does not know, with the error v1.13.9's config loader gives: its decoder reads the
// documents in order and the first whose kind is not registered fails
// (pkg/machinery/config/configloader/internal/decoder/decoder.go parse and decode,
// config/internal/registry/registry.go New). Machinery v1.14.1, which the emulator loads
// configs with, knows every kind, so only v1.13 machines refuse any. YAML that does not parse
// is left to the loader.
func CheckDocumentKinds(tag string, raw []byte) error {
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

			apiVersion, kind := value(manifest, "apiVersion"), value(manifest, "kind")
			if kind == "" || apiVersion == "" || slices.Contains(v113Kinds, kind) {
				continue // the machine config itself, a known kind, or an error the loader reports
			}

			return fmt.Errorf("error decoding document %s/%s/%s (line %d): %q %q: not registered",
				apiVersion, kind, value(manifest, "name"), manifest.Line, kind, apiVersion)
		}
	}
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
