package machines

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The control planes' side of the API: etcd clients, power (Shutdown and the testbed's BMC
// socket) and Talos' default cluster health checks, evaluated against the machines' state.

var errEtcdDown = status.Error(codes.FailedPrecondition, "etcd is not running on this node")

// EtcdClient returns the node's etcd endpoint and client when its member is up.
func (em *Emulator) EtcdClient(n *Node) (string, *http.Client, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if !n.isControlPlane() || !n.rt.etcdUp || n.rt.pki == nil {
		return "", nil, errEtcdDown
	}

	return n.etcdURL(constants.EtcdClientPort), n.rt.pki.etcd, nil
}

// SetPower powers a node on (a boot: services start again, the API comes back) or off. Powering
// off ends a shutdown under way; powering on a machine that is on changes nothing, so a
// shutdown under way goes on (as a BMC's power-on does to a running machine).
func (em *Emulator) SetPower(n *Node, on bool) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if !on && n.shutdown != nil {
		n.shutdown.Stop()
		n.shutdown = nil
	}

	if !on {
		n.halting = false
	}

	if n.reboot != nil {
		if on {
			return // already on: the reboot goes on
		}

		n.reboot.Stop() // powered off mid-reboot: it stays off
		n.reboot = nil
	}

	if n.off == !on {
		return
	}

	n.off = !on
	em.log("%s: powered %s", n.spec.Name, map[bool]string{true: "on", false: "off"}[on])

	if !on {
		n.rt.down()
	}

	if on {
		em.boot(n)

		return
	}

	em.refreshServices(n)
	em.changed()
}

// Shutdown starts the node's shutdown and returns at once, as machined's Shutdown handler runs
// SequenceShutdown in a goroutine after replying
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go). The sequence
// (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go, Shutdown) drains the node
// unless forced, stops the pods (the kubelet's graceful shutdown: up to
// constants.KubeletShutdownGracePeriod, 30 s), then the services (etcd and the control plane
// with the CRI, apid last) and powers off; it has no phase leaving etcd (only a graceful
// reset has), so the member stays in the member list. Here the node answers as before for its
// shutdown delay, then stops its programs (etcd, the control plane, the kubelet: its Node
// heartbeat) while its API still answers, and powers off once they have stopped: the API
// refuses connections from then on. A request while a shutdown is under way changes nothing;
// it returns the delay in effect.
func (em *Emulator) Shutdown(n *Node) time.Duration {
	em.mu.Lock()
	defer em.mu.Unlock()

	delay := em.ShutdownDelay
	if n.shutdownDelay != nil {
		delay = *n.shutdownDelay
	}

	if n.shutdown != nil || n.halting {
		return delay
	}

	em.log("%s: shutting down, powering off in %s", n.spec.Name, delay)

	var timer *time.Timer
	timer = time.AfterFunc(delay, func() {
		em.mu.Lock()
		due := n.shutdown == timer
		if due {
			n.shutdown, n.halting = nil, true
			em.log("%s: shutting down: stopping services", n.spec.Name)
			em.refreshServices(n)
			em.changed()
		}
		em.mu.Unlock()

		if !due {
			return
		}

		em.kick()

		// apid stops last: the machine powers off once its programs have stopped (or once
		// something else ended the halt, such as the power control)
		for {
			em.mu.Lock()
			done := !n.halting || len(n.rt.procs) == 0
			em.mu.Unlock()

			if done {
				break
			}

			time.Sleep(100 * time.Millisecond)
		}

		em.SetPower(n, false)
	})
	n.shutdown = timer

	return delay
}

// SetShutdownDelay overrides the shutdown delay of one node (nil: Emulator.ShutdownDelay), for
// shutdowns requested afterwards: a shutdown that hangs (a drain that never ends) is a long one.
func (em *Emulator) SetShutdownDelay(n *Node, delay *time.Duration) {
	em.mu.Lock()
	defer em.mu.Unlock()

	n.shutdownDelay = delay
}

// ServeControl is the testbed's power control on a unix socket (POST /power-on?node=NAME,
// /power-off?node=NAME), what a BMC is to real machines, and its fault switches
// (POST /shutdown-delay?node=NAME&delay=DURATION, an empty delay restores the default;
// POST /boot-fallback?node=NAME, with &off=1 to clear it: upgrade.go SetBootFallback;
// POST /pull-failure?node=NAME&version=v1.37.2, an empty version clears it: kubeimages.go;
// POST /read-error?node=NAME&path=/etc/kubernetes/kubelet.yaml, with &off=1 to clear it: api.go).
func (em *Emulator) ServeControl(path string) (func(), error) {
	os.Remove(path) //nolint:errcheck

	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	for action, on := range map[string]bool{"power-on": true, "power-off": false} {
		mux.HandleFunc("POST /"+action, func(w http.ResponseWriter, r *http.Request) {
			n := em.requestedNode(w, r)
			if n == nil {
				return
			}

			em.SetPower(n, on)
			fmt.Fprintf(w, "%s: %s\n", n.spec.Name, action)
		})
	}

	mux.HandleFunc("POST /shutdown-delay", func(w http.ResponseWriter, r *http.Request) {
		n := em.requestedNode(w, r)
		if n == nil {
			return
		}

		var delay *time.Duration

		if text := r.URL.Query().Get("delay"); text != "" {
			parsed, err := time.ParseDuration(text)
			if err != nil || parsed < 0 {
				http.Error(w, fmt.Sprintf("delay %q is not a duration such as 90s", text), http.StatusBadRequest)

				return
			}

			delay = &parsed
		}

		em.SetShutdownDelay(n, delay)

		shown := "default"
		if delay != nil {
			shown = delay.String()
		}

		fmt.Fprintf(w, "%s: shutdown delay %s\n", n.spec.Name, shown)
	})

	// the upgrade fault switch: the node's next boot into a pending upgrade falls back
	mux.HandleFunc("POST /boot-fallback", func(w http.ResponseWriter, r *http.Request) {
		n := em.requestedNode(w, r)
		if n == nil {
			return
		}

		on := r.URL.Query().Get("off") == ""
		em.SetBootFallback(n, on)
		fmt.Fprintf(w, "%s: boot fallback %s\n", n.spec.Name, map[bool]string{true: "armed", false: "cleared"}[on])
	})

	// the Kubernetes upgrade fault switch: the node's pulls of that version's images fail
	mux.HandleFunc("POST /pull-failure", func(w http.ResponseWriter, r *http.Request) {
		n := em.requestedNode(w, r)
		if n == nil {
			return
		}

		version := r.URL.Query().Get("version")
		if err := em.SetPullFailure(n, version); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)

			return
		}

		if version == "" {
			version = "none"
		}

		fmt.Fprintf(w, "%s: image pulls failing: %s\n", n.spec.Name, version)
	})

	// the read fault switch: the node's reads of that file end at once, no data, status OK
	mux.HandleFunc("POST /read-error", func(w http.ResponseWriter, r *http.Request) {
		n := em.requestedNode(w, r)
		if n == nil {
			return
		}

		path := r.URL.Query().Get("path")
		if !filepath.IsAbs(path) {
			http.Error(w, fmt.Sprintf("path %q is not an absolute path", path), http.StatusBadRequest)

			return
		}

		on := r.URL.Query().Get("off") == ""
		em.SetReadError(n, path, on)
		fmt.Fprintf(w, "%s: reads of %s %s\n", n.spec.Name, path, map[bool]string{true: "failing", false: "restored"}[on])
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go srv.Serve(ln) //nolint:errcheck

	return func() { srv.Close() }, nil //nolint:errcheck
}

// HealthCheck is one of Talos' default cluster checks, by Talos' name, run against the
// emulator's state.
type HealthCheck struct {
	Name string
	Run  func(info *cluster.ClusterInfo) error
}

func (em *Emulator) node(ip string) (*Node, error) {
	n := em.lookup(ip)
	if n == nil {
		return nil, fmt.Errorf("%s: no such node", ip)
	}

	switch {
	case n.reboot != nil:
		return nil, fmt.Errorf("%s: node is rebooting", ip)
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

// HealthChecks are Talos' default cluster checks the emulator evaluates, in Talos' order.
func (em *Emulator) HealthChecks() []HealthCheck {
	all := func(info *cluster.ClusterInfo) []string {
		return slices.Concat(info.ControlPlaneNodes, info.WorkerNodes)
	}

	return []HealthCheck{
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
					if p := n.rt.procs[name]; p == nil || !p.Alive() {
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
			if em.cniDisabled() {
				return ErrSkipCheck
			}

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

		endpoint, client, err := em.EtcdClient(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ip, err)
		}

		members, err := EtcdMembers(client, endpoint, true)
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

// requestedNode is the machine a control request names (?node=, name or address); it answers
// 404 itself when there is none.
func (em *Emulator) requestedNode(w http.ResponseWriter, r *http.Request) *Node {
	em.mu.Lock()
	n := em.lookup(r.URL.Query().Get("node"))
	em.mu.Unlock()

	if n == nil {
		http.Error(w, "no such node", http.StatusNotFound)
	}

	return n
}
