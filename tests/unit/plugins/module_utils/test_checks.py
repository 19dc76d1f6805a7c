"""Verification checks: results computed from the inventory, compared as parsed quantities."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import checks

VALIDATOR = {
    "name": "v", "hardware": {"cpus": 64, "numa_nodes": 2, "memory": "512Gi"},
    "hugepages": {"2Mi": 50000, "1Gi": 0}, "reserved_system_cpus": "0-3",
    "kube_reserved": {"memory": "16Gi"}, "system_reserved": {"memory": "16Gi"},
    "eviction_hard": {"memory.available": "32Gi"},
    "labels": {"solana.io/role": "validator"}, "taints": {"solana.io/validator": "true:NoSchedule"},
}
# as a kubelet reports it on a machine whose MemTotal follows the project's rule, worked out by hand:
#   installed 512Gi = 536870912Ki; kernel reserve 1/64 + 64Mi = 8388608Ki + 65536Ki = 8454144Ki
#   MemTotal = 536870912Ki - 8454144Ki = 528416768Ki (516032Mi)
#   deductions: 50000 x 2Mi = 102400000Ki, kube 16Gi + system 16Gi + eviction 32Gi = 67108864Ki;
#   together 169508864Ki (165536Mi)
#   allocatable memory = 528416768Ki - 169508864Ki = 358907904Ki
NODE = {
    "metadata": {"name": "v", "labels": {"solana.io/role": "validator"}},
    "spec": {"taints": [{"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}]},
    "status": {
        "capacity": {"cpu": "64", "memory": "528416768Ki", "hugepages-2Mi": "100000Mi", "hugepages-1Gi": "0"},
        "allocatable": {"cpu": "60", "memory": "358907904Ki", "hugepages-2Mi": "102400000Ki",
                        "hugepages-1Gi": "0"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def failed(results):
    return {(r["name"], r["subject"]): r for r in results if not r["passed"]}


def test_a_correct_validator_passes_every_check():
    results = checks.validator_checks([NODE], VALIDATOR)
    assert failed(results) == {}
    assert len(results) == 10  # capacity memory, 3 other capacities, 4 allocatables, label, taint


def with_status(**figures):
    node = copy.deepcopy(NODE)
    for path, value in figures.items():
        kind, resource = path.split("__")
        node["status"][kind][resource.replace("_", "-")] = value
    return node


@pytest.mark.parametrize(
    ("figures", "check", "expected", "observed"),
    [
        ({"capacity__hugepages_2Mi": "100Gi"}, "capacity hugepages-2Mi", "100000Mi", "102400Mi"),
        ({"allocatable__cpu": "56"}, "allocatable cpu", "60", "56"),
        ({"allocatable__hugepages_2Mi": "99998Mi"}, "allocatable hugepages-2Mi", "100000Mi", "99998Mi"),
        ({"capacity__cpu": "32"}, "capacity cpu", "64", "32"),
        ({"capacity__hugepages_1Gi": "1Gi"}, "capacity hugepages-1Gi", "0", "1024Mi"),
        # one KiB more than the kubelet's rule gives for the inventory's deductions
        ({"allocatable__memory": "358907905Ki"}, "allocatable memory",
         "memory capacity less 165536Mi (huge pages and reservations) = 350496Mi", "358907905Ki"),
        # the audit's validator: 512Gi installed, about 252Gi reported, allocatable consistent with it
        ({"capacity__memory": "252Gi", "allocatable__memory": f"{252 * 1024 * 1024 - 169508864}Ki"},
         "capacity memory", "516032Mi to 524288Mi", "258048Mi"),
        # above the installed memory
        ({"capacity__memory": "600Gi", "allocatable__memory": f"{600 * 1024 * 1024 - 169508864}Ki"},
         "capacity memory", "516032Mi to 524288Mi", "614400Mi"),
        # a kubelet reserving 8Gi less than the inventory: capacity fine, allocatable 8Gi too high
        ({"allocatable__memory": f"{358907904 + 8 * 1024 * 1024}Ki"}, "allocatable memory",
         "memory capacity less 165536Mi (huge pages and reservations) = 350496Mi", "358688Mi"),
    ],
)
def test_each_wrong_figure_fails_exactly_its_check(figures, check, expected, observed):
    failures = failed(checks.validator_checks([with_status(**figures)], VALIDATOR))
    assert list(failures) == [(check, "v")]
    assert (failures[(check, "v")]["expected"], failures[(check, "v")]["observed"]) == (expected, observed)


def test_memory_capacity_at_both_ends_of_the_kernel_reserve_passes():
    for memtotal in (528416768, 536870912):  # installed less the whole reserve; all of it
        node = with_status(capacity__memory=f"{memtotal}Ki", allocatable__memory=f"{memtotal - 169508864}Ki")
        assert failed(checks.validator_checks([node], VALIDATOR)) == {}
    # one KiB below the reserve's end
    node = with_status(capacity__memory="528416767Ki", allocatable__memory=f"{528416767 - 169508864}Ki")
    assert set(failed(checks.validator_checks([node], VALIDATOR))) == {("capacity memory", "v")}


def test_allocatable_expectations_come_from_the_inventory_not_from_the_node():
    """A node whose figures are consistent with each other but not with the inventory fails: the
    expected figures do not move with what the node reports."""
    node = with_status(**{"capacity__hugepages_2Mi": "50000Mi", "allocatable__hugepages_2Mi": "50000Mi",
                          "allocatable__memory": f"{358907904 + 50000 * 1024}Ki"})
    assert set(failed(checks.validator_checks([node], VALIDATOR))) == {
        ("capacity hugepages-2Mi", "v"), ("allocatable hugepages-2Mi", "v"), ("allocatable memory", "v")}


def test_absent_memory_figures_fail():
    node = copy.deepcopy(NODE)
    del node["status"]["capacity"]["memory"], node["status"]["allocatable"]["memory"]
    failures = failed(checks.validator_checks([node], VALIDATOR))
    assert set(failures) == {("capacity memory", "v"), ("allocatable memory", "v")}
    assert failures[("capacity memory", "v")]["observed"] == "absent"


def test_hugepage_failures_say_how_many_pages():
    node = copy.deepcopy(NODE)
    node["status"]["capacity"]["hugepages-2Mi"] = "100Gi"
    result = failed(checks.validator_checks([node], VALIDATOR))[("capacity hugepages-2Mi", "v")]
    assert result["detail"] == "51200 pages reported, 50000 configured"


def test_missing_taint_label_and_node():
    node = copy.deepcopy(NODE)
    node["spec"]["taints"] = []
    node["metadata"]["labels"] = {}
    assert set(failed(checks.validator_checks([node], VALIDATOR))) == {
        ("taint solana.io/validator", "v"), ("label solana.io/role", "v")}
    assert checks.validator_checks([], VALIDATOR)[0]["passed"] is False


def test_node_checks_report_missing_and_not_ready_nodes():
    not_ready = copy.deepcopy(NODE)
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False", "message": "kubelet stopped"}]
    results = checks.node_checks([not_ready], ["v", "cp-1"])
    assert set(failed(results)) == {("node Ready", "v"), ("node registered", "cp-1")}
    assert failed(results)[("node Ready", "v")]["detail"] == "kubelet stopped"


NO_CNI = {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
          "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                     "message:Network plugin returns error: cni plugin not initialized"}


def test_a_node_waiting_for_a_cni_passes_only_when_the_inventory_says_cni_none():
    waiting, stopped = copy.deepcopy(NODE), copy.deepcopy(NODE)
    waiting["status"]["conditions"] = [NO_CNI]
    stopped["metadata"]["name"] = "cp-1"
    stopped["status"]["conditions"] = [{"type": "Ready", "status": "Unknown",
                                        "message": "Kubelet stopped posting node status."}]
    # the default CNI: a node waiting for one is simply not Ready
    assert set(failed(checks.node_checks([waiting], ["v"]))) == {("node Ready", "v")}
    assert checks.ready_nodes([waiting, NODE]) == ["v"] and checks.ready_nodes([waiting]) == []
    # CNI none: that one reason is accepted and named; any other NotReady still fails
    results = checks.node_checks([waiting, stopped], ["v", "cp-1"], cni="none")
    named = {(r["name"], r["subject"]): r for r in results}
    assert named[("node Ready or waiting for a CNI", "v")]["passed"]
    assert named[("node Ready or waiting for a CNI", "v")]["observed"] == "waiting for a CNI"
    assert set(failed(results)) == {("node Ready or waiting for a CNI", "cp-1")}
    assert failed(results)[("node Ready or waiting for a CNI", "cp-1")]["observed"] == \
        "Unknown (Kubelet stopped posting node status.)"
    assert checks.ready_nodes([waiting, stopped], "none") == ["v"]
    assert checks.ready_nodes([NODE], "none") == ["v"]


def test_priority_class_and_builtin():
    classes = [{"metadata": {"name": "solana-critical"}, "value": 1000000},
               {"metadata": {"name": "system-cluster-critical"}, "value": 2000000000}]
    results = checks.priority_class_checks(classes, "solana-critical", 1000000)
    assert failed(results) == {}
    assert set(failed(checks.priority_class_checks(classes, "solana-critical", 5))) == {
        ("PriorityClass", "solana-critical")}
    # the built-in always exists: information, never a pass or a failure
    builtin = [r for r in checks.priority_class_checks(classes[:1], "solana-critical", 1000000)
               if r["subject"] == "system-cluster-critical"]
    assert [(r["info"], r["observed"]) for r in builtin] == [(True, "missing")]
    assert checks.counts(results) == (1, 0, [])


VOLUMES = {"v": [{"name": "ledger", "capacity": "15T"}, {"name": "accounts", "capacity": "6T"}]}
CLASSES = [{"metadata": {"name": f"local-nvme-{n}"}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"} for n in ("ledger", "accounts")]


def persistent_volume(volume, capacity, phase="Bound"):
    """As postconfig's template renders it (roles/cluster_postconfig/templates/objects.yaml.j2)."""
    return {"metadata": {"name": f"v-{volume}"},
            "spec": {"capacity": {"storage": capacity}, "storageClassName": f"local-nvme-{volume}",
                     "local": {"path": f"/var/mnt/{volume}"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": ["v"]}]}]}}},
            "status": {"phase": phase}}


PVS = [persistent_volume("ledger", "15T"), persistent_volume("accounts", "6000G", "Available")]


def test_storage_checks_pass_on_what_postconfig_creates():
    results = checks.storage_checks(CLASSES, VOLUMES, "local-nvme-", PVS)
    assert failed(results) == {}
    assert len(results) == 2 + 2 * 5  # two classes; phase, path, capacity, node affinity, class per volume


def _with_pv(change):
    pvs = copy.deepcopy(PVS)
    change(pvs[0])
    return pvs


@pytest.mark.parametrize(("change", "check", "observed"), [
    (lambda pv: pv["status"].update(phase="Released"), "PersistentVolume phase", "Released"),
    (lambda pv: pv["spec"]["local"].update(path="/tmp"), "PersistentVolume path", "local /tmp"),
    (lambda pv: pv["spec"].update(local=None, hostPath={"path": "/var/mnt/ledger"}), "PersistentVolume path",
     "not local /var/mnt/ledger"),
    (lambda pv: pv["spec"]["capacity"].update(storage="15Ti"), "PersistentVolume capacity", "15728640Mi"),
    (lambda pv: pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0].update(
        values=["cp1"]), "PersistentVolume node affinity", "kubernetes.io/hostname In [cp1]"),
    (lambda pv: pv["spec"].pop("nodeAffinity"), "PersistentVolume node affinity", "none"),
    (lambda pv: pv["spec"].update(storageClassName="standard"), "PersistentVolume StorageClass", "standard"),
])
def test_each_wrong_persistent_volume_field_fails_exactly_its_check(change, check, observed):
    failures = failed(checks.storage_checks(CLASSES, VOLUMES, "local-nvme-", _with_pv(change)))
    assert list(failures) == [(check, "v-ledger")]
    assert failures[(check, "v-ledger")]["observed"] == observed


def test_missing_persistent_volume_and_wrong_storage_class_fail():
    failures = failed(checks.storage_checks(CLASSES, VOLUMES, "local-nvme-", PVS[:1]))
    assert list(failures) == [("PersistentVolume", "v-accounts")]
    classes = copy.deepcopy(CLASSES)
    classes[0]["volumeBindingMode"] = "Immediate"
    assert list(failed(checks.storage_checks(classes, VOLUMES, "local-nvme-", PVS))) == [
        ("StorageClass", "local-nvme-ledger")]


def test_parse_taints():
    assert checks.parse_taints({"a": "true:NoSchedule", "b": ":NoExecute"}) == [
        {"key": "a", "value": "true", "effect": "NoSchedule"}, {"key": "b", "value": "", "effect": "NoExecute"}]


def test_summary_puts_failures_first_and_counts():
    results = [checks.result("a", "x", True, 1, 1), checks.result("b", "y", False, 2, 3, "why")]
    lines = checks.summarize(results).splitlines()
    assert lines[2].startswith("FAIL  b") and lines[2].endswith("3 (why)")
    assert lines[-1] == "1 passed, 1 failed"


TUNED = {"name": "v", "hardware": {"cpus": 64, "numa_nodes": 2, "memory": "512Gi"},
         "kernel_args": ["hugepagesz=1G", "hugepages=32", "hugepagesz=2M", "hugepages=1000", "iommu=pt"],
         "hugepages": {"2Mi": 1000, "1Gi": 32}, "boot_mode": "uki",
         "volumes": [{"name": "ledger"}, {"name": "accounts", "filesystem": "ext4"}]}
KERNEL = {
    "cmdline": ["talos.platform=metal", "hugepagesz=1G", "hugepages=32", "hugepagesz=2M", "hugepages=1000", "iommu=pt"],
    # the default size is the larger one: 1 GiB pages are what HugePages_Total counts
    "meminfo": {"Hugetlb": 32 * 1024 * 1024 + 1000 * 2048, "Hugepagesize": 1048576, "HugePages_Total": 32},
    "numa": [{"node": 0, "HugePages_Total": 16}, {"node": 1, "HugePages_Total": 16}],
    "mounts": [{"mountpoint": "/var/mnt/ledger", "fstype": "xfs"},
               {"mountpoint": "/var/mnt/accounts", "fstype": "ext4"}],
}


def test_a_tuned_kernel_passes():
    results = checks.talos_checks(KERNEL, TUNED)
    assert failed(results) == {} and len(results) == 5 + 4 + 2


def test_ignored_kernel_args_fail_with_the_uki_hint():
    stock = {**KERNEL, "cmdline": ["talos.platform=metal"],
             "meminfo": {"Hugetlb": 0, "Hugepagesize": 2048, "HugePages_Total": 0},
             "numa": [{"node": 0, "HugePages_Total": 0}]}
    failures = failed(checks.talos_checks(stock, TUNED))
    assert ("kernel arg hugepages=32", "v") in failures
    assert "upgrade to) the image of v.schematic.yaml" in failures[("kernel arg iommu=pt", "v")]["detail"]
    assert failures[("HugePages_Total per NUMA node", "v")]["observed"] == "0"
    assert failures[("HugePages_Total per NUMA node", "v")]["expected"] == "16 + 16"
    assert failures[("Hugepagesize", "v")]["expected"] == "1048576 kB"


def test_unmounted_or_wrong_filesystem_volumes_fail():
    kernel = {**KERNEL, "mounts": [{"mountpoint": "/var/mnt/ledger", "fstype": "ext4"}]}
    failures = failed(checks.talos_checks(kernel, TUNED))
    assert failures[("volume ledger mounted", "v")]["observed"] == "/var/mnt/ledger (ext4)"
    assert failures[("volume accounts mounted", "v")]["observed"] == "not mounted"


NETWORK = {
    "name": "v", "link": {"name": "enp1s0"}, "mtu": 9000,
    "sysctls": {"vm.swappiness": "01", "net.ipv4.tcp_rmem": "4096 131072  268435456",
                "net.ipv4.tcp_congestion_control": "bbr"},
}
NETWORK_FACTS = {"sysctls": {"vm.swappiness": "1", "net.ipv4.tcp_rmem": "4096\t131072\t268435456",
                             "net.ipv4.tcp_congestion_control": "bbr"},
                 "link_mtu": {"enp1s0": 9000}}


def test_sysctls_and_link_mtu_as_the_kernel_prints_them_pass():
    results = checks.sysctl_checks(NETWORK_FACTS, NETWORK)
    assert failed(results) == {} and len(results) == 4
    assert {r["name"] for r in results} >= {"sysctl vm.swappiness", "link enp1s0 MTU"}


def test_a_different_sysctl_a_missing_one_and_a_different_mtu_fail():
    facts = {"sysctls": {**NETWORK_FACTS["sysctls"], "vm.swappiness": "60", "net.ipv4.tcp_congestion_control": None},
             "link_mtu": {"enp1s0": 1500}}
    failures = failed(checks.sysctl_checks(facts, NETWORK))
    assert failures[("sysctl vm.swappiness", "v")]["expected"] == "1"
    assert failures[("sysctl vm.swappiness", "v")]["observed"] == "60"
    assert failures[("sysctl net.ipv4.tcp_congestion_control", "v")]["observed"] == "no such sysctl"
    assert failures[("link enp1s0 MTU", "v")]["observed"] == 1500
    assert ("sysctl net.ipv4.tcp_rmem", "v") not in failures
    # nothing read: every check fails
    assert len(failed(checks.sysctl_checks({}, NETWORK))) == 4
    assert failed(checks.sysctl_checks({}, NETWORK))[("link enp1s0 MTU", "v")]["observed"] == "no such link"


def test_sysctl_checks_are_part_of_the_kernel_checks():
    names = {r["name"] for r in checks.talos_checks({**KERNEL, **NETWORK_FACTS}, {**TUNED, **NETWORK})}
    assert {"sysctl vm.swappiness", "link enp1s0 MTU"} <= names


def test_kernel_printed():
    assert checks.kernel_printed("4096 131072   268435456") == "4096\t131072\t268435456"
    assert checks.kernel_printed(1) == "1" and checks.kernel_printed("007") == "7"
    assert checks.kernel_printed("bbr") == "bbr"


POLICIES = {**TUNED, "cpu_manager_policy": "static", "topology_manager_policy": "single-numa-node",
            "memory_manager_policy": "Static", "reserved_system_cpus": "0-3"}


def test_kubelet_policies_are_compared_with_the_tuning():
    kubelet = {"cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node",
               "memoryManagerPolicy": "Static", "reservedSystemCPUs": "0-3"}
    assert failed(checks.talos_checks({**KERNEL, "kubelet_config": kubelet}, POLICIES)) == {}
    failures = failed(checks.talos_checks({**KERNEL, "kubelet_config": {"cpuManagerPolicy": "none"}}, POLICIES))
    assert failures[("kubelet cpuManagerPolicy", "v")]["observed"] == "none"
    assert failures[("kubelet memoryManagerPolicy", "v")]["observed"] == "unset"
    # without the kubelet configuration read, there is nothing to compare
    assert not any(r["name"].startswith("kubelet") for r in checks.talos_checks(KERNEL, POLICIES))


RUNNING = {"running": True, "healthy": True}


def test_services_need_apid_kubelet_and_etcd_on_control_planes():
    services = {"cp1": {"apid": RUNNING, "kubelet": RUNNING, "etcd": RUNNING},
                "cp2": {"apid": RUNNING, "kubelet": RUNNING, "etcd": {"running": True, "healthy": False}},
                "worker": {"apid": RUNNING, "kubelet": RUNNING}}
    results = checks.service_checks(services, ["cp1", "cp2"])
    assert len(results) == 3 + 3 + 2
    assert set(failed(results)) == {("service etcd", "cp2")}
    assert failed(results)[("service etcd", "cp2")]["observed"] == "running, not healthy"
    missing = failed(checks.service_checks({"cp1": {}}, ["cp1"]))
    assert set(missing) == {("service apid", "cp1"), ("service kubelet", "cp1"), ("service etcd", "cp1")}
    assert missing[("service apid", "cp1")]["observed"] == "not running"


ETCD = {"members": [{"hostname": f"cp{i}"} for i in (1, 2, 3)],
        "status": {"10.0.1.11": {"member": "a"}, "10.0.1.12": {"member": "b"}, "10.0.1.13": {"member": "c"}},
        "quorum": {"members": 3, "responding": 3, "needed": 2, "leader": "a", "has_quorum": True}}


def test_etcd_with_every_member_healthy_passes():
    assert failed(checks.etcd_checks(ETCD, ["cp1", "cp2", "cp3"])) == {}


def test_etcd_with_a_member_down_keeps_quorum_but_is_reported():
    degraded = copy.deepcopy(ETCD)
    degraded["status"]["10.0.1.13"] = {"error": "connection refused"}
    degraded["quorum"]["responding"] = 2
    failures = failed(checks.etcd_checks(degraded, ["cp1", "cp2", "cp3"]))
    assert set(failures) == {("etcd members healthy", "etcd")}
    assert failures[("etcd members healthy", "etcd")]["detail"] == "10.0.1.13: connection refused"


def test_etcd_without_quorum_fails_every_check():
    lost = {"members": [], "status": {}, "quorum": {"members": 3, "responding": 0, "needed": 2, "has_quorum": False}}
    failures = failed(checks.etcd_checks(lost, ["cp1", "cp2", "cp3"]))
    assert failures[("etcd quorum", "etcd")]["observed"] == "lost"
    assert failures[("etcd members", "etcd")]["observed"] == "none"


def test_etcd_whose_answer_could_not_be_read_fails_with_why():
    unread = {"members": [], "status": {}, "quorum": {}, "error": "etcd's answer could not be read: KeyError('ID')"}
    failures = failed(checks.etcd_checks(unread, ["cp1", "cp2", "cp3"]))
    assert set(failures) == {("etcd members", "etcd"), ("etcd members healthy", "etcd"), ("etcd quorum", "etcd")}
    assert failures[("etcd quorum", "etcd")]["detail"] == unread["error"]


EMPTY_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
TUNED_ID = "44a703a9f9384a3357b120f84ec380edf6ba987cfe903d6581f6546453478294"
BOOTED = {"boot": {"schematic": TUNED_ID, "extensions": [], "talos_version": "v1.13.9", "booted_with_uki": True,
                   "secure_boot": False}}
INSTALLS = {"name": "v", "installer": {"id": TUNED_ID, "image": f"f/metal-installer/{TUNED_ID}:v1.13.9"},
            "talos_version": "v1.13.9", "boot_mode": "uki", "secureboot": False}


def test_boot_checks_pass_when_the_node_booted_its_installer():
    results = checks.boot_checks(BOOTED, INSTALLS)
    assert [r["name"] for r in results] == ["booted schematic", "Talos version", "booted with UKI", "SecureBoot"]
    assert failed(results) == {}


def test_boot_checks_name_the_schematic_a_node_booted_instead():
    stock = {"boot": {**BOOTED["boot"], "schematic": EMPTY_ID}}
    failure = failed(checks.boot_checks(stock, INSTALLS))[("booted schematic", "v")]
    assert (failure["expected"], failure["observed"]) == (TUNED_ID, EMPTY_ID)
    assert f"upgrade it to f/metal-installer/{TUNED_ID}:v1.13.9" in failure["detail"]
    unknown = failed(checks.boot_checks({"boot": {**BOOTED["boot"], "schematic": None}}, INSTALLS))
    assert unknown[("booted schematic", "v")]["observed"] == "none (not an Image Factory image)"


@pytest.mark.parametrize(("boot", "check", "observed"), [
    ({"talos_version": "v1.13.8"}, "Talos version", "v1.13.8"),
    ({"booted_with_uki": False}, "booted with UKI", False),
    ({"secure_boot": True}, "SecureBoot", True),
])
def test_boot_checks_fail_on_each_difference(boot, check, observed):
    failures = failed(checks.boot_checks({"boot": {**BOOTED["boot"], **boot}}, INSTALLS))
    assert set(failures) == {(check, "v")}
    assert failures[(check, "v")]["observed"] == observed


def test_boot_checks_without_facts_fail_every_check():
    assert len(failed(checks.boot_checks({}, INSTALLS))) == 4
    unread = {"boot": {"schematic": None, "extensions": [], "talos_version": None, "booted_with_uki": None,
                       "secure_boot": None}}
    failures = failed(checks.boot_checks(unread, {**INSTALLS, "boot_mode": "grub"}))
    checks_named = ("booted schematic", "Talos version", "booted with UKI", "SecureBoot")
    assert set(failures) == {(check, "v") for check in checks_named}
    assert failures[("SecureBoot", "v")]["observed"] == "not read"


def test_kubelet_version_is_checked_on_every_node():
    status = {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.36.3"}}
    node = {"metadata": {"name": "cp1"}, "status": status}
    assert failed(checks.node_checks([node], ["cp1"], "1.36.3")) == {}
    failure = failed(checks.node_checks([node], ["cp1"], "1.36.2"))[("kubelet version", "cp1")]
    assert (failure["expected"], failure["observed"]) == ("v1.36.2", "v1.36.3")


def test_kernel_args_compare_the_value_the_kernel_uses():
    wanted = ["hugepagesz=2M", "hugepages=1000", "hugepagesz=1G", "hugepages=32", "iommu=pt", "nosmt"]
    # Talos groups repeated keys (go-procfs): each key's values keep their order
    grouped = ["hugepagesz=2M", "hugepagesz=1G", "hugepages=1000", "hugepages=32", "iommu=pt", "nosmt"]
    assert failed(checks.kernel_arg_checks(grouped, wanted, "v")) == {}
    overridden = failed(checks.kernel_arg_checks([*grouped, "iommu=off"], wanted, "v"))
    assert list(overridden) == [("kernel arg iommu=pt", "v")]
    assert overridden[("kernel arg iommu=pt", "v")]["observed"] == "iommu=off (the last of: iommu=pt iommu=off)"
    # a later hugepages= for the last size replaces the count the tuning wants
    assert list(failed(checks.kernel_arg_checks([*grouped, "hugepages=64"], wanted, "v"))) == [
        ("kernel arg hugepages=1000", "v"), ("kernel arg hugepages=32", "v")]
    absent = failed(checks.kernel_arg_checks(["talos.platform=metal"], wanted, "v", "install the image"))
    assert len(absent) == 6 and {r["observed"] for r in absent.values()} == {"absent"}
    assert {r["detail"] for r in absent.values()} == {"install the image"}


def test_component_versions_are_the_control_plane_images_and_the_kubelets():
    def pod(app, image, container=None):
        return {"metadata": {"labels": {"k8s-app": app}},
                "spec": {"nodeName": "cp1", "containers": [{"name": container or app, "image": image}]}}

    pods = [pod("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.37.2"),
            pod("kube-scheduler", "127.0.0.1:5000/kube-scheduler:v1.36.3@sha256:" + "0" * 64),
            pod("kube-controller-manager", "registry.k8s.io/kube-controller-manager:v1.35.0", container="sidecar"),
            pod("coredns", "registry.k8s.io/coredns/coredns:v1.12.0")]
    nodes = [{"status": {"nodeInfo": {"kubeletVersion": "v1.36.4"}}}, {"status": {}}]
    # a container not named after its component says nothing about it; other pods are not components
    assert checks.component_versions(pods, nodes) == ["v1.36.3", "v1.36.4", "v1.37.2"]
    assert checks.image_version("127.0.0.1:5000/kube-proxy") is None
