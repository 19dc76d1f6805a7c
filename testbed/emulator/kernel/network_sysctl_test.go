package kernel

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// workerConfig is a generated worker config with machineExtra inserted under machine: and
// extra documents appended.
func workerConfig(t *testing.T, machineExtra string, documents ...string) config.Provider {
	t.Helper()

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithInstallDisk("/dev/vda"))
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

	const anchor = "    type: worker\n"
	if !strings.Contains(string(raw), anchor) {
		t.Fatalf("generated config lacks %q", anchor)
	}

	text := strings.Replace(string(raw), anchor, anchor+machineExtra, 1)
	for _, doc := range documents {
		text += "---\n" + doc
	}

	loaded, err := configloader.NewFromBytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}

	return loaded
}

func withNICs(t *testing.T, nics ...NIC) Hardware {
	t.Helper()

	hw := hardware(t, "16Gi", 1, BootUKI)
	hw.NICs = nics

	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	return hw
}

func read(t *testing.T, view View, path string) string {
	t.Helper()

	content, err := view.Read(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}

	return string(content)
}

func TestSysctls(t *testing.T) {
	cfg := workerConfig(t, `    sysctls:
        vm.swappiness: "01"
        net.ipv4.tcp_rmem: 4096 131072   268435456
        net.ipv4.tcp_congestion_control: bbr
        net.core.rmem_max: "0x100"
        vm.dirty_ratio: "150"
        net.ipv4.tcp_keepalive_time: "900"
        net.ipv4.tcp_keepalive_intvl: "-5"
        net/ipv4/tcp_mtu_probing: "2"
        net.ipv4.tcp_wmem: 4096 65536 268435456 99
        vm.not_a_sysctl: "1"
`)
	view := View{Hardware: hardware(t, "16Gi", 1, BootUKI), Config: cfg}

	for path, want := range map[string]string{
		"vm/swappiness":                    "1\n",                       // octal 01, printed in decimal
		"net/ipv4/tcp_rmem":                "4096\t131072\t268435456\n", // a vector prints tab-separated
		"net/ipv4/tcp_congestion_control":  "bbr\n",
		"net/core/rmem_max":                "256\n", // hex
		"vm/dirty_ratio":                   "20\n",  // out of 0..100: refused, the boot value stays
		"net/ipv4/tcp_keepalive_time":      "900\n", // the config wins over Talos' default
		"net/ipv4/tcp_keepalive_intvl":     "60\n",  // refused, so Talos' default applies
		"net/ipv4/tcp_mtu_probing":         "2\n",   // slash-separated key
		"vm/overcommit_memory":             "1\n",   // Talos' default
		"net/ipv4/ip_local_reserved_ports": "50000-50001\n",
		"net/ipv4/tcp_wmem":                "4096\t65536\t268435456\n", // the fourth value is not read
		"net/core/wmem_max":                "212992\n",                 // untouched: the kernel's boot value
	} {
		if got := read(t, view, "/proc/sys/"+path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}

	if _, err := view.Read("/proc/sys/vm/not_a_sysctl"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown sysctl should not exist, got %v", err)
	}

	if _, err := view.Read("/proc/sys/net/ipv4"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("a sysctl directory should fail as a directory, got %v", err)
	}

	maintenance := View{Hardware: hardware(t, "16Gi", 1, BootUKI)}
	if got := read(t, maintenance, "/proc/sys/vm/swappiness"); got != "60\n" {
		t.Errorf("maintenance swappiness = %q, want the kernel's 60", got)
	}

	// Talos writes its defaults in maintenance mode too (the controller needs no config)
	if got := read(t, maintenance, "/proc/sys/kernel/pid_max"); got != "262144\n" {
		t.Errorf("maintenance pid_max = %q, want Talos' 262144", got)
	}
}

func TestLinkMTU(t *testing.T) {
	nic := NIC{Name: "enp1s0", MAC: "52:54:00:00:00:20", MaxMTU: 9000}
	other := NIC{Name: "enp2s0", MAC: "52:54:00:00:00:21"}
	hw := withNICs(t, nic, other)

	linkConfig := func(name string, mtu int) string {
		return "apiVersion: v1alpha1\nkind: LinkConfig\nname: " + name + "\nmtu: " + strconv.Itoa(mtu) + "\n"
	}
	alias := "apiVersion: v1alpha1\nkind: LinkAliasConfig\nname: net0\nselector:\n    match: mac(link.permanent_addr) == \"52:54:00:00:00:20\"\n"

	for _, tc := range []struct {
		name   string
		cfg    config.Provider
		mtu    string
		others string
	}{
		{"maintenance", nil, "1500\n", "1500\n"},
		{"LinkConfig by name", workerConfig(t, "", linkConfig("enp1s0", 9000)), "9000\n", "1500\n"},
		{"LinkConfig by alias", workerConfig(t, "", alias, linkConfig("net0", 4000)), "4000\n", "1500\n"},
		{"above the NIC's max_mtu", workerConfig(t, "", linkConfig("enp1s0", 9216)), "1500\n", "1500\n"},
		{"legacy interface", workerConfig(t, "    network:\n        interfaces:\n            - interface: enp1s0\n              mtu: 8000\n"), "8000\n", "1500\n"},
		{"legacy deviceSelector", workerConfig(t, "    network:\n        interfaces:\n            - deviceSelector:\n                hardwareAddr: 52:54:00:00:00:2*\n              mtu: 7000\n"), "7000\n", "7000\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			view := View{Hardware: hw, Config: tc.cfg}
			if got := read(t, view, "/sys/class/net/enp1s0/mtu"); got != tc.mtu {
				t.Errorf("enp1s0 mtu = %q, want %q", got, tc.mtu)
			}

			if got := read(t, view, "/sys/class/net/enp2s0/mtu"); got != tc.others {
				t.Errorf("enp2s0 mtu = %q, want %q", got, tc.others)
			}
		})
	}

	if _, err := (View{Hardware: hw}).Read("/sys/class/net/eth9/mtu"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a link the machine lacks should not exist, got %v", err)
	}
}
