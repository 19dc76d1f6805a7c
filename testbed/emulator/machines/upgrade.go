package machines

// Upgrades as Talos v1.13 runs them through its new API: ImageService.Pull puts the installer
// into the node's containerd store, LifecycleService.Upgrade runs it (preflight, then the new
// A/B boot entry, no reboot), MachineService.Reboot boots it, or falls back to the previous
// entry when the testbed's fault switch says so. README.md "Upgrades" documents the rules.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"solanaops.testbed/emulator/image"
)

// TalosVersion is the release the node reports (MachineService.Version Tag): that of the
// installer it booted, or in maintenance mode that of the boot media (NODES.yaml talos_version).
func (em *Emulator) TalosVersion(n *Node) string {
	em.mu.Lock()
	defer em.mu.Unlock()

	return n.talosVersion()
}

func (n *Node) talosVersion() string {
	if n.configured() && n.disk.Install != nil {
		return n.disk.Install.TalosVersion
	}

	return n.spec.Hardware.TalosVersion
}

// Down reports whether the machine is off or rebooting: its open connections are gone too.
func (em *Emulator) Down(n *Node) bool {
	em.mu.Lock()
	defer em.mu.Unlock()

	return n.off
}

// CheckControlPlane refuses an API that only control planes serve, with machined's answer.
func (em *Emulator) CheckControlPlane(n *Node, api string) error {
	em.mu.Lock()
	defer em.mu.Unlock()

	return n.controlPlaneOnly(api)
}

// controlPlaneOnly is machined's refusal of an API only control planes serve
// (internal/app/internal/machinehelper/machinehelper.go CheckControlplane). Called with em.mu held.
func (n *Node) controlPlaneOnly(api string) error {
	if !n.isControlPlane() {
		return status.Errorf(codes.Unimplemented, "%s is only available on control plane nodes", api)
	}

	return nil
}

// PullImage pulls ref into the node's containerd store and returns the name containerd
// reports, pinned to the digest (internal/app/images/images.go Pull). A reference the factory
// does not know is NotFound "error pulling image: ...", as there; other failures keep their
// text.
func (em *Emulator) PullImage(ctx context.Context, n *Node, ref string) (string, error) {
	inst, err := em.pull(ctx, ref)
	if err != nil {
		if notFound := (*image.NotFoundError)(nil); errors.As(err, &notFound) {
			return "", status.Errorf(codes.NotFound, "error pulling image: %s", err)
		}

		return "", status.Error(codes.Unknown, err.Error())
	}

	pinned, err := inst.PinnedName()
	if err != nil {
		return "", err
	}

	em.mu.Lock()
	defer em.mu.Unlock()

	if n.images == nil {
		n.images = map[string]image.Installer{}
	}

	n.images[ref], n.images[pinned] = inst, inst

	return pinned, nil
}

// Upgrade runs the installer image imageName from the node's containerd store in upgrade mode,
// as LifecycleService.Upgrade does (internal/app/lifecycle/lifecycle.go Upgrade, container.go
// runInstallerContainer): refusals as gRPC errors; the installer's own failure (its preflight,
// cmd/installer/pkg/install/preflight.go) as its output and a non-zero exit code. On success
// the new boot entry is the default of the next boot and the running one its fallback; the
// machine does not reboot. progress receives the installer's output lines.
func (em *Emulator) Upgrade(n *Node, imageName string, progress func(string) error) (int32, error) {
	em.mu.Lock()

	if n.upgrading {
		em.mu.Unlock()

		return 0, status.Error(codes.FailedPrecondition, "another installation/upgrade is already in progress")
	}

	if !n.configured() || n.disk.Install == nil {
		em.mu.Unlock()

		return 0, status.Error(codes.FailedPrecondition, "machine is not installed")
	}

	if imageName == "" {
		em.mu.Unlock()

		return 0, status.Error(codes.InvalidArgument, "installer image name is required")
	}

	inst, found := n.images[imageName]
	if !found {
		em.mu.Unlock()

		return 0, status.Errorf(codes.Internal, "upgrade failed: installer image %q not found in containerd store: image %q: not found", imageName, imageName)
	}

	n.upgrading = true
	host, cfg, boot := n.disk.Install.TalosVersion, n.running, n.bootID
	em.mu.Unlock()

	defer func() {
		em.mu.Lock()
		n.upgrading = false
		em.mu.Unlock()
	}()

	em.log("%s: starting upgrade: installer_image=%s", n.spec.Name, imageName)

	// the installer logs with Go's default log flags (cmd/installer)
	say := func(format string, args ...any) error {
		return progress(time.Now().Format("2006/01/02 15:04:05 ") + fmt.Sprintf(format, args...) + "\n")
	}

	for _, line := range []string{"running Talos installer " + inst.TalosVersion, "running pre-flight checks", "host Talos version: " + host} {
		if err := say("%s", line); err != nil {
			return 0, err
		}
	}

	if err := upgradeableFrom(inst.TalosVersion, host); err != nil {
		// the installer exits 1 printing its error (cmd/installer/cmd/installer/root.go Execute)
		if sendErr := progress(fmt.Sprintf("pre-flight checks failed: %v\n", err)); sendErr != nil {
			return 0, sendErr
		}

		em.log("%s: upgrade failed: exit_code=1", n.spec.Name)

		return 1, nil
	}

	if err := say("all pre-flight checks successful"); err != nil {
		return 0, err
	}

	em.mu.Lock()
	// the installer runs as a container of this boot: a reboot or reset under way ends it
	// before it writes anything
	if n.off || n.bootID != boot || !n.configured() {
		em.mu.Unlock()

		return 0, status.Error(codes.Unavailable, "the machine rebooted during the upgrade: nothing was installed")
	}

	n.disk.PendingInstall = installRecordFor(n, cfg, inst)

	if err := n.savePersisted(); err != nil {
		em.log("%s: saving state: %v", n.spec.Name, err)
	}
	em.mu.Unlock()

	em.log("%s: upgrade completed successfully: next boot: %s", n.spec.Name, inst.Image)

	return 0, say("installation of %s complete", inst.TalosVersion)
}

// upgradeableFrom is the installer's preflight check: the installer's release must accept the
// host's (machinery's compatibility.TalosVersion.UpgradeableFrom).
func upgradeableFrom(installer, host string) error {
	target, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: installer})
	if err != nil {
		return fmt.Errorf("error parsing installer Talos version: %w", err)
	}

	current, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: host})
	if err != nil {
		return fmt.Errorf("error parsing host Talos version: %w", err)
	}

	return target.UpgradeableFrom(current)
}

// Reboot starts machined's reboot sequence and returns its actor ID at once
// (v1alpha1_server.go Reboot runs SequenceReboot in a goroutine after replying): the sequence's
// SequenceEvent and the REBOOTING status are published with it, then the machine goes down
// for the reboot delay. Every mode (default, powercycle, force) reboots the same way here.
func (em *Emulator) Reboot(n *Node) string {
	actorID := uuid.NewString()

	em.mu.Lock()
	defer em.mu.Unlock()

	em.log("%s: reboot via API received. actor id: %s", n.spec.Name, actorID)
	n.publish(actorID, &machine.SequenceEvent{Sequence: "reboot", Action: machine.SequenceEvent_START})
	n.publish("", &machine.MachineStatusEvent{Stage: machine.MachineStatusEvent_REBOOTING, Status: &machine.MachineStatusEvent_MachineStatus{}})
	em.rebootNode(n, "reboot requested")

	return actorID
}

// bootEntry picks the boot entry the boot loader starts: a pending upgrade's becomes the
// booted one, unless the fault switch makes it fail, in which case machined reverts the boot
// loader to the previous entry (internal/app/machined/main.go handle/revertBootloader: "reverting
// failed upgrade, switching to ...") and the machine comes back on its old version and
// schematic, healthy. The switch is used up. Called with em.mu held.
func (em *Emulator) bootEntry(n *Node) {
	pending := n.disk.PendingInstall
	if pending == nil || !n.configured() {
		n.disk.PendingInstall = nil // a reset wiped the boot entries with the disk

		return
	}

	n.disk.PendingInstall = nil

	if n.bootFallback {
		n.bootFallback = false
		em.log("%s: the new boot entry (%s) failed: reverting failed upgrade, switching to %s", n.spec.Name, pending.Image, n.disk.Install.Image)
	} else {
		n.disk.Install = pending
		em.log("%s: booting the upgraded entry %s", n.spec.Name, pending.Image)
	}

	if err := n.savePersisted(); err != nil {
		em.log("%s: saving state: %v", n.spec.Name, err)
	}
}

// rebootTime is how long the node's next reboot keeps it down: a boot into a failing entry
// takes two (the failed boot, then the reboot into the previous entry).
func (em *Emulator) rebootTime(n *Node) time.Duration {
	if n.disk.PendingInstall != nil && n.bootFallback {
		return 2 * em.RebootDelay
	}

	return em.RebootDelay
}

// SetBootFallback sets the testbed's fault switch: the next boot into a pending upgrade fails
// and the machine falls back to its previous entry.
func (em *Emulator) SetBootFallback(n *Node, on bool) {
	em.mu.Lock()
	defer em.mu.Unlock()

	n.bootFallback = on
}
