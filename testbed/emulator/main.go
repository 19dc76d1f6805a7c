// Command talos-emulator stands in for Talos machines in the collection's test bed: one
// process serves the Talos machine API (gRPC over TLS, port 50000) on each emulated node's
// loopback address, so the real talosctl can configure, bootstrap and inspect them.
//
//	talos-emulator --nodes NODES.yaml --state DIR
//
// See README.md for what is emulated.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func main() {
	nodesPath := flag.String("nodes", "", "NODES.yaml describing the emulated machines (required)")
	stateDir := flag.String("state", "", "directory keeping each node's state under DIR/<name>/ (required)")
	port := flag.Int("port", constants.ApidPort, "Talos API port on every node address")

	var tools Tools

	flag.StringVar(&tools.Etcd, "etcd", "", "etcd binary: control planes run real etcd and Kubernetes (needs --kube)")
	flag.StringVar(&tools.Kube, "kube", "", "binary dispatching kube-apiserver|kube-controller-manager|kube-scheduler")
	flag.StringVar(&tools.Kwok, "kwok", "", "kwok binary keeping the registered Nodes Ready")
	flag.StringVar(&tools.KwokConfig, "kwok-config", "", "kwok stages file")
	flag.Parse()

	logger := log.New(os.Stderr, "talos-emulator: ", log.LstdFlags|log.Lmicroseconds)

	if *nodesPath == "" || *stateDir == "" {
		flag.Usage()
		os.Exit(2)
	}

	if err := run(*nodesPath, *stateDir, *port, tools, logger); err != nil {
		logger.Printf("error: %v", err)
		os.Exit(1)
	}
}

func run(nodesPath, stateDir string, port int, tools Tools, logger *log.Logger) error {
	specs, err := loadNodeSpecs(nodesPath)
	if err != nil {
		return err
	}

	em, err := newEmulator(specs, stateDir, tools, logger.Printf)
	if err != nil {
		return err
	}

	endpoints := make([]*endpoint, 0, len(em.nodes))
	for _, n := range em.nodes {
		endpoints = append(endpoints, newEndpoint(em, n, port))
	}

	em.mu.Lock()

	for _, ep := range endpoints {
		if err := ep.sync(); err != nil {
			em.mu.Unlock()
			stopAll(endpoints)

			return err
		}
	}

	em.onChange = func() {
		for _, ep := range endpoints {
			if err := ep.sync(); err != nil {
				logger.Printf("%s: %v", ep.node.spec.Name, err)
			}
		}
	}

	for _, ep := range endpoints {
		fmt.Printf("ready: %s %s %s\n", ep.node.spec.Name, ep.addr, ep.describe())
	}

	em.mu.Unlock()

	stopControl, err := em.serveControl(filepath.Join(stateDir, "control.sock"))
	if err != nil {
		stopAll(endpoints)

		return err
	}

	stop, stopped := make(chan struct{}), make(chan struct{})
	if tools.enabled() {
		go em.runControlPlanes(stop, stopped)
	} else {
		close(stopped)
	}

	fmt.Println("ready")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	sig := <-signals
	logger.Printf("%s received, stopping", sig)

	stopControl()
	stopAll(endpoints)
	close(stop)
	<-stopped

	return nil
}

// endpoint is one node's API server; its listener is open whenever the node's API is up
// (always in maintenance mode; once configured, as soon as it has a server certificate).
type endpoint struct {
	em   *Emulator
	node *Node
	addr string
	srv  *grpc.Server
	ln   net.Listener
}

func newEndpoint(em *Emulator, n *Node, port int) *endpoint {
	svc := &machineServer{em: em, self: n}

	tlsConfig := &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return em.serverTLSConfig(n) },
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

	return &endpoint{em: em, node: n, addr: net.JoinHostPort(n.spec.Address, strconv.Itoa(port)), srv: srv}
}

// sync opens or closes the listener to match the node's state. Called with em.mu held.
func (ep *endpoint) sync() error {
	up := ep.em.canServe(ep.node)
	if up == ep.node.listening {
		return nil
	}

	if !up {
		reason := errNoIssuer.Error()
		if ep.node.off {
			reason = "powered off"
		}

		ep.em.log("%s: API down: %s", ep.node.spec.Name, reason)
		ep.ln.Close() //nolint:errcheck
		ep.ln, ep.node.listening = nil, false

		return nil
	}

	ln, err := net.Listen("tcp", ep.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", ep.addr, err)
	}

	ep.ln, ep.node.listening = ln, true

	go func() {
		if err := ep.srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			ep.em.log("%s: serve: %v", ep.node.spec.Name, err)
		}
	}()

	ep.em.log("%s: API up on %s (%s)", ep.node.spec.Name, ep.addr, ep.describe())

	return nil
}

func (ep *endpoint) describe() string {
	switch {
	case ep.node.off:
		return "powered off"
	case !ep.node.configured():
		return "maintenance"
	case !ep.node.listening:
		return "configured, not listening: " + errNoIssuer.Error()
	case ep.node.isControlPlane():
		return "configured controlplane"
	default:
		return "configured worker"
	}
}

func stopAll(endpoints []*endpoint) {
	for _, ep := range endpoints {
		done := make(chan struct{})

		go func() {
			ep.srv.GracefulStop()
			close(done)
		}()

		select {
		case <-done:
		case <-time.After(5 * time.Second):
			ep.srv.Stop()
		}
	}
}
