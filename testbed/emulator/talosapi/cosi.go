package talosapi

import (
	"context"

	cosiapi "github.com/cosi-project/runtime/api/v1alpha1"
	cosiserver "github.com/cosi-project/runtime/pkg/state/protobuf/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// target resolves the node a COSI call is for: apid proxies COSI one-to-one only (`node`
// metadata); `nodes` is refused for it.
func (c *cosiServer) target(ctx context.Context, method string) (*machines.Node, error) {
	mode, targets, err := c.machine.route(ctx)
	if err != nil {
		return nil, err
	}

	var n *machines.Node

	switch mode {
	case routeMany:
		return nil, status.Errorf(codes.InvalidArgument, "one-2-many proxying is not supported for method /cosi.resource.State/%s", method)
	case routeOne:
		if targets[0] == "" {
			n = c.machine.self // talosctl without nodes sends an empty `node`: the endpoint
		} else if n, err = c.machine.em.Reach(c.machine.self, targets[0]); err != nil {
			return nil, err
		}
	default:
		n = c.machine.self
	}

	c.machine.em.SyncResources(n)

	return n, nil
}

func (c *cosiServer) Get(ctx context.Context, req *cosiapi.GetRequest) (*cosiapi.GetResponse, error) {
	n, err := c.target(ctx, "Get")
	if err != nil {
		return nil, err
	}

	return cosiserver.NewState(n.Resources()).Get(ctx, req)
}

func (c *cosiServer) List(req *cosiapi.ListRequest, srv grpc.ServerStreamingServer[cosiapi.ListResponse]) error {
	n, err := c.target(srv.Context(), "List")
	if err != nil {
		return err
	}

	return cosiserver.NewState(n.Resources()).List(req, srv)
}

func (c *cosiServer) Watch(req *cosiapi.WatchRequest, srv grpc.ServerStreamingServer[cosiapi.WatchResponse]) error {
	n, err := c.target(srv.Context(), "Watch")
	if err != nil {
		return err
	}

	return cosiserver.NewState(n.Resources()).Watch(req, srv)
}
