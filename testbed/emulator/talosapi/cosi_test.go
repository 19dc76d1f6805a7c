package talosapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cosi-project/runtime/pkg/resource"
	"github.com/cosi-project/runtime/pkg/safe"
	"github.com/cosi-project/runtime/pkg/state"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	runtimeres "github.com/siderolabs/talos/pkg/machinery/resources/runtime"
	"github.com/siderolabs/talos/pkg/machinery/resources/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/machines"
)

// TestCOSI reads the COSI resources through machinery's client, the one talosctl uses.
func TestCOSI(t *testing.T) {
	host := testutil.Factory(t)
	tuned := host + "/metal-installer/" + testutil.TunedID + ":" + testutil.V113

	disks := []kernel.Disk{{DevPath: "/dev/vda", Size: "100Gi"}}
	em := emulator(t,
		machines.NodeSpec{Name: "c1", Address: "127.0.1.47", Hardware: kernel.Hardware{Memory: "64Gi", BootMode: kernel.BootUKI, Disks: disks}},
		machines.NodeSpec{Name: "c2", Address: "127.0.1.48", Hardware: kernel.Hardware{Memory: "64Gi", BootMode: kernel.BootGRUB, Disks: disks}},
		machines.NodeSpec{Name: "c3", Address: "127.0.1.49", Hardware: kernel.Hardware{Memory: "64Gi", BootMode: kernel.BootUKI, Disks: disks}},
	)
	cp, fresh := em.Node("c1"), em.Node("c3")
	worker := em.Node("c2")
	input := testutil.NewInput(t)

	apply(t, em, cp, testutil.GenConfig(t, input, machinetype.TypeControlPlane, "/dev/vda", tuned, ""))
	apply(t, em, worker, testutil.GenConfig(t, input, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, ""))

	cpAddr := serve(t, em, cp)
	maintenanceAddr := em.Addr(fresh)

	talosconfig, err := input.Talosconfig()
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()

	c, err := client.New(ctx, client.WithConfig(talosconfig), client.WithEndpoints(cpAddr))
	if err != nil {
		t.Fatal(err)
	}

	defer c.Close() //nolint:errcheck

	onCP := client.WithNode(ctx, "127.0.1.47")

	// talosctl resolves "extensions" through the ResourceDefinitions
	ns := resource.Namespace("")

	rd, err := c.ResolveResourceKind(onCP, &ns, "extensions")
	if err != nil || rd.TypedSpec().Type != runtimeres.ExtensionStatusType || ns != runtimeres.NamespaceName {
		t.Fatalf("resolving extensions: %v %v", rd, err)
	}

	exts, err := safe.StateListAll[*runtimeres.ExtensionStatus](onCP, c.COSI)
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	for ext := range exts.All() {
		md := ext.TypedSpec().Metadata
		got = append(got, ext.Metadata().ID()+"="+md.Name+"@"+md.Version)
	}

	if want := "0=amd-ucode@ 1=intel-ucode@ 2=schematic@" + testutil.TunedID; strings.Join(got, " ") != want {
		t.Errorf("extensions: %q, want %q", strings.Join(got, " "), want)
	}

	sec, err := safe.StateGetByID[*runtimeres.SecurityState](onCP, c.COSI, runtimeres.SecurityStateID)
	if err != nil {
		t.Fatal(err)
	}

	if s := sec.TypedSpec(); !s.BootedWithUKI || s.SecureBoot || !s.ModuleSignatureEnforced || s.SELinuxState != runtimeres.SELinuxStatePermissive {
		t.Errorf("securitystate %+v", s)
	}

	ver, err := safe.StateGetByID[*runtimeres.Version](onCP, c.COSI, "version")
	if err != nil || ver.TypedSpec().Version != testutil.V113 || ver.TypedSpec().Name != "Talos" {
		t.Errorf("version: %v %v", ver, err)
	}

	services, err := safe.StateListAll[*v1alpha1.Service](onCP, c.COSI)
	if err != nil {
		t.Fatal(err)
	}

	running := map[string]bool{}
	for svc := range services.All() {
		running[svc.Metadata().ID()] = svc.TypedSpec().Running && svc.TypedSpec().Healthy
	}

	if !running["apid"] || !running["trustd"] || !running["kubelet"] {
		t.Errorf("services: %v", running)
	}

	if _, ok := running["etcd"]; ok {
		t.Error("etcd is not running before bootstrap: Talos publishes no Service resource for it")
	}

	// a watch (talosctl get -w) sees etcd's Service appear once the cluster is bootstrapped
	watchCtx, cancel := context.WithCancel(onCP)
	defer cancel()

	events := make(chan state.Event)
	if err = c.COSI.WatchKind(watchCtx, v1alpha1.NewService("").Metadata(), events, state.WithBootstrapContents(true)); err != nil {
		t.Fatal(err)
	}

	for ev := range events { // the bootstrap contents, then the Bootstrapped marker
		if ev.Type == state.Bootstrapped {
			break
		}
	}

	if _, err = em.Bootstrap(cp, &machine.BootstrapRequest{}); err != nil {
		t.Fatal(err)
	}

	select {
	case ev := <-events:
		if ev.Type != state.Created || ev.Resource.Metadata().ID() != "etcd" {
			t.Errorf("watch event %v %v", ev.Type, ev.Resource)
		}
	case <-time.After(5 * time.Second):
		t.Error("no watch event for etcd")
	}

	nodename, err := safe.StateGetByID[*k8s.Nodename](onCP, c.COSI, k8s.NodenameID)
	if err != nil || nodename.TypedSpec().Nodename != "c1" {
		t.Errorf("nodename: %v %v", nodename, err)
	}

	// the running config (what upgrade-k8s patches) is sensitive: admin only, as machined's
	// access policy (internal/app/resources/access.go)
	if mc, err := safe.StateGetByID[*configres.MachineConfig](onCP, c.COSI, configres.ActiveID); err != nil || mc.Provider().Machine().Type() != machinetype.TypeControlPlane {
		t.Errorf("machineconfig as admin: %v", err)
	}

	input.Options.Roles = role.MakeSet(role.Reader)

	readerConfig, err := input.Talosconfig()
	if err != nil {
		t.Fatal(err)
	}

	reader, err := client.New(ctx, client.WithConfig(readerConfig), client.WithEndpoints(cpAddr))
	if err != nil {
		t.Fatal(err)
	}

	defer reader.Close() //nolint:errcheck

	if _, err = safe.StateGetByID[*configres.MachineConfig](onCP, reader.COSI, configres.ActiveID); status.Code(err) != codes.PermissionDenied {
		t.Errorf("machineconfig as reader: %v", err)
	}

	if _, err = safe.StateGetByID[*runtimeres.Version](onCP, reader.COSI, "version"); err != nil {
		t.Errorf("version as reader: %v", err)
	}

	// through the control plane to the worker (node metadata): stock image, GRUB
	onWorker := client.WithNode(ctx, "127.0.1.48")

	exts, err = safe.StateListAll[*runtimeres.ExtensionStatus](onWorker, c.COSI)
	if err != nil || exts.Len() != 0 {
		t.Errorf("worker extensions: %d %v", exts.Len(), err)
	}

	sec, err = safe.StateGetByID[*runtimeres.SecurityState](onWorker, c.COSI, runtimeres.SecurityStateID)
	if err != nil || sec.TypedSpec().BootedWithUKI {
		t.Errorf("worker securitystate: %v %v", sec, err)
	}

	// COSI is one-to-one only
	many := metadata.AppendToOutgoingContext(ctx, "nodes", "127.0.1.47")
	if _, err = safe.StateGetByID[*runtimeres.Version](many, c.COSI, "version"); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "one-2-many proxying is not supported") {
		t.Errorf("nodes metadata: %v", err)
	}

	// a node in maintenance mode serves no COSI here
	mc, err := client.New(ctx, client.WithTLSConfig(testutil.InsecureTLS()), client.WithEndpoints(maintenanceAddr))
	if err != nil {
		t.Fatal(err)
	}

	defer mc.Close() //nolint:errcheck

	if _, err = safe.StateGetByID[*runtimeres.Version](ctx, mc.COSI, "version"); status.Code(err) != codes.Unimplemented {
		t.Errorf("maintenance COSI: %v", err)
	}
}
