package machines

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/siderolabs/gen/xslices"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"google.golang.org/grpc/codes"
	"gopkg.in/yaml.v3"

	"solanaops.testbed/emulator/internal/testutil"
	"solanaops.testbed/emulator/kernel"
	"solanaops.testbed/emulator/kubelet"
	"solanaops.testbed/emulator/release"
)

// What differs between machines running Talos v1.13 and v1.14 (package release), and what
// must not: the same settings in either config layout give the same machine.

// gen114 renders a config as `talosctl gen config --talos-version v1.14` would, with
// strategic-merge patches (multi-document) applied as `--config-patch` does.
func gen114(t *testing.T, typ machinetype.Type, image string, patches ...string) []byte {
	t.Helper()

	return patch(t, testutil.GenConfig(t, testutil.NewInput114(t), typ, "/dev/vda", image, ""), patches...)
}

func patch(t *testing.T, raw []byte, patches ...string) []byte {
	t.Helper()

	if len(patches) == 0 {
		return raw
	}

	loaded, err := configpatcher.LoadPatches(patches)
	if err != nil {
		t.Fatal(err)
	}

	out, err := configpatcher.Apply(configpatcher.WithBytes(raw), loaded)
	if err != nil {
		t.Fatal(err)
	}

	b, err := out.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	return b
}

func nodeOf(t *testing.T, name, address, talosVersion string) *Node {
	t.Helper()

	return testNode(t, NodeSpec{Name: name, Address: address, Hardware: kernel.Hardware{
		CPUs: 8, Memory: "64Gi", TalosVersion: talosVersion, Disks: []kernel.Disk{{DevPath: "/dev/vda", Serial: "S1", Size: "100Gi"}, {DevPath: "/dev/vdb", Serial: "S2", Size: "100Gi"}},
	}})
}

func applyMode(em *Emulator, n *Node, raw []byte, mode machine.ApplyConfigurationRequest_Mode) (*machine.ApplyConfigurationResponse, error) {
	return em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: raw, Mode: mode}, true)
}

// TestV114ConfigInstalls: a config of the v1.14 contract (UnattendedInstallConfig, no
// .machine.install) installs a v1.14.1 factory installer on a v1.14.1 machine, which then runs
// v1.14.1: its version and its kernel command line (v1.14's defaults: no init_on_alloc=1, no
// nvme_core.io_timeout).
func TestV114ConfigInstalls(t *testing.T) {
	host := testutil.Factory(t)
	n := nodeOf(t, "n1", "127.0.1.61", "")
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}

	raw := gen114(t, machinetype.TypeWorker, host+"/metal-installer/"+testutil.TunedID+":"+testutil.V114)
	if !strings.Contains(string(raw), "kind: UnattendedInstallConfig") || strings.Contains(string(raw), "\n    install:") {
		t.Fatalf("not a v1.14 layout config:\n%s", raw)
	}

	if w := apply(t, em, n, raw); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}

	awaitBoot(t, em, n)

	if !n.configured() || em.TalosVersion(n) != testutil.V114 {
		t.Fatalf("configured %v, version %s", n.configured(), em.TalosVersion(n))
	}

	want := append(kernel.UKICmdline(kernel.UKI{TalosVersion: testutil.V114}), testutil.TunedArgs...)
	if got := cmdline(t, em, n); !slices.Equal(got, want) || slices.Contains(got, "init_on_alloc=1") {
		t.Errorf("/proc/cmdline:\n got %q\nwant %q", got, want)
	}
}

// TestLayoutsAgree: the same settings written in v1.13's sections or in v1.14's documents give
// the same kernel view, kubelet config file, Node labels, annotations and taints, install disk
// and image, cluster endpoint and network.
func TestLayoutsAgree(t *testing.T) {
	const image = "127.0.0.1:5000/metal-installer/" + testutil.EmptyID + ":" + testutil.V114

	input := testutil.NewInput(t)
	input.Options.InstallDisk, input.Options.InstallImage = "/dev/vda", image

	v113, err := input.Config(machinetype.TypeControlPlane)
	if err != nil {
		t.Fatal(err)
	}

	oldRaw, err := v113.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		t.Fatal(err)
	}

	oldRaw = patch(t, oldRaw, `machine:
  sysctls: {vm.max_map_count: "1000000", net.core.rmem_max: "134217728"}
  kubelet:
    extraConfig: {cpuManagerPolicy: static, reservedSystemCPUs: "0-1"}
  nodeLabels: {solana.io/role: validator}
  nodeAnnotations: {solana.io/owner: ops}
  nodeTaints: {solana.io/dedicated: "validator:NoSchedule"}
  install:
    diskSelector: {serial: "S2"}
`)

	newRaw := gen114(t, machinetype.TypeControlPlane, image, `apiVersion: v1alpha1
kind: SysctlConfig
params: {vm.max_map_count: "1000000", net.core.rmem_max: "134217728"}
`, `apiVersion: v1alpha1
kind: KubeletConfig
config: {cpuManagerPolicy: static, reservedSystemCPUs: "0-1"}
`, `apiVersion: v1alpha1
kind: KubeNodeConfig
labels: {solana.io/role: validator}
annotations: {solana.io/owner: ops}
taints: {solana.io/dedicated: "validator:NoSchedule"}
`, `apiVersion: v1alpha1
kind: UnattendedInstallConfig
provisioning:
  diskSelector:
    match: disk.serial == "S2"
`)

	hw := kernel.Hardware{CPUs: 8, Memory: "64Gi", Disks: []kernel.Disk{{DevPath: "/dev/vda", Serial: "S1", Size: "100Gi"}, {DevPath: "/dev/vdb", Serial: "S2", Size: "100Gi"}}}
	if err := hw.Normalize(); err != nil {
		t.Fatal(err)
	}

	type view struct {
		sysctls             map[string]string
		kubeletYAML         string
		labels, annotations map[string]string
		taints              []kubelet.Taint
		disk, image         string
		endpoint, domain    string
		services            string
	}

	viewOf := func(raw []byte) view {
		t.Helper()

		n := nodeOf(t, "cp1", "127.0.1.62", "")
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}

		if _, err := applyMode(em, n, raw, machine.ApplyConfigurationRequest_STAGED); err != nil {
			t.Fatal(err)
		}

		cfg, err := configloader.NewFromBytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		m := kubelet.Machine{Config: cfg, ControlPlane: true, NodeName: "cp1", CPUs: 8, Memory: kernel.MemoryOf(hw, nil), TalosVersion: testutil.V114}

		kubeletYAML, err := kubelet.ConfigYAML(m)
		if err != nil {
			t.Fatal(err)
		}

		img, err := installerImage(cfg)
		if err != nil {
			t.Fatal(err)
		}

		return view{
			sysctls: kernel.Sysctls(hw, cfg), kubeletYAML: string(kubeletYAML),
			labels: kubelet.DesiredLabels(m), annotations: kubelet.DesiredAnnotations(m), taints: kubelet.DesiredTaints(m),
			disk: kernel.SystemDisk(hw, cfg), image: img,
			endpoint: cfg.K8sClusterConfig().ClusterEndpoint().String(), domain: cfg.K8sNetworkConfig().DNSDomain(),
			services: strings.Join(xslices.Map(cfg.K8sNetworkConfig().ServiceCIDRs(), netip.Prefix.String), ","),
		}
	}

	a, b := viewOf(oldRaw), viewOf(newRaw)

	if a.sysctls["vm/max_map_count"] != "1000000\n" || a.disk != "/dev/vdb" || a.labels["solana.io/role"] != "validator" ||
		!strings.Contains(a.kubeletYAML, "cpuManagerPolicy: static") || len(a.taints) != 2 {
		t.Fatalf("the v1.13 layout's settings are not all seen: %+v", a)
	}

	for name, same := range map[string]bool{
		"sysctls": maps.Equal(a.sysctls, b.sysctls), "kubelet.yaml": a.kubeletYAML == b.kubeletYAML,
		"labels": maps.Equal(a.labels, b.labels), "annotations": maps.Equal(a.annotations, b.annotations),
		"taints": slices.Equal(a.taints, b.taints), "install disk": a.disk == b.disk, "image": a.image == b.image,
		"endpoint": a.endpoint == b.endpoint, "dns domain": a.domain == b.domain, "service CIDRs": a.services == b.services,
	} {
		if !same {
			t.Errorf("%s differs between the layouts:\nv1.13: %+v\nv1.14: %+v", name, a, b)
		}
	}
}

// TestV113RefusesV114Documents: a machine running v1.13.9 (here its boot media) refuses a
// v1.14 config as v1.13.9's config loader does: the first document of a kind it does not know.
// The same config applies on a v1.14.1 machine.
func TestV113RefusesV114Documents(t *testing.T) {
	raw := gen114(t, machinetype.TypeWorker, "")

	old := nodeOf(t, "o1", "127.0.1.63", testutil.V113)
	em := &Emulator{nodes: []*Node{old}, log: t.Logf}

	_, err := applyMode(em, old, raw, machine.ApplyConfigurationRequest_STAGED)
	wantCode(t, err, codes.InvalidArgument, "error decoding document v1alpha1/")
	wantCode(t, err, codes.InvalidArgument, `" "v1alpha1": not registered`)

	// the line is that of the refused document's first key
	msg := err.Error()
	kind := msg[strings.Index(msg, "v1alpha1/")+len("v1alpha1/"):]
	kind = kind[:strings.Index(kind, "/")]

	lines := strings.Split(string(raw), "\n")
	line := 1 // the document's first key: the line after the "---" before its kind

	for i, l := range lines {
		if l == "---" {
			line = i + 2
		}

		if l == "kind: "+kind {
			break
		}
	}

	if !strings.Contains(msg, "(line "+strconv.Itoa(line)+")") {
		t.Errorf("%v: want line %d (document %s)", err, line, kind)
	}

	if old.persistedBytes != nil {
		t.Error("the refused config was stored")
	}

	fresh := nodeOf(t, "f1", "127.0.1.64", testutil.V114)
	em.nodes = append(em.nodes, fresh)

	if _, err := applyMode(em, fresh, raw, machine.ApplyConfigurationRequest_STAGED); err != nil {
		t.Errorf("v1.14.1 refused its own contract: %v", err)
	}
}

// TestV114Refusals: what machinery v1.14.1's validation refuses on apply (a v1.14 document
// beside the v1alpha1 section it replaces), and v1.14.1 machined's REBOOT refusal; AUTO never
// reboots on v1.14 while v1.13 reboots for a change it cannot apply in place.
func TestV114Refusals(t *testing.T) {
	n := nodeOf(t, "r1", "127.0.1.65", testutil.V114)
	em := &Emulator{nodes: []*Node{n}, log: t.Logf}

	for name, c := range map[string]struct{ patch, want string }{
		"KubeletConfig with .machine.kubelet": {"machine:\n  kubelet:\n    extraConfig: {maxPods: 50}\n",
			"kubelet config is already set in v1alpha1 config (.machine.kubelet)"},
		"UnattendedInstallConfig with .machine.install": {"machine:\n  install:\n    disk: /dev/vda\n",
			"UnattendedInstallConfig config is incompatible with v1alpha1 config (.machine.install)"},
		"KubeClusterConfig with .cluster.clusterName": {"cluster:\n  clusterName: other\n",
			"cluster name is already set in the v1alpha1 config (.cluster.clusterName)"},
	} {
		_, err := applyMode(em, n, gen114(t, machinetype.TypeWorker, "", c.patch), machine.ApplyConfigurationRequest_STAGED)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}

	// installed machines: v1.14.1 and v1.13.9 (booted from the stock v1.13.9 installer)
	host := testutil.Factory(t)
	v114 := gen114(t, machinetype.TypeWorker, host+"/metal-installer/"+testutil.EmptyID+":"+testutil.V114)
	apply(t, em, n, v114)
	awaitBoot(t, em, n)

	_, err := applyMode(em, n, v114, machine.ApplyConfigurationRequest_REBOOT) //nolint:staticcheck // the removed mode
	wantCode(t, err, codes.Unimplemented, "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead")

	// a change v1.13 needs a reboot for (.machine.env is not applied in place there)
	env := "machine:\n  env: {http_proxy: http://127.0.0.1:3128}\n"

	reply, err := applyMode(em, n, patch(t, v114, env), machine.ApplyConfigurationRequest_AUTO)
	if err != nil || reply.Messages[0].Mode != machine.ApplyConfigurationRequest_NO_REBOOT || n.off {
		t.Errorf("v1.14 AUTO: %v %v (down %v), want NO_REBOOT without a reboot", reply, err, n.off)
	}

	old := nodeOf(t, "r2", "127.0.1.66", testutil.V113)
	em.nodes = append(em.nodes, old)

	v113 := testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, "")
	apply(t, em, old, v113)
	awaitBoot(t, em, old)

	if em.TalosVersion(old) != testutil.V113 {
		t.Fatalf("version %s", em.TalosVersion(old))
	}

	reply, err = applyMode(em, old, patch(t, v113, env), machine.ApplyConfigurationRequest_AUTO)
	if err != nil || reply.Messages[0].Mode != machine.ApplyConfigurationRequest_REBOOT {
		t.Errorf("v1.13 AUTO: %v %v, want REBOOT", reply, err)
	}
}

func TestReleaseOfTheBootMedia(t *testing.T) {
	if n := nodeOf(t, "d1", "127.0.1.67", ""); n.spec.Hardware.TalosVersion != release.Latest() {
		t.Errorf("default boot media %s, want %s", n.spec.Hardware.TalosVersion, release.Latest())
	}

	spec := NodeSpec{Name: "b1", Address: "127.0.1.68", Hardware: kernel.Hardware{TalosVersion: "v1.12.5"}}
	if err := spec.normalize(); err == nil || !strings.Contains(err.Error(), `talos_version "v1.12.5" is not a release the emulator runs`) {
		t.Errorf("v1.12.5 boot media: %v", err)
	}
}

// TestUpgradeV113ToV114: a v1.13.9 machine upgrades to a v1.14.1 installer (talos114 allows
// hosts from 1.12.0), reboots into v1.14.1 with its v1.13-layout config and then behaves as
// v1.14: v1.14's kernel defaults, and REBOOT applies refused. v1.12 hosts cannot skip to v1.14.
func TestUpgradeV113ToV114(t *testing.T) {
	em, n, host := installedWorker(t, testutil.V113)
	ref := host + "/metal-installer/" + testutil.TunedID + ":" + testutil.V114

	if _, err := em.PullImage(context.Background(), n, ref); err != nil {
		t.Fatal(err)
	}

	code, out, err := upgrade(em, n, ref)
	if err != nil || code != 0 || !strings.Contains(out, "installation of v1.14.1 complete") {
		t.Fatalf("exit %d, err %v, output:\n%s", code, err, out)
	}

	em.Reboot(n)
	awaitBoot(t, em, n)

	want := append(kernel.UKICmdline(kernel.UKI{TalosVersion: testutil.V114}), testutil.TunedArgs...)
	if em.TalosVersion(n) != testutil.V114 || !slices.Equal(cmdline(t, em, n), want) {
		t.Errorf("after the upgrade: version %s, cmdline %q", em.TalosVersion(n), cmdline(t, em, n))
	}

	_, err = applyMode(em, n, n.persistedBytes, machine.ApplyConfigurationRequest_REBOOT) //nolint:staticcheck // the removed mode
	wantCode(t, err, codes.Unimplemented, release.RebootModeRemovedError)

	if err := upgradeableFrom(testutil.V114, "v1.11.6"); err == nil || !strings.Contains(err.Error(), "host version 1.11.6 is too old to upgrade to Talos 1.14.1") {
		t.Errorf("v1.11 to v1.14: %v", err)
	}
}

// TestV113Validation: v1.13.9 requires .machine.install where the machine installs and knows
// no deprecation warning for .machine.files; v1.14.1 makes the section optional and warns.
func TestV113Validation(t *testing.T) {
	withFiles := func(withInstall bool) []byte {
		loaded, err := configloader.NewFromBytes(testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, ""))
		if err != nil {
			t.Fatal(err)
		}

		patched, err := loaded.PatchV1Alpha1(func(c *v1alpha1.Config) error {
			if !withInstall {
				c.MachineConfig.MachineInstall = nil //nolint:staticcheck // the legacy section under test
			}

			c.MachineConfig.MachineFiles = []*v1alpha1.MachineFile{{ //nolint:staticcheck // the deprecated section under test
				FileContent: "x", FilePath: "/var/f", FileOp: "create", FilePermissions: 0o644,
			}}

			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		raw, err := patched.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		if err != nil {
			t.Fatal(err)
		}

		return raw
	}

	old := nodeOf(t, "v1", "127.0.1.69", testutil.V113)
	fresh := nodeOf(t, "v2", "127.0.1.70", testutil.V114)
	em := &Emulator{nodes: []*Node{old, fresh}, log: t.Logf}

	_, err := applyMode(em, old, withFiles(false), machine.ApplyConfigurationRequest_STAGED)
	wantCode(t, err, codes.InvalidArgument, "1 error occurred:\n\t* v1alpha1.Config: 1 error occurred:\n\t* install instructions are required in \"metal\" mode\n\n")

	reply, err := applyMode(em, old, withFiles(true), machine.ApplyConfigurationRequest_STAGED)
	if err != nil || len(reply.Messages[0].Warnings) != 0 {
		t.Errorf("v1.13 with .machine.files: %v %v, want no warning", reply, err)
	}

	reply, err = applyMode(em, fresh, withFiles(false), machine.ApplyConfigurationRequest_STAGED)
	if err != nil || !slices.Contains(reply.Messages[0].Warnings, ".machine.files is deprecated; use dedicated configuration documents instead") {
		t.Errorf("v1.14 without .machine.install, with .machine.files: %v %v", reply, err)
	}
}

// TestTryRollbackCancel: a pending try-mode rollback is cancelled on v1.13 by any non-try
// request, a dry run too; on v1.14 only by one past its dry run.
func TestTryRollbackCancel(t *testing.T) {
	host := testutil.Factory(t)

	for _, c := range []struct {
		tag             string
		raw             func(t *testing.T) []byte
		dryRunCancelled bool
	}{
		{testutil.V113, func(t *testing.T) []byte {
			return testutil.GenConfig(t, nil, machinetype.TypeWorker, "/dev/vda", testutil.StockImage, "")
		}, true},
		{testutil.V114, func(t *testing.T) []byte {
			return gen114(t, machinetype.TypeWorker, host+"/metal-installer/"+testutil.EmptyID+":"+testutil.V114)
		}, false},
	} {
		n := nodeOf(t, "t1", "127.0.1.71", c.tag)
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}
		raw := c.raw(t)

		apply(t, em, n, raw)
		awaitBoot(t, em, n)

		if _, err := applyMode(em, n, raw, machine.ApplyConfigurationRequest_TRY); err != nil || n.rollback == nil {
			t.Fatalf("%s: try: %v", c.tag, err)
		}

		_, err := em.ApplyConfiguration(context.Background(), n, &machine.ApplyConfigurationRequest{Data: raw, Mode: machine.ApplyConfigurationRequest_NO_REBOOT, DryRun: true}, true)
		if err != nil || (n.rollback == nil) != c.dryRunCancelled {
			t.Errorf("%s: after a dry run, rollback pending %v (err %v)", c.tag, n.rollback != nil, err)
		}

		if _, err := applyMode(em, n, raw, machine.ApplyConfigurationRequest_NO_REBOOT); err != nil || n.rollback != nil {
			t.Errorf("%s: a no-reboot apply left the rollback pending (err %v)", c.tag, err)
		}

		em.cancelRollback(n)
	}
}

// TestKubeconfigStructure: the admin kubeconfig has the structure Talos generates, which
// talosctl v1.14 checks (pkg/kubeconfig/validate.go): one cluster named after the cluster, one
// user and one context admin@<cluster>, namespace default, the accepted CAs, a client
// certificate matching its key. The same from both config layouts.
func TestKubeconfigStructure(t *testing.T) {
	for name, raw := range map[string][]byte{
		"v1.13 layout": testutil.GenConfig(t, nil, machinetype.TypeControlPlane, "/dev/vda", testutil.StockImage, ""),
		"v1.14 layout": gen114(t, machinetype.TypeControlPlane, ""),
	} {
		n := nodeOf(t, "k1", "127.0.1.72", testutil.V114)
		em := &Emulator{nodes: []*Node{n}, log: t.Logf}

		cfg, err := configloader.NewFromBytes(raw)
		if err != nil {
			t.Fatal(err)
		}

		n.running = cfg

		out, err := em.AdminKubeconfig(n)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}

		var kc struct {
			Clusters []struct {
				Name    string
				Cluster struct {
					Server string
					CA     string `yaml:"certificate-authority-data"`
				}
			}
			Users []struct {
				Name string
				User struct {
					Crt string `yaml:"client-certificate-data"`
					Key string `yaml:"client-key-data"`
				}
			}
			Contexts []struct {
				Name    string
				Context struct{ Cluster, Namespace, User string }
			}
			CurrentContext string `yaml:"current-context"`
		}

		if err := yaml.Unmarshal(out, &kc); err != nil || len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}

		c, u, x := kc.Clusters[0], kc.Users[0], kc.Contexts[0]
		if c.Name != "demo" || u.Name != "admin@demo" || x.Name != "admin@demo" || kc.CurrentContext != "admin@demo" ||
			x.Context != (struct{ Cluster, Namespace, User string }{"demo", "default", "admin@demo"}) || c.Cluster.Server != "https://127.0.1.10:6443" {
			t.Errorf("%s: names and references:\n%s", name, out)
		}

		ca, _ := base64.StdEncoding.DecodeString(c.Cluster.CA)
		if !bytes.Contains(ca, cfg.K8sAPIServerCAConfig().IssuingCA().Crt) {
			t.Errorf("%s: the server CA is not the cluster's", name)
		}

		crt, _ := base64.StdEncoding.DecodeString(u.User.Crt)
		key, _ := base64.StdEncoding.DecodeString(u.User.Key)

		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}

		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if leaf.Subject.CommonName != "admin" || !slices.Equal(leaf.Subject.Organization, []string{"system:masters"}) {
			t.Errorf("%s: client certificate subject %v", name, leaf.Subject)
		}
	}
}
