package kernel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/cel"
	"github.com/siderolabs/talos/pkg/machinery/cel/celenv"
	"github.com/siderolabs/talos/pkg/machinery/config"
	configdocs "github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/block"
)

// Mount is one line of /proc/mounts.
type Mount struct {
	Device, Target, FSType, Options string
}

// diskVars are the CEL variables a disk selector sees.
func diskVars(d Disk) map[string]any {
	return map[string]any{"disk": d.Proto(), "system_disk": false}
}

// installDisk finds the config's install disk among the hardware's disks: the
// UnattendedInstallConfig's provisioning.diskSelector (Talos v1.14; machinery refuses it
// together with .machine.install, and v1.14.1's UnattendedInstallController installs to the
// first disk it matches, internal/app/machined/pkg/controllers/runtime/unattended_install.go),
// else machine.install.diskSelector's first match, else machine.install.disk. The error is the
// installer's when nothing matches.
func installDisk(hw Hardware, cfg config.Provider) (string, error) {
	if doc := cfg.UnattendedInstallConfig(); doc != nil {
		expr := doc.VolumeSelector()
		if d, ok := firstMatch(hw, &expr); ok {
			return d, nil
		}

		return "", errors.New("no disk matched the selector")
	}

	install := cfg.Machine().Install()

	expr, err := install.DiskMatchExpression()
	if err != nil {
		return "", err
	}

	if expr != nil {
		if d, ok := firstMatch(hw, expr); ok {
			return d, nil
		}

		return "", fmt.Errorf("no disks matched the expression: %s", expr)
	}

	for _, d := range hw.Disks {
		if d.DevPath == install.Disk() {
			return d.DevPath, nil
		}
	}

	if install.Disk() == "" {
		return "", errors.New("machine.install.disk is not set")
	}

	return "", fmt.Errorf("install disk %s not found", install.Disk())
}

func firstMatch(hw Hardware, expr *cel.Expression) (string, bool) {
	for _, d := range hw.Disks {
		if ok, err := expr.EvalBool(celenv.DiskLocator(), diskVars(d)); err == nil && ok {
			return d.DevPath, true
		}
	}

	return "", false
}

// SystemDisk is the install disk (installDisk), else (no config: maintenance mode, or no
// match) the first disk of the hardware.
func SystemDisk(hw Hardware, cfg config.Provider) string {
	if len(hw.Disks) == 0 {
		return ""
	}

	if cfg != nil && cfg.Machine() != nil {
		if d, err := installDisk(hw, cfg); err == nil {
			return d
		}
	}

	return hw.Disks[0].DevPath
}

// CheckInstallDisk: the installer needs an install disk (installDisk).
func CheckInstallDisk(hw Hardware, cfg config.Provider) error {
	_, err := installDisk(hw, cfg)

	return err
}

// partition names the n-th partition of a disk: nvme0n1p3, sda3.
func partition(devPath string, index int) string {
	if last := devPath[len(devPath)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", devPath, index)
	}

	return fmt.Sprintf("%s%d", devPath, index)
}

const xfsOptions = "relatime,attr2,inode64,logbufs=8,logbsize=32k"

// Mounts lists /proc/mounts: the Talos system mounts, then, once configured (cfg not nil),
// STATE and EPHEMERAL on the system disk (partitions 3 and 4 with systemd-boot: EFI, META,
// STATE, EPHEMERAL; 5 and 6 with GRUB: EFI, BIOS, BOOT, META, STATE, EPHEMERAL), then one
// /var/mnt/<name> per provisioned UserVolumeConfig (see userVolumes).
func Mounts(hw Hardware, cfg config.Provider) []Mount {
	entries := []Mount{
		{"/dev/loop0", "/", "squashfs", "ro,relatime,errors=continue"},
		{"devtmpfs", "/dev", "devtmpfs", "rw,nosuid,noexec,relatime,mode=755"},
		{"proc", "/proc", "proc", "rw,nosuid,nodev,noexec,relatime"},
		{"sysfs", "/sys", "sysfs", "rw,nosuid,nodev,noexec,relatime"},
		{"tmpfs", "/run", "tmpfs", "rw,nosuid,nodev,relatime,mode=755"},
		{"tmpfs", "/system", "tmpfs", "rw,relatime,mode=755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "rw,relatime,nsdelegate,memory_recursiveprot"},
	}

	system := SystemDisk(hw, cfg)
	if cfg == nil || system == "" {
		return entries
	}

	statePart, ephemeralPart := 3, 4
	if hw.BootMode == BootGRUB {
		statePart, ephemeralPart = 5, 6
	}

	ephemeral := partition(system, ephemeralPart)
	entries = append(entries,
		Mount{partition(system, statePart), "/system/state", "xfs", "rw,nosuid,nodev,noexec," + xfsOptions + ",noquota"},
		Mount{ephemeral, "/var", "xfs", "rw,nosuid,nodev," + xfsOptions + ",noquota"},
	)

	return append(entries, userVolumes(hw, cfg, system, ephemeral)...)
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
func userVolumes(hw Hardware, cfg config.Provider, system, ephemeral string) []Mount {
	type diskUse struct {
		free       uint64
		partitions int
		whole      bool
	}

	use := map[string]*diskUse{}
	for _, d := range hw.Disks {
		use[d.DevPath] = &diskUse{free: d.SizeBytes}
	}

	var entries []Mount

	for _, uv := range cfg.UserVolumeConfigs() {
		target := "/var/mnt/" + uv.Name()
		fstype := uv.Filesystem().Type()
		options := mountOptions(uv)

		vtype := uv.Type().ValueOr(block.VolumeTypePartition)
		if vtype == block.VolumeTypeDirectory {
			entries = append(entries, Mount{ephemeral, target, "xfs", "rw,nosuid,nodev," + xfsOptions + ",noquota"})

			continue
		}

		selector, ok := uv.Provisioning().DiskSelector().Get()
		if !ok {
			continue
		}

		for _, d := range hw.Disks {
			u := use[d.DevPath]
			if d.DevPath == system || u.whole {
				continue
			}

			if ok, err := selector.EvalBool(celenv.DiskLocator(), diskVars(d)); err != nil || !ok {
				continue
			}

			if vtype == block.VolumeTypeDisk {
				if u.partitions > 0 {
					continue
				}

				u.whole = true
				entries = append(entries, Mount{d.DevPath, target, fstype.String(), options})

				break
			}

			minSize := uv.Provisioning().MinSize().ValueOr(1)
			if u.free < minSize {
				continue
			}

			size := u.free
			if maxSize, ok := uv.Provisioning().MaxSize().Get(); ok && !uv.Provisioning().MaxSizeNegative() {
				if pct, relative := uv.Provisioning().RelativeMaxSize().Get(); relative {
					maxSize = d.SizeBytes * pct / 100
				}

				size = min(size, maxSize)
			}

			u.free -= size
			u.partitions++
			entries = append(entries, Mount{partition(d.DevPath, u.partitions), target, fstype.String(), options})

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
