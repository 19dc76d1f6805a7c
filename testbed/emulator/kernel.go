package main

// The emulated kernel view: files served by the Read RPC. Every byte is a deterministic
// function of the node's hardware description (NODES.yaml), its install record (the kernel
// command line fixed when it left maintenance mode) and its running machine config. README.md
// documents the rules; keep the two in sync.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/cel/celenv"
	"github.com/siderolabs/talos/pkg/machinery/config"
	configdocs "github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/imager/quirks"
	"github.com/siderolabs/talos/pkg/machinery/kernel"
	"github.com/siderolabs/talos/pkg/machinery/resources/block"

	blockpb "github.com/siderolabs/talos/pkg/machinery/api/resource/definitions/block"
)

const (
	kib = 1024
	mib = 1024 * kib
	gib = 1024 * mib

	// talosVersion is the Talos release the emulator impersonates.
	talosVersion = "v1.13.9"
)

// ---------------------------------------------------------------------------------------------
// kernel command line

// baseKernelArgs is what every Talos metal boot entry starts with: the platform, the amd64
// metal console and machinery's default arguments for this Talos release.
func baseKernelArgs() []string {
	args := []string{"talos.platform=metal", "console=tty0"}

	for _, arg := range kernel.DefaultArgs(quirks.New(talosVersion)) {
		args = append(args, strings.TrimSuffix(arg, "=")) // "slab_nomerge=" reads back as "slab_nomerge"
	}

	return args
}

// installKernelArgs is the command line the installer writes when the node leaves maintenance
// mode with cfg:
//   - uki (systemd-boot), or grub with machine.install.grubUseUKICmdline (the default for
//     configs generated for Talos >= 1.12): the UKI's own command line, i.e. the base
//     arguments plus the schematic's; machine.install.extraKernelArgs is ignored.
//   - grub with grubUseUKICmdline false (legacy): the base arguments plus
//     machine.install.extraKernelArgs, where "-name" deletes every "name" argument and a
//     console= or talos.platform= argument replaces the base one.
func installKernelArgs(spec NodeSpec, cfg config.Provider) []string {
	args := baseKernelArgs()

	install := cfg.Machine().Install()
	if spec.Hardware.BootMode == "uki" || install.GrubUseUKICmdline() {
		return append(args, spec.SchematicKernelArgs...)
	}

	extra := install.ExtraKernelArgs()
	replaced := map[string]bool{}

	for _, arg := range extra {
		key := argKey(arg)
		if key == "console" || key == "talos.platform" {
			replaced[key] = true
		}
	}

	args = slices.DeleteFunc(args, func(arg string) bool { return replaced[argKey(arg)] })

	for _, arg := range extra {
		if deleted, ok := strings.CutPrefix(arg, "-"); ok {
			args = slices.DeleteFunc(args, func(a string) bool { return argKey(a) == argKey(deleted) })

			continue
		}

		args = append(args, arg)
	}

	return args
}

// maintenanceKernelArgs: a node in maintenance mode runs the boot media built from its schematic.
func maintenanceKernelArgs(spec NodeSpec) []string {
	return append(baseKernelArgs(), spec.SchematicKernelArgs...)
}

func argKey(arg string) string {
	key, _, _ := strings.Cut(arg, "=")

	return key
}

func (n *Node) kernelArgs() []string {
	if n.configured() && n.disk.Install != nil {
		return n.disk.Install.KernelArgs
	}

	return maintenanceKernelArgs(n.spec)
}

// ---------------------------------------------------------------------------------------------
// memory and huge pages

// kernelReservedBytes: memory the kernel keeps before MemTotal is counted: 1/64 of the
// installed memory (the struct page array) plus 64 MiB (kernel image, firmware, early
// allocations).
func kernelReservedBytes(installed uint64) uint64 {
	return installed/64 + 64*mib
}

const (
	// systemUsedBytes: memory Talos itself uses (machined, containerd, system services).
	systemUsedBytes = 1 * gib
	// pageCacheBytes: the page cache, reported as Cached.
	pageCacheBytes = 512 * mib
	// hugePageHeadroomBytes: boot-time huge page pools stop before leaving the kernel less.
	hugePageHeadroomBytes = 2 * gib
	defaultHugePageSizeKB = 2048
)

// hugePool is one huge page size: pages per NUMA node.
type hugePool struct {
	sizeKB  uint64
	perNode []uint64
}

func (p hugePool) total() (sum uint64) {
	for _, c := range p.perNode {
		sum += c
	}

	return sum
}

// memoryView is the derived memory layout of a node.
type memoryView struct {
	totalKB       uint64
	numa          int
	defaultSizeKB uint64
	pools         []hugePool // in order of first appearance on the command line
}

var hugeSizeRE = regexp.MustCompile(`^([0-9]+)([KkMmGg])?$`)

// parseHugeSize returns the size in kB of "2M", "1G", "2048K"; only 2M and 1G exist on amd64.
func parseHugeSize(s string) (uint64, bool) {
	m := hugeSizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}

	v, _ := strconv.ParseUint(m[1], 10, 64)

	switch strings.ToUpper(m[2]) {
	case "": // bytes
		v /= 1024
	case "G":
		v *= 1024 * 1024
	case "M":
		v *= 1024
	}

	return v, v == 2048 || v == 1024*1024
}

// memory derives the memory layout from the hardware and the kernel command line:
//
//	MemTotal = installed - kernelReservedBytes(installed)
//	default_hugepagesz=S selects the pool shown as HugePages_*/Hugepagesize (default 2M);
//	hugepagesz=S starts a pool, the following hugepages=N sizes it (hugepages=N before any
//	hugepagesz= sizes the default pool); N may be per NUMA node ("0:4,1:4"), otherwise it is
//	spread evenly, lower nodes taking the remainder. Sizes other than 2M and 1G are ignored,
//	as the kernel does. Pools are allocated in command-line order and stop at
//	MemTotal - 2 GiB: a pool that does not fit is cut to the pages that do.
func (n *Node) memory() memoryView {
	hw := n.spec.Hardware
	installed := hw.memoryBytes
	view := memoryView{
		totalKB:       (installed - min(installed, kernelReservedBytes(installed))) / kib,
		numa:          hw.NUMANodes,
		defaultSizeKB: defaultHugePageSizeKB,
	}

	args := n.kernelArgs()

	for _, arg := range args {
		if v, ok := strings.CutPrefix(arg, "default_hugepagesz="); ok {
			if size, valid := parseHugeSize(v); valid {
				view.defaultSizeKB = size
			}
		}
	}

	requested := map[uint64][]uint64{}
	var order []uint64

	current, currentValid := view.defaultSizeKB, true

	for _, arg := range args {
		key, value, _ := strings.Cut(arg, "=")

		switch key {
		case "hugepagesz":
			current, currentValid = parseHugeSize(value)
		case "hugepages":
			if !currentValid {
				continue
			}

			perNode, ok := splitHugePages(value, view.numa)
			if !ok {
				continue
			}

			if _, seen := requested[current]; !seen {
				order = append(order, current)
			}

			requested[current] = perNode
		}
	}

	budgetKB := uint64(0)
	if view.totalKB*kib > hugePageHeadroomBytes {
		budgetKB = view.totalKB - hugePageHeadroomBytes/kib
	}

	for _, size := range order {
		pool := hugePool{sizeKB: size, perNode: make([]uint64, view.numa)}

		for node, want := range requested[size] {
			fit := min(want, budgetKB/size)
			pool.perNode[node] = fit
			budgetKB -= fit * size
		}

		view.pools = append(view.pools, pool)
	}

	return view
}

// splitHugePages reads hugepages=N or hugepages=node:N,node:N into pages per NUMA node.
func splitHugePages(value string, numa int) ([]uint64, bool) {
	perNode := make([]uint64, numa)

	if !strings.Contains(value, ":") {
		total, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return nil, false
		}

		for i := range perNode {
			perNode[i] = total / uint64(numa)
			if uint64(i) < total%uint64(numa) {
				perNode[i]++
			}
		}

		return perNode, true
	}

	for part := range strings.SplitSeq(value, ",") {
		nodeStr, countStr, ok := strings.Cut(part, ":")
		node, err1 := strconv.Atoi(nodeStr)
		count, err2 := strconv.ParseUint(countStr, 10, 64)

		if !ok || err1 != nil || err2 != nil || node < 0 || node >= numa {
			return nil, false
		}

		perNode[node] = count
	}

	return perNode, true
}

func (v memoryView) pool(sizeKB uint64) hugePool {
	for _, p := range v.pools {
		if p.sizeKB == sizeKB {
			return p
		}
	}

	return hugePool{sizeKB: sizeKB, perNode: make([]uint64, v.numa)}
}

func (v memoryView) hugetlbKB() (sum uint64) {
	for _, p := range v.pools {
		sum += p.total() * p.sizeKB
	}

	return sum
}

// split divides an amount evenly across NUMA nodes, node 0 taking the remainder.
func split(amount uint64, numa, node int) uint64 {
	share := amount / uint64(numa)
	if node == 0 {
		share += amount % uint64(numa)
	}

	return share
}

func (v memoryView) freeKB() uint64 {
	used := v.hugetlbKB() + systemUsedBytes/kib + pageCacheBytes/kib

	return v.totalKB - min(v.totalKB, used)
}

func (v memoryView) procMeminfo() string {
	var b strings.Builder

	line := func(name string, value uint64, unit bool) {
		if unit {
			fmt.Fprintf(&b, "%-16s%8d kB\n", name+":", value)
		} else {
			fmt.Fprintf(&b, "%-16s%8d\n", name+":", value)
		}
	}

	free := v.freeKB()
	def := v.pool(v.defaultSizeKB)

	line("MemTotal", v.totalKB, true)
	line("MemFree", free, true)
	line("MemAvailable", free+pageCacheBytes/kib, true)
	line("Buffers", 0, true)
	line("Cached", pageCacheBytes/kib, true)
	line("SwapCached", 0, true)
	line("SwapTotal", 0, true)
	line("SwapFree", 0, true)
	line("AnonHugePages", 0, true)
	line("HugePages_Total", def.total(), false)
	line("HugePages_Free", def.total(), false)
	line("HugePages_Rsvd", 0, false)
	line("HugePages_Surp", 0, false)
	line("Hugepagesize", v.defaultSizeKB, true)
	line("Hugetlb", v.hugetlbKB(), true)

	return b.String()
}

func (v memoryView) nodeMeminfo(node int) string {
	var b strings.Builder

	line := func(name string, value uint64, unit bool) {
		if unit {
			fmt.Fprintf(&b, "Node %d %-16s%8d kB\n", node, name+":", value)
		} else {
			fmt.Fprintf(&b, "Node %d %-16s%8d\n", node, name+":", value)
		}
	}

	def := v.pool(v.defaultSizeKB)

	var hugetlb uint64
	for _, p := range v.pools {
		hugetlb += p.perNode[node] * p.sizeKB
	}

	total := split(v.totalKB, v.numa, node)
	used := split(systemUsedBytes/kib+pageCacheBytes/kib, v.numa, node) + hugetlb

	line("MemTotal", total, true)
	line("MemFree", total-min(total, used), true)
	line("MemUsed", min(total, used), true)
	line("FilePages", split(pageCacheBytes/kib, v.numa, node), true)
	line("AnonHugePages", 0, true)
	line("HugePages_Total", def.perNode[node], false)
	line("HugePages_Free", def.perNode[node], false)
	line("HugePages_Surp", 0, false)

	return b.String()
}

// ---------------------------------------------------------------------------------------------
// disks and mounts

type mountEntry struct {
	device, target, fstype, options string
}

// systemDisk is the install disk: machine.install.diskSelector's first match, else
// machine.install.disk, else the first disk of the hardware.
func (n *Node) systemDisk() string {
	disks := n.spec.Hardware.Disks
	if len(disks) == 0 {
		return ""
	}

	if n.configured() {
		install := n.running.Machine().Install()

		if expr, err := install.DiskMatchExpression(); err == nil && expr != nil {
			for _, d := range disks {
				if ok, err := expr.EvalBool(celenv.DiskLocator(), map[string]any{"disk": d.proto(), "system_disk": false}); err == nil && ok {
					return d.DevPath
				}
			}
		}

		for _, d := range disks {
			if d.DevPath == install.Disk() {
				return d.DevPath
			}
		}
	}

	return disks[0].DevPath
}

// checkInstallDisk: the installer needs machine.install.diskSelector to match a disk or
// machine.install.disk to name one.
func (n *Node) checkInstallDisk(cfg config.Provider) error {
	install := cfg.Machine().Install()

	expr, err := install.DiskMatchExpression()
	if err != nil {
		return err
	}

	for _, d := range n.spec.Hardware.Disks {
		if expr != nil {
			if ok, err := expr.EvalBool(celenv.DiskLocator(), map[string]any{"disk": d.proto(), "system_disk": false}); err == nil && ok {
				return nil
			}
		} else if d.DevPath == install.Disk() {
			return nil
		}
	}

	if expr != nil {
		return fmt.Errorf("no disks matched the expression: %s", expr)
	}

	if install.Disk() == "" {
		return errors.New("machine.install.disk is not set")
	}

	return fmt.Errorf("install disk %s not found", install.Disk())
}

func (d DiskSpec) proto() *blockpb.DiskSpec {
	return &blockpb.DiskSpec{
		DevPath:    d.DevPath,
		Size:       d.sizeBytes,
		Serial:     d.Serial,
		Model:      d.Model,
		Wwid:       d.WWID,
		Transport:  d.Transport,
		Rotational: d.Rotational,
		IoSize:     512,
		SectorSize: 512,
	}
}

// partition names the n-th partition of a disk: nvme0n1p3, sda3.
func partition(devPath string, index int) string {
	if last := devPath[len(devPath)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", devPath, index)
	}

	return fmt.Sprintf("%s%d", devPath, index)
}

const xfsOptions = "relatime,attr2,inode64,logbufs=8,logbsize=32k"

// mounts lists /proc/mounts: the Talos system mounts, STATE and EPHEMERAL on the system disk
// (partitions 3 and 4 with systemd-boot: EFI, META, STATE, EPHEMERAL; 5 and 6 with GRUB:
// EFI, BIOS, BOOT, META, STATE, EPHEMERAL), then one /var/mnt/<name> per provisioned
// UserVolumeConfig (see userVolumes).
func (n *Node) mounts() []mountEntry {
	entries := []mountEntry{
		{"/dev/loop0", "/", "squashfs", "ro,relatime,errors=continue"},
		{"devtmpfs", "/dev", "devtmpfs", "rw,nosuid,noexec,relatime,mode=755"},
		{"proc", "/proc", "proc", "rw,nosuid,nodev,noexec,relatime"},
		{"sysfs", "/sys", "sysfs", "rw,nosuid,nodev,noexec,relatime"},
		{"tmpfs", "/run", "tmpfs", "rw,nosuid,nodev,relatime,mode=755"},
		{"tmpfs", "/system", "tmpfs", "rw,relatime,mode=755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "rw,relatime,nsdelegate,memory_recursiveprot"},
	}

	system := n.systemDisk()
	if !n.configured() || system == "" {
		return entries
	}

	statePart, ephemeralPart := 3, 4
	if n.spec.Hardware.BootMode == "grub" {
		statePart, ephemeralPart = 5, 6
	}

	ephemeral := partition(system, ephemeralPart)
	entries = append(entries,
		mountEntry{partition(system, statePart), "/system/state", "xfs", "rw,nosuid,nodev,noexec," + xfsOptions + ",noquota"},
		mountEntry{ephemeral, "/var", "xfs", "rw,nosuid,nodev," + xfsOptions + ",noquota"},
	)

	return append(entries, n.userVolumes(system, ephemeral)...)
}

// userVolumes provisions the UserVolumeConfig documents in config order:
//   - directory: a directory on EPHEMERAL, listed with EPHEMERAL's device;
//   - partition (default): the first disk (hardware order) other than the system disk whose
//     diskSelector matches and that has room for minSize; the partition takes maxSize (or its
//     percentage of the disk), else all the free space; partitions are numbered 1, 2, ...;
//   - disk: the first matching disk other than the system disk not used yet, whole.
//
// The system disk is never used: EPHEMERAL grows to fill it. The selector is evaluated with
// machinery's CEL disk environment (disk.serial, disk.dev_path, disk.wwid, disk.model,
// disk.size, disk.transport, disk.rotational, system_disk).
func (n *Node) userVolumes(system, ephemeral string) []mountEntry {
	type diskUse struct {
		free       uint64
		partitions int
		whole      bool
	}

	use := map[string]*diskUse{}
	for _, d := range n.spec.Hardware.Disks {
		use[d.DevPath] = &diskUse{free: d.sizeBytes}
	}

	var entries []mountEntry

	for _, uv := range n.running.UserVolumeConfigs() {
		target := "/var/mnt/" + uv.Name()
		fstype := uv.Filesystem().Type()
		options := mountOptions(uv)

		vtype := uv.Type().ValueOr(block.VolumeTypePartition)
		if vtype == block.VolumeTypeDirectory {
			entries = append(entries, mountEntry{ephemeral, target, "xfs", "rw,nosuid,nodev," + xfsOptions + ",noquota"})

			continue
		}

		selector, ok := uv.Provisioning().DiskSelector().Get()
		if !ok {
			continue
		}

		for _, d := range n.spec.Hardware.Disks {
			u := use[d.DevPath]
			if d.DevPath == system || u.whole {
				continue
			}

			matched, err := selector.EvalBool(celenv.DiskLocator(), map[string]any{"disk": d.proto(), "system_disk": false})
			if err != nil || !matched {
				continue
			}

			if vtype == block.VolumeTypeDisk {
				if u.partitions > 0 {
					continue
				}

				u.whole = true
				entries = append(entries, mountEntry{d.DevPath, target, fstype.String(), options})

				break
			}

			minSize := uv.Provisioning().MinSize().ValueOr(1)
			if u.free < minSize {
				continue
			}

			size := u.free
			if maxSize, ok := uv.Provisioning().MaxSize().Get(); ok && !uv.Provisioning().MaxSizeNegative() {
				if pct, relative := uv.Provisioning().RelativeMaxSize().Get(); relative {
					maxSize = d.sizeBytes * pct / 100
				}

				size = min(size, maxSize)
			}

			u.free -= size
			u.partitions++
			entries = append(entries, mountEntry{partition(d.DevPath, u.partitions), target, fstype.String(), options})

			break
		}
	}

	return entries
}

func mountOptions(uv configdocs.UserVolumeConfig) string {
	opts := []string{"rw"}
	if uv.Mount().Secure() {
		opts = append(opts, "nosuid", "nodev")
	}

	if uv.Mount().DisableAccessTime() {
		opts = append(opts, "noatime")
	} else {
		opts = append(opts, "relatime")
	}

	if uv.Filesystem().Type() == block.FilesystemTypeXFS {
		opts = append(opts, "attr2", "inode64", "logbufs=8", "logbsize=32k")
		if uv.Filesystem().ProjectQuotaSupport() {
			opts = append(opts, "prjquota")
		} else {
			opts = append(opts, "noquota")
		}
	}

	return strings.Join(opts, ",")
}

// ---------------------------------------------------------------------------------------------
// the files

var (
	nodeMeminfoRE  = regexp.MustCompile(`^/sys/devices/system/node/node([0-9]+)/meminfo$`)
	nodeHugeRE     = regexp.MustCompile(`^/sys/devices/system/node/node([0-9]+)/hugepages/hugepages-([0-9]+)kB/nr_hugepages$`)
	globalHugeRE   = regexp.MustCompile(`^/sys/kernel/mm/hugepages/hugepages-([0-9]+)kB/nr_hugepages$`)
	directoryPaths = []string{"/", "/etc", "/etc/kubernetes", "/proc", "/sys", "/sys/devices/system/node", "/sys/kernel/mm/hugepages", "/var", "/var/mnt"}
)

// readFile returns the content of an emulated file.
func (n *Node) readFile(path string) ([]byte, error) {
	path = filepath.Clean(path)

	if slices.Contains(directoryPaths, path) {
		return nil, errors.New("path must be a regular file")
	}

	mem := n.memory()

	switch path {
	case "/proc/cmdline":
		return []byte(strings.Join(n.kernelArgs(), " ") + "\n"), nil
	case "/proc/meminfo":
		return []byte(mem.procMeminfo()), nil
	case "/proc/mounts", "/proc/self/mounts":
		var b strings.Builder
		for _, m := range n.mounts() {
			fmt.Fprintf(&b, "%s %s %s %s 0 0\n", m.device, m.target, m.fstype, m.options)
		}

		return []byte(b.String()), nil
	case "/proc/sys/vm/nr_hugepages":
		return fmt.Appendf(nil, "%d\n", mem.pool(mem.defaultSizeKB).total()), nil
	case "/sys/devices/system/node/online", "/sys/devices/system/node/possible":
		if mem.numa == 1 {
			return []byte("0\n"), nil
		}

		return fmt.Appendf(nil, "0-%d\n", mem.numa-1), nil
	case "/proc/sys/kernel/hostname":
		return []byte(n.hostname() + "\n"), nil
	case kubeletConfigPath:
		if n.configured() {
			return n.kubeletConfigYAML()
		}
	}

	if m := nodeMeminfoRE.FindStringSubmatch(path); m != nil {
		if node, _ := strconv.Atoi(m[1]); node < mem.numa {
			return []byte(mem.nodeMeminfo(node)), nil
		}
	}

	if m := nodeHugeRE.FindStringSubmatch(path); m != nil {
		node, _ := strconv.Atoi(m[1])
		size, _ := strconv.ParseUint(m[2], 10, 64)

		if _, valid := parseHugeSize(m[2] + "K"); valid && node < mem.numa {
			return fmt.Appendf(nil, "%d\n", mem.pool(size).perNode[node]), nil
		}
	}

	if m := globalHugeRE.FindStringSubmatch(path); m != nil {
		size, _ := strconv.ParseUint(m[1], 10, 64)

		if _, valid := parseHugeSize(m[1] + "K"); valid {
			return fmt.Appendf(nil, "%d\n", mem.pool(size).total()), nil
		}
	}

	return nil, fmt.Errorf("stat %s: no such file or directory", path)
}
