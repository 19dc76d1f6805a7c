package machines

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cosi-project/runtime/pkg/resource"
	"github.com/cosi-project/runtime/pkg/state"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/stdpatches"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	"github.com/siderolabs/talos/pkg/machinery/resources/v1alpha1"
	"google.golang.org/grpc/codes"

	"solanaops.testbed/emulator/internal/testutil"
)

// What talosctl upgrade-k8s relies on (pkg/cluster/kubernetes, v1.14.1): images resolved by
// version, the component config resources bumped once per change, the static pods carrying
// the final resource's version, the kubelet restarted through a Destroyed Services resource.

func TestKubeBinariesFlag(t *testing.T) {
	k := KubeBinaries{}
	for _, ok := range []string{"v1.36.3=/bin/kube136", "v1.37.2=/bin/kube137"} {
		if err := k.Set(ok); err != nil {
			t.Fatal(err)
		}
	}

	for _, bad := range []string{"/bin/kube", "1.36.3=/bin/kube", "v1.36=/bin/kube", "v1.38.0=", "v1.36.3=/other"} {
		if err := k.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	if k.String() != "v1.36.3=/bin/kube136,v1.37.2=/bin/kube137" {
		t.Errorf("String: %s", k)
	}
}

func TestResolveKubeImage(t *testing.T) {
	bins := KubeBinaries{"v1.36.3": "/bin/kube136", "v1.37.2": "/bin/kube137"}

	for ref, want := range map[string]string{
		"registry.k8s.io/kube-apiserver:v1.37.2":                            "/bin/kube137",
		"registry.k8s.io/kube-scheduler:v1.36.3":                            "/bin/kube136",
		"ghcr.io/siderolabs/kubelet:v1.37.2":                                "/bin/kube137",
		"registry.k8s.io/kube-controller-manager:v1.37.2@sha256:0123456789": "/bin/kube137",
	} {
		if got, err := resolveKubeImage(bins, nil, ref); err != nil || got != want {
			t.Errorf("%s: %q %v", ref, got, err)
		}
	}

	// no build of the tag, another repository, no tag: not found, in containerd's words
	for _, ref := range []string{"registry.k8s.io/kube-apiserver:v1.37.1", "example.org/kube-apiserver:v1.37.2", "registry.k8s.io/kube-apiserver"} {
		_, err := resolveKubeImage(bins, nil, ref)
		if !errors.Is(err, errImageNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("failed to resolve reference %q", ref)) {
			t.Errorf("%s: %v", ref, err)
		}
	}

	// the fault switch: the registry fails that version for that node
	if _, err := resolveKubeImage(bins, map[string]bool{"v1.37.2": true}, "ghcr.io/siderolabs/kubelet:v1.37.2"); !errors.Is(err, errRegistryFault) {
		t.Errorf("fault switch: %v", err)
	}
}

func TestLoopbackAdvertiseArgs(t *testing.T) {
	if got := loopbackAdvertiseArgs("registry.k8s.io/kube-apiserver:v1.36.3"); got != nil {
		t.Errorf("1.36: %q", got)
	}

	if got := loopbackAdvertiseArgs("registry.k8s.io/kube-apiserver:v1.37.2"); !slices.Equal(got, []string{"--endpoint-reconciler-type", "none"}) {
		t.Errorf("1.37: %q", got)
	}
}

// upgradeNode is a configured v1.14.1 control plane at Kubernetes 1.36.3 whose etcd runs, with
// builds of 1.36.3 and 1.37.2 (no process starts: the reconcile loop is not running).
func upgradeNode(t *testing.T) (*Emulator, *Node) {
	t.Helper()

	host := testutil.Factory(t)
	n := nodeOf(t, "cp1", "127.0.1.71", "")
	em := &Emulator{nodes: []*Node{n}, log: t.Logf, kicks: make(chan struct{}, 1),
		tools: Tools{Etcd: "etcd", Kube: KubeBinaries{"v1.36.3": "/bin/kube136", "v1.37.0": "/bin/kube1370", "v1.37.2": "/bin/kube137"}}}

	apply(t, em, n, gen114(t, machinetype.TypeControlPlane, host+"/metal-installer/"+testutil.EmptyID+":"+testutil.V114))
	awaitBoot(t, em, n)

	em.mu.Lock()
	n.disk.EtcdData, n.rt.etcdUp = true, true
	em.refreshServices(n)
	em.mu.Unlock()

	return em, n
}

// patchLikeUpgradeK8s applies a standard patch the way upgrade-k8s does (patch.go
// patchNodeConfig): the running config from COSI MachineConfigs/v1alpha1, patched, applied
// NO_REBOOT.
func patchLikeUpgradeK8s(t *testing.T, em *Emulator, n *Node, makePatch func(*configres.MachineConfig) ([]byte, error)) {
	t.Helper()

	em.SyncResources(n)

	r, err := n.Resources().Get(context.Background(), configres.NewMachineConfig(nil).Metadata())
	if err != nil {
		t.Fatal(err)
	}

	mc := r.(*configres.MachineConfig) //nolint:forcetypeassert

	raw, err := makePatch(mc)
	if err != nil {
		t.Fatal(err)
	}

	p, err := stdpatches.PreparePatch(raw, nil)
	if err != nil {
		t.Fatal(err)
	}

	patched, err := configpatcher.Apply(configpatcher.WithConfig(mc.Provider()), []configpatcher.Patch{p})
	if err != nil {
		t.Fatal(err)
	}

	cfg, err := patched.Config()
	if err != nil {
		t.Fatal(err)
	}

	out, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsAll))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := applyMode(em, n, out, machine.ApplyConfigurationRequest_NO_REBOOT); err != nil {
		t.Fatal(err)
	}
}

// watch is a COSI watch of one resource, as talosctl's; its first event is Created.
func watch(t *testing.T, n *Node, md *resource.Metadata) <-chan state.Event {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	ch := make(chan state.Event, 16)
	if err := n.Resources().Watch(ctx, md, ch); err != nil {
		t.Fatal(err)
	}

	if ev := next(t, ch); ev.Type != state.Created {
		t.Fatalf("first event %v", ev.Type)
	}

	return ch
}

func next(t *testing.T, ch <-chan state.Event) state.Event {
	t.Helper()

	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	return state.Event{}
}

func TestStaticPodUpgrade(t *testing.T) {
	em, n := upgradeNode(t)

	md := componentConfigMetadata(k8s.APIServerID, true)
	ch := watch(t, n, md)

	em.mu.Lock()
	pod := n.staticPods[k8s.APIServerID]
	em.mu.Unlock()

	if pod == nil || podImage(pod) != constants.KubernetesAPIServerImage+":v1.36.3" || podAnnotation(pod) != "1" {
		t.Fatalf("static pod before: %v", pod)
	}

	before := map[string]string{}

	for _, id := range []string{k8s.ControllerManagerID, k8s.SchedulerID} {
		r, _ := n.Resources().Get(context.Background(), componentConfigMetadata(id, true))
		before[id] = r.Metadata().Version().String()
	}

	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeAPIServerImage(stdpatches.GuessVersionContractKubeAPIServer(mc.Provider()), constants.KubernetesAPIServerImage+":v1.37.2")
	})

	ev := next(t, ch)
	if ev.Type != state.Updated || ev.Resource.Metadata().Version().String() != "2" {
		t.Fatalf("event %v version %s, want one Updated to 2", ev.Type, ev.Resource.Metadata().Version())
	}

	select {
	case ev := <-ch:
		t.Fatalf("a second event: %v", ev.Type)
	case <-time.After(200 * time.Millisecond):
	}

	em.mu.Lock()
	pod = n.staticPods[k8s.APIServerID]
	em.mu.Unlock()

	if podImage(pod) != constants.KubernetesAPIServerImage+":v1.37.2" || podAnnotation(pod) != "2" {
		t.Errorf("static pod after: %s %s", podImage(pod), podAnnotation(pod))
	}

	r, err := n.Resources().Get(context.Background(), k8s.NewStaticPod(k8s.NamespaceName, k8s.APIServerID).Metadata())
	if err != nil || r.(*k8s.StaticPod).TypedSpec().Pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["name"] != k8s.APIServerID { //nolint:forcetypeassert
		t.Errorf("StaticPods/kube-apiserver: %v", err)
	}

	// the other components' configs did not move
	for id, v := range before {
		r, _ := n.Resources().Get(context.Background(), componentConfigMetadata(id, true))
		if r.Metadata().Version().String() != v {
			t.Errorf("%s moved from %s to %s", id, v, r.Metadata().Version())
		}
	}
}

func podImage(pod map[string]any) string {
	return pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"].(string) //nolint:forcetypeassert
}

func podAnnotation(pod map[string]any) string {
	return pod["metadata"].(map[string]any)["annotations"].(map[string]any)[constants.AnnotationStaticPodConfigVersion].(string) //nolint:forcetypeassert
}

func TestKubeletUpgradeRestartsTheService(t *testing.T) {
	em, n := upgradeNode(t)
	ch := watch(t, n, v1alpha1.NewService("kubelet").Metadata())

	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeletImage(stdpatches.GuessVersionContractKubelet(mc.Provider()), constants.KubeletImage+":v1.37.2")
	})

	if ev := next(t, ch); ev.Type != state.Destroyed {
		t.Fatalf("first %v, want Destroyed", ev.Type)
	}

	ev := next(t, ch)
	if svc, ok := ev.Resource.(*v1alpha1.Service); ev.Type != state.Created || !ok || !svc.TypedSpec().Running || !svc.TypedSpec().Healthy {
		t.Fatalf("then %v %v, want Created running and healthy", ev.Type, ev.Resource)
	}

	r, err := n.Resources().Get(context.Background(), k8s.NewKubeletSpec(k8s.NamespaceName, k8s.KubeletID).Metadata())
	if err != nil || r.(*k8s.KubeletSpec).TypedSpec().Image != constants.KubeletImage+":v1.37.2" { //nolint:forcetypeassert
		t.Errorf("KubeletSpec: %v %v", r, err)
	}

	// a kubelet image without a build: the pre stage's pull fails, the service is down
	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeletImage(stdpatches.GuessVersionContractKubelet(mc.Provider()), constants.KubeletImage+":v1.37.1")
	})

	if ev := next(t, ch); ev.Type != state.Destroyed {
		t.Fatalf("no-build image: %v, want Destroyed", ev.Type)
	}

	if st, _ := kubeletState(em, n); st != "Failed" {
		t.Errorf("kubelet service %s, want Failed", st)
	}

	// the registry fails the version the config names: retried until it pulls
	if err := em.SetPullFailure(n, "v1.37.0"); err != nil {
		t.Fatal(err)
	}

	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeletImage(stdpatches.GuessVersionContractKubelet(mc.Provider()), constants.KubeletImage+":v1.37.0")
	})
	em.retryKubeletPull(n)

	if st, _ := kubeletState(em, n); st != "Failed" {
		t.Errorf("kubelet service %s with the fault switch on, want Failed", st)
	}

	if err := em.SetPullFailure(n, ""); err != nil {
		t.Fatal(err)
	}

	em.retryKubeletPull(n)

	if ev := next(t, ch); ev.Type != state.Created {
		t.Errorf("the pull works again: %v, want Created", ev.Type)
	}

	// an image the node holds needs no registry: the switch does not stop it coming back
	if err := em.SetPullFailure(n, "v1.37.2"); err != nil {
		t.Fatal(err)
	}

	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeletImage(stdpatches.GuessVersionContractKubelet(mc.Provider()), constants.KubeletImage+":v1.37.2")
	})

	if ev := next(t, ch); ev.Type != state.Destroyed {
		t.Errorf("back to the held image: %v, want Destroyed", ev.Type)
	}

	if ev := next(t, ch); ev.Type != state.Created {
		t.Errorf("back to the held image: %v, want Created", ev.Type)
	}
}

func TestImagePull(t *testing.T) {
	em, n := upgradeNode(t)

	if err := em.ImagePull(n, constants.KubernetesAPIServerImage+":v1.37.2"); err != nil {
		t.Error(err)
	}

	wantCode(t, em.ImagePull(n, constants.KubernetesAPIServerImage+":v1.37.1"), codes.NotFound,
		`error pulling image: failed to resolve reference "registry.k8s.io/kube-apiserver:v1.37.1": registry.k8s.io/kube-apiserver:v1.37.1: not found`)

	if err := em.SetPullFailure(n, "v1.37.2"); err != nil {
		t.Fatal(err)
	}

	wantCode(t, em.ImagePull(n, constants.KubeletImage+":v1.37.2"), codes.Unknown, "503 Service Unavailable")

	if err := em.SetPullFailure(n, ""); err != nil {
		t.Fatal(err)
	}

	if err := em.ImagePull(n, constants.KubeletImage+":v1.37.2"); err != nil {
		t.Error(err)
	}

	if err := em.SetPullFailure(n, "1.37"); err == nil {
		t.Error("a version that is not one accepted")
	}
}

func TestMirrorPod(t *testing.T) {
	static := staticPodManifest(k8s.SchedulerID, constants.KubernetesSchedulerImage+":v1.37.2", []string{"/usr/local/bin/kube-scheduler"}, resource.VersionUndefined)
	pod, hash := mirrorPod(static, "cp1", "uid-1")
	md := pod["metadata"].(map[string]any)

	if md["name"] != "kube-scheduler-cp1" || md["labels"].(map[string]any)["k8s-app"] != k8s.SchedulerID ||
		md["annotations"].(map[string]any)[mirrorAnnotation] != hash || pod["spec"].(map[string]any)["nodeName"] != "cp1" {
		t.Errorf("mirror pod: %v", pod)
	}

	if static["metadata"].(map[string]any)["name"] != k8s.SchedulerID {
		t.Error("the static pod was changed")
	}

	st := mirrorStatus("127.0.1.71", k8s.SchedulerID, "img", false, "failed to resolve reference", time.Now())["status"].(map[string]any)
	cs := st["containerStatuses"].([]any)[0].(map[string]any)

	if st["phase"] != "Pending" || st["hostIP"] != "127.0.1.71" || cs["state"].(map[string]any)["waiting"].(map[string]any)["reason"] != "ErrImagePull" {
		t.Errorf("status of a pull failure: %v", st)
	}
}

// TestKubernetesVersionRange: a v1.14.1 machine refuses a config naming a Kubernetes version
// outside Talos v1.14's range (machinery compatibility/talos114: 1.32.0 to 1.37.x), as its
// validation does (config/types/k8s/apiserver.go ValidateKubernetesImageTag).
func TestKubernetesVersionRange(t *testing.T) {
	em, n := upgradeNode(t)

	for tag, want := range map[string]string{"v1.38.0": "1.38.0 is too new", "v1.31.9": "1.31.9 is too old"} {
		em.SyncResources(n)

		r, err := n.Resources().Get(context.Background(), configres.NewMachineConfig(nil).Metadata())
		if err != nil {
			t.Fatal(err)
		}

		mc := r.(*configres.MachineConfig) //nolint:forcetypeassert

		raw, _ := stdpatches.WithKubeAPIServerImage(stdpatches.GuessVersionContractKubeAPIServer(mc.Provider()), constants.KubernetesAPIServerImage+":"+tag)
		p, _ := stdpatches.PreparePatch(raw, nil)

		patched, err := configpatcher.Apply(configpatcher.WithConfig(mc.Provider()), []configpatcher.Patch{p})
		if err != nil {
			t.Fatal(err)
		}

		out, _ := patched.Bytes()

		_, err = applyMode(em, n, out, machine.ApplyConfigurationRequest_NO_REBOOT)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", tag, err, want)
		}
	}
}

// TestV113StaticPodsFollowTheConfigResource: a v1.13.9 control plane has no final- resources
// (talosctl falls back to the config-derived one) and stamps its version on the static pod.
func TestV113StaticPodsFollowTheConfigResource(t *testing.T) {
	host := testutil.Factory(t)
	n := nodeOf(t, "cp1", "127.0.1.72", testutil.V113)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf, kicks: make(chan struct{}, 1)}

	apply(t, em, n, testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", host+"/metal-installer/"+testutil.EmptyID+":"+testutil.V113, ""))
	awaitBoot(t, em, n)

	em.mu.Lock()
	n.disk.EtcdData = true
	em.refreshServices(n)
	pod := n.staticPods[k8s.SchedulerID]
	em.mu.Unlock()

	if _, err := n.Resources().Get(context.Background(), componentConfigMetadata(k8s.SchedulerID, true)); !state.IsNotFoundError(err) {
		t.Errorf("final-kube-scheduler on v1.13.9: %v", err)
	}

	ch := watch(t, n, componentConfigMetadata(k8s.SchedulerID, false))

	patchLikeUpgradeK8s(t, em, n, func(mc *configres.MachineConfig) ([]byte, error) {
		return stdpatches.WithKubeSchedulerImage(stdpatches.GuessVersionContractKubeScheduler(mc.Provider()), constants.KubernetesSchedulerImage+":v1.36.2")
	})

	ev := next(t, ch)

	em.mu.Lock()
	after := n.staticPods[k8s.SchedulerID]
	em.mu.Unlock()

	if pod == nil || podAnnotation(pod) != "1" || ev.Type != state.Updated || podAnnotation(after) != ev.Resource.Metadata().Version().String() {
		t.Errorf("static pod versions %v -> %v, event %v %s", pod, after, ev.Type, ev.Resource.Metadata().Version())
	}
}
