package machines

// Reset, as machined serves it for a configured worker: the request is validated and answered
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go, Reset), then the reset
// sequence runs (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go, Reset):
// the named system partitions are wiped (all of the system disk when none is named) and the
// machine reboots, or powers off without `reboot`. What lives on each partition here: STATE
// holds the persisted config, EPHEMERAL /var (the kubelet's memory_manager_state). The
// graceful cordon and drain is not emulated, nor the reset of control planes (leaving etcd),
// of user disks or of a machine in maintenance mode: those are refused as not emulated.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// systemVolumes are the system partitions a Talos install has (VolumeStatus resources).
var systemVolumes = []string{"EFI", "BOOT", "META", "STATE", "EPHEMERAL"}

func (em *Emulator) Reset(n *Node, in *machine.ResetRequest) error {
	em.mu.Lock()
	defer em.mu.Unlock()

	wipe, err := resetTargets(in)
	if err != nil {
		return err
	}

	switch {
	case !n.configured():
		return status.Error(codes.Unimplemented, "emulator: a reset in maintenance mode is not emulated")
	case n.isControlPlane():
		return status.Error(codes.Unimplemented, "emulator: the reset of a control plane (leaving etcd) is not emulated")
	}

	for _, label := range wipe {
		if label != "STATE" && label != "EPHEMERAL" {
			return status.Errorf(codes.Unimplemented, "emulator: wiping %s is not emulated", label)
		}
	}

	em.log("%s: reset, wiping %v", n.spec.Name, wipe)

	if slices.Contains(wipe, "EPHEMERAL") {
		n.disk.MemoryCheckpoint = nil
		n.kubeletStarted, n.kubeletLog = "", nil
	}

	if slices.Contains(wipe, "STATE") {
		n.persistedBytes = nil
	}

	if err := n.savePersisted(); err != nil {
		em.log("%s: saving state: %v", n.spec.Name, err)
	}

	if in.Reboot {
		em.rebootNode(n, "reset")

		return nil
	}

	if n.reboot != nil {
		n.reboot.Stop()
		n.reboot = nil
	}

	n.off = true
	em.log("%s: powered off (reset)", n.spec.Name)
	em.refreshServices(n)
	em.changed()

	return nil
}

// resetTargets validates a ResetRequest as machined does and returns the system partitions it
// wipes.
func resetTargets(in *machine.ResetRequest) ([]string, error) {
	if len(in.UserDisksToWipe) > 0 {
		if in.Mode == machine.ResetRequest_SYSTEM_DISK {
			return nil, errors.New("reset failed: invalid input, wipe mode SYSTEM_DISK doesn't support UserDisksToWipe parameter")
		}

		return nil, status.Error(codes.Unimplemented, "emulator: wiping user disks is not emulated")
	}

	if in.Mode == machine.ResetRequest_USER_DISKS {
		if len(in.SystemPartitionsToWipe) > 0 {
			return nil, errors.New("reset failed: invalid input, wipe mode USER_DISKS doesn't support SystemPartitionsToWipe parameter")
		}

		return nil, nil
	}

	if len(in.SystemPartitionsToWipe) == 0 {
		return systemVolumes, nil // the whole system disk
	}

	var wipe []string

	for _, spec := range in.SystemPartitionsToWipe {
		if !slices.Contains(systemVolumes, spec.Label) {
			return nil, fmt.Errorf("failed to get volume status with label %q: resource VolumeStatuses.block.talos.dev(runtime/%s@undefined) doesn't exist", spec.Label, spec.Label)
		}

		if spec.Wipe {
			wipe = append(wipe, spec.Label)
		}
	}

	return wipe, nil
}
