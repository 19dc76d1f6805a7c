package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The API of the real control planes: etcd members and status (answered by the node's real
// etcd), the admin kubeconfig, Shutdown, the server-side health check, and the testbed's power
// control (the "BMC").

var errEtcdDown = status.Error(codes.FailedPrecondition, "etcd is not running on this node")

// etcdClient returns the node's etcd endpoint and client when its member is up.
func (em *Emulator) etcdClient(n *Node) (string, *http.Client, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if !n.isControlPlane() || !n.rt.etcdUp || n.rt.pki == nil {
		return "", nil, errEtcdDown
	}

	return n.etcdURL(constants.EtcdClientPort), n.rt.pki.etcd, nil
}

func parseID(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)

	return v
}

func (s *machineServer) EtcdMemberList(ctx context.Context, _ *machine.EtcdMemberListRequest) (*machine.EtcdMemberListResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.EtcdMemberListResponse, error) {
		endpoint, client, err := s.em.etcdClient(n)
		if err != nil {
			return nil, err
		}

		members, err := etcdMembers(client, endpoint, true)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}

		reply := &machine.EtcdMembers{}
		for _, m := range members {
			reply.Members = append(reply.Members, &machine.EtcdMember{
				Id: parseID(m.ID), Hostname: m.Name, PeerUrls: m.PeerURLs, ClientUrls: m.ClientURLs, IsLearner: m.IsLearner,
			})
		}

		return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{reply}}, nil
	})
}

func (s *machineServer) EtcdStatus(ctx context.Context, _ *emptypb.Empty) (*machine.EtcdStatusResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *Node) (*machine.EtcdStatusResponse, error) {
		endpoint, client, err := s.em.etcdClient(n)
		if err != nil {
			return nil, err
		}

		var st etcdStatus
		if err := etcdCall(client, endpoint, "/v3/maintenance/status", map[string]any{}, &st); err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}

		size, inUse := parseID(st.DBSize), parseID(st.DBSizeInUse)

		return &machine.EtcdStatusResponse{Messages: []*machine.EtcdStatus{{MemberStatus: &machine.EtcdMemberStatus{
			MemberId: parseID(st.Header.MemberID), ProtocolVersion: st.Version, StorageVersion: st.StorageVersion,
			DbSize: int64(size), DbSizeInUse: int64(inUse), Leader: parseID(st.Leader), //nolint:gosec
			RaftIndex: parseID(st.RaftIndex), RaftTerm: parseID(st.RaftTerm), RaftAppliedIndex: parseID(st.RaftAppliedIndex),
			Errors: st.Errors, IsLearner: st.IsLearner,
		}}}}, nil
	})
}

// EtcdSnapshot streams the member's database, read through etcd's snapshot API (the
// gateway's newline-delimited JSON stream of base64 blobs).
func (s *machineServer) EtcdSnapshot(_ *machine.EtcdSnapshotRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *Node, send func(*common.Data) error) error {
		endpoint, client, err := s.em.etcdClient(n)
		if err != nil {
			return err
		}

		long := *client
		long.Timeout = 5 * time.Minute

		resp, err := long.Post(endpoint+"/v3/maintenance/snapshot", "application/json", strings.NewReader("{}"))
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		defer resp.Body.Close() //nolint:errcheck

		decoder := json.NewDecoder(resp.Body)

		for {
			var chunk struct {
				Result struct {
					Blob []byte `json:"blob"`
				} `json:"result"`
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}

			if err := decoder.Decode(&chunk); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}

				return err
			}

			if chunk.Error != nil {
				return status.Error(codes.Unavailable, chunk.Error.Message)
			}

			if len(chunk.Result.Blob) > 0 {
				if err := send(&common.Data{Bytes: chunk.Result.Blob}); err != nil {
					return err
				}
			}
		}
	})
}

// Kubeconfig streams a tar.gz holding "kubeconfig": an admin client certificate freshly issued
// from cluster.ca (O=system:masters), the server being cluster.controlPlane.endpoint, as Talos.
func (s *machineServer) Kubeconfig(_ *emptypb.Empty, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *Node, send func(*common.Data) error) error {
		s.em.mu.Lock()
		cp := n.isControlPlane()
		cfg := n.running
		s.em.mu.Unlock()

		if !cp {
			return status.Error(codes.FailedPrecondition, "kubeconfig is only available on control plane nodes")
		}

		ca := cfg.Cluster().IssuingCA()

		caCert, signer, err := caOf(ca.Crt, ca.Key)
		if err != nil {
			return err
		}

		cert, err := leafRequest{subject: pkix.Name{CommonName: "admin", Organization: []string{constants.KubernetesAdminCertOrganization}}, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}.issue(caCert, signer)
		if err != nil {
			return err
		}

		key, err := pemKey(cert)
		if err != nil {
			return err
		}

		content := kubeconfigYAML(cfg.Cluster().Endpoint().String(), ca.Crt, pemCert(cert), key)

		var archive bytes.Buffer

		gz := gzip.NewWriter(&archive)
		tw := tar.NewWriter(gz)

		if err := tw.WriteHeader(&tar.Header{Name: "kubeconfig", Mode: 0o600, Size: int64(len(content)), ModTime: time.Now()}); err != nil {
			return err
		}

		if _, err := tw.Write(content); err != nil {
			return err
		}

		if err := tw.Close(); err != nil {
			return err
		}

		if err := gz.Close(); err != nil {
			return err
		}

		return send(&common.Data{Bytes: archive.Bytes()})
	})
}

// Shutdown powers the node off: its API goes away until the testbed's power control turns it on
// again (a real machine needs its BMC). The reply comes once its programs have stopped, so a
// caller observes the cluster without them.
func (s *machineServer) Shutdown(ctx context.Context, _ *machine.ShutdownRequest) (*machine.ShutdownResponse, error) {
	return dispatch(ctx, s, func(ctx context.Context, n *Node) (*machine.ShutdownResponse, error) {
		s.em.setPower(n, false)

		for {
			s.em.mu.Lock()
			stopped := len(n.rt.procs) == 0
			s.em.mu.Unlock()

			if stopped {
				return &machine.ShutdownResponse{Messages: []*machine.Shutdown{{ActorId: "emulator"}}}, nil
			}

			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

func (em *Emulator) setPower(n *Node, on bool) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if n.off == !on {
		return
	}

	n.off = !on
	em.log("%s: powered %s", n.spec.Name, map[bool]string{true: "on", false: "off"}[on])

	if on {
		// a boot: services start again, the try-mode rollback and the API come back
		n.services = map[string]*serviceState{}
	}

	em.refreshServices(n)
	em.changed()
}

// serveControl is the testbed's power control on a unix socket (POST /power-on?node=NAME,
// /power-off?node=NAME), what a BMC is to real machines.
func (em *Emulator) serveControl(path string) (func(), error) {
	os.Remove(path) //nolint:errcheck

	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	for action, on := range map[string]bool{"power-on": true, "power-off": false} {
		mux.HandleFunc("POST /"+action, func(w http.ResponseWriter, r *http.Request) {
			em.mu.Lock()
			n := em.lookup(r.URL.Query().Get("node"))
			em.mu.Unlock()

			if n == nil {
				http.Error(w, "no such node", http.StatusNotFound)

				return
			}

			em.setPower(n, on)
			fmt.Fprintf(w, "%s: %s\n", n.spec.Name, action)
		})
	}

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go srv.Serve(ln) //nolint:errcheck

	return func() { srv.Close() }, nil //nolint:errcheck
}

// ---------------------------------------------------------------------------------------------
// the health check (ClusterService/HealthCheck), run on the node against the emulator's state

type clusterServer struct {
	cluster.UnimplementedClusterServiceServer

	em *Emulator
}

// healthCheck is one of Talos' default cluster checks, by Talos' name.
type healthCheck struct {
	name string
	run  func(info *cluster.ClusterInfo) error
}

// HealthCheck runs the checks in order, each until it passes or the wait times out, reporting
// progress as Talos does ("waiting for <check>: ..." then "... OK"). Implemented: etcd health,
// member consistency and membership, apid, kubelet, boot sequence, Nodes reported, control
// plane components and Nodes ready. Not emulated: memory/disk sizes, diagnostics, kube-proxy and
// CoreDNS readiness (the testbed runs no workloads), schedulability.
func (c *clusterServer) HealthCheck(in *cluster.HealthCheckRequest, stream grpc.ServerStreamingServer[cluster.HealthCheckProgress]) error {
	timeout := 20 * time.Minute
	if in.WaitTimeout != nil {
		timeout = in.WaitTimeout.AsDuration()
	}

	ctx, cancel := context.WithTimeout(stream.Context(), timeout)
	defer cancel()

	info := in.ClusterInfo
	if info == nil || len(info.ControlPlaneNodes) == 0 {
		return status.Error(codes.InvalidArgument, "the emulator's health check needs --control-plane-nodes (and --worker-nodes)")
	}

	for _, check := range c.em.healthChecks() {
		last := ""

		for {
			err := check.run(info)
			if err == nil {
				if sendErr := stream.Send(&cluster.HealthCheckProgress{Message: fmt.Sprintf("waiting for %s: OK", check.name)}); sendErr != nil {
					return sendErr
				}

				break
			}

			if err.Error() != last {
				last = err.Error()
				if sendErr := stream.Send(&cluster.HealthCheckProgress{Message: fmt.Sprintf("waiting for %s: %s", check.name, last)}); sendErr != nil {
					return sendErr
				}
			}

			select {
			case <-ctx.Done():
				return status.Errorf(codes.DeadlineExceeded, "%s: %s", check.name, last)
			case <-time.After(time.Second):
			}
		}
	}

	return nil
}

func (em *Emulator) node(ip string) (*Node, error) {
	n := em.lookup(ip)
	if n == nil {
		return nil, fmt.Errorf("%s: no such node", ip)
	}

	switch {
	case n.off:
		return nil, fmt.Errorf("%s: node is powered off", ip)
	case !n.configured():
		return nil, fmt.Errorf("%s: node is in maintenance mode", ip)
	}

	return n, nil
}

// eachNode runs check on every node of the list, under em.mu, collecting the failures.
func (em *Emulator) eachNode(ips []string, check func(ip string, n *Node) error) error {
	em.mu.Lock()
	defer em.mu.Unlock()

	var problems []string

	for _, ip := range ips {
		n, err := em.node(ip)
		if err == nil {
			err = check(ip, n)
		}

		if err != nil {
			problems = append(problems, err.Error())
		}
	}

	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}

	return nil
}

func serviceRunning(n *Node, id string) bool {
	svc, ok := n.services[id]

	return ok && svc.state == "Running"
}

func (em *Emulator) healthChecks() []healthCheck {
	all := func(info *cluster.ClusterInfo) []string {
		return slices.Concat(info.ControlPlaneNodes, info.WorkerNodes)
	}

	return []healthCheck{
		{"etcd to be healthy", func(info *cluster.ClusterInfo) error {
			return em.eachNode(info.ControlPlaneNodes, func(ip string, n *Node) error {
				if !serviceRunning(n, "etcd") {
					return fmt.Errorf("%s: service \"etcd\" not running", ip)
				}

				return nil
			})
		}},
		{"etcd members to be consistent across nodes", func(info *cluster.ClusterInfo) error {
			_, err := em.memberPeers(info.ControlPlaneNodes)

			return err
		}},
		{"etcd members to be control plane nodes", func(info *cluster.ClusterInfo) error {
			peers, err := em.memberPeers(info.ControlPlaneNodes)
			if err != nil {
				return err
			}

			want := slices.Sorted(slices.Values(info.ControlPlaneNodes))
			if !slices.Equal(peers, want) {
				return fmt.Errorf("etcd members %v are not the control plane nodes %v", peers, want)
			}

			return nil
		}},
		{"apid to be ready", func(info *cluster.ClusterInfo) error {
			return em.eachNode(all(info), func(ip string, n *Node) error {
				if !n.listening {
					return fmt.Errorf("%s: apid is not listening", ip)
				}

				return nil
			})
		}},
		{"kubelet to be healthy", func(info *cluster.ClusterInfo) error {
			return em.eachNode(all(info), func(ip string, n *Node) error {
				if !serviceRunning(n, "kubelet") {
					return fmt.Errorf("%s: service \"kubelet\" not running", ip)
				}

				return nil
			})
		}},
		{"all nodes to finish boot sequence", func(info *cluster.ClusterInfo) error {
			return em.eachNode(all(info), func(string, *Node) error { return nil })
		}},
		{"all control plane components to be ready", func(info *cluster.ClusterInfo) error {
			return em.eachNode(info.ControlPlaneNodes, func(ip string, n *Node) error {
				if !n.rt.apiReady {
					return fmt.Errorf("%s: kube-apiserver is not ready", ip)
				}

				for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
					if p := n.rt.procs[name]; p == nil || !p.alive() {
						return fmt.Errorf("%s: %s is not running", ip, name)
					}
				}

				return nil
			})
		}},
		{"all k8s nodes to report", func(info *cluster.ClusterInfo) error {
			_, err := em.k8sNodes(all(info))

			return err
		}},
		{"all k8s nodes to report ready", func(info *cluster.ClusterInfo) error {
			nodes, err := em.k8sNodes(all(info))
			if err != nil {
				return err
			}

			var notReady []string

			for ip, ready := range nodes {
				if !ready {
					notReady = append(notReady, ip)
				}
			}

			if len(notReady) > 0 {
				slices.Sort(notReady)

				return fmt.Errorf("some nodes are not ready: %v", notReady)
			}

			return nil
		}},
	}
}

// memberPeers asks every control plane's etcd for its members and returns their peer hosts,
// sorted, when all answer the same.
func (em *Emulator) memberPeers(ips []string) ([]string, error) {
	var first []string

	for _, ip := range ips {
		em.mu.Lock()
		n, err := em.node(ip)
		em.mu.Unlock()

		if err != nil {
			return nil, err
		}

		endpoint, client, err := em.etcdClient(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ip, err)
		}

		members, err := etcdMembers(client, endpoint, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ip, err)
		}

		var hosts []string

		for _, m := range members {
			for _, u := range m.PeerURLs {
				host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "https://"))
				hosts = append(hosts, host)
			}
		}

		slices.Sort(hosts)

		if first == nil {
			first = hosts
		} else if !slices.Equal(first, hosts) {
			return nil, fmt.Errorf("%s: etcd members %v differ from %v", ip, hosts, first)
		}
	}

	return first, nil
}

// k8sNodes maps each node IP to whether its Node is Ready; a missing Node, or a Node that is
// not in the list, is an error (as Talos' "all k8s nodes to report").
func (em *Emulator) k8sNodes(ips []string) (map[string]bool, error) {
	server, client, ok := em.clusterAPI()
	if !ok {
		return nil, fmt.Errorf("no kube-apiserver is ready")
	}

	code, body, err := kubeRequest(client, http.MethodGet, server+"/api/v1/nodes", "application/json", nil)
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("listing nodes: %v %s", err, body)
	}

	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Addresses []struct {
					Type, Address string
				} `json:"addresses"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}

	if err := json.Unmarshal([]byte(body), &list); err != nil {
		return nil, err
	}

	ready := map[string]bool{}

	var unexpected []string

	for _, item := range list.Items {
		ip := ""

		for _, a := range item.Status.Addresses {
			if a.Type == "InternalIP" {
				ip = a.Address
			}
		}

		if !slices.Contains(ips, ip) {
			unexpected = append(unexpected, ip)

			continue
		}

		ready[ip] = slices.ContainsFunc(item.Status.Conditions, func(c struct{ Type, Status string }) bool {
			return c.Type == "Ready" && c.Status == "True"
		})
	}

	var missing []string

	for _, ip := range ips {
		if _, ok := ready[ip]; !ok {
			missing = append(missing, ip)
		}
	}

	// Talos' wording (cluster.NodesMatch)
	switch {
	case len(missing) > 0:
		return nil, fmt.Errorf("can't find expected node with IPs %q", missing)
	case len(unexpected) > 0:
		slices.Sort(unexpected)

		return nil, fmt.Errorf("unexpected nodes with IPs %q", unexpected)
	}

	return ready, nil
}
