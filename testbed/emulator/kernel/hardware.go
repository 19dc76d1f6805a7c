// Package kernel is the emulated machine's kernel view: the kernel command line its boot
// entry carries, /proc/meminfo, the NUMA nodes, huge page pools and /proc/mounts. Everything
// here is a pure function of three inputs: the hardware description (NODES.yaml), the
// installer image the machine booted (its Image Factory schematic) and the machine config
// applied to it. There is no node, emulator or network state in this package; the README
// documents every rule.
package kernel

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	blockpb "github.com/siderolabs/talos/pkg/machinery/api/resource/definitions/block"

	"solanaops.testbed/emulator/release"
)

const (
	kib = 1024
	mib = 1024 * kib
	gib = 1024 * mib
)

// Hardware describes an emulated machine, as a datasheet would (NODES.yaml `hardware:`).
type Hardware struct {
	CPUs      int    `yaml:"cpus"`
	NUMANodes int    `yaml:"numa_nodes"`
	Memory    string `yaml:"memory"`
	// BootMode is the firmware: uki (UEFI, so the installer writes systemd-boot and a UKI) or
	// grub (legacy BIOS, so it writes GRUB).
	BootMode string `yaml:"boot_mode"`
	Disks    []Disk `yaml:"disks"`
	NICs     []NIC  `yaml:"nics"`
	// TalosVersion is the release of the boot media (the stock metal ISO) the machine runs in
	// maintenance mode, until it boots the installer its config names; default release.Latest.
	TalosVersion string `yaml:"talos_version"`

	// MemoryBytes is Memory parsed by Normalize.
	MemoryBytes uint64 `yaml:"-"`
}

// Disk describes one block device; dev_path, serial and size are the usual fields.
type Disk struct {
	DevPath    string `yaml:"dev_path"`
	Serial     string `yaml:"serial"`
	Size       string `yaml:"size"`
	Model      string `yaml:"model"`
	WWID       string `yaml:"wwid"`
	Transport  string `yaml:"transport"`
	Rotational bool   `yaml:"rotational"`

	// SizeBytes is Size parsed by Normalize.
	SizeBytes uint64 `yaml:"-"`
}

// Boot modes.
const (
	BootUKI  = "uki"
	BootGRUB = "grub"
)

// Normalize fills defaults (1 CPU, 1 NUMA node, 8Gi, uki, the newest release as boot media,
// the transport from the device name, a NIC's max MTU) and parses the sizes and MACs.
func (hw *Hardware) Normalize() error {
	var err error

	if hw.TalosVersion == "" {
		hw.TalosVersion = release.Latest()
	}

	if !release.Bootable(hw.TalosVersion) {
		return fmt.Errorf("talos_version %q is not a release the emulator runs (%s)", hw.TalosVersion, release.BootableRange())
	}

	if hw.CPUs <= 0 {
		hw.CPUs = 1
	}

	if hw.NUMANodes <= 0 {
		hw.NUMANodes = 1
	}

	if hw.Memory == "" {
		hw.Memory = "8Gi"
	}

	if hw.MemoryBytes, err = ParseSize(hw.Memory); err != nil {
		return fmt.Errorf("memory: %w", err)
	}

	switch hw.BootMode {
	case "":
		hw.BootMode = BootUKI
	case BootUKI, BootGRUB:
	default:
		return fmt.Errorf("boot_mode %q must be uki or grub", hw.BootMode)
	}

	for i := range hw.Disks {
		d := &hw.Disks[i]
		if !strings.HasPrefix(d.DevPath, "/dev/") {
			return fmt.Errorf("disk %d: dev_path %q must start with /dev/", i, d.DevPath)
		}

		if d.SizeBytes, err = ParseSize(d.Size); err != nil {
			return fmt.Errorf("disk %s: size: %w", d.DevPath, err)
		}

		if d.Transport == "" {
			d.Transport = defaultTransport(d.DevPath)
		}
	}

	for i := range hw.NICs {
		if err := hw.NICs[i].normalize(); err != nil {
			return err
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

// ParseSize reads 512Gi, 1.92T, 960GB, 1048576 (bytes): the i suffixes are powers of 1024,
// the others powers of 1000.
func ParseSize(s string) (uint64, error) {
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

// Proto is the disk as machinery's block.DiskSpec, which the CEL disk selectors evaluate.
func (d Disk) Proto() *blockpb.DiskSpec {
	return &blockpb.DiskSpec{
		DevPath:    d.DevPath,
		Size:       d.SizeBytes,
		Serial:     d.Serial,
		Model:      d.Model,
		Wwid:       d.WWID,
		Transport:  d.Transport,
		Rotational: d.Rotational,
		IoSize:     512,
		SectorSize: 512,
	}
}
