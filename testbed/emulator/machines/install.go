package machines

// The installer: when a machine leaves maintenance mode it pulls its installer image
// (installerImage, package image), and the boot entry it writes carries the kernel command line of that
// image for this firmware (package kernel). README.md "The installer" documents the rules.

import (
	"context"
	"errors"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/config"

	"solanaops.testbed/emulator/image"
	"solanaops.testbed/emulator/kernel"
)

// pull resolves an installer reference the way the machine's installer would pull it.
func (em *Emulator) pull(ctx context.Context, ref string) (image.Installer, error) {
	return image.Puller{Client: em.factory}.Pull(ctx, ref)
}

// installRecordFor is what installing inst with cfg on n leaves on disk.
func installRecordFor(n *Node, cfg config.Provider, inst image.Installer) *installRecord {
	uki := kernel.UKI{TalosVersion: inst.TalosVersion, SecureBoot: inst.SecureBoot, ExtraKernelArgs: inst.ExtraKernelArgs}

	return &installRecord{
		Installer:  inst,
		KernelArgs: kernel.InstalledCmdline(n.spec.Hardware.BootMode, uki, cfg),
	}
}

// installFailure is the warning an apply reply carries when the install fails: the node
// stays in maintenance mode (real Talos would show it on the console only).
func installFailure(err error) string {
	return fmt.Sprintf("talos emulator: install failed: %v; the node stays in maintenance mode", err)
}

// checkInstall runs the installer's checks for cfg on n: the install disk, then the image
// pull. Called without em.mu (the pull talks HTTP).
func (em *Emulator) checkInstall(ctx context.Context, n *Node, cfg config.Provider) (image.Installer, error) {
	if err := kernel.CheckInstallDisk(n.spec.Hardware, cfg); err != nil {
		return image.Installer{}, err
	}

	ref, err := installerImage(cfg)
	if err != nil {
		return image.Installer{}, err
	}

	return em.pull(ctx, ref)
}

// installerImage is the image the installer pulls: the UnattendedInstallConfig's
// installer.image (Talos v1.14, which replaces .machine.install), else machine.install.image.
// An UnattendedInstallConfig without an image makes v1.14.1 derive one from the Image Factory
// schematic the machine booted (controllers/runtime/unattended_install.go
// getInstallerFromBootEntry); the emulated machines boot the stock ISO, which has none.
func installerImage(cfg config.Provider) (string, error) {
	doc := cfg.UnattendedInstallConfig()
	if doc == nil {
		return cfg.Machine().Install().Image(), nil
	}

	if doc.InstallerImage() == "" {
		return "", errors.New("failed to determine installer image: the machine did not boot Image Factory media (no ImageFactorySchematic)")
	}

	return doc.InstallerImage(), nil
}

// bootInstall installs the running config while booting (a config staged in maintenance mode,
// or a rollback to a persisted config that never ran the installer). If the install fails,
// the machine stays in maintenance mode. Called with em.mu held, so the pull blocks other
// requests for at most the client's timeout.
func (em *Emulator) bootInstall(n *Node) {
	inst, err := em.checkInstall(context.Background(), n, n.running)
	if err != nil {
		em.log("%s: install failed: %v; the node stays in maintenance mode", n.spec.Name, err)
		n.running, n.runningBytes = nil, nil

		return
	}

	n.disk.Install = installRecordFor(n, n.running, inst)
	em.log("%s: installed %s", n.spec.Name, inst.Image)
}

// rebootsAfterInstall: the install sequence of .machine.install always ends with a reboot
// (v1alpha1_sequencer.go Install); an UnattendedInstallConfig reboots when its reboot says so,
// by default when it names an installer image (v1.14.1 unattended_install.go shouldReboot).
// Without the reboot the machine keeps running the applied config from its boot media.
func rebootsAfterInstall(cfg config.Provider) bool {
	doc := cfg.UnattendedInstallConfig()
	if doc == nil {
		return true
	}

	if reboot := doc.RebootAfterInstall(); reboot != nil {
		return *reboot
	}

	return doc.InstallerImage() != ""
}
