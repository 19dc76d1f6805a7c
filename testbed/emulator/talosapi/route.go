package talosapi

import (
	"context"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"solanaops.testbed/emulator/machines"
)

// Routing of the `nodes` (one-to-many) and `node` (one-to-one) metadata, as apid does it.

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

	maintenance := s.em.Maintenance(s.self)
	local := func(target string) bool { return s.em.IsSelf(s.self, target) }

	// maintenance mode disables forwarding; a single target naming the node itself is local
	if maintenance {
		if okNode && local(node[0]) {
			okNode = false
		}

		if okNodes && len(nodes) == 1 && local(nodes[0]) {
			okNodes = false
		}
	}

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

// dispatch runs a unary call on the node(s) the request names. One-to-many replies carry
// Metadata{hostname: <target as named>} on every message; a failing target contributes a
// message carrying only the metadata with the error.
func dispatch[R proto.Message](ctx context.Context, s *machineServer, call func(context.Context, *machines.Node) (R, error)) (R, error) {
	var zero R

	mode, targets, err := s.route(ctx)
	if err != nil {
		return zero, err
	}

	switch mode {
	case routeLocal:
		return call(ctx, s.self)
	case routeOne:
		t, err := s.em.Reach(s.self, targets[0])
		if err != nil {
			return zero, err
		}

		return call(ctx, t)
	}

	resp := zero.ProtoReflect().New().Interface().(R) //nolint:forcetypeassert
	list := resp.ProtoReflect().Mutable(messagesField(resp)).List()

	for _, target := range targets {
		t, err := s.em.Reach(s.self, target)

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
func (s *machineServer) dispatchStream(ctx context.Context, send func(*common.Data) error, call func(*machines.Node, func(*common.Data) error) error) error {
	mode, targets, err := s.route(ctx)
	if err != nil {
		return err
	}

	switch mode {
	case routeLocal:
		return call(s.self, send)
	case routeOne:
		t, err := s.em.Reach(s.self, targets[0])
		if err != nil {
			return err
		}

		return call(t, send)
	}

	for _, target := range targets {
		t, err := s.em.Reach(s.self, target)
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

// oneTarget resolves the node of a call apid proxies one-to-one only (`node` metadata: COSI,
// and here the image, lifecycle and event streams talosctl sends per node); `nodes` is refused
// as apid's director does (internal/app/apid/pkg/director/director.go).
func (s *machineServer) oneTarget(ctx context.Context, method string) (*machines.Node, error) {
	mode, targets, err := s.route(ctx)
	if err != nil {
		return nil, err
	}

	switch {
	case mode == routeMany:
		return nil, status.Errorf(codes.InvalidArgument, "one-2-many proxying is not supported for method %s", method)
	case mode == routeOne && targets[0] != "":
		return s.em.Reach(s.self, targets[0])
	default:
		return s.self, nil // talosctl without nodes sends an empty `node`: the endpoint
	}
}
