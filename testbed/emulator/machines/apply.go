package machines

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/textdiff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"solanaops.testbed/emulator/image"
	"solanaops.testbed/emulator/release"
)

// What the machines do when the API asks: apply a machine config (machined's modes, validation,
// the installer), bootstrap etcd, start or restart services, and how the API reaches another
// node (apid's proxying, checked in-process).

// ErrNotAuthorized is the answer to a caller whose role does not allow the call.
var ErrNotAuthorized = status.Error(codes.PermissionDenied, "not authorized")

// metalMode is the validation mode of an installed (or not yet installed) metal machine.
type metalMode struct{ installed bool }

func (metalMode) String() string { return constants.PlatformMetal }

func (m metalMode) RequiresInstall() bool { return !m.installed }

func (metalMode) InContainer() bool { return false }

// installOutcome is the installer's result for an apply leaving maintenance mode.
type installOutcome struct {
	installer image.Installer
	err       error
}

// preInstall runs the installer checks (install disk, image pull) for an apply that would
// leave maintenance mode, before em.mu is taken: the pull talks HTTP. nil when no install
// would happen (configured node, dry run, staged, incomplete or invalid config).
func (em *Emulator) preInstall(ctx context.Context, n *Node, in *machine.ApplyConfigurationRequest) *installOutcome {
	if in.DryRun || in.Mode == machine.ApplyConfigurationRequest_STAGED {
		return nil
	}

	em.mu.Lock()
	maintenance, tag := !n.configured(), n.talosVersion()
	em.mu.Unlock()

	if release.CheckDocuments(tag, in.GetData()) != nil {
		return nil
	}

	cfg, err := configloader.NewFromBytes(in.GetData())
	if err != nil || !cfg.CompleteForBoot() {
		return nil
	}

	if !maintenance {
		return nil
	}

	inst, err := em.checkInstall(ctx, n, cfg)

	return &installOutcome{installer: inst, err: err}
}

// ApplyConfiguration applies a machine config as machined does; admin says whether the caller
// has the os:admin role (a configured node requires it; maintenance mode does not). The rules
// are those of the release the machine runs (internal/app/machined/internal/server/v1alpha1/
// v1alpha1_server.go ApplyConfiguration of v1.13.9 and v1.14.1): a v1.13 machine refuses the
// document kinds v1.13 does not know; from v1.14 REBOOT is refused outside maintenance mode,
// AUTO always applies without a reboot, and only a request that gets past a dry run cancels a
// pending try-mode rollback.
//
//nolint:gocyclo,cyclop
func (em *Emulator) ApplyConfiguration(ctx context.Context, n *Node, in *machine.ApplyConfigurationRequest, admin bool) (*machine.ApplyConfigurationResponse, error) {
	installed := em.preInstall(ctx, n, in)

	em.mu.Lock()
	defer em.mu.Unlock()

	inMaintenance := !n.configured()
	if !inMaintenance && !admin {
		return nil, ErrNotAuthorized
	}

	tag := n.talosVersion()
	inPlace := release.AppliesInPlace(tag)

	mode := in.Mode
	modeName := mode.String()
	details, detailsErr := "Applied configuration with a reboot", ""

	if mode != machine.ApplyConfigurationRequest_TRY && !inPlace {
		em.cancelRollback(n)
	}

	if err := release.CheckDocuments(tag, in.GetData()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	cfg, err := configloader.NewFromBytes(in.GetData())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	if !inMaintenance && cfg.RawV1Alpha1() == nil {
		return nil, status.Error(codes.InvalidArgument, "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?")
	}

	if inPlace && mode == machine.ApplyConfigurationRequest_REBOOT { //nolint:staticcheck // the deprecated mode is what is refused
		if !inMaintenance {
			return nil, status.Error(codes.Unimplemented, release.RebootModeRemovedError)
		}

		mode = machine.ApplyConfigurationRequest_NO_REBOOT
	}

	validation := metalMode{installed: n.disk.Install != nil}

	warnings, err := em.validate(ctx, n, cfg, validation, tag)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	if inMaintenance && mode == machine.ApplyConfigurationRequest_REBOOT {
		mode = machine.ApplyConfigurationRequest_NO_REBOOT
	}

	immediate := func() error {
		if inPlace || inMaintenance {
			return nil
		}

		return canApplyImmediate(n.running, cfg)
	}

	//nolint:exhaustive
	switch mode {
	case machine.ApplyConfigurationRequest_TRY, machine.ApplyConfigurationRequest_NO_REBOOT:
		if err := immediate(); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}

		details = "Applied configuration without a reboot"
	case machine.ApplyConfigurationRequest_STAGED:
		details = "Staged configuration to be applied after the next reboot"
	case machine.ApplyConfigurationRequest_AUTO:
		if err := immediate(); err != nil {
			mode, details, detailsErr = machine.ApplyConfigurationRequest_REBOOT, "Applied configuration with a reboot", ": "+err.Error()
		} else {
			mode, details = machine.ApplyConfigurationRequest_NO_REBOOT, "Applied configuration without a reboot"
		}

		modeName = fmt.Sprintf("%s(%s)", modeName, mode)
	case machine.ApplyConfigurationRequest_REBOOT: // v1.13 only
	default:
		return nil, status.Errorf(codes.InvalidArgument, "incorrect mode '%s' specified for the apply config call", mode)
	}

	if in.DryRun {
		var current config.Encoder
		if n.running != nil {
			current = n.running
		}

		diff, err := configdiff.DiffConfigs(current, cfg)
		if err != nil {
			return nil, fmt.Errorf("failed to generate diff: %w", err)
		}

		if diff == "" {
			diff = "No changes."
		}

		return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
			Mode:        mode,
			ModeDetails: fmt.Sprintf("Dry run summary:\n%s (skipped in dry-run).\nConfig diff:\n\n%s", details, diff),
		}}}, nil
	}

	if mode != machine.ApplyConfigurationRequest_TRY && inPlace {
		em.cancelRollback(n)
	}

	em.log("%s: apply config request: mode %s", n.spec.Name, strings.ToLower(modeName))

	raw := slices.Clone(in.GetData())

	// leaving maintenance mode runs the installer: without its target disk, or when its image
	// cannot be pulled, the install fails and the machine boots back into maintenance mode
	// (real Talos reports it only on the console; the emulator adds a warning to the reply)
	if inMaintenance && cfg.CompleteForBoot() && mode != machine.ApplyConfigurationRequest_STAGED {
		if installed == nil { // the node changed while the image was pulled: check again
			em.mu.Unlock()
			inst, err := em.checkInstall(ctx, n, cfg)
			em.mu.Lock()

			installed = &installOutcome{installer: inst, err: err}

			if n.configured() {
				return nil, status.Error(codes.Aborted, "the node left maintenance mode during the install, retry")
			}
		}

		if installed.err != nil {
			em.log("%s: install failed: %v", n.spec.Name, installed.err)

			return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
				Mode:        mode,
				Warnings:    append(warnings, installFailure(installed.err)),
				ModeDetails: details,
			}}}, nil
		}

		n.disk.Install = installRecordFor(n, cfg, installed.installer)
		em.log("%s: installed %s", n.spec.Name, installed.installer.Image)
	}

	//nolint:exhaustive
	switch mode {
	case machine.ApplyConfigurationRequest_TRY:
		timeout := constants.ConfigTryTimeout
		if in.TryModeTimeout != nil {
			timeout = in.TryModeTimeout.AsDuration()
		}

		details += fmt.Sprintf("\nThe config is applied in 'try' mode and will be automatically reverted back in %s", timeout)

		em.armRollback(n, timeout)
		em.setRunning(n, cfg, raw)
	case machine.ApplyConfigurationRequest_NO_REBOOT:
		n.persistedBytes = raw
		em.setRunning(n, cfg, raw)
	case machine.ApplyConfigurationRequest_STAGED:
		n.persistedBytes = raw
		em.settle(n)
	case machine.ApplyConfigurationRequest_REBOOT:
		// the node reboots into the persisted config
		n.persistedBytes = raw
		em.setRunning(n, cfg, raw)
		em.rebootNode(n, "applied configuration"+detailsErr)
	default:
		return nil, fmt.Errorf("incorrect mode '%s' specified for the apply config call", mode)
	}

	if inMaintenance && n.disk.Install != nil && mode != machine.ApplyConfigurationRequest_STAGED && rebootsAfterInstall(cfg) {
		// the installer ends with a reboot into the installed system
		em.rebootNode(n, "installed "+n.disk.Install.Image)
	}

	return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
		Mode:        mode,
		Warnings:    warnings,
		ModeDetails: details + detailsErr,
	}}}, nil
}

// validate validates the config in metal mode against the node's emulated resources (its
// disks) as machined of the machine's release does (release.ValidatesAtRuntime), v1.13 with
// its own rules (release.AdjustV113Validation). The host-dependent systemd-boot warning is replaced by the
// node's own: real Talos warns when it booted through systemd-boot (boot_mode uki) and
// extraKernelArgs are set.
func (em *Emulator) validate(ctx context.Context, n *Node, cfg config.Provider, mode metalMode, tag string) ([]string, error) {
	const sdBootWarning = "extra kernel arguments are not supported when booting using SDBoot"

	var (
		warnings []string
		err      error
	)

	if release.ValidatesAtRuntime(tag) {
		warnings, err = cfg.ValidateAtRuntime(ctx, n.resources, mode)
	} else {
		warnings, err = cfg.Validate(mode)
		warnings, err = release.AdjustV113Validation(cfg, mode, warnings, err)

		if err == nil {
			var more []string

			more, err = cfg.RuntimeValidate(ctx, n.resources, mode)
			warnings = append(warnings, more...)
		}
	}

	if err != nil {
		return nil, err
	}

	warnings = slices.DeleteFunc(warnings, func(w string) bool { return w == sdBootWarning })

	if v1 := cfg.RawV1Alpha1(); v1 != nil && n.spec.Hardware.BootMode == "uki" && len(cfg.Machine().Install().ExtraKernelArgs()) > 0 {
		warnings = append(warnings, sdBootWarning)
	}

	return warnings, nil
}

// immediateFields are the v1alpha1 settings a running node picks up without a reboot (the
// list machined uses); a change anywhere else in the v1alpha1 document needs a reboot.
// Other documents always apply immediately.
var immediateFields = [][]string{
	{"debug"}, {"cluster"},
	{"machine", "ca"}, {"machine", "acceptedCAs"}, {"machine", "time"}, {"machine", "certSANs"},
	{"machine", "install"}, {"machine", "network"}, {"machine", "sysfs"}, {"machine", "sysctls"},
	{"machine", "logging"}, {"machine", "controlPlane"}, {"machine", "kubelet"}, {"machine", "kernel"},
	{"machine", "registries"}, {"machine", "pods"}, {"machine", "seccompProfiles"},
	{"machine", "nodeAnnotations"}, {"machine", "nodeLabels"}, {"machine", "nodeTaints"},
	{"machine", "features", "kubernetesTalosAPIAccess"}, {"machine", "features", "kubePrism"},
	{"machine", "features", "hostDNS"}, {"machine", "features", "imageCache"},
	{"machine", "features", "nodeAddressSortAlgorithm"},
}

func canApplyImmediate(current, next config.Provider) error {
	if current == nil || current.RawV1Alpha1() == nil {
		return fmt.Errorf("no current config")
	}

	if next.RawV1Alpha1() == nil {
		return fmt.Errorf("new config is not v1alpha1")
	}

	a, err := rebootRelevant(current)
	if err != nil {
		return err
	}

	b, err := rebootRelevant(next)
	if err != nil {
		return err
	}

	if a == b {
		return nil
	}

	diff, err := textdiff.Diff(a, b)
	if err != nil {
		return fmt.Errorf("error calculating diff: %w", err)
	}

	return fmt.Errorf("this config change can't be applied in immediate mode\ndiff:\n%s", diff)
}

// rebootRelevant renders the v1alpha1 document without the immediateFields.
func rebootRelevant(cfg config.Provider) (string, error) {
	raw, err := container.NewV1Alpha1(cfg.RawV1Alpha1()).EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		return "", err
	}

	var doc map[string]any
	if err = yaml.Unmarshal(raw, &doc); err != nil {
		return "", err
	}

	for _, path := range immediateFields {
		parent := doc
		for _, key := range path[:len(path)-1] {
			parent, _ = parent[key].(map[string]any)
		}

		delete(parent, path[len(path)-1]) // no-op on a nil map
	}

	out, err := yaml.Marshal(doc)

	return string(out), err
}

// Bootstrap bootstraps etcd on a control plane, as machined: once per cluster; the cluster's
// other control planes join.
func (em *Emulator) Bootstrap(n *Node, in *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	em.log("%s: bootstrap request received", n.spec.Name)

	if !n.configured() {
		return nil, status.Error(codes.FailedPrecondition, "bootstrap is not available yet")
	}

	if err := n.controlPlaneOnly("bootstrap"); err != nil {
		return nil, err
	}

	if n.disk.EtcdData {
		return nil, status.Error(codes.AlreadyExists, "etcd data directory is not empty")
	}

	if in.RecoverEtcd {
		return nil, status.Error(codes.Unimplemented, "etcd recovery is not implemented by the Talos emulator")
	}

	// record the bootstrap: this member's data directory is populated, and the
	// cluster's other configured control planes join
	n.disk.EtcdData, n.disk.EtcdInitial = true, true

	for _, o := range em.nodes {
		if o != n && o.isControlPlane() && o.clusterID() == n.clusterID() {
			o.disk.EtcdData = true
			em.settle(o)
		}
	}

	em.settle(n)

	return &machine.BootstrapResponse{Messages: []*machine.Bootstrap{{}}}, nil
}

func (svc *serviceState) proto(id string) *machine.ServiceInfo {
	info := &machine.ServiceInfo{
		Id:     id,
		State:  svc.state,
		Events: &machine.ServiceEvents{},
		Health: &machine.ServiceHealth{Unknown: !svc.healthy, Healthy: svc.healthy, LastChange: timestamppb.New(svc.changed)},
	}

	for _, e := range svc.events {
		info.Events.Events = append(info.Events.Events, &machine.ServiceEvent{Msg: e.msg, State: e.state, Ts: timestamppb.New(e.ts)})
	}

	return info
}

// ServiceAction mirrors machined: unknown services fail, starting a running service and
// stopping a stopped one are no-ops, anything else must be allowed for the service.
func (em *Emulator) ServiceAction(n *Node, id, action string) error {
	em.mu.Lock()
	defer em.mu.Unlock()

	svc, ok := n.services[id]
	if !ok {
		return fmt.Errorf("service %q not defined", id)
	}

	running := svc.state != "Finished"
	now := time.Now()

	switch {
	case action == "start" && running, action == "stop" && !running:
		return nil
	case action == "restart" && !running:
		action = "start"
	}

	if action == "stop" || !slices.Contains(apiStartable, id) {
		return fmt.Errorf("service %q doesn't support %s operation via API", id, action)
	}

	if action == "restart" {
		svc.event(now, "Finished", "Service finished successfully")
	}

	svc.event(now, "Starting", "Starting service")
	svc.start(id, now)

	if id == "kubelet" {
		em.startKubelet(n, svc, now)
	}

	em.syncResources(n)
	em.changed()

	return nil
}

// Reach checks that the endpoint node could proxy a request to target, as apid would dial
// it: the target must be one of the emulated nodes, up, configured, and both nodes must trust
// each other's OS CA. No network traffic is made: the request is handled in-process.
func (em *Emulator) Reach(from *Node, target string) (*Node, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	port := fmt.Sprintf("%d", constants.ApidPort)

	t := em.lookup(target)
	if t == nil {
		if _, err := netip.ParseAddr(target); err == nil {
			return nil, status.Errorf(codes.Unavailable,
				`connection error: desc = "transport: Error while dialing: dial tcp %s:%s: connect: connection refused"`, target, port)
		}

		return nil, status.Errorf(codes.Unavailable,
			`name resolver error: produced zero addresses (lookup %s: no such host)`, target)
	}

	if !t.listening {
		return nil, status.Errorf(codes.Unavailable,
			`connection error: desc = "transport: Error while dialing: dial tcp %s:%s: connect: connection refused"`, t.spec.Address, port)
	}

	untrusted := status.Error(codes.Unavailable,
		`connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`)

	if !t.configured() {
		return nil, untrusted
	}

	fromTrust, err1 := from.trust()
	toTrust, err2 := t.trust()

	if err1 != nil || err2 != nil || !fromTrust.trusts(toTrust) || !toTrust.trusts(fromTrust) {
		return nil, untrusted
	}

	return t, nil
}
