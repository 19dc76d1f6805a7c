package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"512Gi": 512 << 30, "1.92T": 1_920_000_000_000, "960GB": 960_000_000_000, "4096": 4096, "64Mi": 64 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}

	if _, err := parseSize("lots"); err == nil {
		t.Error("parseSize(lots) should fail")
	}
}

func testNode(t *testing.T, memory string, numa int, args ...string) *Node {
	t.Helper()

	spec := NodeSpec{Name: "n1", Address: "127.0.1.31", SchematicKernelArgs: args,
		Hardware: Hardware{NUMANodes: numa, Memory: memory, Disks: []DiskSpec{{DevPath: "/dev/vda", Size: "100Gi"}}}}
	if err := spec.normalize(); err != nil {
		t.Fatal(err)
	}

	n, err := newNode(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	return n // in maintenance mode: the schematic's kernel args are on the command line
}

func TestHugePages(t *testing.T) {
	n := testNode(t, "64Gi", 2,
		"default_hugepagesz=1G", "hugepagesz=1G", "hugepages=0:3,1:1", "hugepagesz=2M", "hugepages=101", "hugepagesz=16K", "hugepages=9")
	mem := n.memory()

	if want := uint64(64<<20 - (1<<20 + 64<<10)); mem.totalKB != want {
		t.Errorf("MemTotal = %d kB, want %d", mem.totalKB, want)
	}

	if p := mem.pool(1 << 20); p.perNode[0] != 3 || p.perNode[1] != 1 {
		t.Errorf("1G pool = %v", p.perNode)
	}

	if p := mem.pool(2048); p.perNode[0] != 51 || p.perNode[1] != 50 {
		t.Errorf("2M pool = %v", p.perNode)
	}

	meminfo := mem.procMeminfo()
	for _, line := range []string{"HugePages_Total:       4\n", "Hugepagesize:    1048576 kB\n", fmt.Sprintf("Hugetlb:        %8d kB\n", 4<<20+101*2048)} {
		if !strings.Contains(meminfo, line) {
			t.Errorf("/proc/meminfo lacks %q:\n%s", line, meminfo)
		}
	}

	node1, _ := n.readFile("/sys/devices/system/node/node1/meminfo")
	if !strings.Contains(string(node1), "Node 1 HugePages_Total:       1\n") {
		t.Errorf("node1 meminfo:\n%s", node1)
	}

	// a pool that does not fit stops 2 GiB short of MemTotal
	small := testNode(t, "8Gi", 1, "hugepagesz=1G", "hugepages=10").memory()
	if got := small.pool(1 << 20).total(); got != 5 {
		t.Errorf("8Gi machine: %d 1G pages, want 5", got)
	}
}

// TestMaintenanceAPI talks gRPC to a node in maintenance mode.
func TestMaintenanceAPI(t *testing.T) {
	n := testNode(t, "8Gi", 1)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}

	probe, err := net.Listen("tcp", "127.0.1.31:0")
	if err != nil {
		t.Skipf("no loopback alias: %v", err)
	}

	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close() //nolint:errcheck

	ep := newEndpoint(em, n, port)
	em.mu.Lock()
	err = ep.sync()
	em.mu.Unlock()

	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { stopAll([]*endpoint{ep}) })

	conn, err := grpc.NewClient(ep.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))) //nolint:gosec
	if err != nil {
		t.Fatal(err)
	}

	defer conn.Close() //nolint:errcheck

	client := machine.NewMachineServiceClient(conn)
	ctx := context.Background()

	version, err := client.Version(ctx, &emptypb.Empty{})
	if err != nil || version.Messages[0].Version.Tag != talosVersion {
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
	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithInstallDisk("/dev/vda"))
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := input.Config(machinetype.TypeControlPlane)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	reply, err := client.ApplyConfiguration(ctx, &machine.ApplyConfigurationRequest{Data: raw, Mode: machine.ApplyConfigurationRequest_REBOOT})
	if err != nil {
		t.Fatal(err)
	}

	if m := reply.Messages[0]; m.Mode != machine.ApplyConfigurationRequest_NO_REBOOT || m.ModeDetails != "Applied configuration without a reboot" {
		t.Errorf("apply reply: %v", m)
	}

	em.mu.Lock()
	defer em.mu.Unlock()

	if !n.isControlPlane() || n.disk.Install == nil {
		t.Error("node should be an installed control plane now")
	}
}

func TestUserVolumes(t *testing.T) {
	spec := NodeSpec{Name: "w1", Address: "127.0.1.33", Hardware: Hardware{BootMode: "grub", Disks: []DiskSpec{
		{DevPath: "/dev/sda", Serial: "SYS", Size: "480Gi"},
		{DevPath: "/dev/nvme0n1", Serial: "A1", WWID: "eui.0001", Model: "FAST", Size: "1.92T"},
		{DevPath: "/dev/nvme1n1", Serial: "B1", WWID: "eui.0002", Model: "FAST", Size: "3.84T"},
	}}}
	if err := spec.normalize(); err != nil {
		t.Fatal(err)
	}

	n, err := newNode(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	input, err := generate.NewInput("demo", "https://127.0.1.10:6443", "1.36.3", generate.WithInstallDisk("/dev/sda"))
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := input.Config(machinetype.TypeWorker)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := cfg.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	volume := func(name, match, extra string) string {
		return fmt.Sprintf("---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: %s\nprovisioning:\n  diskSelector:\n    match: '%s'\n  maxSize: 100GiB\n%s", name, match, extra)
	}

	raw = append(raw, volume("a", `disk.wwid == "eui.0001"`, "")+
		volume("b", `disk.model == "FAST" && disk.size > 3u * TB`, "filesystem:\n  type: ext4\n")+
		volume("c", `disk.dev_path == "/dev/nvme0n1"`, "")+
		volume("d", `disk.serial == "SYS"`, "")+ // the system disk: never used
		"---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: e\nvolumeType: directory\n"...)

	loaded, err := configloader.NewFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}

	if _, err = loaded.Validate(metalMode{}); err != nil {
		t.Fatal(err)
	}

	em := &Emulator{nodes: []*Node{n}, log: t.Logf}
	em.mu.Lock()
	em.setRunning(n, loaded, raw)
	em.mu.Unlock()

	mounts, err := n.readFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{
		"/dev/sda6 /var xfs ",
		"/dev/nvme0n1p1 /var/mnt/a xfs rw,nosuid,nodev,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0\n",
		"/dev/nvme1n1p1 /var/mnt/b ext4 rw,nosuid,nodev,relatime 0 0\n",
		"/dev/nvme0n1p2 /var/mnt/c xfs ",
		"/dev/sda6 /var/mnt/e xfs ",
	} {
		if !strings.Contains(string(mounts), want) {
			t.Errorf("/proc/mounts lacks %q:\n%s", want, mounts)
		}
	}

	if strings.Contains(string(mounts), "/var/mnt/d") {
		t.Errorf("volume d must not land on the system disk:\n%s", mounts)
	}
}
