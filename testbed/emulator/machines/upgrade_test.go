package machines

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/xid"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	runtimeres "github.com/siderolabs/talos/pkg/machinery/resources/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/release"
)

// installedWorker is a uki worker installed from the tuned schematic at tag.
func installedWorker(t *testing.T, tag string) (*Emulator, *Node, string) {
	t.Helper()

	host := testutil.Factory(t)
	n := hwNode(t, "u1", "127.0.1.51", kernel.BootUKI)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}

	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", host+"/metal-installer/"+testutil.TunedID+":"+tag, ""))
	awaitBoot(t, em, n)

	if !n.configured() {
		t.Fatal("the worker did not install")
	}

	return em, n, host
}

func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()

	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
		t.Errorf("error %v, want %s with %q", err, code, text)
	}
}

// upgrade runs LifecycleService.Upgrade's rule, returning the exit code and the output.
func upgrade(em *Emulator, n *Node, imageName string) (int32, string, error) {
	var out strings.Builder

	code, err := em.Upgrade(n, imageName, func(line string) error {
		out.WriteString(line)

		return nil
	})

	return code, out.String(), err
}

func TestVersionIsTheBootedRelease(t *testing.T) {
	em, n, _ := installedWorker(t, "v1.13.8")

	if got := em.TalosVersion(n); got != "v1.13.8" {
		t.Errorf("installed from v1.13.8: Version %s", got)
	}

	m := hwNode(t, "m1", "127.0.1.52", kernel.BootUKI)
	if got := em.TalosVersion(m); got != release.Latest() {
		t.Errorf("maintenance mode (the boot media, by default the newest release): Version %s, want %s", got, release.Latest())
	}
}

func TestPullImage(t *testing.T) {
	em, n, host := installedWorker(t, testutil.V113)
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113

	name, err := em.PullImage(context.Background(), n, ref)
	if err != nil || !strings.HasPrefix(name, host+"/metal-installer/"+testutil.EmptyID+"@sha256:") {
		t.Fatalf("pull: %q %v", name, err)
	}

	if _, ok := n.images[ref]; !ok {
		t.Error("the reference is not in the containerd store")
	}

	if _, ok := n.images[name]; !ok {
		t.Error("the pinned name is not in the containerd store")
	}

	_, err = em.PullImage(context.Background(), n, host+"/metal-installer/"+testutil.UnknownID+":"+testutil.V113)
	wantCode(t, err, codes.NotFound, "error pulling image: pulling image")

	_, err = em.PullImage(context.Background(), n, host+"/metal-installer/"+testutil.EmptyID+":v1.14.2")
	wantCode(t, err, codes.Unknown, "installer tag v1.14.2 cannot boot")
}

func TestUpgradeRefusals(t *testing.T) {
	em, n, host := installedWorker(t, testutil.V113)
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113

	_, _, err := upgrade(em, n, "")
	wantCode(t, err, codes.InvalidArgument, "installer image name is required")

	_, _, err = upgrade(em, n, ref)
	wantCode(t, err, codes.Internal, `upgrade failed: installer image "`+ref+`" not found in containerd store`)

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	n.upgrading = true
	_, _, err = upgrade(em, n, ref)
	wantCode(t, err, codes.FailedPrecondition, "another installation/upgrade is already in progress")

	n.upgrading = false

	m := hwNode(t, "m1", "127.0.1.52", kernel.BootUKI)
	_, _, err = upgrade(em, m, ref)
	wantCode(t, err, codes.FailedPrecondition, "machine is not installed")

	if n.disk.PendingInstall != nil {
		t.Error("a refused upgrade wrote a boot entry")
	}
}

// The installer's preflight: machinery's compatibility rules, reported as output and exit code.
func TestUpgradePreflight(t *testing.T) {
	em, n, host := installedWorker(t, testutil.V113)
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	n.disk.Install.TalosVersion = "v1.10.0" // a host too old for v1.13 (talos113: >= 1.11.0)

	code, out, err := upgrade(em, n, ref)
	if err != nil || code != 1 || !strings.Contains(out, "pre-flight checks failed: host version 1.10.0 is too old to upgrade to Talos 1.13.9") {
		t.Errorf("exit %d, err %v, output:\n%s", code, err, out)
	}

	if n.disk.PendingInstall != nil {
		t.Error("a failed preflight wrote a boot entry")
	}

	if err := upgradeableFrom("v1.13.8", "v1.15.0"); err == nil || !strings.Contains(err.Error(), "host version 1.15.0 is too new to downgrade to Talos 1.13.8") {
		t.Errorf("downgrade from 1.15: %v", err)
	}
}

// A successful upgrade writes the next boot's entry and does not reboot; the reboot boots it.
func TestUpgradeThenReboot(t *testing.T) {
	em, n, host := installedWorker(t, "v1.13.8")
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113
	tunedArgs := cmdline(t, em, n)

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	code, out, err := upgrade(em, n, ref)
	if err != nil || code != 0 || !strings.Contains(out, "host Talos version: v1.13.8") || !strings.Contains(out, "installation of v1.13.9 complete") {
		t.Fatalf("exit %d, err %v, output:\n%s", code, err, out)
	}

	if n.off || em.TalosVersion(n) != "v1.13.8" || !slices.Equal(cmdline(t, em, n), tunedArgs) || n.disk.PendingInstall == nil {
		t.Fatalf("after the upgrade, before the reboot: off=%v version %s pending %v", n.off, em.TalosVersion(n), n.disk.PendingInstall)
	}

	bootID := read(t, em, n, bootIDPath)
	em.RebootDelay = 200 * time.Millisecond // long enough to see it down (a 0 s reboot may be over already)
	actor := em.Reboot(n)

	if !em.Down(n) {
		t.Error("the machine did not go down")
	}

	awaitBoot(t, em, n)

	if em.TalosVersion(n) != testutil.V113 || !slices.Equal(cmdline(t, em, n), kernel.UKICmdline(kernel.UKI{TalosVersion: testutil.V113})) || n.disk.PendingInstall != nil {
		t.Errorf("after the reboot: version %s cmdline %q pending %v", em.TalosVersion(n), cmdline(t, em, n), n.disk.PendingInstall)
	}

	if got := read(t, em, n, bootIDPath); got == bootID || len(strings.TrimSpace(got)) != 36 || !strings.HasSuffix(got, "\n") {
		t.Errorf("boot id %q, before %q", got, bootID)
	}

	if actor == "" {
		t.Error("no actor id")
	}
}

func TestBootFallback(t *testing.T) {
	em, n, host := installedWorker(t, "v1.13.8")
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113
	em.RebootDelay = 50 * time.Millisecond
	before := *n.disk.Install

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	if code, out, err := upgrade(em, n, ref); code != 0 || err != nil {
		t.Fatalf("upgrade: %d %v\n%s", code, err, out)
	}

	em.SetBootFallback(n, true)

	if got := em.rebootTime(n); got != 100*time.Millisecond {
		t.Errorf("falling back takes %s, want two reboots", got)
	}

	em.Reboot(n)
	awaitBoot(t, em, n)

	if n.disk.Install.Image != before.Image || em.TalosVersion(n) != "v1.13.8" || n.disk.PendingInstall != nil || n.bootFallback {
		t.Errorf("after the fallback: booted %s (%s), pending %v, switch %v", n.disk.Install.Image, em.TalosVersion(n), n.disk.PendingInstall, n.bootFallback)
	}

	if stage, st := n.machineStatus(); stage != machine.MachineStatusEvent_RUNNING || !st.Ready {
		t.Errorf("fallen back node: %s ready=%v %v", stage, st.Ready, st.UnmetConditions)
	}
}

// collect runs WatchEvents until it ends or the test's patience does, returning the events.
func collect(t *testing.T, em *Emulator, n *Node, req *machine.EventsRequest, until func([]*machine.Event) bool) ([]*machine.Event, error) {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var got []*machine.Event

	err := em.WatchEvents(ctx, n, req, func(e *machine.Event) error {
		got = append(got, e)
		if until != nil && until(got) {
			cancel()
		}

		return nil
	})

	return got, err
}

func payload(t *testing.T, e *machine.Event) proto.Message {
	t.Helper()

	msg, err := e.Data.UnmarshalNew()
	if err != nil {
		t.Fatalf("event %s: %v", e.Data.TypeUrl, err)
	}

	return msg
}

func TestEvents(t *testing.T) {
	em, n, _ := installedWorker(t, testutil.V113)
	em.RebootDelay = 50 * time.Millisecond

	// all of this boot's events: booting, then running and ready
	all, _ := collect(t, em, n, &machine.EventsRequest{TailEvents: -1}, func(got []*machine.Event) bool { return len(got) >= 3 })
	if len(all) < 3 || all[0].Data.TypeUrl != "" {
		t.Fatalf("events %v: want the hello event first", all)
	}

	last, ok := payload(t, all[len(all)-1]).(*machine.MachineStatusEvent)
	if !ok || last.Stage != machine.MachineStatusEvent_RUNNING || !last.Status.Ready {
		t.Errorf("last event %v, want RUNNING and ready", last)
	}

	if !slices.IsSortedFunc(all[1:], func(a, b *machine.Event) int { return strings.Compare(a.Id, b.Id) }) {
		t.Error("event ids are not sorted")
	}

	// resuming after the last seen id yields nothing old; a reboot's events arrive, then the
	// stream ends with the machine
	actors := make(chan string, 1)

	go func() {
		time.Sleep(100 * time.Millisecond)
		actors <- em.Reboot(n)
	}()

	got, err := collect(t, em, n, &machine.EventsRequest{TailId: all[len(all)-1].Id}, nil)
	wantCode(t, err, codes.Unavailable, "connection reset")

	actor := <-actors

	var sawReboot bool

	for _, e := range got[1:] {
		if e.Id <= all[len(all)-1].Id {
			t.Errorf("resumed after %s, got the older event %s", all[len(all)-1].Id, e.Id)
		}

		if seq, ok := payload(t, e).(*machine.SequenceEvent); ok && seq.Sequence == "reboot" && e.ActorId == actor {
			sawReboot = true
		}
	}

	if !sawReboot {
		t.Errorf("no reboot SequenceEvent with actor %s in %v", actor, got)
	}

	// filtered by actor: the hello carries it, the rest of the buffer (status events) does not
	awaitBoot(t, em, n)

	mine, _ := collect(t, em, n, &machine.EventsRequest{TailEvents: -1, WithActorId: actor}, func(got []*machine.Event) bool { return len(got) >= 1 })
	if len(mine) != 1 || mine[0].ActorId != actor {
		t.Errorf("actor-filtered events after the reboot: %v", mine)
	}
}

func TestEtcdSnapshotControlPlaneOnly(t *testing.T) {
	em, n, _ := installedWorker(t, testutil.V113)

	wantCode(t, em.CheckControlPlane(n, "etcd snapshot"), codes.Unimplemented, "etcd snapshot is only available on control plane nodes")
}

// After a reboot a control plane is not ready before its etcd has started and answered again:
// the programs standing for the old boot's may still be stopping.
func TestRebootForgetsTheEtcdProbe(t *testing.T) {
	n := hwNode(t, "c1", "127.0.1.53", kernel.BootUKI)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf, tools: Tools{Etcd: "etcd", Kube: KubeBinaries{"v1.36.3": "kube"}}, kicks: make(chan struct{}, 1)}

	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, ""))
	awaitBoot(t, em, n)

	if _, err := em.Bootstrap(n, &machine.BootstrapRequest{}); err != nil {
		t.Fatal(err)
	}

	em.setProbe(n, func() { n.rt.etcdUp = true }) // the real etcd answered

	em.mu.Lock()
	_, before := n.machineStatus()
	em.mu.Unlock()

	if !before.Ready {
		t.Fatalf("with etcd up the node is not ready: %v", before.UnmetConditions)
	}

	em.Reboot(n)
	awaitBoot(t, em, n)

	em.mu.Lock()
	defer em.mu.Unlock()

	if _, after := n.machineStatus(); after.Ready || n.services["etcd"].state != "Preparing" {
		t.Errorf("right after the boot, etcd not started yet: ready=%v, etcd %s", after.Ready, n.services["etcd"].state)
	}
}

// The COSI Version resource (talosctl get version) follows the booted release through every
// boot: maintenance, the install, the upgrade; each is an update of the same resource.
func TestVersionResourceFollowsEveryBoot(t *testing.T) {
	host := testutil.Factory(t)
	n := hwNode(t, "u1", "127.0.1.51", kernel.BootUKI)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}
	ref := host + "/metal-installer/" + testutil.EmptyID + ":" + testutil.V113

	em.SyncResources(n) // maintenance mode: the boot media's release
	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", host+"/metal-installer/"+testutil.TunedID+":v1.13.8", ""))
	awaitBoot(t, em, n)

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	if code, out, err := upgrade(em, n, ref); err != nil || code != 0 {
		t.Fatalf("exit %d, err %v, output:\n%s", code, err, out)
	}

	em.Reboot(n)
	awaitBoot(t, em, n)

	em.mu.Lock()
	res, err := n.resources.Get(context.Background(), runtimeres.NewVersion().Metadata())
	em.mu.Unlock()

	if err != nil {
		t.Fatal(err)
	}

	if got := res.(*runtimeres.Version).TypedSpec().Version; got != testutil.V113 {
		t.Errorf("get version after the upgrade: %s, want %s", got, testutil.V113)
	}
}

// tailStart takes machined's options in machined's order: tail_events first, then the events
// with a later id than tail_id (also when that id is not in the buffer), then tail_seconds.
func TestTailStart(t *testing.T) {
	events := []event{{id: xid.New()}, {id: xid.New()}, {id: xid.New()}}
	before, after := xid.NewWithTime(time.Now().Add(-time.Hour)), xid.NewWithTime(time.Now().Add(time.Hour))

	for name, tc := range map[string]struct {
		req  *machine.EventsRequest
		id   xid.ID
		want int
	}{
		"nothing old":                     {&machine.EventsRequest{}, xid.NilID(), 3},
		"all":                             {&machine.EventsRequest{TailEvents: -1}, xid.NilID(), 0},
		"the last two":                    {&machine.EventsRequest{TailEvents: 2}, xid.NilID(), 1},
		"more than there are":             {&machine.EventsRequest{TailEvents: 9}, xid.NilID(), 0},
		"tail_events wins over tail_id":   {&machine.EventsRequest{TailEvents: 1, TailId: events[0].id.String()}, events[0].id, 2},
		"after an id in the buffer":       {&machine.EventsRequest{TailId: events[0].id.String()}, events[0].id, 1},
		"after an id older than them all": {&machine.EventsRequest{TailId: before.String()}, before, 0},
		"after an id newer than them all": {&machine.EventsRequest{TailId: after.String()}, after, 3},
		"the last minute":                 {&machine.EventsRequest{TailSeconds: 60}, xid.NilID(), 0},
	} {
		if got := tailStart(events, tc.req, tc.id); got != tc.want {
			t.Errorf("%s: start %d, want %d", name, got, tc.want)
		}
	}
}
