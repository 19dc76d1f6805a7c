package kernel

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
	machinerykernel "github.com/siderolabs/talos/pkg/machinery/kernel"
)

// sysctlKind is how the kernel parses and prints a /proc/sys file.
type sysctlKind int

const (
	// intVector is proc_dointvec(_minmax) and friends: integers read with base 0 (0x hex, 0
	// octal), printed in decimal, a vector's values separated by tabs.
	intVector sysctlKind = iota
	// word is a string the kernel checks against a set (tcp_congestion_control).
	word
	// portList is proc_do_large_bitmap (ip_local_reserved_ports): a comma list of ports and
	// ranges, printed as sorted ranges.
	portList
)

// sysctl is one file under /proc/sys as the kernel defines it.
type sysctl struct {
	kind sysctlKind
	// size is how many integers an intVector holds.
	size int
	// min and max bound each integer (the kernel's extra1/extra2); nil is unbounded.
	min, max *int64
	// words are what a word sysctl accepts.
	words []string
	// initial is the boot value, before anyone writes it.
	initial func(hw Hardware) string
}

func bound(v int64) *int64 { return &v }

func fixed(value string) func(Hardware) string { return func(Hardware) string { return value } }

func ints(value string, lowest, highest *int64) sysctl {
	return sysctl{kind: intVector, size: len(strings.Fields(value)), min: lowest, max: highest, initial: fixed(value)}
}

// sysctls are the /proc/sys files of the testbed's kernel: every one the inventory's
// profiles set and every one Talos writes by default. Any other path does not exist, as an
// unknown sysctl does not (a write fails with ENOENT). Initial values are Linux 6.x's.
var sysctls = map[string]sysctl{
	"vm/max_map_count":            ints("65530", bound(0), nil),
	"vm/dirty_ratio":              ints("20", bound(0), bound(100)),
	"vm/dirty_background_ratio":   ints("10", bound(0), bound(100)),
	"vm/swappiness":               ints("60", bound(0), bound(200)),
	"vm/overcommit_memory":        ints("0", bound(0), bound(2)),
	"vm/unprivileged_userfaultfd": ints("0", bound(0), bound(1)),

	"fs/nr_open":                    ints("1048576", bound(64), bound(2147483584)),
	"fs/inotify/max_user_instances": ints("128", bound(0), nil),
	"fs/aio-max-nr":                 ints("65536", bound(0), nil),
	// files_maxfiles_init: a tenth of the memory in KiB, at least NR_FILE (8192)
	"fs/file-max": {kind: intVector, size: 1, min: bound(0), initial: func(hw Hardware) string {
		return strconv.FormatUint(max(MemoryOf(hw, nil).TotalKB/10, 8192), 10)
	}},
	"fs/protected_symlinks":  ints("0", bound(0), bound(1)),
	"fs/protected_hardlinks": ints("0", bound(0), bound(1)),
	"fs/protected_fifos":     ints("0", bound(0), bound(2)),
	"fs/protected_regular":   ints("0", bound(0), bound(2)),
	"fs/suid_dumpable":       ints("0", bound(0), bound(2)),

	"net/core/rmem_max":           ints("212992", bound(0), nil),
	"net/core/wmem_max":           ints("212992", bound(0), nil),
	"net/core/rmem_default":       ints("212992", bound(0), nil),
	"net/core/wmem_default":       ints("212992", bound(0), nil),
	"net/core/netdev_max_backlog": ints("1000", nil, nil),
	"net/core/bpf_jit_harden":     ints("0", bound(0), bound(2)),

	"net/ipv4/tcp_rmem":                          ints("4096 131072 6291456", bound(1), nil),
	"net/ipv4/tcp_wmem":                          ints("4096 16384 4194304", bound(1), nil),
	"net/ipv4/tcp_slow_start_after_idle":         ints("1", bound(0), bound(1)),
	"net/ipv4/tcp_mtu_probing":                   ints("0", bound(0), bound(2)),
	"net/ipv4/tcp_keepalive_time":                ints("7200", bound(1), nil),
	"net/ipv4/tcp_keepalive_intvl":               ints("75", bound(1), nil),
	"net/ipv4/tcp_congestion_control":            {kind: word, words: []string{"reno", "cubic", "bbr"}, initial: fixed("cubic")},
	"net/ipv4/ip_forward":                        ints("0", bound(0), bound(1)),
	"net/ipv4/icmp_ignore_bogus_error_responses": ints("1", bound(0), bound(1)),
	"net/ipv4/icmp_echo_ignore_broadcasts":       ints("1", bound(0), bound(1)),
	"net/ipv4/ip_local_reserved_ports":           {kind: portList, initial: fixed("")},
	"net/ipv6/conf/default/forwarding":           ints("0", nil, nil),
	"net/ipv6/conf/default/accept_ra":            ints("1", nil, nil),
	"net/bridge/bridge-nf-call-iptables":         ints("1", bound(0), bound(1)),
	"net/bridge/bridge-nf-call-ip6tables":        ints("1", bound(0), bound(1)),

	"kernel/ctrl-alt-del": ints("0", nil, nil),
	"kernel/panic":        ints("0", nil, nil),
	// pid_idr_init: 1024 per possible CPU, at least 32768
	"kernel/pid_max": {kind: intVector, size: 1, min: bound(301), max: bound(4194304), initial: func(hw Hardware) string {
		return strconv.Itoa(max(32768, 1024*hw.CPUs))
	}},
	"kernel/kptr_restrict":             ints("0", bound(0), bound(2)),
	"kernel/dmesg_restrict":            ints("0", bound(0), bound(1)),
	"kernel/perf_event_paranoid":       ints("2", nil, nil),
	"kernel/randomize_va_space":        ints("2", nil, nil),
	"kernel/yama/ptrace_scope":         ints("1", bound(0), bound(3)),
	"kernel/unprivileged_bpf_disabled": ints("2", bound(0), bound(2)),
	"dev/tty/ldisc_autoload":           ints("1", bound(0), bound(1)),
	"dev/tty/legacy_tiocsti":           ints("0", bound(0), bound(1)),
	// the kernel sizes it from memory (max_threads/2); Talos always writes 0 (KSPP)
	"user/max_user_namespaces": ints("63936", bound(0), nil),
}

// talosDefaultSysctls are the values Talos writes itself (KernelParamDefaultsController,
// internal/app/machined/pkg/controllers/runtime/kernel_param_defaults.go, and the KSPP ones,
// pkg/kernel/kspp/kspp.go) on a metal machine with IPv6.
var talosDefaultSysctls = [][2]string{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv4.icmp_ignore_bogus_error_responses", "1"},
	{"net.ipv4.icmp_echo_ignore_broadcasts", "1"},
	{"net.ipv4.ip_local_reserved_ports", "50000,50001"},
	{"net.bridge.bridge-nf-call-iptables", "1"},
	{"net.bridge.bridge-nf-call-ip6tables", "1"},
	{"kernel.ctrl-alt-del", "0"},
	{"net.ipv6.conf.default.forwarding", "1"},
	{"net.ipv6.conf.default.accept_ra", "2"},
	{"net.ipv4.tcp_keepalive_time", "600"},
	{"net.ipv4.tcp_keepalive_intvl", "60"},
	{"kernel.panic", "10"},
	{"kernel.pid_max", "262144"},
	{"vm.overcommit_memory", "1"},
	{"fs.inotify.max_user_instances", "8192"},
	{"fs.aio-max-nr", "1048576"},
	{"dev.tty.ldisc_autoload", "0"},
	{"dev.tty.legacy_tiocsti", "0"},
	{"fs.protected_symlinks", "1"},
	{"fs.protected_hardlinks", "1"},
	{"fs.protected_fifos", "2"},
	{"fs.protected_regular", "2"},
	{"fs.suid_dumpable", "0"},
	{"kernel.kptr_restrict", "2"},
	{"kernel.dmesg_restrict", "1"},
	{"kernel.perf_event_paranoid", "3"},
	{"kernel.randomize_va_space", "2"},
	{"kernel.yama.ptrace_scope", "2"},
	{"user.max_user_namespaces", "0"},
	{"kernel.unprivileged_bpf_disabled", "1"},
	{"net.core.bpf_jit_harden", "2"},
	{"vm.unprivileged_userfaultfd", "0"},
}

// sysctlPath is the /proc/sys file of a machine.sysctls key, by machinery's own rule (dots
// and slashes swap when the first separator is a dot).
func sysctlPath(key string) string {
	return (&machinerykernel.Param{Key: machinerykernel.Sysctl + "." + key}).Path()
}

// Sysctls are the /proc/sys files (path without the /proc/sys/ prefix) and their contents as
// the kernel prints them, after Talos applied the config's sysctls (.machine.sysctls, SysctlConfig) and its own
// defaults (internal/app/machined/pkg/controllers/runtime/kernel_param_spec.go): config values
// first, then each default whose key the config did not set successfully. A write the kernel
// refuses (unknown file, bad value) changes nothing.
func Sysctls(hw Hardware, cfg config.Provider) map[string]string {
	values := make(map[string]string, len(sysctls))
	for path, s := range sysctls {
		values[path], _ = s.parse(s.initial(hw)) // printed as the kernel prints it
	}

	written := map[string]bool{}
	write := func(key, value string) {
		path := strings.TrimPrefix(sysctlPath(key), "/proc/sys/")
		if written[path] {
			return
		}

		if s, exists := sysctls[path]; exists {
			if normalized, err := s.parse(value); err == nil {
				values[path] = normalized
				written[path] = true
			}
		}
	}

	if cfg != nil {
		// machinery merges .machine.sysctls and the SysctlConfig documents (Talos v1.14), the
		// documents winning on a key both set (config/container/container.go SysctlConfig),
		// which KernelParamConfigController applies (controllers/runtime/kernel_param_config.go)
		for key, value := range cfg.SysctlConfig() {
			write(key, value)
		}
	}

	for _, param := range talosDefaultSysctls {
		write(param[0], param[1])
	}

	for path, value := range values {
		values[path] = value + "\n"
	}

	return values
}

// parse is the kernel's handling of a write: the value as a read then prints it, or EINVAL.
func (s sysctl) parse(value string) (string, error) {
	switch s.kind {
	case word:
		for _, w := range s.words {
			if strings.TrimSpace(value) == w {
				return w, nil
			}
		}

		return "", fmt.Errorf("%q: no such congestion control", value)
	case portList:
		return parsePortList(value)
	}

	fields := strings.Fields(value)
	if len(fields) == 0 {
		return "", fmt.Errorf("%q: want %d integer(s)", value, s.size)
	}

	// values beyond the vector are left unread (a short write): the vector takes the leading ones
	fields = fields[:min(len(fields), s.size)]

	out := make([]string, 0, len(fields))

	for _, field := range fields {
		n, err := parseKernelInt(field)
		if err != nil || (s.min != nil && n < *s.min) || (s.max != nil && n > *s.max) {
			return "", fmt.Errorf("%q: invalid argument", field)
		}

		out = append(out, strconv.FormatInt(n, 10))
	}

	// a shorter write sets only the leading values
	initial := strings.Fields(s.initial(Hardware{}))
	out = append(out, initial[len(out):]...)

	return strings.Join(out, "\t"), nil
}

// parseKernelInt reads an integer as the kernel's proc_get_long does (strtoul base 0).
func parseKernelInt(s string) (int64, error) {
	negative := strings.HasPrefix(s, "-")
	digits, base := strings.TrimPrefix(s, "-"), 10

	switch {
	case strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X"):
		digits, base = digits[2:], 16
	case len(digits) > 1 && digits[0] == '0':
		digits, base = digits[1:], 8
	}

	n, err := strconv.ParseInt(digits, base, 64)
	if negative {
		n = -n
	}

	return n, err
}

// parsePortList reads "50000,50001" or "50000-50010" and prints the ranges as the kernel does.
func parsePortList(value string) (string, error) {
	var ports [65536]bool

	for part := range strings.SplitSeq(strings.TrimSpace(value), ",") {
		if part == "" {
			continue
		}

		from, to, isRange := strings.Cut(part, "-")
		if !isRange {
			to = from
		}

		first, err1 := strconv.Atoi(from)
		last, err2 := strconv.Atoi(to)

		if err1 != nil || err2 != nil || first < 0 || last > 65535 || first > last {
			return "", fmt.Errorf("%q: invalid argument", part)
		}

		for p := first; p <= last; p++ {
			ports[p] = true
		}
	}

	var ranges []string

	for p := 0; p < len(ports); p++ {
		if !ports[p] {
			continue
		}

		start := p
		for p+1 < len(ports) && ports[p+1] {
			p++
		}

		if start == p {
			ranges = append(ranges, strconv.Itoa(p))
		} else {
			ranges = append(ranges, fmt.Sprintf("%d-%d", start, p))
		}
	}

	return strings.Join(ranges, ","), nil
}
