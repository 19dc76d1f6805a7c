package talosapi

import (
	"context"
	"strings"

	cosiapi "github.com/cosi-project/runtime/api/v1alpha1"
	"github.com/cosi-project/runtime/pkg/resource/meta"
	"github.com/cosi-project/runtime/pkg/safe"
	cosiserver "github.com/cosi-project/runtime/pkg/state/protobuf/server"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"google.golang.org/grpc"

	"solanaops.testbed/emulator/machines"
)

// The COSI state API (`talosctl get`): cosi.resource.State Get/List/Watch on configured
// nodes, served from the node's COSI state (machines.Node.Resources).

// cosiServer serves cosi.resource.State on one node's address. Authorization (reader and up
// for Get/List/Watch, as machined) and maintenance mode (Unimplemented) are the interceptors'.
type cosiServer struct {
	cosiapi.UnimplementedStateServer

	machine *machineServer
}

// target resolves the node a COSI call for resourceType is for (one-to-one only) and brings its
// state up to date. As machined's access policy, a sensitive type (MachineConfigs, ...) is for
// os:admin only (internal/app/resources/access.go AccessPolicy).
func (c *cosiServer) target(ctx context.Context, method, resourceType string) (*machines.Node, error) {
	n, err := c.machine.oneTarget(ctx, "/cosi.resource.State/"+method)
	if err != nil {
		return nil, err
	}

	c.machine.em.SyncResources(n)

	rd, err := safe.StateGetByID[*meta.ResourceDefinition](ctx, n.Resources(), strings.ToLower(resourceType))
	if err == nil && rd.TypedSpec().Sensitivity == meta.Sensitive && !rolesFrom(ctx).Includes(role.Admin) {
		return nil, machines.ErrNotAuthorized
	}

	return n, nil
}

func (c *cosiServer) Get(ctx context.Context, req *cosiapi.GetRequest) (*cosiapi.GetResponse, error) {
	n, err := c.target(ctx, "Get", req.GetType())
	if err != nil {
		return nil, err
	}

	return cosiserver.NewState(n.Resources()).Get(ctx, req)
}

func (c *cosiServer) List(req *cosiapi.ListRequest, srv grpc.ServerStreamingServer[cosiapi.ListResponse]) error {
	n, err := c.target(srv.Context(), "List", req.GetType())
	if err != nil {
		return err
	}

	return cosiserver.NewState(n.Resources()).List(req, srv)
}

func (c *cosiServer) Watch(req *cosiapi.WatchRequest, srv grpc.ServerStreamingServer[cosiapi.WatchResponse]) error {
	n, err := c.target(srv.Context(), "Watch", req.GetType())
	if err != nil {
		return err
	}

	return cosiserver.NewState(n.Resources()).Watch(req, srv)
}
