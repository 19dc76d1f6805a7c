// Package talosapi is the Talos API the emulated machines serve, as apid and machined do:
// MachineService, ClusterService (the health check) and the COSI state service, with apid's
// routing of the `nodes`/`node` metadata and machined's role-based authorization. It holds no
// state: every call reads or changes the machines (package machines).
package talosapi

import (
	"crypto/tls"

	cosiapi "github.com/cosi-project/runtime/api/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"solanaops.testbed/emulator/machines"
)

// NewServer is the gRPC server of one node's API: TLS chosen per handshake (maintenance mode's
// self-signed certificate, or mutual TLS once configured), authorization, then the services.
func NewServer(em *machines.Emulator, n *machines.Node) *grpc.Server {
	svc := &machineServer{em: em, self: n}

	tlsConfig := &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return em.ServerTLSConfig(n) },
		MinVersion:         tls.VersionTLS12,
	}

	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.ChainUnaryInterceptor(svc.unaryInterceptor),
		grpc.ChainStreamInterceptor(svc.streamInterceptor),
		grpc.UnknownServiceHandler(unknownService),
		grpc.MaxRecvMsgSize(constants.GRPCMaxMessageSize),
	)
	machine.RegisterMachineServiceServer(srv, svc)
	cluster.RegisterClusterServiceServer(srv, &clusterServer{em: em})
	machine.RegisterImageServiceServer(srv, &imageServer{machine: svc})
	machine.RegisterLifecycleServiceServer(srv, &lifecycleServer{machine: svc})
	cosiapi.RegisterStateServer(srv, &cosiServer{machine: svc})

	return srv
}
