package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"512Gi": 512 << 30, "1.92T": 1_920_000_000_000, "960GB": 960_000_000_000, "4096": 4096, "64Mi": 64 << 20,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}

	if _, err := ParseSize("lots"); err == nil {
		t.Error("ParseSize(lots) should fail")
	}
}

func hardware(t *testing.T, memory string, numa int, boot string) Hardware {
	t.Helper()

	hw := Hardware{NUMANodes: numa, Memory: memory, BootMode: boot, Disks: []Disk{{DevPath: "/dev/vda", Size: "100Gi"}}}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	return hw
}

// base is what every installed command line starts with on Talos v1.13.9 metal amd64.
var base = []string{
	"talos.platform=metal", "console=tty0", "init_on_alloc=1", "slab_nomerge", "pti=on", "consoleblank=0",
	"nvme_core.io_timeout=4294967295", "printk.devkmsg=on", "selinux=1", "module.sig_enforce=1", "proc_mem.force_override=never",
}

func TestUKICmdline(t *testing.T) {
	if got := UKICmdline(UKI{TalosVersion: "v1.13.9"}); !slices.Equal(got, base) {
		t.Errorf("stock UKI:\n got %q\nwant %q", got, base)
	}

	got := UKICmdline(UKI{TalosVersion: "v1.13.9", ExtraKernelArgs: []string{"hugepagesz=2M", "hugepages=512", "-selinux", "console=ttyS1"}})
	want := slices.Clone(base)
	want[1] = "console=ttyS1" // console= replaces the platform's console
	want = slices.DeleteFunc(want, func(a string) bool { return a == "selinux=1" })
	want = append(want, "hugepagesz=2M", "hugepages=512")

	if !slices.Equal(got, want) {
		t.Errorf("schematic UKI:\n got %q\nwant %q", got, want)
	}

	if got := UKICmdline(UKI{TalosVersion: "v1.13.9", SecureBoot: true}); !slices.Equal(got, append(slices.Clone(base), "lockdown=confidentiality")) {
		t.Errorf("SecureBoot UKI: %q", got)
	}

	// Talos' command line groups repeated keys (go-procfs): two pools' arguments interleave
	grouped := UKICmdline(UKI{TalosVersion: "v1.13.9", ExtraKernelArgs: []string{"hugepagesz=2M", "hugepages=100", "hugepagesz=1G", "hugepages=4"}})
	if tail := strings.Join(grouped[len(base):], " "); tail != "hugepagesz=2M hugepagesz=1G hugepages=100 hugepages=4" {
		t.Errorf("grouped: %q", tail)
	}
}

func TestBootMediaCmdline(t *testing.T) {
	want := append([]string{"talos.platform=metal", "console=tty0", "talos.halt_if_installed=1"}, base[2:]...)
	if got := BootMediaCmdline("v1.13.9"); !slices.Equal(got, want) {
		t.Errorf("boot media:\n got %q\nwant %q", got, want)
	}
}

func installConfig(t *testing.T, patch string) config.Provider {
	t.Helper()

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithInstallDisk("/dev/vda"),
		generate.WithVersionContract(config.TalosVersion1_13))
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := input.Config(machinetype.TypeWorker)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		t.Fatal(err)
	}

	// generated v1.13 configs carry grubUseUKICmdline: true; patch replaces that line
	const generated = "        grubUseUKICmdline: true\n"
	if !strings.Contains(string(raw), generated) {
		t.Fatalf("generated config lacks %q", generated)
	}

	raw = []byte(strings.Replace(string(raw), generated, patch, 1))

	loaded, err := configloader.NewFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}

	return loaded
}

func TestInstalledCmdline(t *testing.T) {
	schematic := UKI{TalosVersion: "v1.13.9", ExtraKernelArgs: []string{"hugepagesz=1G", "hugepages=8"}}
	legacy := installConfig(t, "        grubUseUKICmdline: false\n        extraKernelArgs: [hugepages=16, -selinux, talos.platform=other]\n")
	uki := installConfig(t, "        grubUseUKICmdline: true\n")

	if !uki.Machine().Install().GrubUseUKICmdline() || legacy.Machine().Install().GrubUseUKICmdline() {
		t.Fatal("test configs do not set grubUseUKICmdline as intended")
	}

	ukiWant := append(slices.Clone(base), "hugepagesz=1G", "hugepages=8")

	for _, tc := range []struct {
		name string
		boot string
		cfg  config.Provider
		want []string
	}{
		// systemd-boot: the UKI's command line, install.extraKernelArgs play no part
		{"uki", BootUKI, legacy, ukiWant},
		{"uki, UKI cmdline config", BootUKI, uki, ukiWant},
		// GRUB with grubUseUKICmdline: the UKI's command line, the schematic's args included
		{"grub, grubUseUKICmdline", BootGRUB, uki, ukiWant},
		// legacy GRUB: the installer's own command line: no schematic args, install's args apply
		{"grub, legacy", BootGRUB, legacy, []string{
			"talos.platform=other", "console=tty0", "init_on_alloc=1", "slab_nomerge", "pti=on", "consoleblank=0",
			"nvme_core.io_timeout=4294967295", "printk.devkmsg=on", "module.sig_enforce=1",
			"proc_mem.force_override=never", "hugepages=16",
		}},
	} {
		if got := InstalledCmdline(tc.boot, schematic, tc.cfg); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestHugePages(t *testing.T) {
	hw := hardware(t, "64Gi", 2, BootUKI)
	mem := MemoryOf(hw, []string{"default_hugepagesz=1G", "hugepagesz=1G", "hugepages=0:3,1:1", "hugepagesz=2M", "hugepages=101", "hugepagesz=16K", "hugepages=9"})

	if want := uint64(64<<20 - (1<<20 + 64<<10)); mem.TotalKB != want {
		t.Errorf("MemTotal = %d kB, want %d", mem.TotalKB, want)
	}

	if p := mem.Pool(PageSize1G); p.PerNode[0] != 3 || p.PerNode[1] != 1 {
		t.Errorf("1G pool = %v", p.PerNode)
	}

	if p := mem.Pool(PageSize2M); p.PerNode[0] != 51 || p.PerNode[1] != 50 {
		t.Errorf("2M pool = %v", p.PerNode)
	}

	meminfo := mem.ProcMeminfo()
	for _, line := range []string{"HugePages_Total:       4\n", "Hugepagesize:    1048576 kB\n", fmt.Sprintf("Hugetlb:        %8d kB\n", 4<<20+101*2048)} {
		if !strings.Contains(meminfo, line) {
			t.Errorf("/proc/meminfo lacks %q:\n%s", line, meminfo)
		}
	}

	node1, err := View{Hardware: hw, Cmdline: []string{"hugepagesz=1G", "hugepages=0:3,1:1", "default_hugepagesz=1G"}}.Read("/sys/devices/system/node/node1/meminfo")
	if err != nil || !strings.Contains(string(node1), "Node 1 HugePages_Total:       1\n") {
		t.Errorf("node1 meminfo: %v\n%s", err, node1)
	}

	// a pool that does not fit stops 2 GiB short of MemTotal
	small := MemoryOf(hardware(t, "8Gi", 1, BootUKI), []string{"hugepagesz=1G", "hugepages=10"})
	if got := small.Pool(PageSize1G).Total(); got != 5 {
		t.Errorf("8Gi machine: %d 1G pages, want 5", got)
	}
}

// TestHugePageParsing follows the kernel's rules for repeated and misplaced arguments.
func TestHugePageParsing(t *testing.T) {
	hw := hardware(t, "512Gi", 2, BootUKI)

	for _, tc := range []struct {
		args         string
		pages2M, pg1 uint64
		defaultKB    uint64
	}{
		{"hugepages=100", 100, 0, PageSize2M},                                         // before any hugepagesz: the default (2M) pool
		{"hugepagesz=1G hugepages=4 hugepages=8", 0, 4, PageSize2M},                   // second hugepages= without hugepagesz: ignored
		{"hugepagesz=2M hugepagesz=1G hugepages=100 hugepages=4", 0, 100, PageSize2M}, // Talos' grouping: 100 go to 1G
		{"hugepagesz=3M hugepages=7", 0, 0, PageSize2M},                               // unsupported size voids the next hugepages=
		{"hugepages=6 default_hugepagesz=1G hugepages=8", 0, 8, PageSize1G},           // the kept count goes to the default, a later one replaces it
		{"default_hugepagesz=1G hugepages=2", 0, 2, PageSize1G},                       // default_hugepagesz selects the pool
		{"hugepagesz=1G hugepages=2 hugepagesz=1G hugepages=9", 0, 2, PageSize2M},     // hugepagesz twice: ignored, its hugepages too
	} {
		mem := MemoryOf(hw, strings.Fields(tc.args))

		if got2, got1 := mem.Pool(PageSize2M).Total(), mem.Pool(PageSize1G).Total(); got2 != tc.pages2M || got1 != tc.pg1 || mem.DefaultSizeKB != tc.defaultKB {
			t.Errorf("%q: 2M=%d 1G=%d default=%d kB; want 2M=%d 1G=%d default=%d kB", tc.args, got2, got1, mem.DefaultSizeKB, tc.pages2M, tc.pg1, tc.defaultKB)
		}
	}
}

func TestMountsMaintenance(t *testing.T) {
	for _, m := range Mounts(hardware(t, "8Gi", 1, BootUKI), nil) {
		if m.Target == "/var" {
			t.Errorf("maintenance mode mounts EPHEMERAL: %v", m)
		}
	}
}

// TestBootChunkSplit pins the kernel's boot-time spread of hugepages=N (no per-node list), worked
// out by hand from mm/hugetlb.c and kernel/padata.c (see BootChunkSplit); the collection's
// tests/unit/plugins/module_utils/test_resources_verify.py has the same table.
func TestBootChunkSplit(t *testing.T) {
	for _, tc := range []struct {
		count      uint64
		numa, cpus int
		want       []uint64
	}{
		{50000, 2, 64, []uint64{25008, 24992}}, // 16 threads: 16 chunks of 3125, 1563 + 1562 each
		{50000, 2, 4, []uint64{25000, 25000}},  // 1 thread: one round-robin run
		{50000, 2, 16, []uint64{25000, 25000}}, // 4 chunks of 12500
		{3, 2, 64, []uint64{3, 0}},             // min_chunk 0: 3 chunks of 1, each from node 0
		{1000, 2, 64, []uint64{500, 500}},      // 16 x 62 + 8
		{1001, 2, 64, []uint64{501, 500}},      // 16 x 62 + 9
		{0, 2, 64, []uint64{0, 0}},
		{100, 1, 64, []uint64{100}},
	} {
		if got := BootChunkSplit(tc.count, tc.numa, tc.cpus); !slices.Equal(got, tc.want) {
			t.Errorf("BootChunkSplit(%d, %d, %d) = %v, want %v", tc.count, tc.numa, tc.cpus, got, tc.want)
		}
	}

	hw := hardware(t, "512Gi", 2, BootUKI)
	hw.CPUs = 64

	mem := MemoryOf(hw, []string{"hugepagesz=2M", "hugepages=50000", "hugepagesz=1G", "hugepages=5"})
	if p := mem.Pool(PageSize2M); !slices.Equal(p.PerNode, []uint64{25008, 24992}) {
		t.Errorf("2M pool on 64 CPUs = %v, want [25008 24992]", p.PerNode)
	}
	// Talos groups the keys (hugepagesz=2M hugepagesz=1G hugepages=...) but given in this order the
	// kernel sizes both pools; gigantic pages are one round-robin run
	if p := mem.Pool(PageSize1G); !slices.Equal(p.PerNode, []uint64{3, 2}) {
		t.Errorf("1G pool = %v, want [3 2]", p.PerNode)
	}
}

func TestNodeCPUListNumbersEachNodesCPUsTogether(t *testing.T) {
	for _, c := range []struct {
		cpus, numa, node int
		want             string
	}{
		{64, 2, 0, "0-31"}, {64, 2, 1, "32-63"}, {4, 1, 0, "0-3"}, {6, 4, 0, "0-1"}, {6, 4, 1, "2-3"},
		{6, 4, 2, "4"}, {6, 4, 3, "5"}, {2, 4, 3, ""},
	} {
		if got := NodeCPUList(c.cpus, c.numa, c.node); got != c.want {
			t.Errorf("%d CPUs on %d nodes, node %d: got %q, want %q", c.cpus, c.numa, c.node, got, c.want)
		}
	}

	hw := Hardware{CPUs: 64, NUMANodes: 2, Memory: "512Gi"}
	got, err := View{Hardware: hw}.Read("/sys/devices/system/node/node1/cpulist")
	if err != nil || string(got) != "32-63\n" {
		t.Errorf("node1 cpulist: %q, %v", got, err)
	}

	if _, err := (View{Hardware: hw}).Read("/sys/devices/system/node/node2/cpulist"); !errors.Is(err, ErrNotFound) {
		t.Errorf("node2 cpulist on a 2-node machine: %v, want not found", err)
	}
}

// TestV114Cmdline: machinery's defaults follow the installed release's quirks: v1.14 drops
// init_on_alloc=1 and nvme_core.io_timeout (AWS only), and SecureBoot images no longer force
// lockdown=confidentiality.
func TestV114Cmdline(t *testing.T) {
	want := slices.DeleteFunc(slices.Clone(base), func(a string) bool {
		return a == "init_on_alloc=1" || a == "nvme_core.io_timeout=4294967295"
	})

	if got := UKICmdline(UKI{TalosVersion: "v1.14.1"}); !slices.Equal(got, want) {
		t.Errorf("v1.14.1 UKI:\n got %q\nwant %q", got, want)
	}

	if got := UKICmdline(UKI{TalosVersion: "v1.14.1", SecureBoot: true}); !slices.Equal(got, want) {
		t.Errorf("v1.14.1 SecureBoot UKI: %q", got)
	}

	media := append([]string{"talos.platform=metal", "console=tty0", "talos.halt_if_installed=1"}, want[2:]...)
	if got := BootMediaCmdline("v1.14.1"); !slices.Equal(got, media) {
		t.Errorf("v1.14.1 boot media:\n got %q\nwant %q", got, media)
	}
}
