// Package machines is the emulated Talos machines: NODES.yaml, each machine's state (running
// and persisted config, install record, services, COSI resources, certificates), the state
// transitions machined would make (apply, install, bootstrap, rollback, power), the machines'
// network presence (their API listeners) and the real control planes they run (etcd,
// Kubernetes, the VIP, Node registration). The gRPC API itself is package talosapi; the
// kernel view package kernel.
package machines

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cosi-project/runtime/pkg/state"
	"github.com/cosi-project/runtime/pkg/state/impl/inmem"
	"github.com/cosi-project/runtime/pkg/state/impl/namespaced"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/resources/block"
	"gopkg.in/yaml.v3"

	"solanaops.testbed/emulator/image"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/kubelet"
	"solanaops.testbed/emulator/process"
)

// ---------------------------------------------------------------------------------------------
// NODES.yaml: the hardware description

// NodeSpec is one entry of NODES.yaml: a machine as its datasheet describes it. It says
// nothing about the software the machine runs: that is the installer image its config names.
type NodeSpec struct {
	Name     string          `yaml:"name"`
	Address  string          `yaml:"address"`
	Hardware kernel.Hardware `yaml:"hardware"`
}

// retiredFields are NODES.yaml keys that once carried what the machine's software should
// show; refused with an explanation (they would hand the emulator the answer).
var retiredFields = map[string]string{
	"schematic_kernel_args": "the kernel command line comes from the installer image the applied config names " +
		"(machine.install.image, pulled from the testbed Image Factory), not from NODES.yaml",
}

func LoadNodeSpecs(path string) ([]NodeSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	// a list, or {nodes: [...]}
	var doc yaml.Node
	if err = yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}

	list := &doc
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = list.Content[0]
	}

	if list.Kind == yaml.MappingNode {
		var found *yaml.Node

		for i := 0; i+1 < len(list.Content); i += 2 {
			if list.Content[i].Value != "nodes" {
				return nil, fmt.Errorf("%s: unknown key %q (expected a list of nodes or {nodes: [...]})", path, list.Content[i].Value)
			}

			found = list.Content[i+1]
		}

		if found == nil {
			return nil, fmt.Errorf("%s: no nodes", path)
		}

		list = found
	}

	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, fmt.Errorf("%s: no nodes", path)
	}

	specs := make([]NodeSpec, len(list.Content))
	names, addrs := map[string]bool{}, map[string]bool{}

	for i, item := range list.Content {
		s := &specs[i]

		if item.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(item.Content); j += 2 {
				if why, retired := retiredFields[item.Content[j].Value]; retired {
					return nil, fmt.Errorf("%s: node %d: %q is no longer accepted: %s", path, i, item.Content[j].Value, why)
				}
			}
		}

		// strict: an unknown key (a typo, a retired field) is an error, not silently ignored
		one, err := yaml.Marshal(item)
		if err != nil {
			return nil, fmt.Errorf("%s: node %d: %w", path, i, err)
		}

		dec := yaml.NewDecoder(bytes.NewReader(one))
		dec.KnownFields(true)

		if err := dec.Decode(s); err != nil {
			return nil, fmt.Errorf("%s: node %d: %w", path, i, err)
		}

		if err := s.normalize(); err != nil {
			return nil, fmt.Errorf("%s: node %d (%s): %w", path, i, s.Name, err)
		}

		if names[s.Name] || addrs[s.Address] {
			return nil, fmt.Errorf("%s: duplicate node name or address %s/%s", path, s.Name, s.Address)
		}

		names[s.Name], addrs[s.Address] = true, true
	}

	return specs, nil
}

var nodeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

func (s *NodeSpec) normalize() error {
	if !nodeName.MatchString(s.Name) {
		return fmt.Errorf("name %q must be a DNS label", s.Name)
	}

	addr, err := netip.ParseAddr(s.Address)
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	// the testbed may only ever use loopback addresses
	if !addr.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(addr) {
		return fmt.Errorf("address %s is not in 127.0.0.0/8", s.Address)
	}

	s.Address = addr.String()

	return s.Hardware.Normalize()
}

// ---------------------------------------------------------------------------------------------
// per-node state

// Node is one emulated Talos machine. All mutable fields are guarded by Emulator.mu.
type Node struct {
	spec NodeSpec
	dir  string

	// resources holds the COSI view machinery's runtime validation reads (block.Disk).
	resources state.State

	// running is the active machine config: nil means maintenance mode; runningBytes is its
	// source. persistedBytes is what a reboot (an emulator restart) boots with.
	running        config.Provider
	runningBytes   []byte
	persistedBytes []byte

	disk      persistedState
	services  map[string]*serviceState
	rollback  *time.Timer
	listening bool

	maintenanceCert *certEntry
	serverCert      *certEntry

	// off: powered off (Shutdown, or the testbed's power control) or rebooting; not persisted,
	// an emulator restart powers every machine on. reboot is the pending end of a reboot.
	off    bool
	reboot *time.Timer
	rt     runtime

	// shutdown is the pending end of a shutdown sequence (the node still answers until it
	// fires); shutdownDelay overrides Emulator.ShutdownDelay for this node (the control socket's
	// fault switch). Neither is persisted.
	shutdown      *time.Timer
	shutdownDelay *time.Duration
	// halting: the shutdown is stopping the node's programs; its API still answers (apid stops
	// last), then it powers off.
	halting bool

	// this boot: /proc/sys/kernel/random/boot_id, the event buffer and its watchers' wake-up,
	// the last MachineStatusEvent published (events.go); none persisted
	bootID        string
	events        []event
	eventsChanged chan struct{}
	lastStatus    string

	// images is the containerd image store (ImageService.Pull), by reference and by pinned
	// name; in memory, so an emulator restart empties it. upgrading: an upgrade runs.
	// bootFallback: the testbed's fault switch (upgrade.go). None persisted.
	images       map[string]image.Installer
	upgrading    bool
	bootFallback bool
	// staticPods are the control plane's static pods by component (staticpods.go), as last
	// published to COSI; the kubelet mirrors them (mirrorpods.go).
	staticPods map[string]map[string]any
	// pullFailures: the Kubernetes versions whose image pulls the fault switch fails;
	// kubeImages: the Kubernetes images the node holds (kubeimages.go). Not persisted: an
	// emulator restart empties the store, as images.
	pullFailures map[string]bool
	kubeImages   map[string]bool
	// readErrors: the files whose reads the fault switch fails (api.go SetReadError); not persisted
	readErrors map[string]bool

	// the kubelet's last start: the config it started with, when, and its log (kubelet_service.go)
	kubeletStarted   string
	kubeletStartedAt time.Time
	kubeletLog       []string
}

// persistedState is DIR/<name>/node.json.
type persistedState struct {
	// Install is recorded when the node first leaves maintenance mode (the installer runs): the
	// boot entry the machine boots. An upgrade writes PendingInstall, the next boot's entry.
	Install        *installRecord `json:"install,omitempty"`
	PendingInstall *installRecord `json:"pending_install,omitempty"`
	// EtcdData: the etcd data directory is not empty (bootstrapped or joined).
	EtcdData bool `json:"etcd_data"`
	// EtcdInitial: this member was bootstrapped (it starts a new etcd cluster; others join).
	EtcdInitial bool `json:"etcd_initial,omitempty"`
	// EtcdMember: the real etcd member has been healthy once, so its data directory is a
	// member's (a join interrupted before that starts over from an empty directory).
	EtcdMember bool `json:"etcd_member,omitempty"`
	// EtcdJoin is the --initial-cluster this member was added with, so a join interrupted
	// before the member first ran (when the cluster already counts it in its quorum) resumes.
	EtcdJoin string `json:"etcd_join,omitempty"`
	// MemoryCheckpoint is the kubelet's /var/lib/kubelet/memory_manager_state (kubelet_service.go).
	MemoryCheckpoint *kubelet.MemoryCheckpoint `json:"memory_manager_state,omitempty"`
}

// installRecord is what the installer left on the system disk: the installer image it ran
// (its schematic's customization) and the kernel command line of the boot entry it wrote.
// A later apply-config changing machine.install changes none of it (an upgrade does).
type installRecord struct {
	image.Installer

	// KernelArgs is the kernel command line the installed boot entry carries
	// (kernel.InstalledCmdline of the firmware, the image and the config installed with).
	KernelArgs []string `json:"kernel_args"`
}

// runsNothing: powered off, rebooting or halting, the machine runs no program (etcd, the
// control plane, the kubelet). Called with em.mu held.
func (n *Node) runsNothing() bool { return n.off || n.halting }

func newNode(spec NodeSpec, stateDir string) (*Node, error) {
	n := &Node{
		spec:      spec,
		dir:       filepath.Join(stateDir, spec.Name),
		resources: state.WrapCore(namespaced.NewState(inmem.Build)),
		services:  map[string]*serviceState{},
		bootID:    newBootID(),
	}

	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, err
	}

	for i, d := range spec.Hardware.Disks {
		disk := block.NewDisk(block.NamespaceName, filepath.Base(d.DevPath))
		disk.TypedSpec().DevPath = d.DevPath
		disk.TypedSpec().SetSize(d.SizeBytes)
		disk.TypedSpec().Serial = d.Serial
		disk.TypedSpec().Model = d.Model
		disk.TypedSpec().WWID = d.WWID
		disk.TypedSpec().Transport = d.Transport
		disk.TypedSpec().Rotational = d.Rotational
		disk.TypedSpec().IOSize = 512
		disk.TypedSpec().SectorSize = 512

		if err := n.resources.Create(context.Background(), disk); err != nil {
			return nil, fmt.Errorf("disk %d: %w", i, err)
		}
	}

	if raw, err := os.ReadFile(filepath.Join(n.dir, "node.json")); err == nil {
		if err = json.Unmarshal(raw, &n.disk); err != nil {
			return nil, fmt.Errorf("%s/node.json: %w", n.dir, err)
		}

		if n.disk.Install != nil && n.disk.Install.Image == "" {
			return nil, fmt.Errorf("%s/node.json: the install record names no installer image (state from an older emulator): remove %s to start this machine afresh", n.dir, n.dir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	if raw, err := os.ReadFile(filepath.Join(n.dir, "config.yaml")); err == nil {
		cfg, err := configloader.NewFromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("%s/config.yaml: %w", n.dir, err)
		}

		// booting: the persisted config becomes the running one
		n.persistedBytes = raw
		n.running, n.runningBytes = cfg, raw
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	return n, nil
}

// configured reports whether the node left maintenance mode: its running config holds the
// v1alpha1 document (real Talos: "config complete for boot").
func (n *Node) configured() bool {
	return n.running != nil && n.running.RawV1Alpha1() != nil
}

func (n *Node) isControlPlane() bool {
	return n.configured() && n.running.Machine().Type().IsControlPlane()
}

// hostname: the HostnameConfig document or machine.network.hostname, else the node's name
// from NODES.yaml (real Talos would derive a stable talos-xxx-yyy name).
func (n *Node) hostname() string {
	if n.running != nil {
		if h := n.running.NetworkHostnameConfig(); h != nil && h.Hostname() != "" {
			return h.Hostname()
		}
	}

	return n.spec.Name
}

// clusterID identifies the cluster a configured node belongs to.
func (n *Node) clusterID() string {
	if !n.configured() {
		return ""
	}

	return clusterID(n.running)
}

// clusterID is the config's cluster ID: the DiscoveryIdentityConfig document's (Talos v1.14)
// or .cluster.id (machinery's merged DiscoveryIdentityConfig).
func clusterID(cfg config.Provider) string {
	if id := cfg.DiscoveryIdentityConfig(); id != nil {
		return id.ClusterID()
	}

	return ""
}

func (n *Node) savePersisted() error {
	raw, err := json.MarshalIndent(n.disk, "", "  ")
	if err != nil {
		return err
	}

	if err = writeFileAtomic(filepath.Join(n.dir, "node.json"), append(raw, '\n')); err != nil {
		return err
	}

	path := filepath.Join(n.dir, "config.yaml")
	if n.persistedBytes == nil {
		if err = os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}

		return nil
	}

	return writeFileAtomic(path, n.persistedBytes)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}

	return os.Rename(tmp, path)
}

// ---------------------------------------------------------------------------------------------
// the emulator: every node, one lock

// Emulator holds all nodes; one mutex guards all node state (the load is tiny).
type Emulator struct {
	mu       sync.Mutex
	nodes    []*Node
	log      func(format string, args ...any)
	tools    Tools
	stateDir string

	// the control-plane runtime (controlplane.go): reconcile requests, VIP listeners and the
	// node holding each, kwok
	kicks     chan struct{}
	vips      map[netip.Addr]net.Listener
	vipHolder *Node
	kwok      *process.Process

	// onChange is called (with mu held) after any node's state changed, so listeners can
	// follow (a worker's API comes up once a control plane can issue its certificate).
	onChange func()

	// factory is the HTTP client installer pulls use (nil: image.Puller's default, 5 s).
	factory *http.Client

	// endpoints are the nodes' API listeners (Serve).
	endpoints []*endpoint

	// RebootDelay is how long a reboot keeps a machine down (the install after the first
	// config, an apply that needs a reboot): its API refuses connections meanwhile.
	RebootDelay time.Duration

	// ShutdownDelay is how long a machine keeps answering after a Shutdown request before it
	// powers off (machined's shutdown sequence runs after the reply; cluster.go, Shutdown).
	ShutdownDelay time.Duration
}

func New(specs []NodeSpec, stateDir string, tools Tools, logf func(string, ...any)) (*Emulator, error) {
	em := &Emulator{log: logf, tools: tools, stateDir: stateDir, kicks: make(chan struct{}, 1), vips: map[netip.Addr]net.Listener{}}

	for _, spec := range specs {
		n, err := newNode(spec, stateDir)
		if err != nil {
			return nil, err
		}

		em.nodes = append(em.nodes, n)
	}

	em.mu.Lock()
	defer em.mu.Unlock()

	for _, n := range em.nodes {
		em.bootEntry(n) // a restart is a reboot: an upgrade's entry boots

		if n.configured() && n.disk.Install == nil {
			// a config staged in maintenance mode boots: the installer runs now
			em.bootInstall(n)
		}

		em.refreshServices(n)
	}

	return em, nil
}

// lookup finds the node a `nodes`/`node` metadata target names: its address, its name in
// NODES.yaml or its current hostname.
func (em *Emulator) lookup(target string) *Node {
	for _, n := range em.nodes {
		if n.spec.Address == target || n.spec.Name == target || n.hostname() == target {
			return n
		}
	}

	return nil
}

func (em *Emulator) changed() {
	if em.onChange != nil {
		em.onChange()
	}

	em.kick()
}

// ---------------------------------------------------------------------------------------------
// state transitions

// setRunning makes cfg (raw: its bytes; nil for none) the running config and settles
// everything derived from it. Called with em.mu held.
func (em *Emulator) setRunning(n *Node, cfg config.Provider, raw []byte) {
	n.running, n.runningBytes = cfg, raw
	em.settle(n)
}

// settle updates what follows from a node's running config: the install record (dropped
// when a try-mode rollback returns the node to maintenance mode; written by the apply that
// leaves maintenance mode, or here when a rollback boots a persisted config that was never
// installed), etcd joining a bootstrapped cluster, the services, the state on disk and the
// listeners. Called with em.mu held.
func (em *Emulator) settle(n *Node) {
	switch {
	case n.configured() && n.disk.Install == nil:
		em.bootInstall(n)
	case !n.configured():
		n.disk.Install, n.disk.PendingInstall = nil, nil
	}

	// a control plane joins the etcd cluster another member of its cluster bootstrapped
	if n.isControlPlane() && !n.disk.EtcdData && em.clusterBootstrapped(n.clusterID()) {
		n.disk.EtcdData = true
	}

	em.refreshServices(n)

	if err := n.savePersisted(); err != nil {
		em.log("%s: saving state: %v", n.spec.Name, err)
	}

	em.changed()
}

func (em *Emulator) clusterBootstrapped(id string) bool {
	return id != "" && slices.ContainsFunc(em.nodes, func(o *Node) bool {
		return o.isControlPlane() && o.disk.EtcdData && o.clusterID() == id
	})
}

// armRollback (try mode) reverts the running config to the persisted one after timeout.
func (em *Emulator) armRollback(n *Node, timeout time.Duration) {
	em.cancelRollback(n)

	var timer *time.Timer
	timer = time.AfterFunc(timeout, func() {
		em.mu.Lock()
		defer em.mu.Unlock()

		if n.rollback != timer {
			return // cancelled or re-armed meanwhile
		}

		n.rollback = nil

		var (
			cfg config.Provider
			err error
		)

		if n.persistedBytes != nil {
			if cfg, err = configloader.NewFromBytes(n.persistedBytes); err != nil {
				em.log("%s: rollback: %v", n.spec.Name, err)

				return
			}
		}

		em.log("%s: try mode timed out, rolling back to the persisted config", n.spec.Name)
		em.setRunning(n, cfg, n.persistedBytes)
	})
	n.rollback = timer
}

// rebootNode takes the node down for em.RebootDelay, then boots it: its API, services and
// programs stop meanwhile, as on a machine going through its firmware and boot loader
// (machined's reboot sequence; the install after the first config ends with one too). Called
// with em.mu held, after the reply's state is recorded; the reply still reaches the caller on
// its open connection.
func (em *Emulator) rebootNode(n *Node, why string) {
	delay := em.rebootTime(n)
	em.log("%s: rebooting (%s), down for %s", n.spec.Name, why, delay)
	n.off = true
	n.rt.down()

	var timer *time.Timer
	timer = time.AfterFunc(delay, func() {
		em.mu.Lock()
		defer em.mu.Unlock()

		if n.reboot != timer {
			return // powered off meanwhile
		}

		n.reboot, n.off = nil, false
		em.log("%s: booted", n.spec.Name)
		em.boot(n)
	})
	n.reboot = timer

	em.refreshServices(n)
	em.changed()
}

// boot starts a machine that was off or rebooting: it loads the config persisted on its STATE
// partition, so a staged config takes effect and a try-mode config is gone (machined loads the
// config from STATE at boot: internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer_tasks.go,
// LoadConfig), and its services start afresh. Called with em.mu held.
func (em *Emulator) boot(n *Node) {
	em.cancelRollback(n)
	n.services = map[string]*serviceState{}

	// a new boot: a new boot ID and event buffer (watchers of the last boot end)
	n.bootID, n.events, n.lastStatus = newBootID(), nil, ""
	n.wakeWatchers()
	n.publish("", &machine.MachineStatusEvent{Stage: machine.MachineStatusEvent_BOOTING, Status: &machine.MachineStatusEvent_MachineStatus{}})
	em.bootEntry(n)

	if bytes.Equal(n.runningBytes, n.persistedBytes) {
		em.refreshServices(n)
		em.changed()

		return
	}

	var cfg config.Provider

	if n.persistedBytes != nil {
		var err error
		if cfg, err = configloader.NewFromBytes(n.persistedBytes); err != nil {
			em.log("%s: booting: the persisted config does not load: %v", n.spec.Name, err)

			return
		}
	}

	em.log("%s: booting the persisted config", n.spec.Name)
	em.setRunning(n, cfg, n.persistedBytes)
}

func (em *Emulator) cancelRollback(n *Node) {
	if n.rollback != nil {
		n.rollback.Stop()
		n.rollback = nil
	}
}

// ---------------------------------------------------------------------------------------------
// services

type serviceState struct {
	state   string // Running, Preparing, Finished
	healthy bool   // false: health unknown (no health check)
	changed time.Time
	events  []serviceEvent
}

type serviceEvent struct {
	msg, state string
	ts         time.Time
}

var (
	maintenanceServices  = []string{"apid", "machined", "syslogd", "udevd"}
	nodeServices         = []string{"apid", "auditd", "containerd", "cri", "dashboard", "kubelet", "machined", "syslogd", "udevd"}
	controlPlaneServices = []string{"etcd", "trustd"}
	// services with a health check
	healthChecked = []string{"apid", "containerd", "cri", "etcd", "kubelet", "machined", "trustd", "udevd"}
	// services the API may start/restart (real Talos: only kubelet among system services; no
	// system service may be stopped through the API)
	apiStartable = []string{"kubelet"}
)

// refreshServices brings the service set in line with the node's mode and type: services
// that appear start Running; etcd stays Preparing ("Running pre state") until the node's
// etcd data directory is populated (bootstrap or join).
func (em *Emulator) refreshServices(n *Node) {
	want := maintenanceServices
	if n.configured() {
		want = slices.Clone(nodeServices)
		if n.isControlPlane() {
			want = append(want, controlPlaneServices...)
		}
		slices.Sort(want)
	}

	for id := range n.services {
		if !slices.Contains(want, id) {
			delete(n.services, id)
		}
	}

	now := time.Now()
	// with real etcd the service is Running while the member answers /health
	etcdRunning := n.disk.EtcdData && (!em.tools.Enabled() || n.rt.etcdUp)

	for _, id := range want {
		svc, ok := n.services[id]
		if !ok {
			svc = &serviceState{}
			n.services[id] = svc
			svc.event(now, "Starting", "Starting service")

			if id == "etcd" && !etcdRunning {
				svc.event(now, "Preparing", "Running pre state")

				continue
			}

			svc.start(id, now)
		}

		switch {
		case id == "kubelet":
			em.startKubelet(n, svc, now)
		case id != "etcd":
		case etcdRunning && svc.state == "Preparing":
			svc.start(id, now)
		case !etcdRunning && svc.state == "Running":
			svc.healthy = false
			svc.event(now, "Preparing", "Running pre state")
		}
	}

	em.syncResources(n) // the COSI view follows (watchers see it)

	if n.off {
		n.wakeWatchers() // event streams end with the machine
	} else {
		n.publishStatus()
	}
}

func (s *serviceState) event(ts time.Time, state, msg string) {
	s.state, s.changed = state, ts
	s.events = append(s.events, serviceEvent{msg: msg, state: state, ts: ts})

	if len(s.events) > 20 {
		s.events = s.events[len(s.events)-20:]
	}
}

func (s *serviceState) start(id string, ts time.Time) {
	s.event(ts, "Running", "Service started")

	s.healthy = slices.Contains(healthChecked, id)
	if s.healthy {
		s.event(ts, "Running", "Health check successful")
	}
}
