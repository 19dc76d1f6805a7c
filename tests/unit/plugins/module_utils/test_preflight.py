"""Unit tests for module_utils/preflight.py: every inventory problem is reported with its field and fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import resources, schematic
from ansible_collections.solanaops.talos.plugins.module_utils.preflight import check_cluster

CLUSTER = {
    "name": "solana-cluster",
    "talos_version": "v1.13.9",
    "kubernetes_version": "1.36.3",
    "vip": "10.0.1.10",
    "endpoint": "https://10.0.1.10:6443",
    "dns_service_ips": ["10.96.0.10"],
    "subnet": "10.0.1.0/24",
    "gateway": "10.0.1.1",
    "nameservers": ["10.0.1.2"],
    "ntp_servers": ["10.0.1.3"],
    "image_factory": "factory.talos.dev",
    "install_image": "",
}

NODES = [
    {"name": "cp-1", "ip": "10.0.1.11", "link": {"name": "enp1s0"}, "role": "controlplane", "install_disk": "/dev/sda",
     "install_disk_selector": {}},
    {"name": "cp-2", "ip": "10.0.1.12", "link": {"name": "enp1s0"}, "role": "controlplane", "install_disk": "",
     "install_disk_selector": {"serial": "S6XNNS0T100001"}},
    {"name": "cp-3", "ip": "10.0.1.13", "link": {"name": "enp1s0"}, "role": "controlplane", "install_disk": "",
     "install_disk_selector": {"wwid": "eui.0025388b91c0a001"}},
    {"name": "solana-validator", "ip": "10.0.1.20", "link": {"name": "enp1s0"}, "role": "worker", "install_disk": "",
     "install_disk_selector": {"serial": "S6XNNS0T100042"}},
]

# modeled on roles/talos_solana_worker/vars/main.yml __talos_solana_worker_tuning with the defaults
_HUGEPAGES = {"2Mi": 50000, "1Gi": 0}
WORKER = {
    "name": "solana-validator",
    "hardware": {"cpus": 64, "numa_nodes": 2, "memory": "512Gi"},
    "tuning": {
        "hugepages": _HUGEPAGES,
        "reserved_system_cpus": "0-3",
        "kube_reserved": {"memory": "16Gi"},
        "system_reserved": {"memory": "16Gi"},
        "eviction_hard": {"memory.available": "32Gi"},
        "memory_manager_policy": "Static",
        "topology_manager_policy": "single-numa-node",
        "kernel_args": resources.hugepage_kernel_args(_HUGEPAGES) + [
            "processor.max_cstate=1", "intel_idle.max_cstate=0", "amd_pstate=active", "iommu=pt",
            "numa_balancing=disable",
        ],
        "volumes": [
            {"name": "ledger", "disk": {"serial": "S6XNNS0T200001"}, "capacity": "15T", "filesystem": "xfs"},
            {"name": "accounts", "disk": {"serial": "S6XNNS0T200002"}, "capacity": "6T", "filesystem": "xfs"},
            {"name": "snapshots", "disk": {"wwid": "eui.0025388b91c0a003", "model": "SAMSUNG MZQL215THBLA"},
             "capacity": "2T", "filesystem": "ext4"},
        ],
        "boot_mode": "uki",
        "legacy_disks": [],
    },
}


def baseline():
    return copy.deepcopy(CLUSTER), copy.deepcopy(NODES), copy.deepcopy(WORKER)


def node(nodes, name):
    return next(n for n in nodes if n["name"] == name)


def volume(worker, name):
    return next(v for v in worker["tuning"]["volumes"] if v["name"] == name)


def test_baseline_is_clean():
    errors, warnings = check_cluster(*baseline())
    assert errors == []
    assert warnings == []


def test_baseline_kernel_args_are_the_defaults_and_hugepage_args():
    assert WORKER["tuning"]["kernel_args"][:3] == ["hugepagesz=2M", "hugepages=50000", "default_hugepagesz=2M"]


def test_only_cluster_checks_when_no_nodes_and_no_worker():
    cluster, _nodes, _worker = baseline()
    assert check_cluster(cluster) == ([], [])
    cluster["kubernetes_version"] = "1.40.0"
    errors, _warnings = check_cluster(cluster)
    assert len(errors) == 1 and "1.40.0" in errors[0]


# --- one bad input per case -------------------------------------------------------------------
# Each mutator breaks the baseline in one way; the case lists the fragments that must appear in a
# single error: the inventory field and the fix (or the allowed values).


def _set_cps(count):
    def mutate(cluster, nodes, worker):
        cps = [
            {"name": f"cp-{i}", "ip": f"10.0.1.{10 + i}", "link": {"name": "enp1s0"}, "role": "controlplane",
             "install_disk": "/dev/sda", "install_disk_selector": {}}
            for i in range(1, count + 1)
        ]
        nodes[:] = cps + [n for n in nodes if n["role"] != "controlplane"]
    return mutate


def _cluster(key, value):
    def mutate(cluster, nodes, worker):
        cluster[key] = value
        if key == "vip":  # the endpoint follows the VIP, as talos_cluster_endpoint's default does
            cluster["endpoint"] = f"https://{value}:6443"
    return mutate


def _node(name, key, value):
    def mutate(cluster, nodes, worker):
        node(nodes, name)[key] = value
    return mutate


def _tuning(key, value):
    def mutate(cluster, nodes, worker):
        worker["tuning"][key] = value
    return mutate


def _volume(name, key, value):
    def mutate(cluster, nodes, worker):
        volume(worker, name)[key] = value
    return mutate


def _hardware(key, value):
    def mutate(cluster, nodes, worker):
        worker["hardware"][key] = value
    return mutate


def _legacy_contract_noatime(cluster, nodes, worker):
    cluster["talos_version"] = "v1.10.6"
    cluster["kubernetes_version"] = "1.33.5"
    volume(worker, "ledger")["noatime"] = True


def _rename_worker(name):
    def mutate(cluster, nodes, worker):
        node(nodes, "solana-validator")["name"] = name
    return mutate


BAD_INPUTS = {
    "two control planes": (_set_cps(2), ["talos_controlplane group", "2 control-plane nodes", "odd number"]),
    "four control planes": (_set_cps(4), ["talos_controlplane group", "4 control-plane nodes", "odd number"]),
    "no control plane": (_set_cps(0), ["talos_controlplane group", "no control-plane node", "add 3 hosts"]),
    "duplicate hostname": (_node("cp-2", "name", "cp-1"),
                           ["hostname cp-1 is used by cp-1, cp-1", "each node needs its own"]),
    "duplicate IP": (_node("cp-2", "ip", "10.0.1.11"),
                     ["talos_node_ip", "IP 10.0.1.11 is used by cp-1, cp-2", "each node needs its own"]),
    "VIP outside subnet": (_cluster("vip", "10.0.2.10"),
                           ["talos_cluster_vip", "10.0.2.10 is outside talos_cluster_subnet 10.0.1.0/24"]),
    "VIP is a node IP": (_cluster("vip", "10.0.1.12"),
                         ["talos_node_ip 10.0.1.12 is also talos_cluster_vip", "addresses no node owns"]),
    "VIP not an address": (_cluster("vip", "10.0.1"), ["talos_cluster_vip", "is not an IP address"]),
    "gateway outside subnet": (_cluster("gateway", "192.168.1.1"),
                               ["talos_cluster_gateway", "outside talos_cluster_subnet"]),
    "gateway is a node IP": (_cluster("gateway", "10.0.1.20"),
                             ["talos_node_ip 10.0.1.20 is also talos_cluster_gateway"]),
    "subnet has host bits": (_cluster("subnet", "10.0.1.5/24"),
                             ["talos_cluster_subnet", "'10.0.1.5/24' is not a network CIDR", "use e.g. 10.0.1.0/24"]),
    "subnet is not a CIDR": (_cluster("subnet", "banana"),
                             ["talos_cluster_subnet", "'banana' is not a network CIDR", "use e.g. 10.0.1.0/24"]),
    "subnet missing": (_cluster("subnet", None), ["talos_cluster_subnet", "use e.g. 10.0.1.0/24"]),
    "invalid Talos version": (_cluster("talos_version", "1.13-latest"),
                              ["talos_version", "'1.13-latest' is not a Talos release tag such as v1.13.9"]),
    "missing Talos version": (_cluster("talos_version", None), ["talos_version", "such as v1.13.9"]),
    "Kubernetes too new": (_cluster("kubernetes_version", "1.37.0"),
                           ["kubernetes_version", "Kubernetes 1.37.0 is not supported by Talos v1.13",
                            "supported: 1.31 to 1.36"]),
    "Kubernetes too old for the contract": (_cluster("talos_version", "v1.10.6"),
                                            ["kubernetes_version", "Kubernetes 1.36.3", "supported: 1.28 to 1.33"]),
    "huge pages do not fit": (_tuning("hugepages", {"2Mi": 250000, "1Gi": 0}),
                              ["talos_solana_worker_hugepages", "488.3 GiB of huge pages plus 64.0 GiB reserved",
                               "512.0 GiB", "lower the page counts or the reservations"]),
    "1Gi pages plus reservations do not fit": (_tuning("hugepages", {"2Mi": 0, "1Gi": 460}),
                                               ["talos_solana_worker_hugepages", "do not fit",
                                                "lower the page counts"]),
    "both huge page sizes": (_tuning("hugepages", {"2Mi": 50000, "1Gi": 32}),
                             ["talos_solana_worker_hugepages_2mi and", "talos_solana_worker_hugepages_1gi",
                              "groups repeated args", "hugepagesz=2M hugepagesz=1G hugepages=N hugepages=M",
                              "Set one of the two to 0"]),
    "unknown huge page size": (_tuning("hugepages", {"4Mi": 10}),
                               ["talos_solana_worker_hugepages_2mi/talos_solana_worker_hugepages_1gi", "4Mi"]),
    "bad reservation quantity": (_tuning("kube_reserved", {"memory": "16 GiB"}),
                                 ["kube_reserved", "not a Kubernetes quantity", "such as 16Gi"]),
    "reserved CPUs outside the node": (_tuning("reserved_system_cpus", "0-3,64-65"),
                                       ["talos_solana_worker_reserved_system_cpus", "CPUs [64, 65] do not exist",
                                        "64-CPU node", "valid: 0-63"]),
    "all CPUs reserved": (_tuning("reserved_system_cpus", "0-63"),
                          ["talos_solana_worker_reserved_system_cpus", "reserves all 64 CPUs",
                           "leave some for the validator"]),
    "reserved CPUs not a list": (_tuning("reserved_system_cpus", "0..3"),
                                 ["talos_solana_worker_reserved_system_cpus", "expected e.g. 0-3,8"]),
    "Static memory manager without reservation": (
        # empty dicts are not zero: Talos and the kubelet fill in their own reservations
        lambda c, n, w: w["tuning"].update(kube_reserved={}, system_reserved={"memory": "0"},
                                           eviction_hard={"memory.available": "0"}),
        ["talos_solana_worker_memory_manager_policy Static", "needs a memory reservation"]),
    "CPU manager policy unknown to the kubelet": (
        _tuning("cpu_manager_policy", "Static"),
        ["talos_solana_worker_cpu_manager_policy", "'Static' stops the kubelet", "none, static"]),
    "topology manager scope unknown to the kubelet": (_tuning("topology_manager_scope", "node"),
                                                      ["talos_solana_worker_topology_manager_scope", "container, pod"]),
    "memory manager policy unknown to the kubelet": (_tuning("memory_manager_policy", "static"),
                                                     ["talos_solana_worker_memory_manager_policy", "None, Static"]),
    "static CPU manager without a CPU reservation": (
        lambda c, n, w: w["tuning"].update(cpu_manager_policy="static", reserved_system_cpus="",
                                           system_reserved={"memory": "16Gi"}),
        ["talos_solana_worker_cpu_manager_policy static needs CPUs kept from pods",
         "talos_solana_worker_reserved_system_cpus"]),
    "topology manager on too many NUMA nodes": (_hardware("numa_nodes", 16),
                                                ["talos_solana_worker_topology_manager_policy",
                                                 "16 NUMA nodes exceed", "limit of 8"]),
    "hardware missing": (lambda c, n, w: w.pop("hardware"),
                         ["talos_node_hardware", "cpus, numa_nodes and memory"]),
    "hardware memory not a quantity": (_hardware("memory", "512GB"), ["talos_node_hardware", "e.g. 512Gi"]),
    "btrfs volume": (_volume("ledger", "filesystem", "btrfs"),
                     ["talos_solana_worker_volumes[ledger].filesystem", "btrfs is not supported",
                      "use xfs or ext4"]),
    "free-form mount options": (_volume("accounts", "mount_options", ["noatime", "nobarrier"]),
                                ["talos_solana_worker_volumes[accounts].mount_options", "noatime, nobarrier",
                                 "set noatime: true (mount.disableAccessTime)"]),
    "legacy machine.disks": (_tuning("legacy_disks", [{"device": "/dev/nvme1n1",
                                                       "partitions": [{"mountpoint": "/var/mnt/ledger"}]}]),
                             ["talos_solana_worker_disks", "machine.disks is deprecated",
                              "talos_solana_worker_volumes", "UserVolumeConfig"]),
    "noatime on the v1.10 contract": (_legacy_contract_noatime,
                                      ["talos_solana_worker_volumes[ledger].noatime", "needs Talos v1.13",
                                       "remove it for v1.10.6"]),
    "duplicate volume name": (_volume("accounts", "name", "ledger"),
                              ["talos_solana_worker_volumes[ledger]", "the volume name is used twice"]),
    "volume name with uppercase": (_volume("ledger", "name", "Ledger"),
                                   ["talos_solana_worker_volumes[Ledger]", "lowercase letters, digits and '-'"]),
    "volume without disk": (_volume("ledger", "disk", {}),
                            ["talos_solana_worker_volumes[ledger].disk", "serial, wwid, model, dev_path"]),
    "volume capacity not a quantity": (_volume("ledger", "capacity", "15 TB"),
                                       ["talos_solana_worker_volumes[ledger].capacity", "'15 TB'", "such as 15T"]),
    "numa_balancing=1": (_tuning("kernel_args", ["iommu=pt", "numa_balancing=1"]),
                         ["talos_solana_worker_kernel_args", "numa_balancing=1", "numa_balancing=disable"]),
    "numa_balancing=enable": (_tuning("kernel_args", ["numa_balancing=enable"]),
                              ["talos_solana_worker_kernel_args", "numa_balancing=disable"]),
    "amd_iommu=on": (_tuning("kernel_args", ["amd_iommu=on", "iommu=pt"]),
                     ["talos_solana_worker_kernel_args", "amd_iommu=on", "keep iommu=pt"]),
    "install disk and selector": (_node("cp-2", "install_disk", "/dev/sda"),
                                  ["cp-2", "talos_node_install_disk or talos_node_install_disk_selector, not both"]),
    "invalid boot mode": (_tuning("boot_mode", "bios"),
                          ["talos_node_boot_mode 'bios'", "must be 'uki' or 'grub'", "bootedWithUKI"]),
    "missing boot mode": (_tuning("boot_mode", None), ["talos_node_boot_mode None", "'uki' or 'grub'"]),
    "uppercase node name": (_rename_worker("Solana-Validator"),
                            ["Solana-Validator", "not a valid Kubernetes node name", "lowercase letters"]),
    "underscore node name": (_rename_worker("solana_validator"),
                             ["solana_validator", "not a valid Kubernetes node name", "'-'"]),
    "node name ending in a dash": (_rename_worker("validator-"), ["validator-", "not a valid Kubernetes node name"]),
    "node name too long": (_rename_worker("v" * 64), ["not a valid Kubernetes node name", "at most 63"]),
    "node IP outside subnet": (_node("solana-validator", "ip", "10.0.2.20"),
                               ["solana-validator",
                                "talos_node_ip 10.0.2.20 is outside talos_cluster_subnet 10.0.1.0/24"]),
    "node IP not an address": (_node("cp-3", "ip", "10.0.1.300"),
                               ["cp-3", "talos_node_ip '10.0.1.300' is not an IP address"]),
    "the removed cluster-wide image": (_cluster("install_image", "ghcr.io/our-org/installer:custom-solana-v1.13.9"),
                                       ["talos_cluster_install_image", "no longer used",
                                        "validator's kernel args on the control planes", "talos_node_install_image"]),
    "factory with a scheme": (_cluster("image_factory", "https://factory.talos.dev"),
                              ["talos_cluster_image_factory", "without a scheme"]),
}


@pytest.mark.parametrize(("mutate", "fragments"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_yields_one_error_naming_field_and_fix(mutate, fragments):
    cluster, nodes, worker = baseline()
    mutate(cluster, nodes, worker)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def test_all_problems_are_reported_at_once():
    cluster, nodes, worker = baseline()
    for mutate, _fragments in (BAD_INPUTS["VIP outside subnet"], BAD_INPUTS["btrfs volume"],
                               BAD_INPUTS["amd_iommu=on"], BAD_INPUTS["invalid boot mode"],
                               BAD_INPUTS["duplicate IP"]):
        mutate(cluster, nodes, worker)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 5
    for field in ("talos_cluster_vip", ".filesystem", "amd_iommu=on", "talos_node_boot_mode", "10.0.1.11 is used"):
        assert any(field in error for error in errors), field


def test_hugepages_and_reservations_exactly_filling_memory_do_not_fit():
    """512Gi less what the kernel keeps (1/64, 64Mi, and 2Gi from the pools) less 64Gi reserved
    = 448448Mi = 224224 pages of 2Mi: nothing left for the validator."""
    cluster, nodes, worker = baseline()
    assert resources.usable_memory(512 * resources.GI) - 64 * resources.GI == 224224 * 2 * resources.MI
    worker["tuning"]["hugepages"] = {"2Mi": 224224 - 1, "1Gi": 0}
    assert check_cluster(cluster, nodes, worker)[0] == []
    worker["tuning"]["hugepages"] = {"2Mi": 224224, "1Gi": 0}
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 1 and "do not fit" in errors[0]


@pytest.mark.parametrize(("count", "warns"), [(1, True), (3, False), (5, False)])
def test_odd_control_plane_counts(count, warns):
    cluster, nodes, worker = baseline()
    _set_cps(count)(cluster, nodes, worker)
    errors, warnings = check_cluster(cluster, nodes, worker)
    assert errors == []
    single = [w for w in warnings if "single control-plane node has no failover; use 3" in w]
    assert bool(single) is warns
    assert len(warnings) == (1 if warns else 0)


def _kube_reserved_cpu(cluster, nodes, worker):
    worker["tuning"]["kube_reserved"]["cpu"] = "2"


def _system_reserved_cpu(cluster, nodes, worker):
    worker["tuning"]["system_reserved"]["cpu"] = "1"


WARNINGS = {
    "single control plane": (_set_cps(1), ["talos_controlplane group", "no failover", "use 3"]),
    "nvme install disk": (_node("cp-1", "install_disk", "/dev/nvme0n1"),
                          ["cp-1", "talos_node_install_disk /dev/nvme0n1", "NVMe names can change",
                           "prefer talos_node_install_disk_selector"]),
    "dev_path volume": (_volume("ledger", "disk", {"dev_path": "/dev/nvme1n1"}),
                        ["talos_solana_worker_volumes[ledger].disk", "dev_path /dev/nvme1n1 can change",
                         "prefer serial or wwid"]),
    "kube_reserved.cpu with reserved_system_cpus": (
        _kube_reserved_cpu,
        ["talos_solana_worker_kube_reserved.cpu is ignored", "reserved_system_cpus replaces it",
         "effective CPU reservation: 4"]),
    "system_reserved.cpu with reserved_system_cpus": (
        _system_reserved_cpu, ["talos_solana_worker_system_reserved.cpu is ignored"]),
}


@pytest.mark.parametrize(("mutate", "fragments"), list(WARNINGS.values()), ids=list(WARNINGS))
def test_warning_without_error(mutate, fragments):
    cluster, nodes, worker = baseline()
    mutate(cluster, nodes, worker)
    errors, warnings = check_cluster(cluster, nodes, worker)
    assert errors == []
    assert len(warnings) == 1, warnings
    for fragment in fragments:
        assert fragment in warnings[0], (fragment, warnings[0])


@pytest.mark.parametrize(
    "mutate",
    [
        _node("cp-1", "install_disk", "/dev/nvme0n1p1"),
        _node("cp-1", "install_disk", "/dev/sdb"),
        _volume("ledger", "disk", {"dev_path": "/dev/nvme1n1", "model": "SAMSUNG"}),
        lambda c, n, w: w["tuning"].update(reserved_system_cpus="", kube_reserved={"memory": "16Gi", "cpu": "2"}),
    ],
    ids=["nvme partition", "sd disk", "dev_path with model", "kube cpu without reserved cpus"],
)
def test_no_warning(mutate):
    cluster, nodes, worker = baseline()
    mutate(cluster, nodes, worker)
    assert check_cluster(cluster, nodes, worker) == ([], [])


def test_noatime_is_fine_on_v1_13():
    cluster, nodes, worker = baseline()
    volume(worker, "ledger")["noatime"] = True
    assert check_cluster(cluster, nodes, worker) == ([], [])


def test_mount_options_on_v1_10_say_noatime_needs_v1_13():
    cluster, nodes, worker = baseline()
    cluster["talos_version"], cluster["kubernetes_version"] = "v1.10.6", "1.33.5"
    volume(worker, "ledger")["mount_options"] = ["noatime"]
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 1
    assert "noatime needs Talos v1.13 (mount.disableAccessTime)" in errors[0]


# --- defects found by these tests and since fixed ---------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [("talos_version", "banana", "talos_cluster_talos_version"),
     ("kubernetes_version", "1.37.0", "talos_cluster_kubernetes_version")],
)
def test_version_errors_name_the_inventory_variable(key, value, field):
    cluster, nodes, worker = baseline()
    cluster[key] = value
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 1
    assert field in errors[0]


@pytest.mark.parametrize("volume_setting", [("noatime", True), ("mount_options", ["nobarrier"])])
def test_malformed_talos_version_with_volume_options_is_reported_not_raised(volume_setting):
    cluster, nodes, worker = baseline()
    cluster["talos_version"] = "banana"
    volume(worker, "ledger")[volume_setting[0]] = volume_setting[1]
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any("talos_version" in error and "banana" in error for error in errors)


def test_reservation_not_in_whole_mebibytes_is_caught_by_preflight():
    cluster, nodes, worker = baseline()
    worker["tuning"]["kube_reserved"] = {"memory": "16G"}
    with pytest.raises(ValueError):  # what the template would hit
        resources.reserved_memory_per_numa(
            resources.memory_reservation(worker["tuning"]["kube_reserved"], worker["tuning"]["system_reserved"],
                                         worker["tuning"]["eviction_hard"]), 2)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert errors, "preflight accepted a reservation the template cannot split per NUMA node"


def test_zero_numa_nodes_is_caught_by_preflight():
    cluster, nodes, worker = baseline()
    worker["hardware"]["numa_nodes"] = 0
    with pytest.raises(ZeroDivisionError):  # what the template would hit
        resources.reserved_memory_per_numa(64 * resources.GI, 0)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any("numa_nodes" in error for error in errors)


def test_vip_equal_to_gateway_is_an_error():
    cluster, nodes, worker = baseline()
    cluster["vip"] = cluster["gateway"]
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any("talos_cluster_vip" in error and "gateway" in error for error in errors)


def test_half_open_reserved_cpu_range_is_an_error():
    cluster, nodes, worker = baseline()
    worker["tuning"]["reserved_system_cpus"] = "0-3,4-"
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any("reserved_system_cpus" in error for error in errors)


# --- the installer each node boots ------------------------------------------------------------

VALIDATOR_ARGS = WORKER["tuning"]["kernel_args"]
VALIDATOR_ID = schematic.schematic_id(schematic.build(VALIDATOR_ARGS))


def installer(**overrides):
    node = {"name": "cp-1", "role": "controlplane", "kernel_args": [], "extensions": [], "secureboot": False,
            "boot_mode": "uki", "image": ""}
    node.update(overrides)
    return node


def installer_errors(**overrides):
    errors, warnings = check_cluster(copy.deepcopy(CLUSTER), installer=installer(**overrides))
    assert warnings == []
    return errors


@pytest.mark.parametrize("overrides", [
    {},
    {"image": f"factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:v1.13.9"},
    {"image": f"mirror.internal:5000/talos/metal-installer/{schematic.EMPTY_ID}:v1.13.9"},
    {"role": "worker", "name": "solana-validator", "kernel_args": VALIDATOR_ARGS,
     "image": f"factory.talos.dev/metal-installer/{VALIDATOR_ID}:v1.13.9"},
    {"secureboot": True, "image": f"factory.talos.dev/metal-installer-secureboot/{schematic.EMPTY_ID}:v1.13.9"},
], ids=["derived", "factory override", "mirror override", "validator override", "secureboot override"])
def test_installer_accepted(overrides):
    assert installer_errors(**overrides) == []


BAD_INSTALLERS = {
    "control plane with the validator's huge pages": (
        {"kernel_args": ["hugepagesz=2M", "hugepages=50000", "iommu=pt"]},
        ["cp-1: talos_controlplane_kernel_args", "hugepagesz=2M hugepages=50000", "validator only",
         "empty schematic"]),
    "control plane with c-state limits": (
        {"kernel_args": ["processor.max_cstate=1"]}, ["talos_controlplane_kernel_args", "processor.max_cstate=1"]),
    "control plane given the validator's image": (
        {"image": f"factory.talos.dev/metal-installer/{VALIDATOR_ID}:v1.13.9"},
        ["cp-1: talos_node_install_image", f"installs schematic {VALIDATOR_ID}",
         f"rendered schematic is {schematic.EMPTY_ID}",
         f"use factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:v1.13.9"]),
    "validator given a stale image": (
        {"role": "worker", "name": "solana-validator", "kernel_args": VALIDATOR_ARGS,
         "image": f"factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:v1.13.9"},
        ["solana-validator: talos_node_install_image", f"rendered schematic is {VALIDATOR_ID}",
         f"use factory.talos.dev/metal-installer/{VALIDATOR_ID}:v1.13.9"]),
    "an image nothing can trace to a schematic": (
        {"image": "ghcr.io/our-org/installer:custom-solana-v1.13.9"},
        ["talos_node_install_image", "not an Image Factory installer", "remove it to install"]),
    "an image for another Talos version": (
        {"image": f"factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:v1.13.8"},
        ["talos_node_install_image", "tagged v1.13.8", "Talos v1.13.9", "talos_cluster_talos_version"]),
    "a SecureBoot image on a node that is not SecureBoot": (
        {"image": f"factory.talos.dev/metal-installer-secureboot/{schematic.EMPTY_ID}:v1.13.9"},
        ["metal-installer-secureboot flavour", "talos_node_secureboot is False"]),
    "SecureBoot with GRUB": (
        {"secureboot": True, "boot_mode": "grub"}, ["talos_node_secureboot needs talos_node_boot_mode uki"]),
    "kernel args given as a string": (
        {"kernel_args": "hugepages=50000"}, ["cp-1: talos_controlplane_kernel_args/extensions", "must be a list"]),
    "a kernel arg with a space": (
        {"role": "worker", "kernel_args": ["console=ttyS0 quiet"]},
        ["talos_solana_worker_kernel_args/extensions", "without spaces"]),
}


@pytest.mark.parametrize(("overrides", "fragments"), list(BAD_INSTALLERS.values()), ids=list(BAD_INSTALLERS))
def test_bad_installer_yields_one_error_naming_field_and_fix(overrides, fragments):
    errors = installer_errors(**overrides)
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("labels", {"solana.io/role": "validator node"}, "label value"),
    ("labels", {"Solana.IO/role": "validator"}, "prefix before '/'"),
    ("labels", {"solana.io/" + "r" * 64: "x"}, "name part"),
    ("taints", {"solana.io/validator": "true:noschedule"}, "Effect one of NoSchedule"),
    ("taints", {"solana.io/validator": "yes please:NoSchedule"}, "not a valid label value"),
])
def test_labels_and_taints_kubernetes_refuses(field, value, fragment):
    cluster, nodes, worker = baseline()
    worker["tuning"][field] = value
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert len(errors) == 1 and f"talos_solana_worker_{field}" in errors[0] and fragment in errors[0], errors


def test_labels_and_taints_of_the_defaults_pass():
    cluster, nodes, worker = baseline()
    worker["tuning"]["labels"] = {"solana.io/role": "validator", "node-role.kubernetes.io/validator": ""}
    # Talos reads "NoSchedule" alone as the effect with an empty value (controllers/k8s/node_taint_spec.go)
    worker["tuning"]["taints"] = {"solana.io/validator": "true:NoSchedule", "dedicated": "NoExecute"}
    assert check_cluster(cluster, nodes, worker) == ([], [])


def _all(*mutations):
    def mutate(cluster, nodes, worker):
        for mutation in mutations:
            mutation(cluster, nodes, worker)
    return mutate


def _renumber(subnet, vip, gateway, prefix):
    """The whole cluster moved to another subnet (nodes .11-.13, .20)."""
    def mutate(cluster, nodes, worker):
        cluster.update(subnet=subnet, vip=vip, gateway=gateway, endpoint=f"https://{vip}:6443",
                       nameservers=[gateway], ntp_servers=[gateway])
        for n, last in zip(nodes, (11, 12, 13, 20), strict=True):
            n["ip"] = f"{prefix}.{last}"
    return mutate


# mistakes that stop a real Talos, etcd or kubelet, or harm the validator: (mutation, the
# variable the error must name, a fragment of the reason)
REFUSED = {
    "Kubernetes without a patch level": (_cluster("kubernetes_version", "1.36"),
                                         "talos_cluster_kubernetes_version", "no patch level"),
    "subnet overlapping the service network": (_renumber("10.96.0.0/24", "10.96.0.10", "10.96.0.1", "10.96.0"),
                                               "talos_cluster_subnet", "service network 10.96.0.0/12"),
    "subnet overlapping the pod network": (_renumber("10.244.1.0/24", "10.244.1.10", "10.244.1.1", "10.244.1"),
                                           "talos_cluster_subnet", "pod network"),
    "cluster DNS outside the services": (_cluster("dns_service_ips", ["10.0.1.53"]),
                                         "talos_cluster_dns_service_ips", "outside the service network"),
    "endpoint on one node": (_cluster("endpoint", "https://10.0.1.11:6443"), "talos_cluster_endpoint", "not the VIP"),
    "endpoint without scheme": (_cluster("endpoint", "10.0.1.10:6443"), "talos_cluster_endpoint", "must be https://"),
    "no NTP servers": (_cluster("ntp_servers", []), "talos_cluster_ntp_servers", "time.cloudflare.com"),
    "no resolvers": (_cluster("nameservers", []), "talos_cluster_nameservers", "1.1.1.1"),
    "VIP on the network address": (_renumber("10.0.1.0/24", "10.0.1.0", "10.0.1.1", "10.0.1"),
                                   "talos_cluster_vip", "network or broadcast"),
    "node on the broadcast address": (_node("cp-2", "ip", "10.0.1.255"), "talos_node_ip", "network or broadcast"),
    "node without an address": (_node("cp-2", "ip", None), "talos_node_ip", "not set"),
    "node without a link": (_node("cp-2", "link", None), "talos_node_link", "not set"),
    "MAC with dashes": (_node("cp-1", "link", {"mac": "aa-bb-cc-dd-ee-ff"}), "talos_node_link.mac",
                        "not a MAC address"),
    "link name too long": (_node("cp-1", "link", {"name": "enp1s0f0np0verylong"}), "talos_node_link.name",
                           "interface name"),
    "node MTU too large": (_node("cp-1", "mtu", 65000), "talos_node_mtu", "1280-9216"),
    "validator MTU too small": (_tuning("mtu", 576), "talos_solana_worker_mtu", "1280-9216"),
    "etcd election under five heartbeats": (_node("cp-1", "etcd_args", {"election-timeout": "2000",
                                                                        "heartbeat-interval": "500"}),
                                            "talos_controlplane_etcd_extra_args", "at least 5 x"),
    "etcd election above 50 s": (_node("cp-1", "etcd_args", {"election-timeout": "60000",
                                                             "heartbeat-interval": "500"}),
                                 "talos_controlplane_etcd_extra_args", "50000"),
    "negative pages": (_tuning("hugepages", {"2Mi": -5, "1Gi": 0}), "talos_solana_worker_hugepages_2mi", "negative"),
    "huge-page args among the kernel args": (_tuning("extra_kernel_args", ["hugepagesz=1G", "hugepages=16"]),
                                             "talos_solana_worker_kernel_args", "hugepagesz=1G hugepages=16"),
    "firedancer without pages": (_all(_tuning("client", "firedancer"), _tuning("hugepages", {"2Mi": 0, "1Gi": 0})),
                                 "talos_solana_worker_hugepages_1gi", "does not start without"),
    "vm.nr_hugepages sysctl": (_tuning("sysctls", {"vm.nr_hugepages": "1024"}), "talos_solana_worker_sysctls",
                               "vm.nr_hugepages"),
    "sysctl lowering the kernel default": (_tuning("sysctls", {"fs.nr_open": "1000000"}),
                                           "talos_solana_worker_sysctls", "lowers the kernel's default"),
    "sysctl below the client minimum": (_all(_tuning("profile_sysctls", {"vm.max_map_count": "1000000"}),
                                             _tuning("sysctls", {"vm.max_map_count": "262144"})),
                                        "talos_solana_worker_sysctls", "documented minimum 1000000"),
    "volume on the install disk": (_all(_tuning("install_disk", {"serial": "S6XNNS0T200001"})),
                                   "talos_solana_worker_volumes[ledger].disk", "is the install disk"),
    "two volumes on one disk": (_volume("accounts", "disk", {"serial": "S6XNNS0T200001"}),
                                "talos_solana_worker_volumes[accounts].disk", "the same disk as volume ledger"),
}


@pytest.mark.parametrize(("mutate", "variable", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_naming_the_variable(mutate, variable, fragment):
    cluster, nodes, worker = baseline()
    mutate(cluster, nodes, worker)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any(variable in error and fragment in error for error in errors), errors


def test_a_typo_names_the_closest_variable():
    cluster, nodes, _worker = baseline()
    nodes[3]["variables"] = ["talos_solana_worker_hugepages_2m", "talos_cluster_vip"]
    errors, _warnings = check_cluster(cluster, nodes, known_variables=["talos_solana_worker_hugepages_2mi",
                                                                       "talos_solana_worker_hugepages_1gi",
                                                                       "talos_cluster_vip"])
    assert errors == ["solana-validator: talos_solana_worker_hugepages_2m is not a variable of this collection "
                      "(did you mean talos_solana_worker_hugepages_2mi?); the default applies instead. "
                      "Rename or remove it"]


def _node_settings_spec():
    """The talos_node_* options of talos_cluster's argument spec, as check.yml passes them."""
    spec_file = Path(__file__).resolve().parents[4] / "roles/talos_cluster/meta/argument_specs.yml"
    specs = yaml.safe_load(spec_file.read_text())
    return {name: option for name, option in specs["argument_specs"]["preflight"]["options"].items()
            if name.startswith("talos_node_")}


def test_each_nodes_own_settings_are_checked_against_the_argument_spec_at_once():
    """The preflight entry point validates its argument spec once for the play, on one host:
    every node's talos_node_* values are checked here instead, each error naming its node."""
    cluster, nodes, _worker = baseline()
    spec = _node_settings_spec()
    nodes[0]["settings"] = {"talos_node_ip": "10.0.1.11", "talos_node_mtu": "9000", "talos_node_boot_mode": "grub"}
    assert check_cluster(cluster, nodes, node_settings=spec)[0] == []
    nodes[1]["settings"] = {"talos_node_boot_mode": "UKI"}
    # a published fact of the same prefix is not a setting: left to the variable-name check
    nodes[3]["settings"] = {"talos_node_mtu": "jumbo", "talos_node_secureboot": "sometimes",
                            "talos_node_installer": {"image": "x"}}
    errors, _warnings = check_cluster(cluster, nodes, node_settings=spec)
    assert errors[:2] == [
        "cp-2: value of talos_node_boot_mode must be one of: uki, grub, got: UKI",
        "solana-validator: argument 'talos_node_mtu' is of type str and we were unable to convert to int: "
        "\"'jumbo'\" cannot be converted to an int"], errors
    # the list of valid booleans that follows is a set: its order varies
    assert len(errors) == 3 and errors[2].startswith(
        "solana-validator: argument 'talos_node_secureboot' is of type str and we were unable to convert to bool: "
        "The value 'sometimes' is not a valid boolean."), errors
    # reported alone, as the argument spec stops the run: the topology checks would misread
    # the MTU ("outside 1280-9216") and the other checks are left for the next run
    nodes[3]["mtu"] = "jumbo"
    nodes[3]["ip"] = "10.0.2.20"
    assert len(check_cluster(cluster, nodes, node_settings=spec)[0]) == 3
    del nodes[1]["settings"], nodes[3]["settings"]
    errors, _warnings = check_cluster(cluster, nodes, node_settings=spec)
    assert any("jumbo" in error and "outside" in error for error in errors), errors


def test_warnings_are_silenced_per_variable():
    cluster, nodes, worker = baseline()
    cluster["nameservers"] = ["8.8.8.8"]
    assert any("talos_cluster_nameservers" in w for w in check_cluster(cluster, nodes, worker)[1])
    cluster["silence"] = ["talos_cluster_nameservers"]
    assert check_cluster(cluster, nodes, worker) == ([], [])


@pytest.mark.parametrize(("mutate", "variable", "fragment"), [
    (_tuning("sysctls", {"net.core.rmem_max": "128M"}), "talos_solana_worker_sysctls", "no units"),
    (_tuning("sysctls", {"net.ipv4.tcp_mtu_probing": True}), "talos_solana_worker_sysctls", "Quote it"),
    (_volume("ledger", "disk", {"serial_number": "X"}), "talos_solana_worker_volumes[ledger].disk",
     "serial_number is not one"),
    (_node("cp-1", "install_disk_selector", {"serial_number": "X"}), "talos_node_install_disk_selector",
     "serial_number is not a field"),
    (_node("cp-1", "link", {"name": "eth0"}), "talos_node_link.name", "net.ifnames=0"),
    (_node("cp-1", "apiserver_args", {"enable-admission-plugins": "NodeRestriction,PodSecurityPolicy"}),
     "talos_controlplane_apiserver_extra_args", "PodSecurityPolicy no longer exist"),
    (_node("cp-1", "etcd_args", {"data-dir": "/var/lib/etcd2"}), "talos_controlplane_etcd_extra_args",
     "set by Talos itself"),
    (_node("cp-1", "controller_manager_args", {"node-monitor-grace-period": "40"}),
     "talos_controlplane_controller_manager_extra_args", "needs a unit"),
    (_tuning("eviction_hard", {"memory.avail": "32Gi"}), "talos_solana_worker_eviction_hard", "not an eviction signal"),
    (_tuning("kube_reserved", {"cpus": "2", "memory": "16Gi"}), "talos_solana_worker_kube_reserved",
     "cannot reserve cpus"),
    (_tuning("reserved_system_cpus", "0-3, 32-35"), "talos_solana_worker_reserved_system_cpus", "contains spaces"),
    (_cluster("talos_version", "v1.15.0"), "talos_cluster_talos_version", "is not a release whose config"),
    (_cluster("endpoint", "https://10.0.1.10:50000"), "talos_cluster_endpoint", "Talos' API port"),
], ids=["sysctl unit", "sysctl boolean", "volume selector field", "install selector field", "eth0",
        "removed admission plugin", "etcd arg Talos owns", "duration without unit", "eviction signal",
        "reserved resource", "spaces in reserved CPUs", "unknown contract", "Talos API port"])
def test_more_refusals_name_their_variable(mutate, variable, fragment):
    cluster, nodes, worker = baseline()
    mutate(cluster, nodes, worker)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert any(variable in error and fragment in error for error in errors), errors


@pytest.mark.parametrize(("version", "selector", "fragment"), [
    ("v1.13.9", {"type": "spinning"}, "type 'spinning' is not a disk type Talos knows; use one of nvme, sd, hdd, ssd"),
    ("v1.14.1", {"name": "/dev/sda", "serial": "S"}, "name cannot select the system disk from Talos v1.14"),
    ("v1.13.9", {"size": "about 1TB"}, "size 'about 1TB' is not a size condition Talos reads"),
    ("v1.14.1", {"size": ">= 1 zettabyte"}, "is not a size condition Talos reads"),
])
def test_install_disk_selectors_talos_cannot_use(version, selector, fragment):
    cluster, nodes, worker = baseline()
    cluster["talos_version"] = version
    node(nodes, "cp-1").update(install_disk="", install_disk_selector=selector)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert [e for e in errors if e.startswith("cp-1: talos_node_install_disk_selector") and fragment in e], errors


@pytest.mark.parametrize(("version", "selector"), [
    ("v1.13.9", {"size": ">= 1TB", "type": "ssd"}), ("v1.13.9", {"name": "/dev/sda"}),
    ("v1.14.1", {"size": "<= 2TiB"})])
def test_install_disk_selectors_talos_can_use(version, selector):
    cluster, nodes, worker = baseline()
    cluster["talos_version"] = version
    node(nodes, "cp-1").update(install_disk="", install_disk_selector=selector)
    errors, _warnings = check_cluster(cluster, nodes, worker)
    assert not [e for e in errors if "install_disk_selector" in e], errors
