package talosapi

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/machines"
	"solanaops.testbed/emulator/release"
)

// emulator builds the machines of specs (fresh state).
func emulator(t *testing.T, specs ...machines.NodeSpec) *machines.Emulator {
	t.Helper()

	path := t.TempDir() + "/nodes.yaml"

	var doc strings.Builder
	for _, s := range specs {
		doc.WriteString("- name: " + s.Name + "\n  address: " + s.Address + "\n  hardware:\n")
		hw := s.Hardware
		doc.WriteString("    cpus: " + strconv.Itoa(max(hw.CPUs, 1)) + "\n    numa_nodes: " + strconv.Itoa(max(hw.NUMANodes, 1)) + "\n")
		if hw.Memory != "" {
			doc.WriteString("    memory: " + hw.Memory + "\n")
		}
		if hw.BootMode != "" {
			doc.WriteString("    boot_mode: " + hw.BootMode + "\n")
		}
		doc.WriteString("    disks:\n")
		for _, d := range hw.Disks {
			doc.WriteString("    - {dev_path: " + d.DevPath + ", size: " + d.Size + "}\n")
		}
	}

	testutil.WriteFile(t, path, doc.String())

	loaded, err := machines.LoadNodeSpecs(path)
	if err != nil {
		t.Fatal(err)
	}

	em, err := machines.New(loaded, t.TempDir(), machines.Tools{}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	return em
}

// serve opens every node's API on a free port; it returns n's address.
func serve(t *testing.T, em *machines.Emulator, n *machines.Node) string {
	t.Helper()

	probe, err := net.Listen("tcp", n.Address()+":0")
	if err != nil {
		t.Fatalf("listening on %s: %v", n.Address(), err)
	}

	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close() //nolint:errcheck

	if err := em.Serve(port, func(n *machines.Node) *grpc.Server { return NewServer(em, n) }); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(em.StopServing)

	return em.Addr(n)
}

// apply applies raw to n with the admin role.
func apply(t *testing.T, em *machines.Emulator, n *machines.Node, raw []byte) []string {
	t.Helper()

	reply, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: raw, Mode: machine.ApplyConfigurationRequest_AUTO}, true)
	if err != nil {
		t.Fatal(err)
	}

	// an install ends with a reboot: wait until the machine is back
	for deadline := time.Now().Add(5 * time.Second); em.Down(n); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node did not come back from its reboot")
		}
	}

	return reply.Messages[0].Warnings
}

// TestMaintenanceAPI talks gRPC to a node in maintenance mode.
func TestMaintenanceAPI(t *testing.T) {
	em := emulator(t, machines.NodeSpec{Name: "n1", Address: "127.0.1.31",
		Hardware: kernel.Hardware{Memory: "8Gi", Disks: []kernel.Disk{{DevPath: "/dev/vda", Size: "100Gi"}}}})
	n := em.Node("n1")
	addr := serve(t, em, n)

	if got, _ := em.ReadFile(n, "/proc/cmdline"); string(got) != strings.Join(kernel.BootMediaCmdline(release.Latest()), " ")+"\n" {
		t.Errorf("maintenance mode boots the stock boot media: %q", got)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))) //nolint:gosec
	if err != nil {
		t.Fatal(err)
	}

	defer conn.Close() //nolint:errcheck

	client := machine.NewMachineServiceClient(conn)
	ctx := context.Background()

	version, err := client.Version(ctx, &emptypb.Empty{})
	if err != nil || version.Messages[0].Version.Tag != release.Latest() {
		t.Fatalf("Version: %v %v", version, err)
	}

	expectCode := func(what string, err error, code codes.Code, text string) {
		t.Helper()

		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
			t.Errorf("%s: got %v, want %s %q", what, err, code, text)
		}
	}

	stream, err := client.Read(ctx, &machine.ReadRequest{Path: "/proc/meminfo"})
	if err == nil {
		_, err = stream.Recv()
	}

	expectCode("Read", err, codes.PermissionDenied, "not authorized")

	_, err = client.EtcdMemberList(ctx, &machine.EtcdMemberListRequest{})
	expectCode("EtcdMemberList", err, codes.Unimplemented, "API is not implemented in maintenance mode")

	_, err = client.Version(metadata.AppendToOutgoingContext(ctx, "nodes", "127.0.1.32"), &emptypb.Empty{})
	expectCode("forwarding", err, codes.PermissionDenied, "no request forwarding")

	_, err = client.ApplyConfiguration(ctx, &machine.ApplyConfigurationRequest{Data: []byte("machine: [")})
	expectCode("garbage config", err, codes.InvalidArgument, "")

	// a valid config in --mode=reboot: maintenance mode maps it to no-reboot
	raw := testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, "")

	reply, err := client.ApplyConfiguration(ctx, &machine.ApplyConfigurationRequest{Data: raw, Mode: machine.ApplyConfigurationRequest_REBOOT})
	if err != nil {
		t.Fatal(err)
	}

	if m := reply.Messages[0]; m.Mode != machine.ApplyConfigurationRequest_NO_REBOOT || m.ModeDetails != "Applied configuration without a reboot" {
		t.Errorf("apply reply: %v", m)
	}

	if inst, _, ok := em.Installed(n); em.Maintenance(n) || !ok || inst.Image != testutil.StockImage {
		t.Error("node should be installed from the stock installer now")
	}
}

// TestRebootsKeepTheAPIDown: the install after the first config and an apply that needs a
// reboot take the machine down for the reboot delay (connections refused), then it boots
// configured, with mutual TLS; the apply's reply still reaches the caller.
func TestRebootsKeepTheAPIDown(t *testing.T) {
	em := emulator(t, machines.NodeSpec{Name: "n1", Address: "127.0.1.36",
		Hardware: kernel.Hardware{Memory: "8Gi", Disks: []kernel.Disk{{DevPath: "/dev/vda", Size: "100Gi"}}}})
	em.RebootDelay = 2 * time.Second
	n := em.Node("n1")
	addr := serve(t, em, n)

	insecureVersion := func() error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(testutil.InsecureTLS())))
		if err != nil {
			t.Fatal(err)
		}

		defer conn.Close() //nolint:errcheck

		_, err = machine.NewMachineServiceClient(conn).Version(context.Background(), &emptypb.Empty{})

		return err
	}

	// the state the API is in, polled every 100ms until it changes from `from`
	down := func(err error) bool { return err != nil && strings.Contains(err.Error(), "connection refused") }
	waitFor := func(what string, cond func(error) bool) time.Time {
		t.Helper()

		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if cond(insecureVersion()) {
				return time.Now()
			}

			time.Sleep(100 * time.Millisecond)
		}

		t.Fatalf("the API never became %s", what)

		return time.Time{}
	}

	raw := testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, "")
	if err := insecureVersion(); err != nil {
		t.Fatalf("maintenance mode answers without client certificates: %v", err)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(testutil.InsecureTLS())))
	if err != nil {
		t.Fatal(err)
	}

	defer conn.Close() //nolint:errcheck

	if _, err = machine.NewMachineServiceClient(conn).ApplyConfiguration(context.Background(), &machine.ApplyConfigurationRequest{Data: raw}); err != nil {
		t.Fatalf("the apply's reply must arrive before the reboot: %v", err)
	}

	wentDown := waitFor("unreachable after the install", down)
	// back up: a configured node asks for a client certificate, so the insecure call now fails
	// in the TLS handshake rather than being refused
	cameBack := waitFor("configured after the reboot", func(err error) bool { return err != nil && !down(err) })

	if took := cameBack.Sub(wentDown); took < 1500*time.Millisecond {
		t.Errorf("the install reboot took %s, want about the reboot delay (2s)", took)
	}

	if em.Maintenance(n) {
		t.Error("the node booted back into maintenance mode")
	}

	// a change machined cannot apply immediately (machine.env), in auto mode: a reboot
	changed := strings.Replace(string(raw), "machine:\n", "machine:\n    env:\n        TZ: UTC\n", 1)

	reply, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: []byte(changed)}, true)
	if err != nil {
		t.Fatal(err)
	}

	if got := reply.Messages[0].Mode; got != machine.ApplyConfigurationRequest_REBOOT {
		t.Fatalf("a machine.env change applies with %s, want a reboot", got)
	}

	waitFor("unreachable during the reboot", down)
	waitFor("back after the reboot", func(err error) bool { return err != nil && !down(err) })
}
