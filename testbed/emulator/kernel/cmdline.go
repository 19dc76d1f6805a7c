package kernel

import (
	"strings"

	"github.com/siderolabs/go-procfs/procfs"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/imager/quirks"
	"github.com/siderolabs/talos/pkg/machinery/kernel"
)

// UKI is what the kernel command line needs to know about the installer image a machine
// installed: the inputs of the command line baked into its Unified Kernel Image.
type UKI struct {
	// TalosVersion is the installer's release: machinery's default arguments follow its quirks.
	TalosVersion string
	// SecureBoot: a metal-installer-secureboot image.
	SecureBoot bool
	// ExtraKernelArgs are the schematic's customization.extraKernelArgs (none for the stock
	// installer).
	ExtraKernelArgs []string
}

// The command lines are built the way Talos builds them, with the same library
// (github.com/siderolabs/go-procfs): a procfs.Cmdline keeps one entry per key, in order of
// first appearance, holding every value given for that key, so repeated keys are grouped:
// "hugepagesz=2M hugepages=1 hugepagesz=1G hugepages=2" reads back as
// "hugepagesz=2M hugepagesz=1G hugepages=1 hugepages=2", as on a real Talos machine.

// metalConsole is the metal platform's console argument on amd64 (Talos'
// internal/app/machined/pkg/runtime/v1alpha1/platform/metal/metal.go KernelArgs: ttyS0 too
// only for releases before 1.8).
func metalConsole(q quirks.Quirks) []string {
	if q.SupportsMetalPlatformConsoleTTYS0() {
		return []string{"console=ttyS0", "console=tty0"}
	}

	return []string{"console=tty0"}
}

func finish(c *procfs.Cmdline) []string {
	return strings.Fields(c.String())
}

// extraArgOptions are the options Talos appends extra kernel arguments with: console= and
// talos.platform= replace the existing values, "-name" deletes every "name" argument
// ("-name=value" only that value).
var extraArgOptions = []procfs.AppendAllOption{
	procfs.WithOverwriteArgs("console"),
	procfs.WithOverwriteArgs(constants.KernelParamPlatform),
	procfs.WithDeleteNegatedArgs(),
}

// BootMediaCmdline is the command line of the boot media a machine runs in maintenance mode:
// the stock metal ISO of that release (pkg/imager/imager.go buildCmdline for an ISO output:
// platform, console, talos.halt_if_installed=1, the default arguments).
func BootMediaCmdline(talosVersion string) []string {
	q := quirks.New(talosVersion)
	c := procfs.NewCmdline("")

	c.Append(constants.KernelParamPlatform, constants.PlatformMetal)
	c.SetAll(metalConsole(q))

	if q.SupportsHaltIfInstalled() {
		c.Append(constants.KernelParamHaltIfInstalled, "1")
	}

	c.AppendAll(kernel.DefaultArgs(q)) //nolint:errcheck // never fails

	return finish(c)
}

// UKICmdline is the command line the Image Factory bakes into an installer's UKI
// (pkg/imager/imager.go buildCmdline): platform, console, machinery's default arguments for
// the release, SecureBoot's (lockdown=confidentiality before v1.14), then the schematic's
// extraKernelArgs. The factory puts no META into installer images (image-factory
// internal/profile/profile.go: installers get only the extra kernel args).
func UKICmdline(img UKI) []string {
	q := quirks.New(img.TalosVersion)
	c := procfs.NewCmdline("")

	c.Append(constants.KernelParamPlatform, constants.PlatformMetal)
	c.SetAll(metalConsole(q))
	c.AppendAll(kernel.DefaultArgs(q)) //nolint:errcheck

	if img.SecureBoot {
		c.AppendAll(kernel.SecureBootArgs(q)) //nolint:errcheck
	}

	c.AppendAll(img.ExtraKernelArgs, extraArgOptions...) //nolint:errcheck

	return finish(c)
}

// legacyGRUBCmdline is the command line the installer composes itself for GRUB when it does
// not use the UKI's (cmd/installer/pkg/install/install.go Install, "legacy code which is only
// used when running in GRUB mode with GrubUseUKICmdline set to false"): platform, console,
// machinery's default arguments with empty quirks, then machine.install.extraKernelArgs. The
// image's UKI command line, hence the schematic's extraKernelArgs, is not used at all. Empty
// quirks mean the installer's own machinery's latest defaults, so those of the installed
// release: quirks.New(talosVersion) gives the same (v1.14 drops init_on_alloc=1 and
// nvme_core.io_timeout, imager/quirks/quirks.go).
func legacyGRUBCmdline(talosVersion string, extra []string) []string {
	q := quirks.New(talosVersion)
	c := procfs.NewCmdline("")

	c.Append(constants.KernelParamPlatform, constants.PlatformMetal)
	c.SetAll(metalConsole(q))
	c.AppendAll(kernel.DefaultArgs(q))     //nolint:errcheck
	c.AppendAll(extra, extraArgOptions...) //nolint:errcheck

	return finish(c)
}

// InstalledCmdline is the command line of the boot entry the installer writes when a
// machine with this firmware installs the image with this config:
//
//   - uki (UEFI, systemd-boot): the UKI's own command line; machine.install.extraKernelArgs
//     play no part.
//   - grub using the UKI's command line (grubUsesUKICmdline): GRUB boots the kernel and
//     initramfs extracted from the UKI with the UKI's command line
//     (internal/app/machined/pkg/runtime/v1alpha1/bootloader/grub/install.go generateAssets),
//     plus SMBIOS OEM extras, which the testbed's machines do not have.
//   - grub otherwise: legacyGRUBCmdline.
func InstalledCmdline(bootMode string, img UKI, cfg config.Provider) []string {
	if bootMode == BootGRUB && !grubUsesUKICmdline(cfg) {
		return legacyGRUBCmdline(img.TalosVersion, cfg.Machine().Install().ExtraKernelArgs())
	}

	return UKICmdline(img)
}

// grubUsesUKICmdline is the installer's choice (cmd/installer/cmd/installer/install.go, v1.14.1;
// v1.13.9 has only the last rule): true with an UnattendedInstallConfig document, or a machine
// config without a .machine.install section (nowhere to hold extraKernelArgs), else
// machine.install.grubUseUKICmdline.
func grubUsesUKICmdline(cfg config.Provider) bool {
	if cfg.UnattendedInstallConfig() != nil {
		return true
	}

	if raw := cfg.RawV1Alpha1(); raw == nil || raw.MachineConfig == nil || raw.MachineConfig.MachineInstall == nil { //nolint:staticcheck // the legacy section is what is asked about
		return true
	}

	return cfg.Machine().Install().GrubUseUKICmdline()
}

// Arg returns the first value of a kernel argument (procfs semantics: "name" alone has the
// empty value) and whether it is present.
func Arg(cmdline []string, key string) (string, bool) {
	v := procfs.NewCmdline(strings.Join(cmdline, " ")).Get(key)
	if v == nil || v.First() == nil {
		return "", false
	}

	return *v.First(), true
}
