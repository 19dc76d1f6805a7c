package talosapi

import (
	"context"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"github.com/siderolabs/talos/pkg/machinery/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"solanaops.testbed/emulator/machines"
)

// MachineService: Version, ApplyConfiguration, Bootstrap, Reset, Read and the services.

func (s *machineServer) Version(ctx context.Context, _ *emptypb.Empty) (*machine.VersionResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.VersionResponse, error) {
		info := version.NewVersion()
		info.Tag = s.em.TalosVersion(n) // the release of the installer the machine booted

		reply := &machine.Version{
			Version:  info,
			Platform: &machine.PlatformInfo{Name: constants.PlatformMetal, Mode: constants.PlatformMetal},
		}

		if !s.em.Maintenance(n) {
			reply.Features = &machine.FeaturesInfo{Rbac: true}
		}

		return &machine.VersionResponse{Messages: []*machine.Version{reply}}, nil
	})
}

// ImagePull is the legacy pull talosctl upgrade-k8s pre-pulls with (machines.Emulator.ImagePull).
func (s *machineServer) ImagePull(ctx context.Context, in *machine.ImagePullRequest) (*machine.ImagePullResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ImagePullResponse, error) {
		if err := s.em.ImagePull(n, in.Reference); err != nil {
			return nil, err
		}

		return &machine.ImagePullResponse{Messages: []*machine.ImagePull{{}}}, nil
	})
}

func (s *machineServer) ApplyConfiguration(ctx context.Context, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	return dispatch(ctx, s, func(ctx context.Context, n *machines.Node) (*machine.ApplyConfigurationResponse, error) {
		return s.em.ApplyConfiguration(ctx, n, in, rolesFrom(ctx).Includes(role.Admin))
	})
}

func (s *machineServer) Bootstrap(ctx context.Context, in *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.BootstrapResponse, error) {
		return s.em.Bootstrap(n, in)
	})
}

// Reset answers at once; the wipe and reboot follow (machines/reset.go).
func (s *machineServer) Reset(ctx context.Context, in *machine.ResetRequest) (*machine.ResetResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ResetResponse, error) {
		if err := s.em.Reset(n, in); err != nil {
			return nil, err
		}

		return &machine.ResetResponse{Messages: []*machine.Reset{{ActorId: "emulator"}}}, nil
	})
}

func (s *machineServer) Read(in *machine.ReadRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *machines.Node, send func(*common.Data) error) error {
		content, err := s.em.ReadFile(n, in.Path)

		if err != nil {
			return err
		}

		const chunk = 4096
		for len(content) > 0 {
			size := min(chunk, len(content))
			if err := send(&common.Data{Bytes: content[:size]}); err != nil {
				return err
			}

			content = content[size:]
		}

		return nil
	})
}

// Logs serves `talosctl logs kubelet`: the emulated kubelet's start and exit lines. Other
// services' logs are not emulated.
func (s *machineServer) Logs(in *machine.LogsRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *machines.Node, send func(*common.Data) error) error {
		if in.Id != "kubelet" {
			return status.Errorf(codes.Unimplemented, "logs of %q are not emulated", in.Id)
		}

		for _, line := range s.em.KubeletLog(n) {
			if err := send(&common.Data{Bytes: []byte(line + "\n")}); err != nil {
				return err
			}
		}

		return nil
	})
}

func (s *machineServer) ServiceList(ctx context.Context, _ *emptypb.Empty) (*machine.ServiceListResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ServiceListResponse, error) {
		list := &machine.ServiceList{Services: s.em.ServiceList(n)}

		return &machine.ServiceListResponse{Messages: []*machine.ServiceList{list}}, nil
	})
}

func (s *machineServer) ServiceStart(ctx context.Context, in *machine.ServiceStartRequest) (*machine.ServiceStartResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ServiceStartResponse, error) {
		if err := s.em.ServiceAction(n, in.Id, "start"); err != nil {
			return nil, err
		}

		return &machine.ServiceStartResponse{Messages: []*machine.ServiceStart{{Resp: fmt.Sprintf("Service %q started", in.Id)}}}, nil
	})
}

func (s *machineServer) ServiceStop(ctx context.Context, in *machine.ServiceStopRequest) (*machine.ServiceStopResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ServiceStopResponse, error) {
		if err := s.em.ServiceAction(n, in.Id, "stop"); err != nil {
			return nil, err
		}

		return &machine.ServiceStopResponse{Messages: []*machine.ServiceStop{{Resp: fmt.Sprintf("Service %q stopped", in.Id)}}}, nil
	})
}

func (s *machineServer) ServiceRestart(ctx context.Context, in *machine.ServiceRestartRequest) (*machine.ServiceRestartResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ServiceRestartResponse, error) {
		if err := s.em.ServiceAction(n, in.Id, "restart"); err != nil {
			return nil, err
		}

		return &machine.ServiceRestartResponse{Messages: []*machine.ServiceRestart{{Resp: fmt.Sprintf("Service %q restarted", in.Id)}}}, nil
	})
}
