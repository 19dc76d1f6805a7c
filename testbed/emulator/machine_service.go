package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"github.com/siderolabs/talos/pkg/machinery/textdiff"
	"github.com/siderolabs/talos/pkg/machinery/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"
)

// machineServer serves machine.MachineService on one node's address.
type machineServer struct {
	machine.UnimplementedMachineServiceServer

	em   *Emulator
	self *Node
}

// ---------------------------------------------------------------------------------------------
// authorization (as apid + machined): roles come from the client certificate's organizations;
// a connection without a client certificate (maintenance mode) gets the reader role.

var errNotAuthorized = status.Error(codes.PermissionDenied, "not authorized")

// rules lists the methods the emulator implements and the roles allowed to call them.
var rules = map[string]role.Set{
	// reader: maintenance mode only, checked in the handler
	"/machine.MachineService/ApplyConfiguration": role.MakeSet(role.Admin, role.Reader),
	"/machine.MachineService/Bootstrap":          role.MakeSet(role.Admin),
	"/machine.MachineService/EtcdMemberList":     role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/EtcdStatus":         role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/EtcdSnapshot":       role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/Kubeconfig":         role.MakeSet(role.Admin),
	"/machine.MachineService/Shutdown":           role.MakeSet(role.Admin),
	"/cluster.ClusterService/HealthCheck":        role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/Read":               role.MakeSet(role.Admin),
	"/machine.MachineService/ServiceList":        role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/ServiceRestart":     role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/ServiceStart":       role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/ServiceStop":        role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/Version":            role.MakeSet(role.Admin, role.Operator, role.Reader),
}

// maintenanceMethods are what a reader may call in maintenance mode.
var maintenanceMethods = []string{
	"/machine.MachineService/ApplyConfiguration", "/machine.MachineService/ServiceList", "/machine.MachineService/Version",
}

type rolesKey struct{}

func rolesFrom(ctx context.Context) role.Set {
	roles, _ := ctx.Value(rolesKey{}).(role.Set)

	return roles
}

func peerRoles(ctx context.Context) role.Set {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return role.MakeSet()
	}

	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return role.MakeSet(role.Reader)
	}

	roles, _ := role.Parse(info.State.PeerCertificates[0].Subject.Organization)

	return roles
}

// authorize returns the context carrying the caller's roles, or the error to answer with.
func (s *machineServer) authorize(ctx context.Context, method string) (context.Context, error) {
	allowed, implemented := rules[method]
	if !implemented {
		s.em.mu.Lock()
		maintenance := !s.self.configured()
		s.em.mu.Unlock()

		if maintenance {
			return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
		}

		return nil, status.Errorf(codes.Unimplemented, "%s is not implemented by the Talos emulator", method)
	}

	roles := peerRoles(ctx)
	if !allowed.IncludesAny(roles) {
		return nil, errNotAuthorized
	}

	s.em.mu.Lock()
	maintenance := !s.self.configured()
	s.em.mu.Unlock()

	if maintenance && !slices.Contains(maintenanceMethods, method) {
		return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
	}

	return context.WithValue(ctx, rolesKey{}, roles), nil
}

func (s *machineServer) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}

	return handler(ctx, req)
}

type roleStream struct {
	grpc.ServerStream

	ctx context.Context //nolint:containedctx
}

func (r roleStream) Context() context.Context { return r.ctx }

func (s *machineServer) streamInterceptor(srv any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authorize(stream.Context(), info.FullMethod)
	if err != nil {
		return err
	}

	return handler(srv, roleStream{ServerStream: stream, ctx: ctx})
}

// unknownService answers every service the emulator does not register (COSI, cluster, ...);
// the stream interceptor has already turned it into Unimplemented.
func unknownService(any, grpc.ServerStream) error {
	return status.Error(codes.Unimplemented, "not implemented by the Talos emulator")
}

// ---------------------------------------------------------------------------------------------
// routing: the `nodes` (one-to-many) and `node` (one-to-one) metadata, as apid does it

type routeMode int

const (
	routeLocal routeMode = iota
	routeOne
	routeMany
)

func (s *machineServer) route(ctx context.Context) (routeMode, []string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	nodes, okNodes := md["nodes"]
	node, okNode := md["node"]

	if okNode && len(node) != 1 {
		return 0, nil, status.Error(codes.InvalidArgument, "node metadata must be single-valued")
	}

	s.em.mu.Lock()
	maintenance := !s.self.configured()
	local := func(target string) bool { return s.em.lookup(target) == s.self }

	// maintenance mode disables forwarding; a single target naming the node itself is local
	if maintenance {
		if okNode && local(node[0]) {
			okNode = false
		}

		if okNodes && len(nodes) == 1 && local(nodes[0]) {
			okNodes = false
		}
	}
	s.em.mu.Unlock()

	switch {
	case (okNodes || okNode) && maintenance:
		return 0, nil, status.Error(codes.PermissionDenied, "no request forwarding")
	case okNodes:
		return routeMany, nodes, nil
	case okNode:
		return routeOne, node, nil
	default:
		return routeLocal, nil, nil
	}
}

// reach checks that the endpoint node could proxy a request to target, as apid would dial
// it: the target must be one of the emulated nodes, up, configured, and both nodes must trust
// each other's OS CA. No network traffic is made: the request is handled in-process.
func (em *Emulator) reach(from *Node, target string) (*Node, error) {
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

// dispatch runs a unary call on the node(s) the request names. One-to-many replies carry
// Metadata{hostname: <target as named>} on every message; a failing target contributes a
// message carrying only the metadata with the error.
func dispatch[R proto.Message](ctx context.Context, s *machineServer, call func(context.Context, *Node) (R, error)) (R, error) {
	var zero R

	mode, targets, err := s.route(ctx)
	if err != nil {
		return zero, err
	}

	switch mode {
	case routeLocal:
		return call(ctx, s.self)
	case routeOne:
		t, err := s.em.reach(s.self, targets[0])
		if err != nil {
			return zero, err
		}

		return call(ctx, t)
	}

	resp := zero.ProtoReflect().New().Interface().(R) //nolint:forcetypeassert
	list := resp.ProtoReflect().Mutable(messagesField(resp)).List()

	for _, target := range targets {
		t, err := s.em.reach(s.self, target)

		var r R
		if err == nil {
			r, err = call(ctx, t)
		}

		if err != nil {
			element := list.NewElement()
			setMetadata(element.Message(), errorMetadata(target, err))
			list.Append(element)

			continue
		}

		replies := r.ProtoReflect().Get(messagesField(r)).List()
		for i := range replies.Len() {
			msg := replies.Get(i).Message()
			setMetadata(msg, &common.Metadata{Hostname: target})
			list.Append(protoreflect.ValueOfMessage(msg))
		}
	}

	return resp, nil
}

// dispatchStream runs a server-streaming call the same way; one-to-many stamps each streamed
// message with the target's metadata.
func (s *machineServer) dispatchStream(ctx context.Context, send func(*common.Data) error, call func(*Node, func(*common.Data) error) error) error {
	mode, targets, err := s.route(ctx)
	if err != nil {
		return err
	}

	switch mode {
	case routeLocal:
		return call(s.self, send)
	case routeOne:
		t, err := s.em.reach(s.self, targets[0])
		if err != nil {
			return err
		}

		return call(t, send)
	}

	for _, target := range targets {
		t, err := s.em.reach(s.self, target)
		if err == nil {
			err = call(t, func(d *common.Data) error {
				d.Metadata = &common.Metadata{Hostname: target}

				return send(d)
			})
		}

		if err != nil {
			if sendErr := send(&common.Data{Metadata: errorMetadata(target, err)}); sendErr != nil {
				return sendErr
			}
		}
	}

	return nil
}

func messagesField(m proto.Message) protoreflect.FieldDescriptor {
	return m.ProtoReflect().Descriptor().Fields().ByName("messages")
}

func setMetadata(m protoreflect.Message, md *common.Metadata) {
	m.Set(m.Descriptor().Fields().ByName("metadata"), protoreflect.ValueOfMessage(md.ProtoReflect()))
}

func errorMetadata(target string, err error) *common.Metadata {
	return &common.Metadata{Hostname: target, Error: err.Error(), Status: status.Convert(err).Proto()}
}

// ---------------------------------------------------------------------------------------------
// Version

func (s *machineServer) Version(ctx context.Context, _ *emptypb.Empty) (*machine.VersionResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.VersionResponse, error) {
		s.em.mu.Lock()
		defer s.em.mu.Unlock()

		reply := &machine.Version{
			Version:  version.NewVersion(),
			Platform: &machine.PlatformInfo{Name: constants.PlatformMetal, Mode: constants.PlatformMetal},
		}

		if n.configured() {
			reply.Features = &machine.FeaturesInfo{Rbac: true}
		}

		return &machine.VersionResponse{Messages: []*machine.Version{reply}}, nil
	})
}

// ---------------------------------------------------------------------------------------------
// ApplyConfiguration

// metalMode is the validation mode of an installed (or not yet installed) metal machine.
type metalMode struct{ installed bool }

func (metalMode) String() string          { return constants.PlatformMetal }
func (m metalMode) RequiresInstall() bool { return !m.installed }
func (metalMode) InContainer() bool       { return false }

func (s *machineServer) ApplyConfiguration(ctx context.Context, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	return dispatch(ctx, s, func(ctx context.Context, n *Node) (*machine.ApplyConfigurationResponse, error) {
		return s.em.applyConfiguration(ctx, n, in)
	})
}

//nolint:gocyclo,cyclop
func (em *Emulator) applyConfiguration(ctx context.Context, n *Node, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	inMaintenance := !n.configured()
	if !inMaintenance && !rolesFrom(ctx).Includes(role.Admin) {
		return nil, errNotAuthorized
	}

	mode := in.Mode
	modeName := mode.String()
	details, detailsErr := "Applied configuration with a reboot", ""

	if mode != machine.ApplyConfigurationRequest_TRY {
		em.cancelRollback(n)
	}

	cfg, err := configloader.NewFromBytes(in.GetData())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	if !inMaintenance && cfg.RawV1Alpha1() == nil {
		return nil, status.Error(codes.InvalidArgument, "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?")
	}

	validation := metalMode{installed: n.disk.Install != nil}

	warnings, err := cfg.Validate(validation)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	runtimeWarnings, err := em.runtimeValidate(ctx, n, cfg, validation)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}

	warnings = append(warnings, runtimeWarnings...)

	if inMaintenance && mode == machine.ApplyConfigurationRequest_REBOOT {
		mode = machine.ApplyConfigurationRequest_NO_REBOOT
	}

	//nolint:exhaustive
	switch mode {
	case machine.ApplyConfigurationRequest_TRY, machine.ApplyConfigurationRequest_NO_REBOOT:
		if !inMaintenance {
			if err := canApplyImmediate(n.running, cfg); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
		}

		details = "Applied configuration without a reboot"
	case machine.ApplyConfigurationRequest_STAGED:
		details = "Staged configuration to be applied after the next reboot"
	case machine.ApplyConfigurationRequest_AUTO:
		if err := canApplyImmediate(n.running, cfg); err != nil && !inMaintenance {
			mode, details, detailsErr = machine.ApplyConfigurationRequest_REBOOT, "Applied configuration with a reboot", ": "+err.Error()
		} else {
			mode, details = machine.ApplyConfigurationRequest_NO_REBOOT, "Applied configuration without a reboot"
		}

		modeName = fmt.Sprintf("%s(%s)", modeName, mode)
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

	em.log("%s: apply config request: mode %s", n.spec.Name, strings.ToLower(modeName))

	raw := slices.Clone(in.GetData())

	// leaving maintenance mode runs the installer: without its target disk the install fails
	// and the machine boots back into maintenance mode (real Talos reports it only on the
	// console; the emulator adds a warning to the reply)
	if inMaintenance && cfg.CompleteForBoot() && mode != machine.ApplyConfigurationRequest_STAGED {
		if err := n.checkInstallDisk(cfg); err != nil {
			em.log("%s: install failed: %v", n.spec.Name, err)

			return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
				Mode:        mode,
				Warnings:    append(warnings, fmt.Sprintf("talos emulator: install failed: %v; the node stays in maintenance mode", err)),
				ModeDetails: details,
			}}}, nil
		}
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
		// the reboot is instantaneous: the node boots the persisted config, services restart
		n.persistedBytes = raw
		n.services = map[string]*serviceState{}
		em.setRunning(n, cfg, raw)
	default:
		return nil, fmt.Errorf("incorrect mode '%s' specified for the apply config call", mode)
	}

	return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
		Mode:        mode,
		Warnings:    warnings,
		ModeDetails: details + detailsErr,
	}}}, nil
}

// runtimeValidate runs machinery's runtime validation against the node's emulated resources
// (its disks), then replaces the host-dependent systemd-boot warning by the node's own: real
// Talos warns when it booted through systemd-boot (boot_mode uki) and extraKernelArgs are set.
func (em *Emulator) runtimeValidate(ctx context.Context, n *Node, cfg config.Provider, mode metalMode) ([]string, error) {
	const sdBootWarning = "extra kernel arguments are not supported when booting using SDBoot"

	warnings, err := cfg.RuntimeValidate(ctx, n.resources, mode)
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

// ---------------------------------------------------------------------------------------------
// Bootstrap

func (s *machineServer) Bootstrap(ctx context.Context, in *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.BootstrapResponse, error) {
		return s.em.bootstrap(n, in)
	})
}

func (em *Emulator) bootstrap(n *Node, in *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	em.log("%s: bootstrap request received", n.spec.Name)

	if !n.configured() {
		return nil, status.Error(codes.FailedPrecondition, "bootstrap is not available yet")
	}

	if !n.isControlPlane() {
		return nil, status.Error(codes.Unimplemented, "bootstrap is only available on control plane nodes")
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

// ---------------------------------------------------------------------------------------------
// Read

func (s *machineServer) Read(in *machine.ReadRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *Node, send func(*common.Data) error) error {
		s.em.mu.Lock()
		content, err := n.readFile(in.Path)
		s.em.mu.Unlock()

		if err != nil {
			return err
		}

		const chunk = 4096
		for len(content) > 0 {
			size := min(chunk, len(content))
			if err := send(&common.Data{Bytes: content[:size]}); err != nil {
				return err
			}

			content = content[size:]
		}

		return nil
	})
}

// ---------------------------------------------------------------------------------------------
// services

func (s *machineServer) ServiceList(ctx context.Context, _ *emptypb.Empty) (*machine.ServiceListResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.ServiceListResponse, error) {
		s.em.mu.Lock()
		defer s.em.mu.Unlock()

		ids := make([]string, 0, len(n.services))
		for id := range n.services {
			ids = append(ids, id)
		}

		slices.Sort(ids)

		list := &machine.ServiceList{}
		for _, id := range ids {
			list.Services = append(list.Services, n.services[id].proto(id))
		}

		return &machine.ServiceListResponse{Messages: []*machine.ServiceList{list}}, nil
	})
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

// serviceAction mirrors machined: unknown services fail, starting a running service and
// stopping a stopped one are no-ops, anything else must be allowed for the service.
func (em *Emulator) serviceAction(n *Node, id, action string) error {
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

	return nil
}

func (s *machineServer) ServiceStart(ctx context.Context, in *machine.ServiceStartRequest) (*machine.ServiceStartResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.ServiceStartResponse, error) {
		if err := s.em.serviceAction(n, in.Id, "start"); err != nil {
			return nil, err
		}

		return &machine.ServiceStartResponse{Messages: []*machine.ServiceStart{{Resp: fmt.Sprintf("Service %q started", in.Id)}}}, nil
	})
}

func (s *machineServer) ServiceStop(ctx context.Context, in *machine.ServiceStopRequest) (*machine.ServiceStopResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.ServiceStopResponse, error) {
		if err := s.em.serviceAction(n, in.Id, "stop"); err != nil {
			return nil, err
		}

		return &machine.ServiceStopResponse{Messages: []*machine.ServiceStop{{Resp: fmt.Sprintf("Service %q stopped", in.Id)}}}, nil
	})
}

func (s *machineServer) ServiceRestart(ctx context.Context, in *machine.ServiceRestartRequest) (*machine.ServiceRestartResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.ServiceRestartResponse, error) {
		if err := s.em.serviceAction(n, in.Id, "restart"); err != nil {
			return nil, err
		}

		return &machine.ServiceRestartResponse{Messages: []*machine.ServiceRestart{{Resp: fmt.Sprintf("Service %q restarted", in.Id)}}}, nil
	})
}
