package machines

// What the Talos API (package talosapi) reads and does on the machines: every method takes
// the emulator's lock itself.

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/cosi-project/runtime/pkg/state"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"

	"solanaops.testbed/emulator/image"
)

// Nodes are the emulated machines, in NODES.yaml order.
func (em *Emulator) Nodes() []*Node { return slices.Clone(em.nodes) }

// Node is the machine NODES.yaml names name (nil if none).
func (em *Emulator) Node(name string) *Node {
	for _, n := range em.nodes {
		if n.spec.Name == name {
			return n
		}
	}

	return nil
}

// Name is the node's NODES.yaml name.
func (n *Node) Name() string { return n.spec.Name }

// Address is the node's loopback address.
func (n *Node) Address() string { return n.spec.Address }

// Resources is the node's COSI state (safe for concurrent use; SyncResources brings it up to
// date).
func (n *Node) Resources() state.State { return n.resources }

// Maintenance reports whether the node is in maintenance mode (no config with the v1alpha1
// document running).
func (em *Emulator) Maintenance(n *Node) bool {
	em.mu.Lock()
	defer em.mu.Unlock()

	return !n.configured()
}

// IsSelf reports whether a `node`/`nodes` metadata target names n.
func (em *Emulator) IsSelf(n *Node, target string) bool {
	em.mu.Lock()
	defer em.mu.Unlock()

	return em.lookup(target) == n
}

// ReadFile is the content of an emulated file (`talosctl read`).
func (em *Emulator) ReadFile(n *Node, path string) ([]byte, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if n.readErrors[filepath.Clean(path)] {
		// machined's Read streams the file through a chunker that only logs a read error and
		// stops; Read then returns nil (internal/app/machined/internal/server/v1alpha1/
		// v1alpha1_server.go Read, pkg/chunker/stream/stream.go): the client gets no data and
		// an OK status, and talosctl read prints nothing and exits 0
		if _, err := n.readFile(path); err != nil {
			return nil, err
		}

		return nil, nil
	}

	return n.readFile(path)
}

// SetReadError is the testbed's fault switch for a file the node cannot read (an I/O error,
// or a /proc/sys file whose read fails with EINVAL): its reads end at once with no data and an
// OK status, as machined's do; on=false clears it.
func (em *Emulator) SetReadError(n *Node, path string, on bool) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if on {
		if n.readErrors == nil {
			n.readErrors = map[string]bool{}
		}

		n.readErrors[filepath.Clean(path)] = true
	} else {
		delete(n.readErrors, filepath.Clean(path))
	}
}

// ServiceList is the node's services, by id.
func (em *Emulator) ServiceList(n *Node) []*machine.ServiceInfo {
	em.mu.Lock()
	defer em.mu.Unlock()

	ids := n.serviceIDs()

	list := make([]*machine.ServiceInfo, 0, len(ids))
	for _, id := range ids {
		list = append(list, n.services[id].proto(id))
	}

	return list
}

// serviceIDs are the node's services, sorted. Called with em.mu held.
func (n *Node) serviceIDs() []string {
	return slices.Sorted(maps.Keys(n.services))
}

// SyncResources brings the node's COSI state up to date.
func (em *Emulator) SyncResources(n *Node) {
	em.mu.Lock()
	defer em.mu.Unlock()

	em.syncResources(n)
}

// Installed is the node's install record (false: not installed).
func (em *Emulator) Installed(n *Node) (image.Installer, []string, bool) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if n.disk.Install == nil {
		return image.Installer{}, nil, false
	}

	return n.disk.Install.Installer, slices.Clone(n.disk.Install.KernelArgs), true
}

// AdminKubeconfig is an admin kubeconfig (`talosctl kubeconfig`) as Talos generates it
// (pkg/kubeconfig/generate.go GenerateAdmin): a client certificate freshly issued from the
// Kubernetes CA with the config's admin kubeconfig subject (CN admin, O=system:masters), the
// server being the cluster endpoint, the accepted CAs as the server's CA, and the names Talos
// gives: cluster <cluster name>, user and context admin@<cluster name>, namespace default.
// talosctl v1.14 refuses any other structure (pkg/kubeconfig/validate.go). Control planes only.
func (em *Emulator) AdminKubeconfig(n *Node) ([]byte, error) {
	em.mu.Lock()
	refused := n.controlPlaneOnly("kubeconfig")
	cfg := n.running
	em.mu.Unlock()

	if refused != nil {
		return nil, refused
	}

	ca := cfg.K8sAPIServerCAConfig().IssuingCA()

	caCert, signer, err := caOf(ca.Crt, ca.Key)
	if err != nil {
		return nil, err
	}

	admin := cfg.Cluster().AdminKubeconfig()
	subject := pkix.Name{CommonName: admin.CommonName(), Organization: []string{admin.CertOrganization()}}

	cert, err := leafRequest{subject: subject, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}.issue(caCert, signer)
	if err != nil {
		return nil, err
	}

	key, err := pemKey(cert)
	if err != nil {
		return nil, err
	}

	var serverCAs []byte
	for _, accepted := range cfg.K8sAPIServerCAConfig().AcceptedCAs() {
		serverCAs = append(serverCAs, accepted.Crt...)
	}

	cluster := cfg.K8sClusterConfig()

	return talosKubeconfig(cluster.ClusterName(), cluster.ClusterEndpoint().String(), serverCAs, pemCert(cert), key), nil
}

// talosKubeconfig is a kubeconfig with the structure Talos generates for user admin.
func talosKubeconfig(clusterName, server string, ca, crt, key []byte) []byte {
	enc := base64.StdEncoding.EncodeToString

	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: admin@%[1]s
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: admin@%[1]s
  context:
    cluster: %[1]s
    namespace: default
    user: admin@%[1]s
current-context: admin@%[1]s
`, clusterName, server, enc(ca), enc(crt), enc(key))
}
