package kernel

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
)

// View is everything the emulated files derive from.
type View struct {
	Hardware Hardware
	// Cmdline is the kernel command line the machine booted with.
	Cmdline []string
	// Config is the running machine config; nil in maintenance mode.
	Config config.Provider
	// Hostname is the machine's hostname.
	Hostname string
}

var (
	nodeMeminfoRE = regexp.MustCompile(`^/sys/devices/system/node/node([0-9]+)/meminfo$`)
	nodeCPUListRE = regexp.MustCompile(`^/sys/devices/system/node/node([0-9]+)/cpulist$`)
	nodeHugeRE    = regexp.MustCompile(`^/sys/devices/system/node/node([0-9]+)/hugepages/hugepages-([0-9]+)kB/nr_hugepages$`)
	globalHugeRE  = regexp.MustCompile(`^/sys/kernel/mm/hugepages/hugepages-([0-9]+)kB/nr_hugepages$`)
	linkMTURE     = regexp.MustCompile(`^/sys/class/net/([^/]+)/mtu$`)

	// DirectoryPaths are directories: reading them fails as Talos' Read does.
	DirectoryPaths = []string{"/", "/etc", "/etc/kubernetes", "/proc", "/sys", "/sys/devices/system/node", "/sys/kernel/mm/hugepages", "/var", "/var/mnt"}
)

// ErrNotFound is the error of a path the view does not have.
var ErrNotFound = errors.New("no such file or directory")

// Memory is the view's memory layout.
func (v View) Memory() Memory {
	return MemoryOf(v.Hardware, v.Cmdline)
}

// Read returns the content of an emulated file: /proc/cmdline, /proc/meminfo, /proc/mounts,
// /proc/sys/vm/nr_hugepages, /proc/sys/kernel/hostname, the sysctls (sysctl.go), the NUMA node
// files (meminfo, cpulist), the huge page pool files and each link's /sys/class/net/<link>/mtu.
func (v View) Read(path string) ([]byte, error) {
	path = filepath.Clean(path)

	if slices.Contains(DirectoryPaths, path) {
		return nil, errors.New("path must be a regular file")
	}

	mem := v.Memory()

	switch path {
	case "/proc/cmdline":
		return []byte(strings.Join(v.Cmdline, " ") + "\n"), nil
	case "/proc/meminfo":
		return []byte(mem.ProcMeminfo()), nil
	case "/proc/mounts", "/proc/self/mounts":
		var b strings.Builder
		for _, m := range Mounts(v.Hardware, v.Config) {
			fmt.Fprintf(&b, "%s %s %s %s 0 0\n", m.Device, m.Target, m.FSType, m.Options)
		}

		return []byte(b.String()), nil
	case "/proc/sys/vm/nr_hugepages":
		return fmt.Appendf(nil, "%d\n", mem.Pool(mem.DefaultSizeKB).Total()), nil
	case "/sys/devices/system/node/online", "/sys/devices/system/node/possible":
		if mem.NUMA == 1 {
			return []byte("0\n"), nil
		}

		return fmt.Appendf(nil, "0-%d\n", mem.NUMA-1), nil
	case "/proc/sys/kernel/hostname":
		return []byte(v.Hostname + "\n"), nil
	}

	if sysctl, ok := strings.CutPrefix(path, "/proc/sys/"); ok {
		if value, exists := Sysctls(v.Hardware, v.Config)[sysctl]; exists {
			return []byte(value), nil
		}
	}

	if m := linkMTURE.FindStringSubmatch(path); m != nil {
		if mtu, exists := LinkMTUs(v.Hardware, v.Config)[m[1]]; exists {
			return fmt.Appendf(nil, "%d\n", mtu), nil
		}
	}

	if v.isDirectory(path) {
		return nil, errors.New("path must be a regular file")
	}

	if m := nodeMeminfoRE.FindStringSubmatch(path); m != nil {
		if node, _ := strconv.Atoi(m[1]); node < mem.NUMA {
			return []byte(mem.NodeMeminfo(node)), nil
		}
	}

	if m := nodeCPUListRE.FindStringSubmatch(path); m != nil {
		if node, _ := strconv.Atoi(m[1]); node < mem.NUMA {
			return []byte(NodeCPUList(v.Hardware.CPUs, mem.NUMA, node) + "\n"), nil
		}
	}

	if m := nodeHugeRE.FindStringSubmatch(path); m != nil {
		node, _ := strconv.Atoi(m[1])
		size, _ := strconv.ParseUint(m[2], 10, 64)

		if _, valid := parseHugeSize(m[2] + "K"); valid && node < mem.NUMA {
			return fmt.Appendf(nil, "%d\n", mem.Pool(size).PerNode[node]), nil
		}
	}

	if m := globalHugeRE.FindStringSubmatch(path); m != nil {
		size, _ := strconv.ParseUint(m[1], 10, 64)

		if _, valid := parseHugeSize(m[1] + "K"); valid {
			return fmt.Appendf(nil, "%d\n", mem.Pool(size).Total()), nil
		}
	}

	return nil, fmt.Errorf("stat %s: %w", path, ErrNotFound)
}

// NodeCPUList is /sys/devices/system/node/node<N>/cpulist (drivers/base/node.c prints the node's
// cpumask as a list, "%*pbl"): the machine numbers its CPUs node by node, each node a contiguous
// block of cpus/numa (node 0 first takes any remainder), as firmware that lists each node's cores
// together does. Firmware that numbers SMT siblings after every core (0-15,32-47) is not emulated.
func NodeCPUList(cpus, numa, node int) string {
	share, extra := cpus/numa, cpus%numa
	first := node*share + min(node, extra)
	count := share
	if node < extra {
		count++
	}

	switch count {
	case 0:
		return ""
	case 1:
		return strconv.Itoa(first)
	default:
		return fmt.Sprintf("%d-%d", first, first+count-1)
	}
}

// isDirectory tells whether path is a directory of the sysctl or link trees.
func (v View) isDirectory(path string) bool {
	var files []string
	for sysctl := range sysctls {
		files = append(files, "/proc/sys/"+sysctl)
	}

	for _, nic := range v.Hardware.NICs {
		files = append(files, "/sys/class/net/"+nic.Name+"/mtu")
	}

	return slices.ContainsFunc(files, func(file string) bool { return strings.HasPrefix(file, path+"/") })
}
