#!/usr/bin/env bash
# Smoke test of the Talos node emulator against the REAL talosctl and the testbed Image
# Factory (testbed/imagefactory).
#
#   testbed/emulator/smoke_test.sh          (builds the binaries through testbed/gobuild.py)
#   TALOSCTL=... EMULATOR=... IMAGE_FACTORY=... testbed/emulator/smoke_test.sh
#
# Loopback only, on 127.0.11.x (away from the testbed's 127.0.1.x, so it runs beside the
# integration tests of the machines). The Image Factory on 127.0.11.5:5000 registers two schematics: "tuned" (1G huge
# pages, the amd-ucode extension) and the empty one. Nodes: cp1 127.0.11.11 (uki, installs the
# tuned image), cp2 127.0.11.12 (uki, the stock installer; extraKernelArgs that UKI boots
# ignore), w1 127.0.11.20 (legacy grub: its extraKernelArgs apply, the schematic's do not; a user
# volume on its second disk), w2 127.0.11.21 (grub with grubUseUKICmdline: the tuned image's
# command line), f1 127.0.11.22 (installs that must fail: unknown schematic, another registry,
# a newer Talos release; then it installs v1.13.8 and is upgraded, once falling back). Cluster
# endpoint https://127.0.11.10:6443.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
gobuild="$here/../gobuild.py"
# the machines here run Talos v1.13: the talosctl of that release (versions.env's previous one)
TALOSCTL=${TALOSCTL:-$(python3 "$gobuild" build talosctl "$(grep '^TALOSCTL_PREVIOUS_VERSION=' "$here/../versions.env" | cut -d= -f2)" | tail -n1)}
EMULATOR=${EMULATOR:-$(python3 "$gobuild" build talos-emulator | tail -n1)}
IMAGE_FACTORY=${IMAGE_FACTORY:-$(python3 "$gobuild" build image-factory | tail -n1)}
[[ -x "$IMAGE_FACTORY" ]] || { echo "FAIL: no image-factory binary ($IMAGE_FACTORY)" >&2; exit 1; }

work=$(mktemp -d)
emulator_pid=""
factory_pid=""
factory=127.0.11.5:5000
version=v1.13.9

cleanup() {
    for pid in "$emulator_pid" "$factory_pid"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
# shellcheck source=smoke_lib.sh
source "$here/smoke_lib.sh"

# json DESCRIPTION JQ ARGS...: run talosctl (it must succeed), slurp the JSON objects it
# prints on stdout and write jq's compact result to ./out
json() {
    local what=$1 filter=$2
    shift 2
    local rc=0
    "$TALOSCTL" "$@" >json.out 2>json.err || rc=$?
    [[ $rc -eq 0 ]] || { cp json.err out; fail "$what: talosctl $* exited $rc"; }
    jq -c -s "$filter" json.out >out || fail "$what: output is not JSON"
}

# same VALUE DESCRIPTION: ./out must be exactly VALUE
same() { [[ "$(cat out)" == "$1" ]] || fail "$2: got '$(cat out)', want '$1'"; }

tc() { echo --talosconfig "$work/talosconfig"; }

# rebooted NODE: after an install or a reboot-needing apply the node refuses connections for
# the reboot delay, then boots (configured: insecure calls fail in the TLS handshake instead)
rebooted() {
    local seen_down=""
    for _ in $(seq 100); do
        if "$TALOSCTL" version --insecure -n "$1" -e "$1" >reboot.out 2>&1 || ! grep -q "connection refused" reboot.out; then
            [[ -n $seen_down ]] || fail "$1 did not go down for its reboot"
            return 0
        fi
        seen_down=1
        sleep 0.1
    done
    fail "$1 did not come back from its reboot"
}

start_emulator() {
    : >ready
    "$EMULATOR" --nodes nodes.yaml --state state --reboot-delay 1s >ready 2>>emulator.log &
    emulator_pid=$!
    for _ in $(seq 100); do
        grep -qx ready ready && return 0
        kill -0 "$emulator_pid" 2>/dev/null || fail "emulator exited"
        sleep 0.1
    done
    fail "emulator not ready"
}

stop_emulator() {
    kill -TERM "$emulator_pid"
    local rc=0
    wait "$emulator_pid" || rc=$?
    [[ $rc -eq 0 ]] || fail "emulator exited $rc on SIGTERM"
    kill -0 "$emulator_pid" 2>/dev/null && fail "emulator still running"
    emulator_pid=""
}

# --- the Image Factory -----------------------------------------------------------------------

"$IMAGE_FACTORY" serve --listen "$factory" --state factory-state >factory.out 2>>factory.log &
factory_pid=$!
for _ in $(seq 100); do
    grep -qx "ready: http://$factory" factory.out && break
    kill -0 "$factory_pid" 2>/dev/null || fail "image factory exited: $(cat factory.log)"
    sleep 0.1
done
grep -qx "ready: http://$factory" factory.out || fail "image factory not ready"

register() {
    curl -sf -X POST --data-binary @"$1" "http://$factory/schematics" | jq -r .id
}

cat >tuned.schematic.yaml <<'EOF'
customization:
  extraKernelArgs: [hugepagesz=1G, hugepages=64]
  systemExtensions:
    officialExtensions: [siderolabs/amd-ucode]
EOF
echo 'customization: {}' >empty.schematic.yaml
tuned=$(register tuned.schematic.yaml)
empty=$(register empty.schematic.yaml)
[[ "$tuned" =~ ^[0-9a-f]{64}$ ]] || fail "registering the tuned schematic: '$tuned'"
[[ "$empty" == 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba ]] || fail "empty schematic: '$empty'"
ok "image factory ready: tuned schematic $tuned"

tuned_image=$factory/metal-installer/$tuned:$version
stock_image=ghcr.io/siderolabs/installer:$version

# --- configs -------------------------------------------------------------------------------

gen() { "$TALOSCTL" gen config demo https://127.0.11.10:6443 --with-secrets secrets.yaml \
        --with-docs=false --with-examples=false -o - "$@"; }

"$TALOSCTL" gen secrets -o secrets.yaml >/dev/null 2>&1
gen -t controlplane --install-disk /dev/nvme0n1 --install-image "$tuned_image" >cp1.yaml 2>/dev/null
cat >cp2-patch.yaml <<'EOF'
machine:
  install:
    grubUseUKICmdline: false
    extraKernelArgs: [hugepages=1024]
EOF
cat >w1-patch.yaml <<'EOF'
machine:
  install:
    grubUseUKICmdline: false
    extraKernelArgs: [default_hugepagesz=1G, hugepagesz=1G, hugepages=16, -selinux]
EOF
gen -t controlplane --install-disk /dev/nvme0n1 --install-image "$stock_image" --config-patch @cp2-patch.yaml >cp2.yaml 2>/dev/null
gen -t worker --install-disk /dev/sda --install-image "$tuned_image" --config-patch @w1-patch.yaml >w1.yaml 2>/dev/null
gen -t worker --install-disk /dev/sda --install-image "$tuned_image" >w2.yaml 2>/dev/null
cat >>w1.yaml <<'EOF'
---
apiVersion: v1alpha1
kind: UserVolumeConfig
name: data
provisioning:
  diskSelector:
    match: disk.serial == "WDATA1"
  maxSize: 100GiB
filesystem:
  type: ext4
---
apiVersion: v1alpha1
kind: UserVolumeConfig
name: nowhere
provisioning:
  diskSelector:
    match: disk.model == "no such model"
  maxSize: 10GiB
EOF
unknown=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
gen -t worker --install-disk /dev/sda --install-image "$factory/metal-installer/$unknown:$version" >f1-unknown.yaml 2>/dev/null
gen -t worker --install-disk /dev/sda --install-image "factory.talos.dev/metal-installer/$tuned:$version" >f1-remote.yaml 2>/dev/null
gen -t worker --install-disk /dev/sda --install-image "$factory/metal-installer/$tuned:v1.14.2" >f1-tag.yaml 2>/dev/null
gen -t worker --install-disk /dev/sda --install-image "$factory/metal-installer/$tuned:v1.13.8" >f1-old.yaml 2>/dev/null
gen -t talosconfig >talosconfig 2>/dev/null
"$TALOSCTL" $(tc) config endpoint 127.0.11.11
"$TALOSCTL" $(tc) config node 127.0.11.11

# a certSANs change (applies immediately) and an env change (needs a reboot)
sed 's/^    certSANs: \[\]$/    certSANs:\n        - cp1.example.test/' cp1.yaml >cp1-sans.yaml
sed 's/^    certSANs: \[\]$/    certSANs: []\n    env:\n        FOO: bar/' cp1.yaml >cp1-env.yaml
sed 's#https://127.0.11.10:6443#not a url#' cp1.yaml >invalid.yaml
grep -q cp1.example.test cp1-sans.yaml && grep -q FOO cp1-env.yaml || fail "could not derive test configs"

# the machines boot the v1.13.9 ISO (talos_version; the default is the newest release)
cat >nodes.yaml <<'EOF'
- name: cp1
  address: 127.0.11.11
  hardware: {talos_version: v1.13.9, cpus: 32, numa_nodes: 2, memory: 512Gi, boot_mode: uki,
             disks: [{dev_path: /dev/nvme0n1, serial: CP1SYS, size: 960Gi}]}
- name: cp2
  address: 127.0.11.12
  hardware: {talos_version: v1.13.9, cpus: 32, numa_nodes: 2, memory: 512Gi, boot_mode: uki,
             disks: [{dev_path: /dev/nvme0n1, serial: CP2SYS, size: 960Gi}]}
- name: w1
  address: 127.0.11.20
  hardware: {talos_version: v1.13.9, cpus: 16, numa_nodes: 1, memory: 64Gi, boot_mode: grub,
             disks: [{dev_path: /dev/sda, serial: WSYS1, size: 480Gi},
                     {dev_path: /dev/sdb, serial: WDATA1, size: 1.92T}]}
- name: w2
  address: 127.0.11.21
  hardware: {talos_version: v1.13.9, cpus: 16, numa_nodes: 1, memory: 128Gi, boot_mode: grub,
             disks: [{dev_path: /dev/sda, serial: WSYS2, size: 480Gi}]}
- name: f1
  address: 127.0.11.22
  hardware: {talos_version: v1.13.9, cpus: 4, memory: 16Gi, disks: [{dev_path: /dev/sda, serial: FSYS, size: 100Gi}]}
EOF

# a NODES.yaml carrying the kernel command line would hand the emulator the answer: refused
sed 's/^  address: 127.0.11.11$/  address: 127.0.11.11\n  schematic_kernel_args: [hugepages=1]/' nodes.yaml >old-nodes.yaml
rc=0
"$EMULATOR" --nodes old-nodes.yaml --state old-state >out 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "NODES.yaml with schematic_kernel_args was accepted"
has '"schematic_kernel_args" is no longer accepted' "schematic_kernel_args refused"
ok "NODES.yaml with schematic_kernel_args is refused"

start_emulator
ok "emulator ready: $(grep -c '^ready: ' ready) nodes"

# --- 1. maintenance mode -------------------------------------------------------------------

run "maintenance version" 0 version --insecure -n 127.0.11.11 -e 127.0.11.11
has "Tag:         v1.13.9" "maintenance version"
ok "maintenance: version --insecure answers v1.13.9"

run "authenticated call in maintenance" fail $(tc) version
has "x509: certificate signed by unknown authority" "authenticated call in maintenance"
ok "maintenance: an authenticated call fails verifying the self-signed certificate"

run "invalid config" fail apply-config --insecure -n 127.0.11.11 -e 127.0.11.11 -f invalid.yaml
has "InvalidArgument" "invalid config"
ok "maintenance: an invalid config is rejected with InvalidArgument"

run "maintenance dry run" 0 apply-config --insecure --dry-run -n 127.0.11.11 -e 127.0.11.11 -f cp1.yaml
has "Dry run summary:" "maintenance dry run"
has "Config diff:" "maintenance dry run"
ok "maintenance: dry run shows the whole config as new"

# installs that cannot pull their image: the node stays in maintenance mode
run "f1 unknown schematic" 0 apply-config --insecure -n 127.0.11.22 -e 127.0.11.22 -f f1-unknown.yaml
has "install failed: pulling image \"$factory/metal-installer/$unknown:$version\": 404 Not Found: MANIFEST_UNKNOWN: schematic $unknown is not registered; the node stays in maintenance mode" "f1 unknown schematic"
run "f1 remote factory" 0 apply-config --insecure -n 127.0.11.22 -e 127.0.11.22 -f f1-remote.yaml
has "install failed: image \"factory.talos.dev/metal-installer/$tuned:$version\": registry factory.talos.dev cannot be reached from the testbed" "f1 remote factory"
run "f1 other release" 0 apply-config --insecure -n 127.0.11.22 -e 127.0.11.22 -f f1-tag.yaml
has "installer tag v1.14.2 cannot boot on the emulated machines (releases v1.13.0 to v1.13.9, v1.14.0 to v1.14.1 only)" "f1 other release"
run "f1 still in maintenance" 0 apply-config --insecure --dry-run -n 127.0.11.22 -e 127.0.11.22 -f f1-tag.yaml
has "Dry run summary:" "f1 still in maintenance"
grep -q "GET /v2/metal-installer/$unknown/manifests/$version" factory.log || fail "the factory saw no pull of the unknown schematic"
ok "installs whose image cannot be pulled fail, the node stays in maintenance mode"

# the worker first: its config has no OS CA key, so its API stays down until a control plane
# holding that key is configured (real workers wait for trustd)
run "w1 apply" 0 apply-config --insecure -n 127.0.11.20 -e 127.0.11.20 -f w1.yaml
run "w1 without control plane" fail $(tc) -e 127.0.11.20 -n 127.0.11.20 version
has "connect: connection refused" "w1 without control plane"
ok "worker configured before any control plane: its API is down (connection refused)"

run "maintenance apply" 0 apply-config --insecure -n 127.0.11.11 -e 127.0.11.11 -f cp1.yaml
has "Applied configuration without a reboot" "maintenance apply"
rebooted 127.0.11.11
ok "maintenance: apply-config --insecure configures cp1"

run "w1 after control plane" 0 $(tc) -e 127.0.11.20 -n 127.0.11.20 version
has "NODE:        127.0.11.20" "w1 after control plane"
ok "w1's API came up with a certificate signed by cp1's OS CA key"

run "w2 apply" 0 apply-config --insecure -n 127.0.11.21 -e 127.0.11.21 -f w2.yaml
has "Applied configuration without a reboot" "w2 apply"
rebooted 127.0.11.21
ok "w2 (grub) installs the tuned image"

# --- 2. mTLS ---------------------------------------------------------------------------------

run "version" 0 $(tc) version
has "Tag:         v1.13.9" "version"
has "Enabled:     RBAC" "version"
ok "configured: talosconfig version shows v1.13.9 with RBAC"

run "insecure on configured" fail version --insecure -n 127.0.11.11 -e 127.0.11.11
# TLS 1.3: the server rejects the missing client certificate after the client finished its
# side of the handshake, so the client sees the alert or a broken connection
grep -qE "certificate required|broken pipe|connection reset" out || fail "insecure on configured: not refused by TLS"
ok "configured: a client without certificate is refused"

# --- 3. authenticated apply ----------------------------------------------------------------

run "dry run unchanged" 0 $(tc) apply-config --dry-run -f cp1.yaml
has "Applied configuration without a reboot (skipped in dry-run)." "dry run unchanged"
has "No changes." "dry run unchanged"
ok "dry run of the same config: No changes."

run "dry run changed" 0 $(tc) apply-config --dry-run -f cp1-sans.yaml
has "+        - cp1.example.test" "dry run changed"
lacks "No changes." "dry run changed"
ok "dry run of a changed config shows the diff"

run "dry run reboot" 0 $(tc) apply-config --dry-run -f cp1-env.yaml
has "Applied configuration with a reboot (skipped in dry-run)." "dry run reboot"
ok "dry run of an env change: needs a reboot"

run "no-reboot refused" fail $(tc) apply-config --mode no-reboot -f cp1-env.yaml
has "this config change can't be applied in immediate mode" "no-reboot refused"
ok "--mode no-reboot refuses a change needing a reboot"

run "try" 0 $(tc) apply-config --mode try --timeout 2s -f cp1-sans.yaml
has "automatically reverted back in 2s" "try"
# (the check runs in try mode too: like Talos, any non-try request cancels the rollback)
run "try applied" 0 $(tc) apply-config --mode try --dry-run -f cp1-sans.yaml
has "No changes." "try applied"
sleep 2.5
run "try rolled back" 0 $(tc) apply-config --dry-run -f cp1.yaml
has "No changes." "try rolled back"
ok "try mode applies, then rolls back after its timeout"

run "staged" 0 $(tc) apply-config --mode staged -f cp1-sans.yaml
has "Staged configuration to be applied after the next reboot" "staged"
run "staged not running" 0 $(tc) apply-config --dry-run -f cp1.yaml
has "No changes." "staged not running"
ok "staged config is not running yet"

# --- 4. bootstrap ----------------------------------------------------------------------------

run "bootstrap" 0 $(tc) bootstrap
run "bootstrap again" fail $(tc) bootstrap
has "AlreadyExists" "bootstrap again"
has "etcd data directory is not empty" "bootstrap again"
ok "bootstrap succeeds once, then AlreadyExists"

# --- cp2 joins the bootstrapped etcd ----------------------------------------------------------

run "cp2 apply" 0 apply-config --insecure -n 127.0.11.12 -e 127.0.11.12 -f cp2.yaml
has "extra kernel arguments are not supported when booting using SDBoot" "cp2 apply"
rebooted 127.0.11.12
ok "cp2 configured (its uki boot ignores extraKernelArgs, with Talos' warning)"

run "worker bootstrap" fail $(tc) -n 127.0.11.20 bootstrap
has "bootstrap is only available on control plane nodes" "worker bootstrap"
ok "bootstrap on a worker: Unimplemented, control plane only"

run "cp2 bootstrap" fail $(tc) -e 127.0.11.12 -n 127.0.11.12 bootstrap
has "AlreadyExists" "cp2 bootstrap"
ok "cp2 joined the bootstrapped etcd: bootstrap there is AlreadyExists"

# --- 5. kernel view ------------------------------------------------------------------------

# what every Talos v1.13.9 metal boot entry starts with (platform, console, machinery's defaults)
base="talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never"

run "cp1 cmdline" 0 $(tc) read /proc/cmdline
same "$base hugepagesz=1G hugepages=64" "cp1 cmdline"
run "cp1 meminfo" 0 $(tc) read /proc/meminfo
has "Hugetlb:        67108864 kB" "cp1 meminfo"
has "Hugepagesize:       2048 kB" "cp1 meminfo"
run "cp1 node1 meminfo" 0 $(tc) read /sys/devices/system/node/node1/meminfo
has "Node 1 MemTotal:" "cp1 node1 meminfo"
run "cp1 nr_hugepages 1G node1" 0 $(tc) read /sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages
same "32" "cp1 node1 1G pages"
ok "uki: the installed image's schematic kernel args apply (64 x 1G pages, 32 per NUMA node)"

run "cp2 cmdline" 0 $(tc) -n 127.0.11.12 read /proc/cmdline
same "$base" "cp2 cmdline"
run "cp2 meminfo" 0 $(tc) -n 127.0.11.12 read /proc/meminfo
has "HugePages_Total:       0" "cp2 meminfo"
has "Hugetlb:               0 kB" "cp2 meminfo"
ok "uki, stock installer: no tuning args (machine.install.extraKernelArgs ignored), no huge pages"

run "w1 cmdline" 0 $(tc) -n 127.0.11.20 read /proc/cmdline
same "${base/ selinux=1/} default_hugepagesz=1G hugepagesz=1G hugepages=16" "w1 cmdline"
run "w1 meminfo" 0 $(tc) -n 127.0.11.20 read /proc/meminfo
has "HugePages_Total:      16" "w1 meminfo"
has "Hugepagesize:    1048576 kB" "w1 meminfo"
ok "grub, legacy command line: extraKernelArgs apply (-selinux removes selinux=1), the schematic's do not"

run "w2 cmdline" 0 $(tc) -n 127.0.11.21 read /proc/cmdline
same "$base hugepagesz=1G hugepages=64" "w2 cmdline"
ok "grub with grubUseUKICmdline: the installed image's command line"

run "w1 mounts" 0 $(tc) -n 127.0.11.20 read /proc/mounts
has "/dev/sda6 /var xfs" "w1 mounts"
has "/dev/sdb1 /var/mnt/data ext4 rw,nosuid,nodev,relatime 0 0" "w1 mounts"
lacks "/var/mnt/nowhere" "w1 mounts"
ok "user volume mounted on the disk its selector matches; unmatched one absent"

# --- 6. services -----------------------------------------------------------------------------

run "service list" 0 $(tc) service
has "etcd         Running" "service list"
has "trustd       Running" "service list"
run "service restart" 0 $(tc) service kubelet restart
has 'Service "kubelet" restarted' "service restart"
run "service stop" fail $(tc) service etcd stop
has "doesn't support stop operation via API" "service stop"
run "w1 services" 0 $(tc) -n 127.0.11.20 service
lacks "etcd" "w1 services"
ok "services: list, kubelet restart, etcd not stoppable, no etcd on the worker"

# --- 7. COSI (talosctl get) ------------------------------------------------------------------

json "cp1 extensions" '[.[] | [.metadata.id, .spec.metadata.name, .spec.metadata.version]]' $(tc) get extensions -o json
# (talosctl round-trips through YAML: the IDs "0", "1" come out as JSON numbers)
same "[[0,\"amd-ucode\",\"\"],[1,\"schematic\",\"$tuned\"]]" "cp1 extensions"
json "cp2 extensions" 'length' $(tc) -n 127.0.11.12 get extensions -o json
same "0" "cp2 extensions"
ok "get extensions: the tuned image's extension and schematic $tuned; none for the stock installer"

run "cp1 securitystate" 0 $(tc) get securitystate -o yaml
python3 -c 'import sys, yaml; print(yaml.safe_load(open("out"))["spec"])' >spec.out 2>&1 || fail "securitystate: not YAML"
cp spec.out out
same "{'secureBoot': False, 'selinuxState': 'enabled, permissive', 'bootedWithUKI': True, 'moduleSignatureEnforced': True}" "cp1 securitystate"
json "w1 securitystate" '.[0].spec' $(tc) -n 127.0.11.20 get securitystate -o json
same '{"moduleSignatureEnforced":true,"secureBoot":false}' "w1 securitystate"
json "w2 securitystate" '.[0].spec' $(tc) -n 127.0.11.21 get securitystate -o json
same '{"moduleSignatureEnforced":true,"secureBoot":false,"selinuxState":"enabled, permissive"}' "w2 securitystate"
ok "get securitystate: bootedWithUKI on systemd-boot only; SELinux and module signing from the command line"

json "version" '[.[] | [.metadata.id, .spec.name, .spec.version]]' $(tc) get version -o json
same '[["version","Talos","v1.13.9"]]' "version"
ok "get version: Talos v1.13.9"

json "cp1 services" '[.[] | [.metadata.id, .spec.running, .spec.healthy, .spec.unknown]]' $(tc) get services -o json
same '[["apid",true,true,false],["auditd",true,false,true],["containerd",true,true,false],["cri",true,true,false],["dashboard",true,false,true],["etcd",true,true,false],["kubelet",true,true,false],["machined",true,true,false],["syslogd",true,false,true],["trustd",true,true,false],["udevd",true,true,false]]' "cp1 services"
ok "get services: running, health as the service list says"

json "nodename" '[.[] | [.metadata.id, .spec.nodename]]' $(tc) -n 127.0.11.20 get nodename -o json
same '[["nodename","w1"]]' "nodename"
ok "get nodename: the worker's Kubernetes node name"

run "get on many nodes" 0 $(tc) -n 127.0.11.11,127.0.11.12 get version -o json
[[ $(grep -c '"version": "v1.13.9"' out) -eq 2 ]] || fail "get on many nodes: expected 2 resources"
run "get in maintenance" fail get version --insecure -n 127.0.11.22 -e 127.0.11.22
has "API is not implemented in maintenance mode" "get in maintenance"
ok "get: one request per node; not served in maintenance mode"

# --- 8. one-to-many --------------------------------------------------------------------------

run "nodes version" 0 $(tc) -n 127.0.11.11,127.0.11.12,127.0.11.20 version
[[ $(grep -c "NODE:" out) -eq 3 ]] || fail "nodes version: expected 3 nodes"
has "NODE:        127.0.11.20" "nodes version"
run "nodes unknown" 0 $(tc) -n 127.0.11.11,127.0.11.99 service
has "127.0.11.99: rpc error: code = Unavailable" "nodes unknown"
has "127.0.11.11   apid" "nodes unknown"
ok "nodes metadata: replies per node; an unreachable target is a per-node error (talosctl warns)"

# --- 9. upgrades ------------------------------------------------------------------------------
# talosctl's v1.13 path: Version check, ImageService.Pull, LifecycleService.Upgrade, then Reboot
# tracked through Events and the boot ID (--wait). No Kubernetes here, hence --drain=false.

upgrade() { run "$1" "$2" $(tc) -n "$3" upgrade --image "$4" --drain=false --timeout 60s --progress plain; }

run "w2 boot id" 0 $(tc) -n 127.0.11.21 read /proc/sys/kernel/random/boot_id
boot_before=$(cat out)
[[ "$boot_before" =~ ^[0-9a-f-]{36}$ ]] || fail "boot id: '$boot_before'"
upgrade "w2 upgrade to the empty schematic" 0 127.0.11.21 "$factory/metal-installer/$empty:$version"
has "post check passed" "w2 upgrade"
run "w2 cmdline after upgrade" 0 $(tc) -n 127.0.11.21 read /proc/cmdline
same "$base" "w2 cmdline after upgrade"
run "w2 boot id after" 0 $(tc) -n 127.0.11.21 read /proc/sys/kernel/random/boot_id
[[ "$(cat out)" != "$boot_before" ]] || fail "w2: the boot id did not change"
json "w2 extensions after" '[.[] | [.spec.metadata.name, .spec.metadata.version]]' $(tc) -n 127.0.11.21 get extensions -o json
same "[[\"schematic\",\"$empty\"]]" "w2 extensions after"
ok "upgrade --wait to another schematic: rebooted (new boot id), the new entry's command line and schematic (amd-ucode gone)"

upgrade "upgrade to an unknown schematic" fail 127.0.11.21 "$factory/metal-installer/$unknown:$version"
has "error pulling image" "upgrade unknown"
has "NotFound" "upgrade unknown"
ok "upgrade to an image the factory does not know fails at the pull"

run "f1 installs v1.13.8" 0 apply-config --insecure -n 127.0.11.22 -e 127.0.11.22 -f f1-old.yaml
rebooted 127.0.11.22
run "f1 version" 0 $(tc) -n 127.0.11.22 version
has "Tag:         v1.13.8" "f1 version"
ok "an older patch release installs and reports its version (v1.13.8)"

# the switch through testbed/machines.py (it finds the socket as DIR/machines/control.sock)
mkdir -p ctl/machines && ln -sf "$work/state/control.sock" ctl/machines/control.sock
python3 "$here/../machines.py" boot-fallback f1 --state ctl >out 2>&1 || fail "machines.py boot-fallback"
has "f1: boot fallback armed" "boot-fallback"
upgrade "f1 upgrade falling back" 0 127.0.11.22 "$factory/metal-installer/$empty:$version"
run "f1 version after fallback" 0 $(tc) -n 127.0.11.22 version
has "Tag:         v1.13.8" "f1 version after fallback"
run "f1 cmdline after fallback" 0 $(tc) -n 127.0.11.22 read /proc/cmdline
same "$base hugepagesz=1G hugepages=64" "f1 cmdline after fallback"
ok "fault switch: the upgraded entry fails, the node boots back into v1.13.8 and its schematic; talosctl reports success"

upgrade "f1 upgrade" 0 127.0.11.22 "$factory/metal-installer/$empty:$version"
run "f1 version after upgrade" 0 $(tc) -n 127.0.11.22 version
has "Tag:         v1.13.9" "f1 version after upgrade"
ok "upgrade v1.13.8 -> v1.13.9"

run "etcd snapshot on a worker" fail $(tc) -n 127.0.11.22 etcd snapshot worker.db
has "etcd snapshot is only available on control plane nodes" "etcd snapshot on a worker"
ok "etcd snapshot on a worker: refused as Talos (control plane only)"

run "etcd forfeit-leadership on a worker" fail $(tc) -n 127.0.11.22 etcd forfeit-leadership
has "etcd forfeit leadership is only available on control plane nodes" "etcd forfeit-leadership on a worker"
run "etcd members on a worker" fail $(tc) -n 127.0.11.22 etcd members
has "member list is only available on control plane nodes" "etcd members on a worker"
ok "etcd forfeit-leadership and members on a worker: refused as Talos (control plane only)"

# --- restart: state persists, the staged config boots ----------------------------------------

stop_emulator
ok "SIGTERM: emulator exited 0"
start_emulator
run "after restart" 0 $(tc) -n 127.0.11.11,127.0.11.20 version
[[ $(grep -c "NODE:" out) -eq 2 ]] || fail "after restart: expected 2 nodes"
run "staged booted" 0 $(tc) apply-config --dry-run -f cp1-sans.yaml
has "No changes." "staged booted"
run "bootstrap after restart" fail $(tc) bootstrap
has "AlreadyExists" "bootstrap after restart"
run "cmdline after restart" 0 $(tc) read /proc/cmdline
same "$base hugepagesz=1G hugepages=64" "cmdline after restart"
ok "restart: nodes stay configured, the staged config is running, etcd data and the installed image kept"

stop_emulator
ok "emulator stopped, no process left"
echo "PASS: $passed checks"
