package machines

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"github.com/cosi-project/runtime/pkg/resource"
	"github.com/cosi-project/runtime/pkg/resource/meta"
	"github.com/cosi-project/runtime/pkg/state"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/extensions"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	runtimeres "github.com/siderolabs/talos/pkg/machinery/resources/runtime"
	"github.com/siderolabs/talos/pkg/machinery/resources/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/version"
	"gopkg.in/yaml.v3"

	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/release"
)

// The COSI resources a node's controllers would publish (talosctl get), derived from the
// node's install record, services and running config; README.md "COSI state" has the rules.

// servedDefinitions are the resource types a node's COSI state serves.
func servedDefinitions() []meta.ResourceDefinitionSpec {
	return []meta.ResourceDefinitionSpec{
		(&meta.ResourceDefinition{}).ResourceDefinition(),
		runtimeres.NewExtensionStatus(runtimeres.NamespaceName, "").ResourceDefinition(),
		runtimeres.NewSecurityStateSpec(runtimeres.NamespaceName).ResourceDefinition(),
		runtimeres.NewVersion().ResourceDefinition(),
		v1alpha1.NewService("").ResourceDefinition(),
		k8s.NewNodename(k8s.NamespaceName, k8s.NodenameID).ResourceDefinition(),
		// what talosctl upgrade-k8s reads (staticpods.go)
		configres.NewMachineConfig(nil).ResourceDefinition(),
		k8s.NewKubeletSpec(k8s.NamespaceName, "").ResourceDefinition(),
		k8s.NewAPIServerConfig("").ResourceDefinition(),
		k8s.NewControllerManagerConfig("").ResourceDefinition(),
		k8s.NewSchedulerConfig("").ResourceDefinition(),
		k8s.NewStaticPod(k8s.NamespaceName, "").ResourceDefinition(),
	}
}

// schematicExtensionName names the Image Factory's virtual extension (image-factory
// internal/artifacts/schematic.go schematicExtension, constants.SchematicIDExtensionName).
const schematicExtensionName = "schematic"

// the owners Talos' controllers set on what they publish
const (
	ownerExtensions = "runtime.ExtensionStatusController"
	ownerSecurity   = "runtime.SecurityStateController"
	ownerVersion    = "runtime.VersionController"
	ownerServices   = "v1alpha1.ServiceController"
	ownerNodename   = "k8s.NodenameController"
	ownerKubelet    = "k8s.KubeletSpecController"
	ownerStaticPods = "k8s.ControlPlaneStaticPodController"
)

type ownedResource struct {
	owner string
	res   resource.Resource
}

// extensionStatuses lists the installed image's system extensions as Talos reports them
// (ExtensionStatusController reads the image's extensions.yaml; the imager names each layer
// after the directory its extension was unpacked to, "0", "1", ...: the official extensions in
// schematic order, then the Image Factory's virtual "schematic" extension, whose version is
// the schematic ID). The stock installer has no extensions.
func extensionStatuses(rec *installRecord) []*runtimeres.ExtensionStatus {
	if rec == nil || rec.Schematic == "" {
		return nil
	}

	var layers []extensions.Metadata

	for _, name := range rec.OfficialExtensions {
		// an official extension's manifest is named after its image (siderolabs/<name>);
		// its version comes from the factory's extension catalogue, which the testbed lacks
		layers = append(layers, extensions.Metadata{Name: name[strings.LastIndex(name, "/")+1:]})
	}

	layers = append(layers, extensions.Metadata{
		Name:          schematicExtensionName,
		Version:       rec.Schematic,
		Author:        "Image Factory",
		Description:   "Virtual extension which specifies the schematic of the image built with Image Factory.",
		Compatibility: extensions.Compatibility{Talos: extensions.Constraint{Version: ">= 1.0.0"}},
	})

	statuses := make([]*runtimeres.ExtensionStatus, 0, len(layers))

	for i, md := range layers {
		id := strconv.Itoa(i)
		status := runtimeres.NewExtensionStatus(runtimeres.NamespaceName, id)
		*status.TypedSpec() = runtimeres.ExtensionStatusSpec{Image: id + ".sqsh", Metadata: md}
		statuses = append(statuses, status)
	}

	return statuses
}

// securityState follows SecurityStateController: secureBoot when the firmware booted with
// Secure Boot enforcing (a SecureBoot installer on UEFI), bootedWithUKI when systemd-boot's
// LoaderEntryDefault names a Talos UKI (so never with GRUB, even when GRUB uses the UKI's
// command line), SELinux and module signature enforcement read from the kernel command line.
func securityState(n *Node) *runtimeres.SecurityState {
	st := runtimeres.NewSecurityStateSpec(runtimeres.NamespaceName)
	spec := st.TypedSpec()
	cmdline := n.kernelArgs()
	uefi := n.spec.Hardware.BootMode == kernel.BootUKI

	spec.SecureBoot = uefi && n.disk.Install != nil && n.disk.Install.SecureBoot
	spec.BootedWithUKI = uefi
	spec.FIPSState = runtimeres.FIPSStateDisabled

	if v, ok := kernel.Arg(cmdline, constants.KernelParamSELinux); ok && v == "1" {
		spec.SELinuxState = runtimeres.SELinuxStatePermissive

		if e, ok := kernel.Arg(cmdline, constants.KernelParamSELinuxEnforcing); ok && e == "1" {
			spec.SELinuxState = runtimeres.SELinuxStateEnforcing
		}
	}

	if v, ok := kernel.Arg(cmdline, constants.KernelParamEnforceModuleSigVerify); ok && v == "1" {
		spec.ModuleSignatureEnforced = true
	}

	return st
}

// kubernetesNodeName is Talos' rule for the Nodename (NodenameController): the hostname
// lowercased, "_" turned into "-", anything but [a-z0-9.-] dropped, leading and trailing "-"
// and "." trimmed.
func kubernetesNodeName(hostname string) string {
	var b strings.Builder

	for _, r := range strings.ToLower(hostname) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		case r == '_':
			b.WriteByte('-')
		}
	}

	return strings.Trim(b.String(), "-.")
}

// desiredResources is what the node's controllers would have published. Called with em.mu
// held.
func desiredResources(n *Node) []ownedResource {
	var out []ownedResource

	for _, spec := range servedDefinitions() {
		rd, err := meta.NewResourceDefinition(spec)
		if err != nil {
			panic(err) // machinery's own definitions
		}

		out = append(out, ownedResource{res: rd})
	}

	ver := runtimeres.NewVersion()
	ver.TypedSpec().Name = version.Name
	ver.TypedSpec().Version = n.talosVersion() // the booted installer's release
	out = append(out, ownedResource{ownerVersion, ver})

	if !n.configured() {
		return out
	}

	for _, ext := range extensionStatuses(n.disk.Install) {
		out = append(out, ownedResource{ownerExtensions, ext})
	}

	out = append(out, ownedResource{ownerSecurity, securityState(n)})

	for id, svc := range n.services {
		if svc.state != "Running" {
			continue // Talos keeps Service resources for running services only
		}

		res := v1alpha1.NewService(id)
		*res.TypedSpec() = v1alpha1.ServiceSpec{Running: true, Healthy: svc.healthy, Unknown: !svc.healthy}
		out = append(out, ownedResource{ownerServices, res})
	}

	if name := n.nodeName(); name != "" {
		nodename := k8s.NewNodename(k8s.NamespaceName, k8s.NodenameID)
		nodename.TypedSpec().Nodename = name
		nodename.TypedSpec().HostnameVersion = "1"
		nodename.TypedSpec().SkipNodeRegistration = n.running.K8sNodeConfig() != nil && n.running.K8sNodeConfig().SkipNodeRegistration()
		out = append(out, ownedResource{ownerNodename, nodename})
	}

	out = append(out, machineConfigResource(n.running), ownedResource{ownerKubelet, kubeletSpec(n.running)})

	if n.isControlPlane() {
		out = append(out, controlPlaneConfigResources(n.running, release.FinalControlPlaneConfigs(n.talosVersion()))...)
	}

	return out
}

// syncResources brings the node's COSI state in line with desiredResources: creates, updates
// (only when the spec changed, so versions move like Talos') and destroys. Called with em.mu
// held.
func (em *Emulator) syncResources(n *Node) {
	ctx := context.Background()
	st := n.resources
	want := map[string]bool{}

	key := func(md *resource.Metadata) string {
		return md.Namespace() + "/" + md.Type() + "/" + md.ID()
	}

	put := func(d ownedResource) {
		md := d.res.Metadata()
		want[key(md)] = true

		cur, err := st.Get(ctx, md)

		switch {
		case state.IsNotFoundError(err):
			err = st.Create(ctx, d.res, state.WithCreateOwner(d.owner))
		case err == nil && !sameSpec(cur, d.res):
			// the in-memory state stores the update's own metadata, owner included: without it
			// the resource would lose its owner and the next update be refused
			md.SetVersion(cur.Metadata().Version())

			if err = md.SetOwner(d.owner); err == nil {
				err = st.Update(ctx, d.res, state.WithUpdateOwner(d.owner))
			}
		}

		if err != nil {
			em.log("%s: COSI %s: %v", n.spec.Name, key(md), err)
		}
	}

	for _, d := range desiredResources(n) {
		put(d)
	}

	// the static pods, from the final config resources just published, once etcd runs
	// (ControlPlaneStaticPodController waits for a healthy etcd service)
	n.staticPods = nil

	if n.configured() && n.isControlPlane() && n.disk.EtcdData && (!em.tools.Enabled() || n.rt.etcdUp) {
		n.staticPods = map[string]map[string]any{}
		final := release.FinalControlPlaneConfigs(n.talosVersion())

		for _, id := range controlPlaneComponents {
			image, extra, ok := componentImage(n.running, id)
			if !ok {
				continue
			}

			from, err := st.Get(ctx, componentConfigMetadata(id, final))
			if err != nil {
				continue
			}

			pod := k8s.NewStaticPod(k8s.NamespaceName, id)
			pod.TypedSpec().Pod = staticPodManifest(id, image, flagArgs("/usr/local/bin/"+id, extra), from.Metadata().Version())
			n.staticPods[id] = pod.TypedSpec().Pod

			put(ownedResource{ownerStaticPods, pod})
		}
	}

	// destroy what is no longer published (services that stopped, ...) in the served types
	for _, spec := range servedDefinitions() {
		list, err := st.List(ctx, resource.NewMetadata(spec.DefaultNamespace, spec.Type, "", resource.VersionUndefined))
		if err != nil {
			continue
		}

		for _, r := range list.Items {
			if !want[key(r.Metadata())] {
				if err := st.Destroy(ctx, r.Metadata(), state.WithDestroyOwner(r.Metadata().Owner())); err != nil {
					em.log("%s: COSI destroy %s: %v", n.spec.Name, key(r.Metadata()), err)
				}
			}
		}
	}
}

func sameSpec(a, b resource.Resource) bool {
	ya, err1 := yaml.Marshal(a.Spec())
	yb, err2 := yaml.Marshal(b.Spec())

	return err1 == nil && err2 == nil && bytes.Equal(ya, yb)
}
