package kernel

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	glob "github.com/ryanuber/go-glob"
	networkpb "github.com/siderolabs/talos/pkg/machinery/api/resource/definitions/network"
	"github.com/siderolabs/talos/pkg/machinery/cel/celenv"
	"github.com/siderolabs/talos/pkg/machinery/config"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config/config"
)

// Ethernet MTU bounds: every link boots at 1500; ether_setup's min_mtu is 68, and the driver
// sets max_mtu (a NIC without max_mtu in NODES.yaml takes 9216, a common server NIC's).
const (
	defaultMTU    = 1500
	minMTU        = 68
	defaultMaxMTU = 9216
)

// NIC is a physical Ethernet port (NODES.yaml `hardware.nics`).
type NIC struct {
	Name   string `yaml:"name"`
	MAC    string `yaml:"mac"`
	MaxMTU int    `yaml:"max_mtu"`

	// HardwareAddr is MAC parsed by Normalize.
	HardwareAddr net.HardwareAddr `yaml:"-"`
}

func (nic *NIC) normalize() error {
	if nic.Name == "" {
		return fmt.Errorf("nic: name is required")
	}

	var err error
	if nic.HardwareAddr, err = net.ParseMAC(nic.MAC); err != nil {
		return fmt.Errorf("nic %s: mac: %w", nic.Name, err)
	}

	if nic.MaxMTU == 0 {
		nic.MaxMTU = defaultMaxMTU
	}

	if nic.MaxMTU < minMTU {
		return fmt.Errorf("nic %s: max_mtu %d is below the Ethernet minimum %d", nic.Name, nic.MaxMTU, minMTU)
	}

	return nil
}

// LinkMTUs are the MTUs of the machine's links (/sys/class/net/<link>/mtu) once Talos applied
// the config. Links are named by the config's `machine.network.interfaces` (by `interface`
// or `deviceSelector.hardwareAddr`, a glob matching every link it fits:
// internal/app/machined/pkg/controllers/network/device_config.go) and by LinkConfig documents,
// whose names LinkAliasConfig selectors may alias (link_alias_config.go: links in name order,
// a non-pattern selector matching several links aliases none, a link takes its first alias).
// LinkConfig wins over the legacy interfaces (link_config.go merges them in that order). A
// link nothing names keeps 1500; an MTU the NIC refuses (outside 68..max_mtu: the kernel's
// dev_validate_mtu) fails the link's update (link_spec.go) and the link keeps 1500 as well.
func LinkMTUs(hw Hardware, cfg config.Provider) map[string]int {
	mtus := map[string]int{}
	for _, nic := range hw.NICs {
		mtus[nic.Name] = defaultMTU
	}

	if cfg == nil {
		return mtus
	}

	wanted := map[string]int{}

	if cfg.Machine() != nil {
		for _, device := range cfg.Machine().Network().Devices() {
			if device.Ignore() || device.MTU() == 0 {
				continue
			}

			for _, nic := range devicesOf(hw, device) {
				wanted[nic] = device.MTU()
			}
		}
	}

	aliases := linkAliases(hw, cfg)

	for _, link := range cfg.NetworkCommonLinkConfigs() {
		if mtu, ok := link.MTU().Get(); ok {
			name := link.Name()
			if nic, aliased := aliases[name]; aliased {
				name = nic
			}

			wanted[name] = int(mtu)
		}
	}

	for _, nic := range hw.NICs {
		if mtu, ok := wanted[nic.Name]; ok && mtu >= minMTU && mtu <= nic.MaxMTU {
			mtus[nic.Name] = mtu
		}
	}

	return mtus
}

// devicesOf are the NICs a legacy machine.network.interfaces entry configures.
func devicesOf(hw Hardware, device talosconfig.Device) []string {
	selector := device.Selector()
	if selector == nil {
		return []string{device.Interface()}
	}

	var names []string

	for _, nic := range hw.NICs {
		// only the hardware address is modelled: a selector on anything else matches nothing
		if selector.HardwareAddress() != "" && selector.Bus() == "" && selector.PCIID() == "" &&
			selector.KernelDriver() == "" && selector.PermanentAddress() == "" &&
			glob.Glob(selector.HardwareAddress(), nic.HardwareAddr.String()) {
			names = append(names, nic.Name)
		}
	}

	return names
}

// linkAliases maps each LinkAliasConfig name to the NIC it selects.
func linkAliases(hw Hardware, cfg config.Provider) map[string]string {
	nics := slices.Clone(hw.NICs)
	slices.SortFunc(nics, func(a, b NIC) int { return strings.Compare(a.Name, b.Name) })

	aliases, aliased := map[string]string{}, map[string]bool{}

	for _, alias := range cfg.NetworkLinkAliasConfigs() {
		var matched []string

		for _, nic := range nics {
			vars := map[string]any{"link": &networkpb.LinkStatusSpec{
				HardwareAddr: nic.HardwareAddr, PermanentAddr: nic.HardwareAddr,
			}}
			if ok, err := alias.LinkSelector().EvalBool(celenv.LinkLocator(), vars); err == nil && ok {
				matched = append(matched, nic.Name)
			}
		}

		if len(matched) > 1 && !alias.IsPatternAlias() {
			continue
		}

		matched = slices.DeleteFunc(matched, func(nic string) bool { return aliased[nic] })

		if !alias.IsPatternAlias() && len(matched) > 0 {
			matched = matched[:1]
		}

		for i, nic := range matched {
			aliases[strings.Replace(alias.Name(), "%d", strconv.Itoa(i), 1)] = nic
			aliased[nic] = true
		}
	}

	return aliases
}
