#!/usr/bin/env bash
# End-to-end check of `talosctl upgrade-k8s` (the REAL talosctl v1.14.1) against emulated Talos
# v1.14.1 machines running real etcd and Kubernetes: 3 control planes and 1 worker deployed at
# KUBERNETES_VERSION, upgraded to KUBERNETES_UPGRADE_VERSION (testbed/versions.env).
#
#   testbed/emulator/smoke_upgrade_k8s.sh      (binaries through testbed/gobuild.py; KEEP=1 keeps its directory)
#
# Loopback only, on 127.0.12.x (away from the testbed's 127.0.1.x and the other smoke tests'
# 127.0.9.x): the factory on 127.0.12.5:5000, cp1..cp3 127.0.12.11-13 behind the VIP 127.0.12.10
# (the cluster endpoint, as the collection deploys it), w1 127.0.12.21.
# Checks: a dry run changes nothing; a version without a build (1.37.1) and the pull-failure
# fault switch fail the upgrade at its pre-pull, changing nothing, as do an unsupported path and
# a config naming a Kubernetes Talos v1.14 does not run; the upgrade itself leaves every
# kube-apiserver, kube-controller-manager and kube-scheduler running the new build (the
# processes, /version of each API server), their mirror pods naming the new images and every
# Node's kubelet at the new version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
gobuild="$here/../gobuild.py"
pin() { grep "^$1=" "$here/../versions.env" | cut -d= -f2; }
build() { python3 "$gobuild" build "$@" | tail -n1; }
TALOSCTL=${TALOSCTL:-$(build talosctl)}
EMULATOR=${EMULATOR:-$(build talos-emulator)}
IMAGE_FACTORY=${IMAGE_FACTORY:-$(build image-factory)}
ETCD=$(build etcd "$(pin ETCD_VERSION)")
KWOK=$(build kwok "$(pin KWOK_VERSION)")
from=$(pin KUBERNETES_VERSION)
to=$(pin KUBERNETES_UPGRADE_VERSION)
KUBE_FROM=$(build kube "$from")
KUBE_TO=$(build kube "$to")

work=$(mktemp -d)
pids=()
factory=127.0.12.5:5000
cps=(127.0.12.11 127.0.12.12 127.0.12.13)
worker=127.0.12.21
vip=127.0.12.10
cp=${cps[0]}

cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null && wait "$pid" || true
    done
    if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"

# shellcheck source=smoke_lib.sh
source "$here/smoke_lib.sh"
tc() { echo --talosconfig talosconfig -e $cp -n $cp; }
k() { kubectl --kubeconfig kubeconfig "$@"; }
control() { curl -sf --unix-socket state/control.sock -X POST "http://emulator/$1"; }

"$IMAGE_FACTORY" serve --listen "$factory" --state factory-state >factory.out 2>>factory.log &
pids+=($!)
for _ in $(seq 100); do grep -qx "ready: http://$factory" factory.out && break; sleep 0.1; done
grep -qx "ready: http://$factory" factory.out || fail "image factory not ready"
echo 'customization: {}' >empty.schematic.yaml
empty=$(curl -sf -X POST --data-binary @empty.schematic.yaml "http://$factory/schematics" | jq -r .id)

"$TALOSCTL" gen secrets -o secrets.yaml >/dev/null 2>&1
printf 'apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: %s\nlink: enp1s0\n' $vip >vip.yaml
"$TALOSCTL" gen config demo "https://$vip:6443" --with-secrets secrets.yaml --talos-version v1.14 --install-disk /dev/sda \
    --install-image "$factory/metal-installer/$empty:v1.14.1" --kubernetes-version "$from" --config-patch-control-plane @vip.yaml \
    --with-docs=false --with-examples=false -o . >/dev/null 2>&1

{
    for i in 1 2 3; do
        echo "- {name: cp$i, address: ${cps[$((i - 1))]}, hardware: {cpus: 4, memory: 16Gi, nics: [{name: enp1s0, mac: '52:54:00:00:0c:0$i'}], disks: [{dev_path: /dev/sda, serial: C$i, size: 100Gi}]}}"
    done
    echo "- {name: w1, address: $worker, hardware: {cpus: 8, memory: 32Gi, nics: [{name: enp1s0, mac: '52:54:00:00:0c:21'}], disks: [{dev_path: /dev/sda, serial: W1, size: 100Gi}]}}"
} >nodes.yaml
"$EMULATOR" --nodes nodes.yaml --state state --reboot-delay 1s --etcd "$ETCD" --kube "$from=$KUBE_FROM" --kube "$to=$KUBE_TO" \
    --kwok "$KWOK" --kwok-config "$here/../kwok/stages.yaml" >ready 2>>emulator.log &
pids+=($!)
for _ in $(seq 100); do grep -qx ready ready && break; sleep 0.1; done
grep -qx ready ready || fail "emulator not ready"

for ip in "${cps[@]}"; do run "install $ip" 0 apply-config --insecure -n "$ip" -e "$ip" -f controlplane.yaml; done
run "install w1" 0 apply-config --insecure -n $worker -e $worker -f worker.yaml
for _ in $(seq 100); do "$TALOSCTL" $(tc) version >out 2>&1 && break; sleep 0.2; done
run "bootstrap" 0 $(tc) bootstrap
run "health" 0 $(tc) health --control-plane-nodes "$(IFS=,; echo "${cps[*]}")" --worker-nodes $worker --wait-timeout 5m
run "kubeconfig" 0 $(tc) kubeconfig kubeconfig --force --merge=false
ok "3 control planes and a worker at Kubernetes $from, healthy"

# the mirror pods of every control plane's static pods, Ready, at the deployed version
images() { k -n kube-system get pods -l tier=control-plane -o jsonpath='{range .items[*]}{.metadata.name} {.spec.containers[0].image} {.status.hostIP} {.metadata.annotations.talos\.dev/config-version} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | sort; }
for _ in $(seq 60); do
    images >out
    [[ $(grep -c " True$" out) == 9 ]] && break
    sleep 1
done
[[ $(grep -c ":$from .* True$" out) == 9 ]] || fail "9 Ready mirror pods at $from"
ok "mirror pods: $(head -n1 out)"

# one line per static pod program: node, component, kube binary version
processes() {
    for pid in $(pgrep -f "$KUBE_FROM|$KUBE_TO"); do
        tr '\0' ' ' <"/proc/$pid/cmdline" | awk -v from="$KUBE_FROM" -v to="$KUBE_TO" -v f="$from" -v t="$to" '
            { v = ($1 == from) ? f : (($1 == to) ? t : "?"); for (i = 1; i <= NF; i++) if ($i == "--bind-address") a = $(i + 1); print a, $2, v }'
    done | grep '^127\.0\.12\.' | sort  # (other testbeds run the same builds)
}
state_of_cluster() {
    {
        processes
        for ip in "${cps[@]}"; do
            for type in apiserverconfigs controllermanagerconfigs schedulerconfigs kubeletspecs; do
                "$TALOSCTL" --talosconfig talosconfig -e $cp -n "$ip" get $type -o yaml | grep -E '^ *(id|version|image):'
            done
        done
        images | cut -d' ' -f1-4
    } >"$1"
}
state_of_cluster before

# first, before anything pulled them (a node keeps what it pulled: the switch fails only new pulls)
control "pull-failure?node=w1&version=$to" >/dev/null
run "fault switch" fail $(tc) upgrade-k8s --from "$from" --to "$to"
cp out fault.out
has "error pre-pulling ghcr.io/siderolabs/kubelet:$to on $worker" "pull-failure fault switch"
control "pull-failure?node=w1&version=" >/dev/null
state_of_cluster after
diff before after >out || fail "the failed upgrade changed the cluster"
ok "the pull-failure fault switch on w1 fails the upgrade at w1's kubelet pre-pull"

SECONDS=0
# without --from: talosctl detects the version from the mirror pods (detect.go)
run "dry run" 0 $(tc) upgrade-k8s --to "$to" --dry-run
cp out dry-run.out
has "automatically detected the lowest Kubernetes version ${from#v}" "dry run"
has "update kube-apiserver: ${from#v} -> ${to#v}" "dry run"
has "skipped in dry-run" "dry run"
state_of_cluster after
diff before after >out || fail "the dry run changed the cluster"
ok "upgrade-k8s --dry-run: reports the updates, changes nothing (${SECONDS}s)"

run "no build" fail $(tc) upgrade-k8s --from "$from" --to 1.37.1
cp out no-build.out
has 'error pre-pulling registry.k8s.io/kube-apiserver:v1.37.1' "version without a build"
has 'NotFound' "version without a build"
state_of_cluster after
diff before after >out || fail "the failed upgrade changed the cluster"
ok "upgrade-k8s to a version without a build fails at the pre-pull: $(grep -o 'error pre-pulling.*' no-build.out | head -c 200)"

run "unsupported path" fail $(tc) upgrade-k8s --from "$from" --to 1.38.0
has 'unsupported upgrade path 1.36->1.38 (from "1.36.3" to "1.38.0")' "path 1.36->1.38"
printf 'apiVersion: v1alpha1\nkind: KubeAPIServerConfig\nimage: registry.k8s.io/kube-apiserver:v1.38.0\n' >too-new.yaml
run "1.38 in a config" fail --talosconfig talosconfig -e $cp -n "${cps[2]}" patch machineconfig --mode no-reboot --patch @too-new.yaml
has "version of Kubernetes 1.38.0 is too new to be used with Talos 1.14.1" "a v1.14.1 machine's validation"
state_of_cluster after
diff before after >out || fail "the refusals changed the cluster"
ok "refused as Talos v1.14.1 does: the path 1.36->1.38 (talosctl), Kubernetes 1.38.0 in a config (the machine)"


SECONDS=0
run "upgrade" 0 $(tc) upgrade-k8s --from "$from" --to "$to"
took=$SECONDS
cp out upgrade.out
has "updating manifests" "upgrade"
ok "talosctl upgrade-k8s --from $from --to $to succeeded in ${took}s"

processes >out
[[ $(grep -c " $to$" out) == 9 && $(wc -l <out) == 9 ]] || fail "every static pod program runs $to"
ok "every kube-apiserver, kube-controller-manager and kube-scheduler runs the $to build"

: >out
for ip in "${cps[@]}" $vip; do
    k --server "https://$ip:6443" get --raw /version | jq -r .gitVersion >>out
done
[[ $(grep -cx "$to" out) == 4 ]] || fail "/version of every API server and through the VIP"
ok "/version of every API server and through the VIP: $to"

images >out
[[ $(grep -c ":$to .* True$" out) == 9 ]] || fail "9 Ready mirror pods at $to"
for ip in "${cps[@]}"; do grep -q " $ip " out || fail "mirror pods on $ip"; done
ok "mirror pods name the $to images, on their nodes, Ready"

k get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion}{"\n"}{end}' >out
[[ $(grep -c " $to$" out) == 4 ]] || fail "every Node's kubelet at $to"
ok "every Node's kubeletVersion: $to"

SECONDS=0
run "health after" 0 $(tc) health --control-plane-nodes "$(IFS=,; echo "${cps[*]}")" --worker-nodes $worker --wait-timeout 2m
run "rerun" 0 $(tc) upgrade-k8s --from "$to" --to "$to"
grep -q " > update " out && fail "the rerun updated something"
ok "after the upgrade talosctl health passes; a rerun at $to updates nothing (${SECONDS}s)"

# a static pod whose image has no build: the pull fails, the program stops, its mirror pod waits
sched() {
    printf 'apiVersion: v1alpha1\nkind: KubeSchedulerConfig\nimage: registry.k8s.io/kube-scheduler:%s\n' "$1" >sched.yaml
    run "scheduler $1" 0 --talosconfig talosconfig -e $cp -n "${cps[2]}" patch machineconfig --mode no-reboot --patch @sched.yaml
}
# the kubelet replaces a mirror pod whose static pod changed (delete, then create): between the
# two the pod is not found, which is no answer yet, not a failure
mirror() { k -n kube-system get pod kube-scheduler-cp3 -o jsonpath='{.spec.containers[0].image} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].state.waiting.reason}' || true; }
sched v1.37.1
for _ in $(seq 30); do mirror >out; grep -q "v1.37.1 False ErrImagePull" out && break; sleep 1; done
has "v1.37.1 False ErrImagePull" "kube-scheduler-cp3 with an image without a build"
processes >out
grep -q "^${cps[2]} kube-scheduler" out && fail "cp3 still runs a kube-scheduler"
grep -q "cp3: kube-scheduler: ErrImagePull" emulator.log || fail "the pull failure is not logged"
sched "$to"
for _ in $(seq 30); do mirror >out; grep -q "$to True" out && break; sleep 1; done
has "$to True" "kube-scheduler-cp3 back at $to"
ok "an image tag without a build: cp3's kube-scheduler stops, its mirror pod waits with ErrImagePull; the build's tag brings it back"

echo "PASS: $passed checks (upgrade ${took}s)"
