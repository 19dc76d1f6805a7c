#!/usr/bin/env bash
# End-to-end check of the emulator's Talos v1.14 machines with the REAL talosctl v1.14.1 (and
# v1.13.9 where an older client matters), against the testbed Image Factory.
#
#   testbed/emulator/smoke_v114.sh      (binaries through testbed/gobuild.py)
#   TALOSCTL_114=... TALOSCTL_113=... EMULATOR=... IMAGE_FACTORY=... ETCD=... KUBE=... KWOK=... testbed/emulator/smoke_v114.sh
#
# Loopback only, on 127.0.9.x (away from the testbed's 127.0.1.x): the factory on
# 127.0.9.5:5000; new1 127.0.9.11 boots the v1.14.1 ISO (the default), old1 127.0.9.12 the
# v1.13.9 ISO. A `talosctl gen config --talos-version v1.14` config installs on new1 and is
# refused by old1 with the text talosctl v1.13.9's own loader gives for it. new1 then runs a real
# control plane (etcd, Kubernetes, kwok: the testbed's pinned builds); old1 joins it as a v1.13.9
# worker and is upgraded to v1.14.1; w1 127.0.9.13 joins with the validator's labels and taint
# in a KubeNodeConfig document.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
gobuild="$here/../gobuild.py"
pin() { grep "^$1=" "$here/../versions.env" | cut -d= -f2; }
# versions.env: the default release's talosctl (v1.14) and the previous one's (v1.13)
TALOSCTL_114=${TALOSCTL_114:-$(python3 "$gobuild" build talosctl | tail -n1)}
TALOSCTL_113=${TALOSCTL_113:-$(python3 "$gobuild" build talosctl "$(pin TALOSCTL_PREVIOUS_VERSION)" | tail -n1)}
EMULATOR=${EMULATOR:-$(python3 "$gobuild" build talos-emulator | tail -n1)}
IMAGE_FACTORY=${IMAGE_FACTORY:-$(python3 "$gobuild" build image-factory | tail -n1)}
ETCD=${ETCD:-$(python3 "$gobuild" build etcd "$(pin ETCD_VERSION)" | tail -n1)}
KUBE=${KUBE:-$(python3 "$gobuild" build kube "$(pin KUBERNETES_VERSION)" | tail -n1)}
KWOK=${KWOK:-$(python3 "$gobuild" build kwok "$(pin KWOK_VERSION)" | tail -n1)}

work=$(mktemp -d)
pids=()
factory=127.0.9.5:5000
new=127.0.9.11
old=127.0.9.12
worker=127.0.9.13

cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null && wait "$pid" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# shellcheck source=smoke_lib.sh
source "$here/smoke_lib.sh"
tc() { echo --talosconfig talosconfig -e $new -n $new; }
# run TALOSCTL DESCRIPTION EXPECT ARGS...: with either release's talosctl
run() { run_talosctl "$@"; }

"$IMAGE_FACTORY" serve --listen "$factory" --state factory-state >factory.out 2>>factory.log &
pids+=($!)
for _ in $(seq 100); do grep -qx "ready: http://$factory" factory.out && break; sleep 0.1; done
grep -qx "ready: http://$factory" factory.out || fail "image factory not ready"
echo 'customization: {}' >empty.schematic.yaml
empty=$(curl -sf -X POST --data-binary @empty.schematic.yaml "http://$factory/schematics" | jq -r .id)
image=$factory/metal-installer/$empty:v1.14.1

printf '%s\n' 'apiVersion: v1alpha1' 'kind: KubeNodeConfig' 'labels: {solana.io/role: validator}' \
    'taints: {solana.io/dedicated: "validator:NoSchedule"}' >worker-patch.yaml
# one cluster, one secrets bundle: v1.14 configs for new1 and w1, a v1.13 worker config for old1.
# Kubernetes: the testbed's build (Talos v1.14 supports 1.32 to 1.37, v1.13 1.31 to 1.36)
"$TALOSCTL_114" gen secrets -o secrets.yaml >/dev/null 2>&1
"$TALOSCTL_114" gen config demo "https://$new:6443" --with-secrets secrets.yaml --talos-version v1.14 --install-disk /dev/sda \
    --install-image "$image" --kubernetes-version "$(pin KUBERNETES_VERSION)" --config-patch-worker @worker-patch.yaml \
    --with-docs=false --with-examples=false -o . >/dev/null 2>&1
grep -q '^kind: UnattendedInstallConfig$' controlplane.yaml && ! grep -q '^    install:' controlplane.yaml ||
    fail "gen config --talos-version v1.14 did not render the v1.14 layout"
run "$TALOSCTL_114" "validate" 0 validate -c controlplane.yaml -m metal --strict
ok "talosctl v1.14.1: gen config --talos-version v1.14 renders UnattendedInstallConfig, KubeletConfig, ... and validates"

cat >nodes.yaml <<EOF
- name: new1
  address: $new
  hardware: {cpus: 8, memory: 32Gi, disks: [{dev_path: /dev/sda, serial: N1, size: 100Gi}]}
- name: old1
  address: $old
  hardware: {talos_version: v1.13.9, cpus: 8, memory: 32Gi, disks: [{dev_path: /dev/sda, serial: O1, size: 100Gi}]}
- name: w1
  address: $worker
  hardware: {cpus: 8, memory: 32Gi, disks: [{dev_path: /dev/sda, serial: W1, size: 100Gi}]}
EOF
"$EMULATOR" --nodes nodes.yaml --state state --reboot-delay 1s --etcd "$ETCD" --kube "$(pin KUBERNETES_VERSION)=$KUBE" \
    --kwok "$KWOK" --kwok-config "$here/../kwok/stages.yaml" >ready 2>>emulator.log &
pids+=($!)
for _ in $(seq 100); do grep -qx ready ready && break; sleep 0.1; done
grep -qx ready ready || fail "emulator not ready"

run "$TALOSCTL_114" "maintenance versions" 0 version --insecure -n $new -e $new
has "Tag:         v1.14.1" "new1 maintenance"
run "$TALOSCTL_114" "maintenance versions" 0 version --insecure -n $old -e $old
has "Tag:         v1.13.9" "old1 maintenance"
ok "maintenance: the boot media's release (NODES.yaml talos_version, default v1.14.1)"

# v1.13.9's loader is the oracle for the refusal: talosctl v1.13.9 loads the file the same way
run "$TALOSCTL_113" "v1.13.9 loader" fail validate -c controlplane.yaml -m metal
want=$(grep -o 'error decoding document [^:]*: "[A-Za-z]*" "v1alpha1": not registered' out | head -n1)
[[ -n "$want" ]] || fail "talosctl v1.13.9 gave no decoding error"
run "$TALOSCTL_114" "v1.13.9 machine" fail apply-config --insecure -n $old -e $old -f controlplane.yaml
has "InvalidArgument" "old1 refusal"
has "$want" "old1 refusal"
ok "v1.13.9 machine refuses the v1.14 config as v1.13.9 does: $want"

# a key v1.14 added to a kind v1.13 knows: a v1.13 config with ResolverConfig.hostDNS
"$TALOSCTL_113" gen config demo "https://$new:6443" --with-secrets secrets.yaml --install-disk /dev/sda \
    --install-image "${image%:*}:v1.13.9" --kubernetes-version "$(pin KUBERNETES_VERSION)" \
    --with-docs=false --with-examples=false -t worker -o old1.yaml >/dev/null 2>&1
cp old1.yaml v113.yaml
printf -- '---\napiVersion: v1alpha1\nkind: ResolverConfig\nhostDNS: {enabled: true}\n' >>v113.yaml
run "$TALOSCTL_113" "v1.13.9 loader, new key" fail validate -c v113.yaml -m metal
# the refusal's two lines: the document and line, then the unknown keys
refusal() { grep -A1 'unknown keys found during decoding' out | sed 's/^.*error decoding document/error decoding document/' | tr '\n' '|'; }
want=$(refusal)
[[ "$want" == *"hostDNS: {enabled: true}"* ]] || fail "talosctl v1.13.9 did not refuse hostDNS"
run "$TALOSCTL_114" "v1.13.9 machine, new key" fail apply-config --insecure -n $old -e $old -f v113.yaml
[[ "$(refusal)" == "$want" ]] || fail "old1 refusal of hostDNS: want '$want'"
ok "v1.13.9 machine refuses a key v1.14 added as v1.13.9 does: $want"

python3 - <<'PY'
text = open("controlplane.yaml").read()
# a .machine.kubelet section beside the KubeletConfig document: v1.14 refuses the mixture
text = text.replace("\nmachine:\n", "\nmachine:\n    kubelet:\n        extraConfig: {maxPods: 50}\n", 1)
open("mixed.yaml", "w").write(text)
PY
run "$TALOSCTL_114" "mixture, client" fail validate -c mixed.yaml -m metal
has "kubelet config is already set in v1alpha1 config (.machine.kubelet)" "client validation of the mixture"
run "$TALOSCTL_114" "mixture, machine" fail apply-config --insecure -n $new -e $new -f mixed.yaml
has "kubelet config is already set in v1alpha1 config (.machine.kubelet)" "new1 refuses the mixture"
ok "v1.14.1 machine refuses KubeletConfig beside .machine.kubelet, as talosctl v1.14.1 validate does"

run "$TALOSCTL_114" "install" 0 apply-config --insecure -n $new -e $new -f controlplane.yaml
lacks "install failed" "new1 install"
for _ in $(seq 100); do
    "$TALOSCTL_114" $(tc) version >out 2>&1 && break
    sleep 0.1
done
has "Tag:         v1.14.1" "new1 after install"
run "$TALOSCTL_114" "get version" 0 $(tc) get version -o jsonpath='{.spec.version}'
has "v1.14.1" "get version"
run "$TALOSCTL_114" "cmdline" 0 $(tc) read /proc/cmdline
has "talos.platform=metal console=tty0 slab_nomerge" "new1 cmdline"
lacks "init_on_alloc" "new1 cmdline (v1.14 drops it)"
ok "v1.14.1 machine installs the v1.14 config from the factory and runs v1.14.1 (v1.14 kernel defaults)"

run "$TALOSCTL_114" "kubelet.yaml" 0 $(tc) read /etc/kubernetes/kubelet.yaml
has "key: node-role.kubernetes.io/control-plane" "registerWithTaints from KubeNodeConfig"
has "clusterDomain: cluster.local" "clusterDomain from KubeNetworkConfig"
ok "kubelet.yaml from the v1.14 documents"

run "$TALOSCTL_114" "--mode=reboot, v1.14.1 client" fail $(tc) apply-config -f controlplane.yaml --mode=reboot
ok "talosctl v1.14.1 has no --mode=reboot: $(head -c 120 out | tr '\n' ' ')"
run "$TALOSCTL_113" "--mode=reboot, v1.13.9 client" fail $(tc) apply-config -f controlplane.yaml --mode=reboot
has "the REBOOT mode is not supported, please use AUTO or NO_REBOOT modes instead" "REBOOT refused by the machine"
ok "the v1.14.1 machine refuses REBOOT sent by talosctl v1.13.9 (Unimplemented)"

python3 - <<'PY'
text = open("controlplane.yaml").read()
text = text.replace("\nmachine:\n", "\nmachine:\n    env: {http_proxy: http://127.0.0.1:3128}\n", 1)
open("env.yaml", "w").write(text)
PY
run "$TALOSCTL_114" "auto dry run" 0 $(tc) apply-config -f env.yaml --dry-run
has "Applied configuration without a reboot (skipped in dry-run)" "auto on v1.14"
ok "v1.14: an AUTO apply of a change v1.13 would reboot for applies in place"

# old1, a v1.13.9 worker of new1's cluster (its API needs new1 configured: trustd), upgraded to
# v1.14.1 through the LifecycleService by talosctl v1.14.1 (before bootstrap: no drain, and
# --wait needs a ready machine, a healthy kubelet: poll the version)
run "$TALOSCTL_114" "old1 install" 0 apply-config --insecure -n $old -e $old -f old1.yaml
old_tc="--talosconfig talosconfig -e $old -n $old"
for _ in $(seq 100); do "$TALOSCTL_114" $old_tc version >out 2>&1 && break; sleep 0.1; done
has "Tag:         v1.13.9" "old1 installed"
run "$TALOSCTL_114" "upgrade" 0 $old_tc upgrade --image "$image" --drain=false --wait=false
for _ in $(seq 100); do
    "$TALOSCTL_114" $old_tc version >out 2>&1 && grep -qF "Tag:         v1.14.1" out && break
    sleep 0.1
done
has "Tag:         v1.14.1" "old1 after the upgrade"
run "$TALOSCTL_114" "old1 cmdline" 0 $old_tc read /proc/cmdline
lacks "init_on_alloc" "old1 boots v1.14's defaults"
run "$TALOSCTL_113" "--mode=reboot after the upgrade" fail $old_tc apply-config -f old1.yaml --mode=reboot
has "the REBOOT mode is not supported" "old1 now behaves as v1.14"
ok "talosctl v1.14.1 upgrades a v1.13.9 machine to v1.14.1, which then behaves as v1.14 (kernel defaults, REBOOT refused)"

run "$TALOSCTL_114" "worker install" 0 apply-config --insecure -n $worker -e $worker -f worker.yaml
run "$TALOSCTL_114" "bootstrap" 0 $(tc) bootstrap
run "$TALOSCTL_114" "health" 0 $(tc) health --control-plane-nodes $new --worker-nodes $worker,$old --wait-timeout 3m
ok "a v1.14 control plane, a v1.14 worker and the upgraded worker: bootstrap, talosctl health passes"

run "$TALOSCTL_114" "kubeconfig" 0 $(tc) kubeconfig kubeconfig --force --merge=false
ok "talosctl v1.14.1 accepts the kubeconfig's structure (pkg/kubeconfig/validate.go)"

field() { grep -m1 "$1" kubeconfig | awk '{print $2}' | base64 -d >"$2"; }
field certificate-authority-data ca.crt
field client-certificate-data admin.crt
field client-key-data admin.key
# the NodeApplyController writes them on a pass after the registration; a pass that loses a
# race with the kubelet's status update (409) is retried on the next one, as Talos requeues it
want='["validator",[["solana.io/dedicated","validator","NoSchedule"]]]'
for _ in $(seq 30); do
    curl -sf --cacert ca.crt --cert admin.crt --key admin.key "https://$new:6443/api/v1/nodes/w1" >node.json ||
        fail "reading Node w1 from the API server"
    # (the node controller's node.kubernetes.io/not-ready taint may still be there: only ours count)
    jq -c '[.metadata.labels["solana.io/role"], [.spec.taints[] | select(.key | startswith("solana.io/")) | [.key, .value, .effect]]]' node.json >out
    grep -qF -- "$want" out && break
    sleep 1
done
has "$want" "w1's labels and taints"
run "$TALOSCTL_114" "worker kubelet.yaml" 0 --talosconfig talosconfig -e $new -n $worker read /etc/kubernetes/kubelet.yaml
has "key: solana.io/dedicated" "w1 registers with its taint (v1.14)"
ok "w1's Node: KubeNodeConfig's label and taint, the taint registered by the kubelet itself (v1.14)"

echo "PASS: $passed checks"
