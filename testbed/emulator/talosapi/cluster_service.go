package talosapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"solanaops.testbed/emulator/machines"
)

// The real control planes' API: etcd members, status and snapshot (answered by the node's
// real etcd), the admin kubeconfig, Shutdown, and ClusterService/HealthCheck.

func parseID(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)

	return v
}

func (s *machineServer) EtcdMemberList(ctx context.Context, _ *machine.EtcdMemberListRequest) (*machine.EtcdMemberListResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.EtcdMemberListResponse, error) {
		if err := s.em.CheckControlPlane(n, "member list"); err != nil {
			return nil, err
		}

		endpoint, client, err := s.em.EtcdClient(n)
		if err != nil {
			return nil, err
		}

		members, err := machines.EtcdMembers(client, endpoint, true)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}

		reply := &machine.EtcdMembers{}
		for _, m := range members {
			reply.Members = append(reply.Members, &machine.EtcdMember{
				Id: parseID(m.ID), Hostname: m.Name, PeerUrls: m.PeerURLs, ClientUrls: m.ClientURLs, IsLearner: m.IsLearner,
			})
		}

		return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{reply}}, nil
	})
}

func (s *machineServer) EtcdStatus(ctx context.Context, _ *emptypb.Empty) (*machine.EtcdStatusResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.EtcdStatusResponse, error) {
		if err := s.em.CheckControlPlane(n, "etcd status"); err != nil {
			return nil, err
		}

		endpoint, client, err := s.em.EtcdClient(n)
		if err != nil {
			return nil, err
		}

		st, err := machines.EtcdMemberStatus(client, endpoint)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}

		size, inUse := parseID(st.DBSize), parseID(st.DBSizeInUse)

		return &machine.EtcdStatusResponse{Messages: []*machine.EtcdStatus{{MemberStatus: &machine.EtcdMemberStatus{
			MemberId: parseID(st.Header.MemberID), ProtocolVersion: st.Version, StorageVersion: st.StorageVersion,
			DbSize: int64(size), DbSizeInUse: int64(inUse), Leader: parseID(st.Leader), //nolint:gosec
			RaftIndex: parseID(st.RaftIndex), RaftTerm: parseID(st.RaftTerm), RaftAppliedIndex: parseID(st.RaftAppliedIndex),
			Errors: st.Errors, IsLearner: st.IsLearner,
		}}}}, nil
	})
}

// EtcdForfeitLeadership hands this member's leadership to another member, as machined does
// (v1alpha1_server.go EtcdForfeitLeadership, internal/pkg/etcd/etcd.go ForfeitLeadership): a
// member that does not lead answers an empty member; otherwise etcd's MoveLeader to the first
// other member of the list, whose name is the answer; a single member is refused.
func (s *machineServer) EtcdForfeitLeadership(ctx context.Context, _ *machine.EtcdForfeitLeadershipRequest) (*machine.EtcdForfeitLeadershipResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.EtcdForfeitLeadershipResponse, error) {
		if err := s.em.CheckControlPlane(n, "etcd forfeit leadership"); err != nil {
			return nil, err
		}

		endpoint, client, err := s.em.EtcdClient(n)
		if err != nil {
			return nil, err
		}

		leader, err := forfeitLeadership(client, endpoint)
		if err != nil {
			return nil, fmt.Errorf("failed to forfeit leadership: %w", err)
		}

		return &machine.EtcdForfeitLeadershipResponse{Messages: []*machine.EtcdForfeitLeadership{{Member: leader}}}, nil
	})
}

func forfeitLeadership(client *http.Client, endpoint string) (string, error) {
	members, err := machines.EtcdMembers(client, endpoint, true)
	if err != nil {
		return "", fmt.Errorf("failed to list etcd members: %w", err)
	}

	if len(members) == 1 {
		return "", errors.New("cannot forfeit leadership, only one member")
	}

	st, err := machines.EtcdMemberStatus(client, endpoint)
	if err != nil {
		return "", err
	}

	if st.Leader != st.Header.MemberID {
		return "", nil
	}

	// more than one member: one of them is another
	other := members[0]
	if other.ID == st.Header.MemberID {
		other = members[1]
	}

	if err := machines.EtcdCall(client, endpoint, "/v3/maintenance/transfer-leadership", map[string]any{"targetID": other.ID}, &struct{}{}); err != nil {
		return "", err
	}

	return other.Name, nil
}

// EtcdSnapshot streams the member's database, read through etcd's snapshot API (the
// gateway's newline-delimited JSON stream of base64 blobs): the same bytes as clientv3's
// Maintenance.Snapshot, which machined streams (v1alpha1_server.go EtcdSnapshot); workers
// refuse as there (CheckControlplane).
func (s *machineServer) EtcdSnapshot(_ *machine.EtcdSnapshotRequest, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *machines.Node, send func(*common.Data) error) error {
		if err := s.em.CheckControlPlane(n, "etcd snapshot"); err != nil {
			return err
		}

		endpoint, client, err := s.em.EtcdClient(n)
		if err != nil {
			return err
		}

		long := *client
		long.Timeout = 5 * time.Minute

		resp, err := long.Post(endpoint+"/v3/maintenance/snapshot", "application/json", strings.NewReader("{}"))
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		defer resp.Body.Close() //nolint:errcheck

		decoder := json.NewDecoder(resp.Body)

		for {
			var chunk struct {
				Result struct {
					Blob []byte `json:"blob"`
				} `json:"result"`
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}

			if err := decoder.Decode(&chunk); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}

				return err
			}

			if chunk.Error != nil {
				return status.Error(codes.Unavailable, chunk.Error.Message)
			}

			if len(chunk.Result.Blob) > 0 {
				if err := send(&common.Data{Bytes: chunk.Result.Blob}); err != nil {
					return err
				}
			}
		}
	})
}

// Kubeconfig streams a tar.gz holding "kubeconfig" (machines.AdminKubeconfig).
func (s *machineServer) Kubeconfig(_ *emptypb.Empty, stream grpc.ServerStreamingServer[common.Data]) error {
	return s.dispatchStream(stream.Context(), stream.Send, func(n *machines.Node, send func(*common.Data) error) error {
		content, err := s.em.AdminKubeconfig(n)
		if err != nil {
			return err
		}

		var archive bytes.Buffer

		gz := gzip.NewWriter(&archive)
		tw := tar.NewWriter(gz)

		if err := tw.WriteHeader(&tar.Header{Name: "kubeconfig", Mode: 0o600, Size: int64(len(content)), ModTime: time.Now()}); err != nil {
			return err
		}

		if _, err := tw.Write(content); err != nil {
			return err
		}

		if err := tw.Close(); err != nil {
			return err
		}

		if err := gz.Close(); err != nil {
			return err
		}

		return send(&common.Data{Bytes: archive.Bytes()})
	})
}

// Shutdown answers at once and the node powers off afterwards, as on Talos (machines.Shutdown):
// a caller that needs the node down must watch for it (its API refusing connections, its etcd
// member not answering).
func (s *machineServer) Shutdown(ctx context.Context, _ *machine.ShutdownRequest) (*machine.ShutdownResponse, error) {
	return dispatch(ctx, s, func(_ context.Context, n *machines.Node) (*machine.ShutdownResponse, error) {
		s.em.Shutdown(n)

		return &machine.ShutdownResponse{Messages: []*machine.Shutdown{{ActorId: "emulator"}}}, nil
	})
}

type clusterServer struct {
	cluster.UnimplementedClusterServiceServer

	em *machines.Emulator
}

// HealthCheck runs the checks in order, each until it passes or the wait times out, reporting
// progress as Talos does ("waiting for <check>: ..." then "... OK", or "... SKIP" for a check
// that does not apply). Implemented: etcd health,
// member consistency and membership, apid, kubelet, boot sequence, Nodes reported, control
// plane components and Nodes ready. Not emulated: memory/disk sizes, diagnostics, kube-proxy and
// CoreDNS readiness (the testbed runs no workloads), schedulability.
func (c *clusterServer) HealthCheck(in *cluster.HealthCheckRequest, stream grpc.ServerStreamingServer[cluster.HealthCheckProgress]) error {
	timeout := 20 * time.Minute
	if in.WaitTimeout != nil {
		timeout = in.WaitTimeout.AsDuration()
	}

	ctx, cancel := context.WithTimeout(stream.Context(), timeout)
	defer cancel()

	info := in.ClusterInfo
	if info == nil || len(info.ControlPlaneNodes) == 0 {
		return status.Error(codes.InvalidArgument, "the emulator's health check needs --control-plane-nodes (and --worker-nodes)")
	}

	for _, check := range c.em.HealthChecks() {
		last := ""

		for {
			err := check.Run(info)
			if err == nil || errors.Is(err, machines.ErrSkipCheck) {
				outcome := "OK"
				if err != nil {
					outcome = err.Error() // SKIP: the check does not apply
				}

				if sendErr := stream.Send(&cluster.HealthCheckProgress{Message: fmt.Sprintf("waiting for %s: %s", check.Name, outcome)}); sendErr != nil {
					return sendErr
				}

				break
			}

			if err.Error() != last {
				last = err.Error()
				if sendErr := stream.Send(&cluster.HealthCheckProgress{Message: fmt.Sprintf("waiting for %s: %s", check.Name, last)}); sendErr != nil {
					return sendErr
				}
			}

			select {
			case <-ctx.Done():
				return status.Errorf(codes.DeadlineExceeded, "%s: %s", check.Name, last)
			case <-time.After(time.Second):
			}
		}
	}

	return nil
}
