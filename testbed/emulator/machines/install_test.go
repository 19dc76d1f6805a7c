package machines

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/release"
)

func hwNode(t *testing.T, name, address, boot string) *Node {
	t.Helper()

	return testNode(t, NodeSpec{Name: name, Address: address, Hardware: kernel.Hardware{
		CPUs: 8, NUMANodes: 2, Memory: "64Gi", BootMode: boot, Disks: []kernel.Disk{{DevPath: "/dev/vda", Size: "100Gi"}},
	}})
}

// testNode is a machine of this description with its state in a test's temporary directory.
func testNode(t *testing.T, spec NodeSpec) *Node {
	t.Helper()

	if err := spec.normalize(); err != nil {
		t.Fatal(err)
	}

	n, err := newNode(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	return n
}

// apply applies raw to n as `talosctl apply-config` would; it returns the reply's warnings.
func apply(t *testing.T, em *Emulator, n *Node, raw []byte) []string {
	t.Helper()

	reply, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: raw, Mode: machine.ApplyConfigurationRequest_AUTO}, true)
	if err != nil {
		t.Fatal(err)
	}

	return reply.Messages[0].Warnings
}

func read(t *testing.T, em *Emulator, n *Node, path string) string {
	t.Helper()

	em.mu.Lock()
	defer em.mu.Unlock()

	raw, err := n.readFile(path)
	if err != nil {
		t.Fatal(err)
	}

	return string(raw)
}

func cmdline(t *testing.T, em *Emulator, n *Node) []string {
	t.Helper()

	return strings.Fields(read(t, em, n, "/proc/cmdline"))
}

func meminfoValue(t *testing.T, meminfo, key string) string {
	t.Helper()

	for line := range strings.Lines(meminfo) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}

	t.Fatalf("meminfo lacks %s:\n%s", key, meminfo)

	return ""
}

func TestInstallFromFactory(t *testing.T) {
	host := testutil.Factory(t)
	tuned := host + "/metal-installer/" + testutil.TunedID + ":" + testutil.V113
	base := kernel.UKICmdline(kernel.UKI{TalosVersion: testutil.V113})

	t.Run("uki, schematic with kernel args", func(t *testing.T) {
		n := hwNode(t, "v1", "127.0.1.41", kernel.BootUKI)
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}

		input := testutil.NewInput(t)

		if w := apply(t, em, n, testutil.GenConfig(t, input, machinetype.TypeWorker, "/dev/vda", tuned, "")); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}

		if want := append(slices.Clone(base), testutil.TunedArgs...); !slices.Equal(cmdline(t, em, n), want) {
			t.Errorf("/proc/cmdline:\n got %q\nwant %q", cmdline(t, em, n), want)
		}

		meminfo := read(t, em, n, "/proc/meminfo")
		if got := meminfoValue(t, meminfo, "HugePages_Total"); got != "1024" {
			t.Errorf("HugePages_Total = %s, want 1024", got)
		}

		if got := meminfoValue(t, meminfo, "Hugetlb"); got != "2097152 kB" {
			t.Errorf("Hugetlb = %s, want 2097152 kB", got)
		}

		rec := n.disk.Install
		if rec.Image != tuned || rec.Schematic != testutil.TunedID || rec.SecureBoot || rec.TalosVersion != testutil.V113 ||
			!slices.Equal(rec.ExtraKernelArgs, testutil.TunedArgs) || !slices.Equal(rec.OfficialExtensions, []string{"siderolabs/amd-ucode", "siderolabs/intel-ucode"}) {
			t.Errorf("install record %+v", rec)
		}

		// a later config naming another image changes nothing booted (an upgrade would)
		if w := apply(t, em, n, testutil.GenConfig(t, input, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, "")); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}

		if n.running.Machine().Install().Image() != testutil.StockImage {
			t.Fatal("the new config is not running")
		}

		if n.disk.Install.Image != tuned || !slices.Equal(cmdline(t, em, n), append(slices.Clone(base), testutil.TunedArgs...)) {
			t.Errorf("re-apply changed the installed image: %+v", n.disk.Install)
		}
	})

	t.Run("uki, empty schematic", func(t *testing.T) {
		n := hwNode(t, "v2", "127.0.1.42", kernel.BootUKI)
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}

		apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", host+"/metal-installer/"+testutil.EmptyID+":"+testutil.V113, ""))

		if !slices.Equal(cmdline(t, em, n), base) {
			t.Errorf("/proc/cmdline: %q, want the base arguments only", cmdline(t, em, n))
		}

		if got := meminfoValue(t, read(t, em, n, "/proc/meminfo"), "HugePages_Total"); got != "0" {
			t.Errorf("HugePages_Total = %s, want 0", got)
		}
	})

	t.Run("stock installer", func(t *testing.T) {
		n := hwNode(t, "v3", "127.0.1.43", kernel.BootUKI)
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}

		apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, ""))

		if !n.configured() || !slices.Equal(cmdline(t, em, n), base) || n.disk.Install.Schematic != "" {
			t.Errorf("stock: configured=%v cmdline %q record %+v", n.configured(), cmdline(t, em, n), n.disk.Install)
		}

		if ext := extensionStatuses(n.disk.Install); len(ext) != 0 {
			t.Errorf("the stock installer has no extensions, got %d", len(ext))
		}
	})

	for _, tc := range []struct{ name, image, want string }{
		{"unknown schematic", host + "/metal-installer/" + testutil.UnknownID + ":" + testutil.V113,
			"MANIFEST_UNKNOWN: schematic " + testutil.UnknownID + " is not registered"},
		{"non-loopback factory", "factory.talos.dev/metal-installer/" + testutil.TunedID + ":" + testutil.V113,
			"registry factory.talos.dev cannot be reached from the testbed"},
		{"another registry", "ghcr.io/our-org/installer:" + testutil.V113, "registry ghcr.io cannot be reached"},
		{"newer tag", host + "/metal-installer/" + testutil.TunedID + ":v1.14.2", "installer tag v1.14.2 cannot boot on the emulated machines"},
		{"no image", "", "machine.install.image is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := hwNode(t, "v4", "127.0.1.44", kernel.BootUKI)
			em := &Emulator{nodes: []*Node{n}, log: t.Logf}

			warnings := apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", tc.image, ""))

			if len(warnings) != 1 || !strings.Contains(warnings[0], "install failed") || !strings.Contains(warnings[0], tc.want) ||
				!strings.Contains(warnings[0], "the node stays in maintenance mode") {
				t.Errorf("warnings %q, want one naming %q", warnings, tc.want)
			}

			if n.configured() || n.disk.Install != nil {
				t.Error("the node must stay in maintenance mode")
			}

			if !slices.Equal(cmdline(t, em, n), kernel.BootMediaCmdline(release.Latest())) {
				t.Errorf("maintenance cmdline %q", cmdline(t, em, n))
			}
		})
	}
}

func TestInstallGRUB(t *testing.T) {
	host := testutil.Factory(t)
	tuned := host + "/metal-installer/" + testutil.TunedID + ":" + testutil.V113

	// grubUseUKICmdline (the v1.12+ default): the UKI's command line, schematic args included
	n := hwNode(t, "g1", "127.0.1.45", kernel.BootGRUB)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}
	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", tuned, ""))

	if want := append(kernel.UKICmdline(kernel.UKI{TalosVersion: testutil.V113}), testutil.TunedArgs...); !slices.Equal(cmdline(t, em, n), want) {
		t.Errorf("grub + grubUseUKICmdline:\n got %q\nwant %q", cmdline(t, em, n), want)
	}

	// legacy: the installer's own command line with install.extraKernelArgs; the schematic's
	// args are not on it
	legacy := hwNode(t, "g2", "127.0.1.46", kernel.BootGRUB)
	em2 := &Emulator{nodes: []*Node{legacy}, log: t.Logf}
	apply(t, em2, legacy, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", tuned,
		"        grubUseUKICmdline: false\n        extraKernelArgs: [hugepagesz=1G, hugepages=4]\n"))

	got := cmdline(t, em2, legacy)
	if slices.Contains(got, "iommu=pt") || slices.Contains(got, "hugepages=1024") || !slices.Contains(got, "hugepages=4") {
		t.Errorf("legacy grub: %q", got)
	}

	if p := meminfoValue(t, read(t, em2, legacy, "/proc/meminfo"), "Hugetlb"); p != "4194304 kB" {
		t.Errorf("legacy grub Hugetlb = %s, want 4 x 1G", p)
	}

	// SecurityState: GRUB never boots through systemd-boot
	em2.mu.Lock()
	st := securityState(legacy)
	em2.mu.Unlock()

	if st.TypedSpec().BootedWithUKI || st.TypedSpec().SecureBoot {
		t.Errorf("grub security state %+v", st.TypedSpec())
	}
}

func TestNodesYAMLRefusesSchematicKernelArgs(t *testing.T) {
	path := t.TempDir() + "/nodes.yaml"
	testutil.WriteFile(t, path, "- name: v1\n  address: 127.0.1.20\n  schematic_kernel_args: [hugepages=8]\n")

	if _, err := LoadNodeSpecs(path); err == nil || !strings.Contains(err.Error(), `"schematic_kernel_args" is no longer accepted`) {
		t.Errorf("loadNodeSpecs: %v", err)
	}

	testutil.WriteFile(t, path, "- name: v1\n  address: 127.0.1.20\n  hardwre: {}\n")

	if _, err := LoadNodeSpecs(path); err == nil || !strings.Contains(err.Error(), "hardwre") {
		t.Errorf("an unknown key must be refused: %v", err)
	}

	testutil.WriteFile(t, path, "nodes:\n- name: v1\n  address: 127.0.1.20\n  hardware: {memory: 16Gi}\n")

	if specs, err := LoadNodeSpecs(path); err != nil || specs[0].Hardware.MemoryBytes != 16<<30 {
		t.Errorf("{nodes: [...]}: %v %v", specs, err)
	}
}
