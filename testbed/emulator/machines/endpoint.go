package machines

// The nodes' network presence: one gRPC server per node on its loopback address, listening
// while the node's API is up.

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
)

// endpoint is one node's API server; its listener is open whenever the node's API is up
// (always in maintenance mode; once configured, as soon as it has a server certificate).
type endpoint struct {
	em   *Emulator
	node *Node
	addr string
	srv  *grpc.Server
	ln   net.Listener
}

func newEndpoint(em *Emulator, n *Node, port int, srv *grpc.Server) *endpoint {
	return &endpoint{em: em, node: n, addr: net.JoinHostPort(n.spec.Address, strconv.Itoa(port)), srv: srv}
}

// ServerFactory builds the gRPC server of a node's API (package talosapi); its TLS config
// should come from ServerTLSConfig.
type ServerFactory func(*Node) *grpc.Server

// Serve opens every node's API on port of its address, whenever that API is up (maintenance
// mode always; a configured node once it has a server certificate), and keeps the listeners
// in step with the nodes' state.
func (em *Emulator) Serve(port int, newServer ServerFactory) error {
	endpoints := make([]*endpoint, 0, len(em.nodes))
	for _, n := range em.nodes {
		endpoints = append(endpoints, newEndpoint(em, n, port, newServer(n)))
	}

	em.mu.Lock()
	defer em.mu.Unlock()

	for _, ep := range endpoints {
		if err := ep.sync(); err != nil {
			stopAll(endpoints)

			return err
		}
	}

	em.endpoints = endpoints
	em.onChange = func() {
		for _, ep := range endpoints {
			if err := ep.sync(); err != nil {
				em.log("%s: %v", ep.node.spec.Name, err)
			}
		}
	}

	return nil
}

// Describe is one line per node: name, API address, state.
func (em *Emulator) Describe() []string {
	em.mu.Lock()
	defer em.mu.Unlock()

	lines := make([]string, 0, len(em.endpoints))
	for _, ep := range em.endpoints {
		lines = append(lines, fmt.Sprintf("%s %s %s", ep.node.spec.Name, ep.addr, ep.describe()))
	}

	return lines
}

// Addr is the address a node's API is served on ("" before Serve).
func (em *Emulator) Addr(n *Node) string {
	em.mu.Lock()
	defer em.mu.Unlock()

	for _, ep := range em.endpoints {
		if ep.node == n {
			return ep.addr
		}
	}

	return ""
}

// StopServing closes every API, gracefully (5 s at most).
func (em *Emulator) StopServing() {
	em.mu.Lock()
	endpoints := em.endpoints
	em.onChange, em.endpoints = nil, nil
	em.mu.Unlock()

	stopAll(endpoints)
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
			reason = ep.describe()
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
	case ep.node.reboot != nil:
		return "rebooting"
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
