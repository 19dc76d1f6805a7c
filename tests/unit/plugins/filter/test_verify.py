"""Every verify check, one wrong node at a time: a correct cluster passes every check, and each
mutation below makes exactly the one check it names fail (the others pass). The figures are the
local inventory's, worked out by hand:

- validator: 64 CPUs, 2 NUMA nodes, 512Gi installed = 536870912Ki; reservedSystemCPUs 0-3 -> cpu 60
- MemTotal by the kernel-reserve rule: 536870912Ki - (8388608Ki + 65536Ki) = 528416768Ki
- 50000 x 2Mi = 100000Mi; reservations 16Gi + 16Gi + eviction 32Gi = 67108864Ki
- allocatable memory = 528416768Ki - 102400000Ki - 67108864Ki = 358907904Ki
- 50000 boot-time 2Mi pages over 2 nodes with 64 CPUs: 16 allocation threads, 16 chunks of 3125,
  each chunk round-robin from node 0 (1563 + 1562): node 0 25008, node 1 24992
"""

from __future__ import annotations

import copy

import pytest
from ansible_collections.solanaops.talos.plugins.filter import verify
from ansible_collections.solanaops.talos.plugins.module_utils import checks, contract

FILTERS = verify.FilterModule().filters()
V = "solana-validator"
CP = ("cp1", "cp2", "cp3")

VALIDATOR = {
    "name": V, "hardware": {"cpus": 64, "numa_nodes": 2, "memory": "512Gi"},
    "hugepages": {"2Mi": 50000, "1Gi": 0}, "reserved_system_cpus": "0-3",
    "kube_reserved": {"memory": "16Gi"}, "system_reserved": {"memory": "16Gi"},
    "eviction_hard": {"memory.available": "32Gi"},
    "cpu_manager_policy": "static", "topology_manager_policy": "single-numa-node", "memory_manager_policy": "Static",
    "kernel_args": ["hugepagesz=2M", "hugepages=50000", "default_hugepagesz=2M", "iommu=pt",
                    "numa_balancing=disable"],
    "boot_mode": "uki", "labels": {"solana.io/role": "validator"}, "taints": {"solana.io/validator": "true:NoSchedule"},
    "volumes": [{"name": "ledger", "capacity": "15T", "filesystem": "xfs"},
                {"name": "accounts", "capacity": "6T", "filesystem": "xfs"}],
    "sysctls": {"vm.max_map_count": "1000000"}, "link": {"name": "enp1s0"}, "mtu": 9000,
}


def node(name, cpu, memory, allocatable=None, **extra):
    status = {"capacity": {"cpu": cpu, "memory": memory}, "allocatable": allocatable or {"cpu": cpu, "memory": memory},
              "conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.36.3"}}
    return {"metadata": {"name": name, "labels": extra.get("labels", {})}, "spec": {"taints": extra.get("taints", [])},
            "status": status}


def pv(volume, capacity):
    return {"metadata": {"name": f"{V}-{volume}"},
            "spec": {"capacity": {"storage": capacity}, "storageClassName": f"local-nvme-{volume}",
                     "local": {"path": f"/var/mnt/{volume}"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [V]}]}]}}},
            "status": {"phase": "Bound"}}


def mirror_pod(component, on, image=None):
    """A control-plane static pod's mirror pod as the kubelet posts it (plus a kube-proxy pod, not one of them)."""
    return {"metadata": {"name": f"{component}-{on}", "labels": {"k8s-app": component, "tier": "control-plane"}},
            "spec": {"nodeName": on, "containers": [{"name": component,
                                                     "image": image or f"registry.k8s.io/{component}:v1.36.3"}]}}


OBSERVED = {
    "control_plane_pods": [mirror_pod(c, n) for n in CP for c in contract.CONTROL_PLANE_COMPONENTS]
    + [mirror_pod("kube-proxy", "cp1", "registry.k8s.io/kube-proxy:v1.35.0")],
    "daemonsets": [{"metadata": {"name": "kube-proxy"}, "spec": {"template": {"spec": {"containers": [
        {"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.36.3"}]}}}}],
    "nodes": [node(n, "4", "16Gi") for n in CP] + [node(
        V, "64", "528416768Ki",
        {"cpu": "60", "memory": "358907904Ki", "hugepages-2Mi": "100000Mi", "hugepages-1Gi": "0"},
        labels={"solana.io/role": "validator"},
        taints=[{"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}])],
    "priority_classes": [{"metadata": {"name": "solana-critical"}, "value": 1000000},
                         {"metadata": {"name": "system-cluster-critical"}, "value": 2000000000}],
    "storage_classes": [{"metadata": {"name": f"local-nvme-{v}"}, "provisioner": "kubernetes.io/no-provisioner",
                         "volumeBindingMode": "WaitForFirstConsumer"} for v in ("ledger", "accounts")],
    "persistent_volumes": [pv("ledger", "15T"), pv("accounts", "6T")],
}
OBSERVED["nodes"][3]["status"]["capacity"].update({"hugepages-2Mi": "100000Mi", "hugepages-1Gi": "0"})
EXPECTED = {"nodes": [*CP, V], "controlplanes": list(CP), "kubernetes_version": "1.36.3", "cni": "flannel",
            "validators": [VALIDATOR],
            "priority_class": {"name": "solana-critical", "value": 1000000}, "storage_class_prefix": "local-nvme-",
            "volumes_by_node": {V: VALIDATOR["volumes"]}}

RUNNING = {"running": True, "healthy": True}
FACTS = {
    "cmdline": ["talos.platform=metal", "hugepagesz=2M", "hugepages=50000", "default_hugepagesz=2M", "iommu=pt",
                "numa_balancing=disable"],
    "meminfo": {"Hugetlb": 102400000, "Hugepagesize": 2048, "HugePages_Total": 50000},
    "numa": [{"node": 0, "HugePages_Total": 25008}, {"node": 1, "HugePages_Total": 24992}],
    "mounts": [{"mountpoint": "/var/mnt/ledger", "fstype": "xfs"},
               {"mountpoint": "/var/mnt/accounts", "fstype": "xfs"}],
    "sysctls": {"vm.max_map_count": "1000000"}, "link_mtu": {"enp1s0": 9000},
    "kubelet_config": {"cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node",
                       "memoryManagerPolicy": "Static", "reservedSystemCPUs": "0-3"},
    "boot": {"schematic": "a" * 64, "talos_version": "v1.13.9", "booted_with_uki": True, "secure_boot": False},
    "services": {"apid": RUNNING, "kubelet": RUNNING},
}
INSTALLS = {"name": V, "installer": {"id": "a" * 64, "image": "f/metal-installer/aaa:v1.13.9"},
            "talos_version": "v1.13.9", "boot_mode": "uki", "secureboot": False}
ETCD = {"members": [{"hostname": n} for n in CP], "status": {n: {"member": n} for n in CP},
        "quorum": {"members": 3, "responding": 3, "needed": 2, "leader": "cp1", "has_quorum": True}}


def everything(observed=None, facts=None, etcd=None):
    observed, facts, etcd = observed or OBSERVED, facts or FACTS, etcd or ETCD
    services = {**{n: {"apid": RUNNING, "kubelet": RUNNING, "etcd": RUNNING} for n in CP}, V: facts.get("services")}
    return (FILTERS["kubernetes_checks"](observed, EXPECTED) + FILTERS["boot_checks"](facts, INSTALLS)
            + FILTERS["talos_checks"](facts, VALIDATOR) + FILTERS["service_checks"](services, list(CP))
            + FILTERS["etcd_checks"](etcd, list(CP)))


def failures(results):
    return sorted((r["name"], r["subject"]) for r in results if not r["passed"])


def test_the_correct_cluster_passes_every_check_and_shows_the_builtin_as_information():
    results = everything()
    assert failures(results) == []
    passed, failed, _lines = checks.counts(results)
    assert (passed, failed) == (len(results) - 1, 0)
    assert [(r["name"], r["observed"]) for r in results if r.get("info")] == [("built-in PriorityClass", "present")]
    assert FILTERS["family_checks"](results, ["nodes", "control plane", "validator", "priority class", "storage",
                                              "boot", "kernel", "services", "etcd"]) == []


def _set(path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


DELETE = object()
VNODE = ("observed", "nodes", 3)

KUBERNETES = [
    # (what is wrong, change, the one failing check)
    ("a node missing", lambda s: s["observed"]["nodes"].pop(0), ("node registered", "cp1")),
    ("a node not Ready", _set((*VNODE, "status", "conditions"), [{"type": "Ready", "status": "False"}]),
     ("node Ready", V)),
    ("another kubelet", _set((*VNODE, "status", "nodeInfo", "kubeletVersion"), "v1.36.2"), ("kubelet version", V)),
    ("an API server left behind", _set(("observed", "control_plane_pods", 3, "spec", "containers", 0, "image"),
                                       "registry.k8s.io/kube-apiserver:v1.35.4"), ("kube-apiserver version", "cp2")),
    ("no scheduler on a control plane", lambda s: s["observed"]["control_plane_pods"].pop(8),
     ("kube-scheduler version", "cp3")),
    ("a controller manager from a registry with a port", _set(
        ("observed", "control_plane_pods", 1, "spec", "containers", 0, "image"),
        "127.0.0.1:5000/kube-controller-manager:v1.36.2@sha256:" + "0" * 64),
     ("kube-controller-manager version", "cp1")),
    ("kube-proxy left behind", _set(("observed", "daemonsets", 0, "spec", "template", "spec", "containers", 0,
                                     "image"), "registry.k8s.io/kube-proxy:v1.35.4"),
     ("kube-proxy version", "kube-system/kube-proxy")),
    ("a node nobody declared", lambda s: s["observed"]["nodes"].append(node("intruder", "4", "16Gi")),
     ("no unexpected node", "intruder")),
    ("252Gi reported of 512Gi", lambda s: s["observed"]["nodes"][3]["status"].update(
        capacity={**s["observed"]["nodes"][3]["status"]["capacity"], "memory": "264241152Ki"},
        allocatable={**s["observed"]["nodes"][3]["status"]["allocatable"],
                     "memory": f"{264241152 - 102400000 - 67108864}Ki"}), ("capacity memory", V)),
    ("allocatable memory off", _set((*VNODE, "status", "allocatable", "memory"), "358907905Ki"),
     ("allocatable memory", V)),
    ("capacity cpu", _set((*VNODE, "status", "capacity", "cpu"), "32"), ("capacity cpu", V)),
    ("allocatable cpu", _set((*VNODE, "status", "allocatable", "cpu"), "64"), ("allocatable cpu", V)),
    ("100Gi of 2Mi pages", _set((*VNODE, "status", "capacity", "hugepages-2Mi"), "100Gi"),
     ("capacity hugepages-2Mi", V)),
    ("allocatable 2Mi pages", _set((*VNODE, "status", "allocatable", "hugepages-2Mi"), "0"),
     ("allocatable hugepages-2Mi", V)),
    ("1Gi pages", _set((*VNODE, "status", "capacity", "hugepages-1Gi"), "1Gi"), ("capacity hugepages-1Gi", V)),
    ("allocatable 1Gi pages", _set((*VNODE, "status", "allocatable", "hugepages-1Gi"), "1Gi"),
     ("allocatable hugepages-1Gi", V)),
    ("label", _set((*VNODE, "metadata", "labels"), {}), ("label solana.io/role", V)),
    ("taint", _set((*VNODE, "spec", "taints"), []), ("taint solana.io/validator", V)),
    ("PriorityClass value", _set(("observed", "priority_classes", 0, "value"), 5),
     ("PriorityClass", "solana-critical")),
    ("StorageClass binding", _set(("observed", "storage_classes", 0, "volumeBindingMode"), "Immediate"),
     ("StorageClass", "local-nvme-ledger")),
    ("PV missing", lambda s: s["observed"]["persistent_volumes"].pop(1), ("PersistentVolume", f"{V}-accounts")),
    ("PV released", _set(("observed", "persistent_volumes", 0, "status", "phase"), "Released"),
     ("PersistentVolume phase", f"{V}-ledger")),
    ("PV at /tmp", _set(("observed", "persistent_volumes", 0, "spec", "local", "path"), "/tmp"),
     ("PersistentVolume path", f"{V}-ledger")),
    ("PV capacity", _set(("observed", "persistent_volumes", 0, "spec", "capacity", "storage"), "1T"),
     ("PersistentVolume capacity", f"{V}-ledger")),
    ("PV on another node", _set(("observed", "persistent_volumes", 0, "spec", "nodeAffinity"), {}),
     ("PersistentVolume node affinity", f"{V}-ledger")),
    ("PV class", _set(("observed", "persistent_volumes", 0, "spec", "storageClassName"), "local-nvme-accounts"),
     ("PersistentVolume StorageClass", f"{V}-ledger")),
]
TALOS = [
    ("iommu=off after iommu=pt", lambda s: s["facts"]["cmdline"].append("iommu=off"), ("kernel arg iommu=pt", V)),
    ("numa_balancing missing", lambda s: s["facts"]["cmdline"].remove("numa_balancing=disable"),
     ("kernel arg numa_balancing=disable", V)),
    ("Hugetlb", _set(("facts", "meminfo", "Hugetlb"), 0), ("huge pages reserved (Hugetlb)", V)),
    ("Hugepagesize", _set(("facts", "meminfo", "Hugepagesize"), 1048576), ("Hugepagesize", V)),
    ("HugePages_Total", _set(("facts", "meminfo", "HugePages_Total"), 49999), ("HugePages_Total", V)),
    ("50000/0 over the NUMA nodes", _set(("facts", "numa"), [{"node": 0, "HugePages_Total": 50000},
                                                             {"node": 1, "HugePages_Total": 0}]),
     ("HugePages_Total per NUMA node", V)),
    ("an even split is not the kernel's", _set(("facts", "numa"), [{"node": 0, "HugePages_Total": 25000},
                                                                   {"node": 1, "HugePages_Total": 25000}]),
     ("HugePages_Total per NUMA node", V)),
    ("kubelet policy", _set(("facts", "kubelet_config", "topologyManagerPolicy"), "none"),
     ("kubelet topologyManagerPolicy", V)),
    ("sysctl", _set(("facts", "sysctls", "vm.max_map_count"), "65530"), ("sysctl vm.max_map_count", V)),
    ("MTU", _set(("facts", "link_mtu", "enp1s0"), 1500), ("link enp1s0 MTU", V)),
    ("volume", _set(("facts", "mounts", 1, "fstype"), "ext4"), ("volume accounts mounted", V)),
    ("schematic", _set(("facts", "boot", "schematic"), "b" * 64), ("booted schematic", V)),
    ("Talos version", _set(("facts", "boot", "talos_version"), "v1.13.8"), ("Talos version", V)),
    ("GRUB", _set(("facts", "boot", "booted_with_uki"), False), ("booted with UKI", V)),
    ("SecureBoot", _set(("facts", "boot", "secure_boot"), True), ("SecureBoot", V)),
    ("kubelet down", _set(("facts", "services", "kubelet"), {"running": True, "healthy": False}),
     ("service kubelet", V)),
    ("a member too many", lambda s: s["etcd"]["members"].append({"hostname": "cp4"}), ("etcd members", "etcd")),
    ("a member down", _set(("etcd", "quorum", "responding"), 2), ("etcd members healthy", "etcd")),
    ("no leader", _set(("etcd", "quorum", "has_quorum"), False), ("etcd quorum", "etcd")),
]


@pytest.mark.parametrize(("wrong", "change", "check"), KUBERNETES + TALOS, ids=[c[0] for c in KUBERNETES + TALOS])
def test_each_wrong_node_fails_exactly_its_check(wrong, change, check):
    state = {"observed": copy.deepcopy(OBSERVED), "facts": copy.deepcopy(FACTS), "etcd": copy.deepcopy(ETCD)}
    change(state)
    assert failures(everything(state["observed"], state["facts"], state["etcd"])) == [check], wrong


def test_every_check_has_a_wrong_node_that_fails_it():
    names = {r["name"] for r in everything() if not r.get("info")}
    covered = {check[0] for _wrong, _change, check in KUBERNETES + TALOS}
    # each repeated check (per node, per volume, per kernel arg) is covered by one of its instances
    assert {n for n in names if n not in covered} <= {
        "node Ready", "kubelet version", "node registered", "service apid", "service etcd",
        "kernel arg hugepagesz=2M", "kernel arg hugepages=50000", "kernel arg default_hugepagesz=2M",
        "kubelet cpuManagerPolicy", "kubelet memoryManagerPolicy", "kubelet reservedSystemCPUs",
        "volume ledger mounted"}


def test_facts_not_read_fail_every_check_of_that_host_and_the_host_check():
    services = {**{n: {"apid": RUNNING, "kubelet": RUNNING, "etcd": RUNNING} for n in CP}, V: None}
    failed = failures(FILTERS["service_checks"](services, list(CP)))
    assert failed == [("service apid", V), ("service kubelet", V)]
    hosts = FILTERS["host_checks"]({"cp1": {"boot": {}}, V: {"failed": True, "msg": "connection refused"}},
                                   ["cp1", "cp2", V])
    assert [(r["subject"], r["passed"], r["observed"]) for r in hosts] == [
        ("cp1", True, "read"), ("cp2", False, "not read (the host left the play before its facts were read)"),
        (V, False, "not read: connection refused")]


def test_an_empty_or_missing_family_fails():
    results = everything()
    assert failures(FILTERS["family_checks"]([r for r in results if r["family"] != "storage"], ["storage", "nodes"])) \
        == [("check family", "storage")]
    # the built-in PriorityClass alone does not make its family present
    info_only = [r for r in results if r.get("info")]
    assert failures(FILTERS["family_checks"](info_only, ["priority class"])) == [("check family", "priority class")]
    assert checks.counts([]) == (0, 1, ["no check ran: nothing was verified"])
    assert checks.summarize([]).splitlines()[-1] == "0 passed, 0 failed (no check ran: nothing was verified)"


def test_node_services_keeps_hosts_whose_facts_were_not_read():
    facts = {"cp1": {"services": {"apid": RUNNING}}, V: {"failed": True, "msg": "connection refused"}, "cp2": {}}
    services = FILTERS["node_services"](facts)
    assert services == {"cp1": {"apid": RUNNING}, V: None, "cp2": None}
    assert failures(FILTERS["service_checks"](services, ["cp1"])) == sorted([
        ("service etcd", "cp1"), ("service kubelet", "cp1"), ("service apid", "cp2"), ("service kubelet", "cp2"),
        ("service apid", V), ("service kubelet", V)])


def test_node_facts_request_reads_the_kernel_of_validators_only():
    control_plane = {"inventory_hostname": "controlplane-1", "talos_node_ip": "10.0.1.11"}
    assert verify.node_facts_request(control_plane) == {
        "name": "controlplane-1", "node": "10.0.1.11", "gather": ["boot", "services"]}
    validator = {"inventory_hostname": "validator", "talos_node_ip": "10.0.1.20",
                 "talos_node_hardware": {"numa_nodes": 2},
                 "talos_solana_worker_expected": {"sysctls": {"vm.swappiness": "1"}, "link": {"name": "enp1s0"}}}
    assert verify.node_facts_request(validator) == {
        "name": "validator", "node": "10.0.1.20", "gather": ["boot", "services", "kernel", "kubelet"],
        "numa_nodes": 2, "sysctls": ["vm.swappiness"], "links": ["enp1s0"]}
    # a link selected by MAC: no kernel name to read its MTU by
    by_mac = {**validator, "talos_solana_worker_expected": {"sysctls": {}, "link": {"mac": "aa:bb:cc:dd:ee:ff"}}}
    assert verify.node_facts_request(by_mac)["links"] == []


def test_facts_by_host_gives_each_host_its_own_facts_or_failure():
    read = {"nodes": {"cp1": {"boot": {}}, V: {"failed": True, "msg": "connection refused"}}}
    assert verify.facts_by_host(read, ["cp1", "cp2", V], ["cp1", V]) == {
        "cp1": {"boot": {}}, "cp2": {}, V: {"failed": True, "msg": "connection refused"}}
    # the module's own failure (talosctl missing) is each read host's; a host that left has none
    failed = {"failed": False, "msg": "talosctl was not found on PATH"}
    assert verify.facts_by_host(failed, ["cp1", "cp2"], ["cp1"]) == {"cp1": failed, "cp2": {}}


def test_node_checks_compare_every_host_boot_and_each_validator_kernel(monkeypatch):
    installer = {"id": "a" * 64, "image": "factory.talos.dev/metal-installer/" + "a" * 64 + ":v1.14.1"}
    boot = {"schematic": "a" * 64, "talos_version": "v1.14.1", "booted_with_uki": True, "secure_boot": False,
            "extensions": []}
    hostvars = {"cp1": {"talos_node_installer": installer},
                V: {"talos_node_installer": installer, "talos_solana_worker_expected": {"name": V}}}
    checked = []

    def talos_checks(facts, expected):
        checked.append((facts, expected))
        return [checks.result("kernel arg", expected["name"], True, "x", "x")]

    monkeypatch.setattr(checks, "talos_checks", talos_checks)
    results = verify.node_checks({"cp1": {"boot": boot}, V: {"boot": boot, "cmdline": []}}, hostvars,
                                 ["cp1", V], "v1.14.1")
    assert checked == [({"boot": boot, "cmdline": []}, {"name": V})]
    assert {(r["family"], r["subject"]) for r in results} == {("boot", "cp1"), ("boot", V), ("kernel", V)}
    assert all(r["passed"] for r in results), [r for r in results if not r["passed"]]
