package machines

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blang/semver/v4"
	"github.com/siderolabs/gen/xslices"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"

	"solanaops.testbed/emulator/kubelet"
	"solanaops.testbed/emulator/process"
)

// Real control planes: every configured control plane whose etcd data is populated (bootstrapped or
// joined) runs a REAL etcd member, then a real kube-apiserver against it, then a real
// kube-controller-manager and kube-scheduler (leader-elected), all bound to the node's
// address with certificates issued from the cluster CAs in its machine config. Every powered-on
// configured node registers its Node (kubelet.go) once the cluster's API answers; one kwok
// process keeps those Nodes Ready. The Layer2VIPConfig address forwards port 6443 to a ready
// API server. A reconcile loop (once a second and after every change) drives it all, like
// machined's controllers do.

// Tools are the real binaries the control planes run; without them (unit tests, the smoke
// test) etcd data is only recorded and no process starts.
type Tools struct {
	Etcd, Kwok, KwokConfig string
	// Kube holds the kube binaries by Kubernetes version (kubeimages.go)
	Kube KubeBinaries
}

func (t Tools) Enabled() bool { return t.Etcd != "" && len(t.Kube) > 0 }

const (
	apiServerPort         = 6443
	controllerManagerPort = 10257
	schedulerPort         = 10259
)

// runtime is a node's running programs and what the last probe saw; only the reconcile loop
// writes procs; the flags are read by API handlers under Emulator.mu.
type runtime struct {
	procs      map[string]*process.Process
	pki        *nodePKI
	etcdUp     bool // etcd answers /health
	apiReady   bool // kube-apiserver answers /readyz
	registered string

	// the static pods: the image each runs, the pull error of the one it should run
	// (kubeimages.go), and the mirror pods posted (mirrorpods.go): name -> what was posted
	images     map[string]string
	pullErrors map[string]string
	mirrors    map[string]string
	readyPIDs  map[string]int // the controller-manager/scheduler processes seen ready

	// the kubelet's client (its system:node certificate) and what it was issued for; the last
	// NodeApplyController pass that succeeded and the last error it logged
	kubelet    *http.Client
	kubeletKey string
	applied    string
	applyErr   string
}

// ---------------------------------------------------------------------------------------------
// certificates

// nodePKI is the node's control-plane certificates on disk (DIR/<name>/pki), issued from
// cluster.ca, cluster.etcd.ca and cluster.serviceAccount of its config.
type nodePKI struct {
	dir  string
	hash string
	etcd *http.Client // to etcd, with the node's etcd peer/client certificate
	kube *http.Client // to kube-apiserver, as admin (O=system:masters)
}

func (p *nodePKI) path(name string) string { return filepath.Join(p.dir, name) }

func pemCert(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

func pemKey(c tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)

	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), err
}

// caOf returns a CA certificate and its signer from a config's PEM pair.
func caOf(crt, key []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(crt)
	if err != nil {
		return nil, nil, err
	}

	block, _ := pem.Decode(key)
	if block == nil {
		return nil, nil, errors.New("no PEM key")
	}

	var parsed any

	switch block.Type {
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}

	if err != nil {
		return nil, nil, err
	}

	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("key cannot sign")
	}

	return cert, signer, nil
}

// vipAddresses are the Layer2VIPConfig addresses of a config.
func vipAddresses(cfg config.Provider) []netip.Addr {
	var vips []netip.Addr
	for _, v := range cfg.NetworkVirtualIPConfigs() {
		vips = append(vips, v.VIP())
	}

	return vips
}

// ensurePKI writes the node's certificates, again only when what they derive from changed.
// The Kubernetes settings come from machinery's merged accessors, which read the v1.14
// documents (KubeAPIServerCAConfig, KubeServiceAccountConfig, KubeClusterConfig,
// KubeAPIServerConfig, KubeNetworkConfig) or else the v1alpha1 sections, as Talos'
// KubernetesRoot secrets do (internal/app/machined/pkg/controllers/secrets/root.go, v1.14.1).
func (n *Node) ensurePKI(cfg config.Provider) (*nodePKI, error) {
	if cfg.K8sAPIServerCAConfig() == nil || cfg.K8sServiceAccountConfig() == nil || cfg.K8sClusterConfig() == nil || cfg.K8sNetworkConfig() == nil {
		return nil, errors.New("the config lacks the Kubernetes CA, service account key, cluster endpoint or network")
	}

	k8sCA, etcdCA, sa := cfg.K8sAPIServerCAConfig().IssuingCA(), cfg.Cluster().Etcd().CA(), cfg.K8sServiceAccountConfig().IssuingKey()

	if k8sCA == nil || etcdCA == nil || sa == nil {
		return nil, errors.New("the config lacks the Kubernetes CA, cluster.etcd.ca or the service account key")
	}

	network := cfg.K8sNetworkConfig()

	sans := []string{n.spec.Address, "127.0.0.1", cfg.K8sClusterConfig().ClusterEndpoint().Hostname()}
	for _, vip := range vipAddresses(cfg) {
		sans = append(sans, vip.String())
	}

	if apiServer := cfg.K8sAPIServerConfig(); apiServer != nil {
		sans = append(sans, apiServer.CertSANs()...)
	}

	for _, ip := range k8s.APIServerServiceAddrs(network.ServiceCIDRs()) {
		sans = append(sans, ip.String())
	}

	h := sha256.New()
	for _, part := range [][]byte{k8sCA.Crt, etcdCA.Crt, sa.Key, []byte(n.hostname()), []byte(strings.Join(sans, ","))} {
		h.Write(part)
		h.Write([]byte{0})
	}

	hash := hex.EncodeToString(h.Sum(nil))
	if n.rt.pki != nil && n.rt.pki.hash == hash {
		return n.rt.pki, nil
	}

	p := &nodePKI{dir: filepath.Join(n.dir, "pki"), hash: hash}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}

	kubeCert, kubeKey, err := caOf(k8sCA.Crt, k8sCA.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster.ca: %w", err)
	}

	etcdCert, etcdKey, err := caOf(etcdCA.Crt, etcdCA.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster.etcd.ca: %w", err)
	}

	var ips []net.IP

	dns := []string{n.hostname(), "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + network.DNSDomain()}

	for _, san := range sans {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else if san != "" {
			dns = append(dns, san)
		}
	}

	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	leaves := []struct {
		name   string
		issuer *x509.Certificate
		signer crypto.Signer
		req    leafRequest
	}{
		{"etcd", etcdCert, etcdKey, leafRequest{subject: pkix.Name{CommonName: n.hostname()}, ips: []net.IP{net.ParseIP(n.spec.Address), net.ParseIP("127.0.0.1")}, dns: []string{n.hostname(), "localhost"}, usages: both}},
		{"apiserver", kubeCert, kubeKey, leafRequest{subject: pkix.Name{CommonName: "kube-apiserver"}, ips: ips, dns: dns, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"admin", kubeCert, kubeKey, leafRequest{subject: pkix.Name{CommonName: "admin", Organization: []string{constants.KubernetesAdminCertOrganization}}, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	}

	files := map[string][]byte{"etcd-ca.crt": etcdCA.Crt, "ca.crt": k8sCA.Crt, "ca.key": k8sCA.Key, "sa.key": sa.Key}
	certs := map[string]tls.Certificate{}

	for _, leaf := range leaves {
		c, err := leaf.req.issue(leaf.issuer, leaf.signer)
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", leaf.name, err)
		}

		key, err := pemKey(c)
		if err != nil {
			return nil, err
		}

		certs[leaf.name] = c
		files[leaf.name+".crt"], files[leaf.name+".key"] = pemCert(c), key
	}

	files["admin.kubeconfig"] = kubeconfigYAML(fmt.Sprintf("https://%s", net.JoinHostPort(n.spec.Address, strconv.Itoa(apiServerPort))),
		k8sCA.Crt, files["admin.crt"], files["admin.key"])

	for name, content := range files {
		if err := writeFileAtomic(p.path(name), content); err != nil {
			return nil, err
		}
	}

	p.etcd = httpsClient(etcdCA.Crt, certs["etcd"])
	p.kube = httpsClient(k8sCA.Crt, certs["admin"])
	n.rt.pki = p

	return p, nil
}

func httpsClient(caPEM []byte, cert tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// kubeconfigYAML is an admin kubeconfig with embedded credentials.
func kubeconfigYAML(server string, ca, crt, key []byte) []byte {
	enc := base64.StdEncoding.EncodeToString

	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: admin@cluster
  context:
    cluster: cluster
    user: admin
current-context: admin@cluster
`, server, enc(ca), enc(crt), enc(key))
}

// ---------------------------------------------------------------------------------------------
// etcd through its JSON gateway (no client library needed)

// EtcdMember is a member as etcd's JSON gateway lists it.
type EtcdMember struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

func (n *Node) etcdURL(port int) string {
	return "https://" + net.JoinHostPort(n.spec.Address, strconv.Itoa(port))
}

// EtcdCall POSTs body to an etcd JSON gateway path and decodes the answer into out.
func EtcdCall(client *http.Client, endpoint, path string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}

	resp, err := client.Post(endpoint+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	defer resp.Body.Close() //nolint:errcheck

	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}

	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s: %s", path, resp.Status, strings.TrimSpace(string(reply)))
	}

	return json.Unmarshal(reply, out)
}

// EtcdMembers lists the members of the cluster endpoint belongs to.
func EtcdMembers(client *http.Client, endpoint string, linearizable bool) ([]EtcdMember, error) {
	var reply struct {
		Members []EtcdMember `json:"members"`
	}

	err := EtcdCall(client, endpoint, "/v3/cluster/member/list", map[string]any{"linearizable": linearizable}, &reply)

	return reply.Members, err
}

// EtcdStatus is /v3/maintenance/status (uint64s arrive as strings).
type EtcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Version          string   `json:"version"`
	StorageVersion   string   `json:"storageVersion"`
	DBSize           string   `json:"dbSize"`
	DBSizeInUse      string   `json:"dbSizeInUse"`
	Leader           string   `json:"leader"`
	RaftIndex        string   `json:"raftIndex"`
	RaftTerm         string   `json:"raftTerm"`
	RaftAppliedIndex string   `json:"raftAppliedIndex"`
	Errors           []string `json:"errors"`
	IsLearner        bool     `json:"isLearner"`
}

// EtcdMemberStatus is the member's /v3/maintenance/status.
func EtcdMemberStatus(client *http.Client, endpoint string) (EtcdStatus, error) {
	var st EtcdStatus
	err := EtcdCall(client, endpoint, "/v3/maintenance/status", map[string]any{}, &st)

	return st, err
}

func etcdHealthy(client *http.Client, endpoint string) bool {
	resp, err := client.Get(endpoint + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close() //nolint:errcheck

	var health struct {
		Health string `json:"health"`
	}

	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&health) == nil && health.Health == "true"
}

func httpOK(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}

	resp.Body.Close() //nolint:errcheck

	return resp.StatusCode == http.StatusOK
}

// errWait: the step cannot be taken yet (no healthy peer, another member is joining).
var errWait = errors.New("waiting")

// etcdArgs is the etcd command line: a new single-member cluster for the node that was
// bootstrapped, a restart on existing data, or joining: the node adds itself through a healthy
// member (one join at a time, as etcd requires) and starts with the resulting member list.
func (em *Emulator) etcdArgs(n *Node, cfg config.Provider, p *nodePKI) ([]string, error) {
	dataDir := filepath.Join(n.dir, "etcd")
	self := n.etcdURL(constants.EtcdPeerPort)
	args := []string{
		em.tools.Etcd, "--name", n.hostname(), "--data-dir", dataDir,
		"--listen-client-urls", n.etcdURL(constants.EtcdClientPort), "--advertise-client-urls", n.etcdURL(constants.EtcdClientPort),
		"--listen-peer-urls", self, "--initial-advertise-peer-urls", self,
		"--cert-file", p.path("etcd.crt"), "--key-file", p.path("etcd.key"), "--trusted-ca-file", p.path("etcd-ca.crt"), "--client-cert-auth",
		"--peer-cert-file", p.path("etcd.crt"), "--peer-key-file", p.path("etcd.key"), "--peer-trusted-ca-file", p.path("etcd-ca.crt"),
		"--peer-client-cert-auth", "--initial-cluster-token", clusterID(cfg), "--unsafe-no-fsync", "--listen-metrics-urls", "",
	}

	em.mu.Lock()
	initial, member, join := n.disk.EtcdInitial, n.disk.EtcdMember, n.disk.EtcdJoin
	peers := em.etcdPeers(n)
	em.mu.Unlock()

	if member {
		return args, nil // restart: etcd ignores the initial-cluster flags
	}

	if err := os.RemoveAll(dataDir); err != nil {
		return nil, err
	}

	switch {
	case initial:
		return append(args, "--initial-cluster", n.hostname()+"="+self, "--initial-cluster-state", "new"), nil
	case join != "":
		return append(args, "--initial-cluster", join, "--initial-cluster-state", "existing"), nil
	case len(peers) == 0:
		return nil, fmt.Errorf("%w: no healthy etcd member to join through", errWait)
	}

	peer := peers[0]

	members, err := EtcdMembers(peer.rt.pki.etcd, peer.etcdURL(constants.EtcdClientPort), true)
	if err != nil {
		return nil, err
	}

	if !slices.ContainsFunc(members, func(m EtcdMember) bool { return slices.Contains(m.PeerURLs, self) }) {
		if slices.ContainsFunc(members, func(m EtcdMember) bool { return m.Name == "" }) {
			return nil, fmt.Errorf("%w: another member is joining", errWait)
		}

		var added struct {
			Members []EtcdMember `json:"members"`
		}

		if err := EtcdCall(peer.rt.pki.etcd, peer.etcdURL(constants.EtcdClientPort), "/v3/cluster/member/add",
			map[string]any{"peerURLs": []string{self}}, &added); err != nil {
			return nil, err
		}

		em.log("%s: added to etcd through %s", n.spec.Name, peer.spec.Name)
		members = added.Members
	}

	var cluster []string

	for _, m := range members {
		name := m.Name
		if slices.Contains(m.PeerURLs, self) {
			name = n.hostname()
		}

		for _, u := range m.PeerURLs {
			cluster = append(cluster, name+"="+u)
		}
	}

	em.mu.Lock()
	n.disk.EtcdJoin = strings.Join(cluster, ",")
	err = n.savePersisted()
	em.mu.Unlock()

	return append(args, "--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "existing"), err
}

// etcdPeers are the other control planes of n's cluster whose etcd is healthy. Called with
// em.mu held.
func (em *Emulator) etcdPeers(n *Node) []*Node {
	var peers []*Node

	for _, o := range em.nodes {
		if o != n && o.isControlPlane() && o.clusterID() == n.clusterID() && o.rt.etcdUp && !o.runsNothing() {
			peers = append(peers, o)
		}
	}

	return peers
}

// ---------------------------------------------------------------------------------------------
// the reconcile loop

func (em *Emulator) kick() {
	select {
	case em.kicks <- struct{}{}:
	default:
	}
}

// RunControlPlanes reconciles until stop is closed, then stops every process.
func (em *Emulator) RunControlPlanes(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)

	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()

	for {
		em.reconcile()

		select {
		case <-stop:
			em.stopEverything()

			return
		case <-em.kicks:
		case <-ticker.C:
		}
	}
}

// stopEverything stops every node's programs and kwok: Kubernetes first, then etcd, as Talos
// stops the control plane's static pods before etcd (kube-apiserver stopping while its etcd is
// gone waits for it until the SIGKILL 10 s later).
func (em *Emulator) stopEverything() {
	all := map[string]*process.Process{}

	for _, n := range em.nodes {
		for name, p := range n.rt.procs {
			all[n.spec.Name+"/"+name] = p
		}
	}

	if em.kwok != nil {
		all["kwok"] = em.kwok
	}

	stopKubernetesFirst(all, func(string) {})
}

// stopKubernetesFirst stops the programs (by name; an "etcd" suffix marks etcd), the others
// in parallel first, then etcd, logging each through logStop.
func stopKubernetesFirst(procs map[string]*process.Process, logStop func(name string)) {
	for _, etcd := range []bool{false, true} {
		var wg sync.WaitGroup

		for name, p := range procs {
			if strings.HasSuffix(name, "etcd") == etcd {
				logStop(name)
				wg.Go(p.Stop)
			}
		}

		wg.Wait()
	}
}

func (em *Emulator) reconcile() {
	for _, n := range em.nodes {
		if err := em.reconcileControlPlane(n); err != nil && !errors.Is(err, errWait) {
			em.log("%s: %v", n.spec.Name, err)
		}
	}

	em.reconcileVIP()
	em.reconcileKwok()

	for _, n := range em.nodes {
		em.retryKubeletPull(n)

		if err := em.registerNode(n); err != nil {
			em.log("%s: registering the Node: %v", n.spec.Name, err)
		}

		if err := em.reconcileMirrorPods(n); err != nil {
			em.log("%s: %v", n.spec.Name, err)
		}
	}
}

// component is one program of a control plane, started once its predecessor is up; a static
// pod runs the kube binary of its image.
type component struct {
	name        string
	image, kube string
	args        func(c component) ([]string, error)
}

// loopbackAdvertiseArgs are what a kube-apiserver of the image's version needs to advertise a
// loopback address, a testbed-only necessity (real nodes advertise routable addresses): from
// 1.37 the default (lease) endpoint reconciler refuses loopback addresses at start
// (pkg/controlplane/instance.go, ValidateIP), so those run without one and the default
// "kubernetes" Service gets no endpoints from them.
func loopbackAdvertiseArgs(image string) []string {
	if _, tag := splitImage(image); semver.MustParseRange(">=1.37.0")(semverOf(tag)) {
		return []string{"--endpoint-reconciler-type", "none"}
	}

	return nil
}

func (em *Emulator) reconcileControlPlane(n *Node) error {
	em.mu.Lock()
	want := n.isControlPlane() && !n.runsNothing() && n.disk.EtcdData
	cfg := n.running
	em.mu.Unlock()

	if !want {
		em.stopProcesses(n)

		return nil
	}

	p, err := n.ensurePKI(cfg)
	if err != nil {
		return err
	}

	addr := n.spec.Address
	kubeconfig := p.path("admin.kubeconfig")
	components := []component{
		{name: "etcd", args: func(component) ([]string, error) { return em.etcdArgs(n, cfg, p) }},
		{name: k8s.APIServerID, args: func(c component) ([]string, error) {
			return append([]string{
				c.kube, "kube-apiserver",
				"--etcd-servers", n.etcdURL(constants.EtcdClientPort), "--etcd-cafile", p.path("etcd-ca.crt"),
				"--etcd-certfile", p.path("etcd.crt"), "--etcd-keyfile", p.path("etcd.key"),
				"--bind-address", addr, "--advertise-address", addr, "--secure-port", strconv.Itoa(apiServerPort),
				"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
				"--client-ca-file", p.path("ca.crt"), "--cert-dir", filepath.Join(n.dir, "apiserver-certs"),
				"--service-cluster-ip-range", strings.Join(xslices.Map(cfg.K8sNetworkConfig().ServiceCIDRs(), netip.Prefix.String), ","),
				"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction", "--allow-privileged=true",
				// the issuer URL first (control_plane_final.go); the v1alpha1 shim's is the endpoint
				"--service-account-issuer", cfg.K8sServiceAccountConfig().IssuerURL(),
				"--service-account-key-file", p.path("sa.key"), "--service-account-signing-key-file", p.path("sa.key"),
			}, loopbackAdvertiseArgs(c.image)...), nil
		}},
		{name: k8s.ControllerManagerID, args: func(c component) ([]string, error) {
			return []string{
				c.kube, "kube-controller-manager", "--kubeconfig", kubeconfig,
				"--bind-address", addr, "--secure-port", strconv.Itoa(controllerManagerPort), "--leader-elect=true",
				"--service-account-private-key-file", p.path("sa.key"), "--root-ca-file", p.path("ca.crt"),
				"--cluster-signing-cert-file", p.path("ca.crt"), "--cluster-signing-key-file", p.path("ca.key"),
				"--use-service-account-credentials=false",
			}, nil
		}},
		{name: k8s.SchedulerID, args: func(c component) ([]string, error) {
			return []string{c.kube, "kube-scheduler", "--kubeconfig", kubeconfig,
				"--bind-address", addr, "--secure-port", strconv.Itoa(schedulerPort), "--leader-elect=true"}, nil
		}},
	}

	for i, c := range components {
		if i > 0 {
			// a static pod: the kube binary of the version its image names (kubeimages.go)
			image, _, enabled := componentImage(cfg, c.name)
			if !enabled {
				em.stopComponent(n, c.name, "disabled in the config")

				continue
			}

			em.mu.Lock()
			kube, err := em.pullKubeImage(n, image)
			em.mu.Unlock()

			c.image, c.kube = image, kube
			if em.setPullError(n, c.name, image, err) {
				if i == 1 {
					return errWait // nothing runs without an API server
				}

				continue
			}
		}

		if err := em.ensureProcess(n, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}

		// the next component waits for this one
		switch i {
		case 0:
			up := etcdHealthy(p.etcd, n.etcdURL(constants.EtcdClientPort))
			em.setProbe(n, func() { n.rt.etcdUp = up })

			if !up {
				return errWait
			}
		case 1:
			ready := httpOK(p.kube, fmt.Sprintf("https://%s/readyz", net.JoinHostPort(addr, strconv.Itoa(apiServerPort))))
			em.setProbe(n, func() { n.rt.apiReady = ready })

			if !ready {
				return errWait
			}
		}
	}

	return nil
}

// down forgets the probes' results when the machine goes down: its etcd and API server died
// with it, though the processes standing for them may take seconds to stop, and a boot must
// not count them as running before they are started and answer again.
func (rt *runtime) down() { rt.etcdUp, rt.apiReady = false, false }

func (em *Emulator) setProbe(n *Node, set func()) {
	em.mu.Lock()
	defer em.mu.Unlock()

	before := n.rt.etcdUp
	set()

	if n.rt.etcdUp == before {
		return
	}

	em.refreshServices(n)

	if n.rt.etcdUp && !n.disk.EtcdMember {
		n.disk.EtcdMember = true
		if err := n.savePersisted(); err != nil {
			em.log("%s: saving state: %v", n.spec.Name, err)
		}
	}
}

// ensureProcess starts the component if it is not running (again, if it died: Talos restarts
// failed services), logging why it stopped.
// A static pod whose image changed is replaced: the kubelet stops the old container and starts
// the new one, on this node only.
func (em *Emulator) ensureProcess(n *Node, c component) error {
	if p := n.rt.procs[c.name]; p != nil {
		switch {
		case p.Alive() && n.rt.images[c.name] == c.image:
			return nil
		case p.Alive():
			em.stopComponent(n, c.name, fmt.Sprintf("its image changed from %s to %s", n.rt.images[c.name], c.image))
		default:
			em.log("%s: %s exited (%v), restarting; log tail:\n%s", n.spec.Name, c.name, p.Exit(), p.Tail())
		}
	}

	argv, err := c.args(c)
	if err != nil {
		return err
	}

	logs := filepath.Join(n.dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}

	p, err := process.Start(c.name, filepath.Join(logs, c.name+".log"), argv)
	if err != nil {
		return err
	}

	em.mu.Lock()
	if n.rt.procs == nil {
		n.rt.procs = map[string]*process.Process{}
	}

	n.rt.procs[c.name] = p

	if n.rt.images == nil {
		n.rt.images = map[string]string{}
	}

	n.rt.images[c.name] = c.image
	em.mu.Unlock()

	if c.image != "" {
		em.log("%s: started %s %s (pid %d)", n.spec.Name, c.name, c.image, p.Pid())
	} else {
		em.log("%s: started %s (pid %d)", n.spec.Name, c.name, p.Pid())
	}

	return nil
}

// stopComponent stops one static pod's program, saying why.
func (em *Emulator) stopComponent(n *Node, name, why string) {
	p := n.rt.procs[name]
	if p == nil {
		return
	}

	em.log("%s: stopping %s: %s", n.spec.Name, name, why)
	p.Stop()

	em.mu.Lock()
	delete(n.rt.procs, name)
	delete(n.rt.images, name)

	if name == k8s.APIServerID {
		n.rt.apiReady = false
	}
	em.mu.Unlock()
}

// setPullError records whether a static pod's image could be pulled (its mirror pod shows
// ErrImagePull) and reports whether it failed; the failure is logged once per image, and the
// component's old container is gone (the kubelet stopped it to start the new one).
func (em *Emulator) setPullError(n *Node, name, image string, err error) bool {
	em.mu.Lock()
	if n.rt.pullErrors == nil {
		n.rt.pullErrors = map[string]string{}
	}

	before := n.rt.pullErrors[name]
	if err == nil {
		delete(n.rt.pullErrors, name)
	} else {
		n.rt.pullErrors[name] = err.Error()
	}
	em.mu.Unlock()

	if err == nil {
		return false
	}

	if before != err.Error() {
		em.log("%s: %s: ErrImagePull: failed to pull and unpack image %q: %v", n.spec.Name, name, image, err)
	}

	em.stopComponent(n, name, "its image cannot be pulled")

	return true
}

// stopProcesses stops a node's programs (power off, or no longer a control plane).
func (em *Emulator) stopProcesses(n *Node) {
	if len(n.rt.procs) == 0 {
		return
	}

	stopKubernetesFirst(n.rt.procs, func(name string) { em.log("%s: stopping %s", n.spec.Name, name) })

	em.mu.Lock()
	n.rt.procs, n.rt.images, n.rt.mirrors = nil, nil, nil
	em.mu.Unlock()

	em.setProbe(n, func() { n.rt.etcdUp, n.rt.apiReady = false, false })
}

// ---------------------------------------------------------------------------------------------
// the VIP and kwok

// readyAPIServers lists the powered-on control planes whose API server is ready, the holder
// of addr (a Layer2VIPConfig address) first: the VIP stays where it is while that node is up.
func (em *Emulator) readyAPIServers(vip netip.Addr) []*Node {
	em.mu.Lock()
	defer em.mu.Unlock()

	var ready []*Node

	for _, n := range em.nodes {
		if n.isControlPlane() && !n.runsNothing() && n.rt.apiReady && (!vip.IsValid() || slices.Contains(vipAddresses(n.running), vip)) {
			ready = append(ready, n)
		}
	}

	if holder := slices.Index(ready, em.vipHolder); holder > 0 {
		ready[0], ready[holder] = ready[holder], ready[0]
	}

	return ready
}

// reconcileVIP listens on every Layer2VIPConfig address (loopback only) of a configured control
// plane and forwards each connection to a ready API server.
func (em *Emulator) reconcileVIP() {
	em.mu.Lock()
	var vips []netip.Addr
	for _, n := range em.nodes {
		if n.isControlPlane() {
			vips = append(vips, vipAddresses(n.running)...)
		}
	}
	em.mu.Unlock()

	for _, vip := range vips {
		if _, listening := em.vips[vip]; listening || !vip.IsLoopback() {
			continue
		}

		ln, err := net.Listen("tcp", net.JoinHostPort(vip.String(), strconv.Itoa(apiServerPort)))
		if err != nil {
			em.log("VIP %s: %v", vip, err)

			continue
		}

		em.vips[vip] = ln
		em.log("VIP %s:%d forwards to a ready API server", vip, apiServerPort)

		go em.serveVIP(vip, ln)
	}
}

func (em *Emulator) serveVIP(vip netip.Addr, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}

		go func() {
			defer conn.Close() //nolint:errcheck

			ready := em.readyAPIServers(vip)
			if len(ready) == 0 {
				return // nobody holds the VIP
			}

			em.mu.Lock()
			if em.vipHolder != ready[0] {
				em.log("VIP %s now held by %s", vip, ready[0].spec.Name)
				em.vipHolder = ready[0]
			}
			em.mu.Unlock()

			upstream, err := net.DialTimeout("tcp", net.JoinHostPort(ready[0].spec.Address, strconv.Itoa(apiServerPort)), 2*time.Second)
			if err != nil {
				return
			}
			defer upstream.Close() //nolint:errcheck

			go io.Copy(upstream, conn) //nolint:errcheck
			io.Copy(conn, upstream)    //nolint:errcheck
		}()
	}
}

// clusterAPI is how the emulator itself reaches the Kubernetes API: through a ready API
// server, with the admin client of that node.
func (em *Emulator) clusterAPI() (string, *http.Client, bool) {
	ready := em.readyAPIServers(netip.Addr{})
	if len(ready) == 0 {
		return "", nil, false
	}

	return apiServerURL(ready[0]), ready[0].rt.pki.kube, true
}

func apiServerURL(n *Node) string {
	return fmt.Sprintf("https://%s", net.JoinHostPort(n.spec.Address, strconv.Itoa(apiServerPort)))
}

// reconcileKwok starts kwok once an API server is ready; its kubeconfig names the VIP (or the
// first control plane when there is none).
func (em *Emulator) reconcileKwok() {
	if em.tools.Kwok == "" || (em.kwok != nil && em.kwok.Alive()) {
		return
	}

	ready := em.readyAPIServers(netip.Addr{})
	if len(ready) == 0 {
		return
	}

	n := ready[0]

	em.mu.Lock()
	server := n.spec.Address
	if vips := vipAddresses(n.running); len(vips) > 0 && vips[0].IsLoopback() {
		server = vips[0].String()
	}
	em.mu.Unlock()

	dir := filepath.Join(em.stateDir, "kwok")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		em.log("kwok: %v", err)

		return
	}

	ca, _ := os.ReadFile(n.rt.pki.path("ca.crt"))
	crt, _ := os.ReadFile(n.rt.pki.path("admin.crt"))
	key, _ := os.ReadFile(n.rt.pki.path("admin.key"))
	kubeconfig := filepath.Join(dir, "kubeconfig")

	if err := writeFileAtomic(kubeconfig, kubeconfigYAML("https://"+net.JoinHostPort(server, strconv.Itoa(apiServerPort)), ca, crt, key)); err != nil {
		em.log("kwok: %v", err)

		return
	}

	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}

	healthAddr := probe.Addr().String()
	probe.Close() //nolint:errcheck

	p, err := process.Start("kwok", filepath.Join(dir, "kwok.log"), []string{
		em.tools.Kwok, "--kubeconfig", kubeconfig, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector", kubelet.KwokAnnotation + "=fake",
		"--node-lease-duration-seconds", "40", "--cidr", "10.244.0.0/16", "--node-ip", server,
		"--config", em.tools.KwokConfig, "--server-address", healthAddr,
	})
	if err != nil {
		em.log("kwok: %v", err)

		return
	}

	em.kwok = p
	em.log("started kwok (pid %d) against %s", p.Pid(), server)
}

// ---------------------------------------------------------------------------------------------
// Node registration (the kubelet's part)

// registerNode is the kubelet's registration, then Talos' NodeApplyController (nodeapply.go).
// The kubelet, with its own identity, creates its Node (NodeManifest: its own labels and
// registerWithTaints) or, when the Node exists, updates its own annotations, then reports its
// status; nothing it sends changes taints after registration.
func (em *Emulator) registerNode(n *Node) error {
	em.mu.Lock()
	// powered off or a kubelet that does not run: nobody heartbeats the Node
	down := n.runsNothing() || (n.configured() && !n.kubeletRunning())

	if !n.configured() || down {
		em.mu.Unlock()

		if down && n.rt.registered != "" {
			em.releaseHeartbeat(n)
		}

		return nil
	}

	m := n.kubeletMachine()
	manifest := kubelet.NodeManifest(m)
	kubelet.AddNetworkConditions(manifest, em.controlPlaneConfigs())
	want := nodeSpec{Labels: kubelet.DesiredLabels(m), Annotations: kubelet.DesiredAnnotations(m), Taints: kubelet.DesiredTaints(m)}
	em.mu.Unlock()

	ready := em.readyAPIServers(netip.Addr{})
	if len(ready) == 0 {
		return nil
	}

	server, admin := apiServerURL(ready[0]), ready[0].rt.pki.kube

	client, err := em.kubeletClient(n, ready[0])
	if err != nil {
		return fmt.Errorf("kubelet certificate: %w", err)
	}

	if err := em.registerAs(n, server, client, manifest); err != nil {
		return err
	}

	if m.ControlPlane {
		client = admin
	}

	em.applyNodeSpec(n, server, client, want)

	return nil
}

// registerAs creates or updates the kubelet's Node and its status when they changed.
func (em *Emulator) registerAs(n *Node, server string, client *http.Client, manifest map[string]any) error {
	raw, err := json.Marshal(manifest)
	if err != nil {
		return err
	}

	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])

	if n.rt.registered == hash {
		return nil
	}

	name := n.nodeName()

	status, body, err := kubeRequest(client, http.MethodPost, server+"/api/v1/nodes", "application/json", raw)
	if err != nil {
		return err
	}

	if status == http.StatusConflict {
		meta, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": manifest["metadata"].(map[string]any)["annotations"]}})
		if status, body, err = kubeRequest(client, http.MethodPatch, server+"/api/v1/nodes/"+name, "application/merge-patch+json", meta); err != nil {
			return err
		}
	}

	if status >= 300 {
		return fmt.Errorf("%d: %s", status, body)
	}

	statusPatch, _ := json.Marshal(map[string]any{"status": manifest["status"]})
	if status, body, err = kubeRequest(client, http.MethodPatch, server+"/api/v1/nodes/"+name+"/status", "application/merge-patch+json", statusPatch); err != nil {
		return err
	} else if status >= 300 {
		return fmt.Errorf("status: %d: %s", status, body)
	}

	n.rt.registered, n.rt.applied = hash, "" // a (re)registered Node gets Talos' pass again
	em.log("%s: Node %s registered by system:node:%s", n.spec.Name, name, name)

	return nil
}

// releaseHeartbeat takes a powered-off node's Node away from kwok: its lease expires and
// the node controller marks it NotReady, as when a real kubelet stops.
func (em *Emulator) releaseHeartbeat(n *Node) {
	n.rt.registered = ""

	server, client, ok := em.clusterAPI()
	if !ok {
		return
	}

	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null}}}`, kubelet.KwokAnnotation)
	if status, body, err := kubeRequest(client, http.MethodPatch, server+"/api/v1/nodes/"+n.nodeName(), "application/merge-patch+json", patch); err != nil || status >= 300 {
		em.log("%s: releasing the Node from kwok: %v %s", n.spec.Name, err, body)
	}
}

func kubeRequest(client *http.Client, method, url, contentType string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}

	req.Header.Set("Content-Type", contentType)

	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close() //nolint:errcheck

	reply, _ := io.ReadAll(resp.Body)

	return resp.StatusCode, strings.TrimSpace(string(reply)), nil
}
