package talosapi

import (
	"context"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"solanaops.testbed/emulator/machines"
)

// Authorization, as apid and machined: roles come from the client certificate's
// organizations; a connection without a client certificate (maintenance mode) gets the reader
// role.

// machineServer serves machine.MachineService on one node's address.
type machineServer struct {
	machine.UnimplementedMachineServiceServer

	em   *machines.Emulator
	self *machines.Node
}

// rules lists the methods the emulator implements and the roles allowed to call them
// (machined's: internal/app/machined/pkg/system/services/machined.go).
var rules = map[string]role.Set{
	// reader: maintenance mode only, checked in the handler
	"/machine.MachineService/ApplyConfiguration":    role.MakeSet(role.Admin, role.Reader),
	"/machine.MachineService/Bootstrap":             role.MakeSet(role.Admin),
	"/machine.MachineService/EtcdMemberList":        role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/EtcdStatus":            role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/EtcdSnapshot":          role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/EtcdForfeitLeadership": role.MakeSet(role.Admin),
	"/machine.MachineService/Kubeconfig":            role.MakeSet(role.Admin),
	"/machine.MachineService/ImagePull":             role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/Logs":                  role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/Shutdown":              role.MakeSet(role.Admin),
	"/machine.MachineService/Reset":                 role.MakeSet(role.Admin),
	"/cluster.ClusterService/HealthCheck":           role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/Read":                  role.MakeSet(role.Admin),
	"/machine.MachineService/Reboot":                role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/Events":                role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.ImageService/Pull":                    role.MakeSet(role.Admin, role.Operator),
	"/machine.LifecycleService/Upgrade":             role.MakeSet(role.Admin),
	"/machine.MachineService/ServiceList":           role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/machine.MachineService/ServiceRestart":        role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/ServiceStart":          role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/ServiceStop":           role.MakeSet(role.Admin, role.Operator),
	"/machine.MachineService/Version":               role.MakeSet(role.Admin, role.Operator, role.Reader),
	// COSI (cosi.go): reads only; Create/Update/Destroy are not served
	"/cosi.resource.State/Get":   role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/cosi.resource.State/List":  role.MakeSet(role.Admin, role.Operator, role.Reader),
	"/cosi.resource.State/Watch": role.MakeSet(role.Admin, role.Operator, role.Reader),
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
	// a machine that went down (a reboot) takes its connections with it
	if s.em.Down(s.self) {
		return nil, status.Error(codes.Unavailable, "connection reset: the machine is down")
	}

	allowed, implemented := rules[method]
	if !implemented {
		maintenance := s.em.Maintenance(s.self)

		if maintenance {
			return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
		}

		return nil, status.Errorf(codes.Unimplemented, "%s is not implemented by the Talos emulator", method)
	}

	roles := peerRoles(ctx)
	if !allowed.IncludesAny(roles) {
		return nil, machines.ErrNotAuthorized
	}

	maintenance := s.em.Maintenance(s.self)

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
