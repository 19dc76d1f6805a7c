package talosapi

import (
	"context"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"

	"solanaops.testbed/emulator/machines"
)

// The upgrade API talosctl v1.13 uses (`talosctl upgrade`, cmd/talosctl/cmd/talos/upgrade.go
// upgradeViaLifecycleService): ImageService.Pull, LifecycleService.Upgrade, then
// MachineService.Reboot tracked through MachineService.Events and the boot ID. The rules are
// machines/upgrade.go's and machines/events.go's.

type imageServer struct {
	machine.UnimplementedImageServiceServer

	machine *machineServer
}

// Pull streams the final name of the pulled image (internal/app/images/images.go Pull); the
// layer progress messages are not emulated (talosctl shows them on a terminal only).
func (i *imageServer) Pull(in *machine.ImageServicePullRequest, stream grpc.ServerStreamingServer[machine.ImageServicePullResponse]) error {
	n, err := i.machine.oneTarget(stream.Context(), "/machine.ImageService/Pull")
	if err != nil {
		return err
	}

	name, err := i.machine.em.PullImage(stream.Context(), n, in.ImageRef)
	if err != nil {
		return err
	}

	return stream.Send(&machine.ImageServicePullResponse{Response: &machine.ImageServicePullResponse_Name{Name: name}})
}

type lifecycleServer struct {
	machine.UnimplementedLifecycleServiceServer

	machine *machineServer
}

// Upgrade streams the installer's output as messages, then its exit code (never a gRPC error
// for a failing installer: lifecycle.proto).
func (l *lifecycleServer) Upgrade(in *machine.LifecycleServiceUpgradeRequest, stream grpc.ServerStreamingServer[machine.LifecycleServiceUpgradeResponse]) error {
	n, err := l.machine.oneTarget(stream.Context(), "/machine.LifecycleService/Upgrade")
	if err != nil {
		return err
	}

	progress := func(p *machine.LifecycleServiceInstallProgress) error {
		return stream.Send(&machine.LifecycleServiceUpgradeResponse{Progress: p})
	}

	code, err := l.machine.em.Upgrade(n, in.GetSource().GetImageName(), func(line string) error {
		return progress(&machine.LifecycleServiceInstallProgress{Response: &machine.LifecycleServiceInstallProgress_Message{Message: line}})
	})
	if err != nil {
		return err
	}

	return progress(&machine.LifecycleServiceInstallProgress{Response: &machine.LifecycleServiceInstallProgress_ExitCode{ExitCode: code}})
}

// Reboot answers with the sequence's actor ID at once; the machine goes down afterwards.
func (s *machineServer) Reboot(ctx context.Context, _ *machine.RebootRequest) (*machine.RebootResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.RebootResponse, error) {
		return &machine.RebootResponse{Messages: []*machine.Reboot{{ActorId: s.em.Reboot(n)}}}, nil
	})
}

func (s *machineServer) Events(in *machine.EventsRequest, stream grpc.ServerStreamingServer[machine.Event]) error {
	n, err := s.oneTarget(stream.Context(), "/machine.MachineService/Events")
	if err != nil {
		return err
	}

	return s.em.WatchEvents(stream.Context(), n, in, stream.Send)
}
