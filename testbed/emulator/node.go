package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cosi-project/runtime/pkg/state"
	"github.com/cosi-project/runtime/pkg/state/impl/inmem"
	"github.com/cosi-project/runtime/pkg/state/impl/namespaced"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/resources/block"
	"gopkg.in/yaml.v3"
)

// ---------------------------------------------------------------------------------------------
// NODES.yaml: the hardware description

// NodeSpec is one entry of NODES.yaml.
type NodeSpec struct {
	Name     string   `yaml:"name"`
	Address  string   `yaml:"address"`
	Hardware Hardware `yaml:"hardware"`
	// SchematicKernelArgs stands for the Image Factory schematic the node was booted and
	// installed from: the extra kernel arguments baked into its UKI.
	SchematicKernelArgs []string `yaml:"schematic_kernel_args"`
}

// Hardware describes the emulated machine.
type Hardware struct {
	CPUs      int        `yaml:"cpus"`
	NUMANodes int        `yaml:"numa_nodes"`
	Memory    string     `yaml:"memory"`
	BootMode  string     `yaml:"boot_mode"` // uki | grub
	Disks     []DiskSpec `yaml:"disks"`

	memoryBytes uint64
}

// DiskSpec describes one block device; dev_path, serial and size are the usual fields.
type DiskSpec struct {
	DevPath    string `yaml:"dev_path"`
	Serial     string `yaml:"serial"`
	Size       string `yaml:"size"`
	Model      string `yaml:"model"`
	WWID       string `yaml:"wwid"`
	Transport  string `yaml:"transport"`
	Rotational bool   `yaml:"rotational"`

	sizeBytes uint64
}

func loadNodeSpecs(path string) ([]NodeSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	var specs []NodeSpec
	if err = yaml.Unmarshal(raw, &specs); err != nil {
		// also accept {nodes: [...]}
		var wrapped struct {
			Nodes []NodeSpec `yaml:"nodes"`
		}
		if err2 := yaml.Unmarshal(raw, &wrapped); err2 != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		specs = wrapped.Nodes
	}

	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: no nodes", path)
	}

	names, addrs := map[string]bool{}, map[string]bool{}

	for i := range specs {
		s := &specs[i]
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

	hw := &s.Hardware
	if hw.CPUs <= 0 {
		hw.CPUs = 1
	}
	if hw.NUMANodes <= 0 {
		hw.NUMANodes = 1
	}
	if hw.Memory == "" {
		hw.Memory = "8Gi"
	}
	if hw.memoryBytes, err = parseSize(hw.Memory); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	switch hw.BootMode {
	case "":
		hw.BootMode = "uki"
	case "uki", "grub":
	default:
		return fmt.Errorf("boot_mode %q must be uki or grub", hw.BootMode)
	}

	for i := range hw.Disks {
		d := &hw.Disks[i]
		if !strings.HasPrefix(d.DevPath, "/dev/") {
			return fmt.Errorf("disk %d: dev_path %q must start with /dev/", i, d.DevPath)
		}
		if d.sizeBytes, err = parseSize(d.Size); err != nil {
			return fmt.Errorf("disk %s: size: %w", d.DevPath, err)
		}
		if d.Transport == "" {
			d.Transport = defaultTransport(d.DevPath)
		}
	}

	return nil
}

func defaultTransport(devPath string) string {
	switch name := filepath.Base(devPath); {
	case strings.HasPrefix(name, "nvme"):
		return "nvme"
	case strings.HasPrefix(name, "vd"):
		return "virtio"
	case strings.HasPrefix(name, "mmcblk"):
		return "mmc"
	default:
		return "sata"
	}
}

var sizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i?B?|B)?\s*$`)

// parseSize reads 512Gi, 1.92T, 960GB, 1048576 (bytes): the i suffixes are powers of 1024,
// the others powers of 1000.
func parseSize(s string) (uint64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("cannot parse size %q", s)
	}

	value, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}

	unit := strings.TrimSuffix(m[2], "B")
	base := 1000.0
	if strings.HasSuffix(unit, "i") {
		base, unit = 1024, strings.TrimSuffix(unit, "i")
	}

	multiplier := 1.0
	if unit != "" {
		for range strings.Index("KMGTP", unit) + 1 {
			multiplier *= base
		}
	}

	return uint64(value * multiplier), nil
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

	// off: powered off (Shutdown, or the testbed's power control); not persisted, an emulator
	// restart powers every machine on
	off bool
	rt  runtime
}

// persistedState is DIR/<name>/node.json.
type persistedState struct {
	// Install is recorded when the node first leaves maintenance mode (the installer runs).
	Install *installRecord `json:"install,omitempty"`
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
}

type installRecord struct {
	// KernelArgs is the kernel command line the installed boot entry carries.
	KernelArgs []string `json:"kernel_args"`
}

func newNode(spec NodeSpec, stateDir string) (*Node, error) {
	n := &Node{
		spec:      spec,
		dir:       filepath.Join(stateDir, spec.Name),
		resources: state.WrapCore(namespaced.NewState(inmem.Build)),
		services:  map[string]*serviceState{},
	}

	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, err
	}

	for i, d := range spec.Hardware.Disks {
		disk := block.NewDisk(block.NamespaceName, filepath.Base(d.DevPath))
		disk.TypedSpec().DevPath = d.DevPath
		disk.TypedSpec().SetSize(d.sizeBytes)
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
	if !n.configured() || n.running.Cluster() == nil {
		return ""
	}

	return n.running.Cluster().ID()
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
	kwok      *process

	// onChange is called (with mu held) after any node's state changed, so listeners can
	// follow (a worker's API comes up once a control plane can issue its certificate).
	onChange func()
}

func newEmulator(specs []NodeSpec, stateDir string, tools Tools, logf func(string, ...any)) (*Emulator, error) {
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
		if n.configured() && n.disk.Install == nil {
			// a config persisted before the first install record: install now
			n.disk.Install = &installRecord{KernelArgs: installKernelArgs(n.spec, n.running)}
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

// settle updates what follows from a node's running config: the install record (written the
// first time the node leaves maintenance mode, dropped when a try-mode rollback returns it
// there), etcd joining a bootstrapped cluster, the services, the state on disk and the
// listeners. Called with em.mu held.
func (em *Emulator) settle(n *Node) {
	switch {
	case n.configured() && n.disk.Install == nil:
		n.disk.Install = &installRecord{KernelArgs: installKernelArgs(n.spec, n.running)}
	case !n.configured():
		n.disk.Install = nil
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
	etcdRunning := n.disk.EtcdData && (!em.tools.enabled() || n.rt.etcdUp)

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
		case id != "etcd":
		case etcdRunning && svc.state == "Preparing":
			svc.start(id, now)
		case !etcdRunning && svc.state == "Running":
			svc.healthy = false
			svc.event(now, "Preparing", "Running pre state")
		}
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
