"""talos_node_facts: parsing what the kernel reports."""

from __future__ import annotations

import json

from ansible_collections.solanaops.talos.plugins.module_utils import boot, talosctl
from ansible_collections.solanaops.talos.plugins.modules import talos_node_facts


def test_parse_meminfo_global_and_per_numa_node():
    text = ("MemTotal:       528416768 kB\nHugePages_Total:   50000\n"
            "Hugepagesize:       2048 kB\nHugetlb: 102400000 kB\n")
    assert talos_node_facts.parse_meminfo(text) == {
        "MemTotal": 528416768, "HugePages_Total": 50000, "Hugepagesize": 2048, "Hugetlb": 102400000}
    numa = "Node 1 MemTotal:       264208384 kB\nNode 1 HugePages_Total: 25000\n"
    assert talos_node_facts.parse_meminfo(numa) == {"MemTotal": 264208384, "HugePages_Total": 25000}
    assert talos_node_facts.parse_meminfo("garbage\n") == {}


def test_parse_mounts():
    text = ("/dev/nvme1n1p1 /var/mnt/ledger xfs rw,nosuid,noatime 0 0\n"
            "proc /proc proc rw 0 0\nshort line\n")
    assert talos_node_facts.parse_mounts(text) == [
        {"device": "/dev/nvme1n1p1", "mountpoint": "/var/mnt/ledger", "fstype": "xfs",
         "options": ["rw", "nosuid", "noatime"]},
        {"device": "proc", "mountpoint": "/proc", "fstype": "proc", "options": ["rw"]}]


def resource(kind, identifier, spec, namespace="runtime", node="127.0.1.20"):
    """One resource as `talosctl get -o json` prints it."""
    metadata = {"namespace": namespace, "type": kind, "id": identifier, "version": 1, "phase": "running"}
    return json.dumps({"node": node, "metadata": metadata, "spec": spec}, indent=4)


def test_parse_resources_reads_one_document_after_another():
    stdout = resource("Services.v1alpha1.talos.dev", "apid", {"running": True, "healthy": True}) + "\n" + \
        resource("Services.v1alpha1.talos.dev", "etcd", {"running": True, "healthy": False}) + "\n"
    services = talos_node_facts.parse_services(talosctl.parse_resources(stdout))
    assert services == {"apid": {"running": True, "healthy": True}, "etcd": {"running": True, "healthy": False}}
    assert talosctl.parse_resources("") == []


SCHEMATIC = "44a703a9f9384a3357b120f84ec380edf6ba987cfe903d6581f6546453478294"


def test_parse_boot_finds_the_schematic_among_the_extensions():
    kind = "ExtensionStatuses.runtime.talos.dev"
    extensions = [json.loads(resource(kind, str(i), {"image": image, "metadata": meta}))
                  for i, (image, meta) in enumerate([
                      ("amd-ucode.sqsh", {"name": "amd-ucode", "version": "20251111"}),
                      ("", {"name": "schematic", "version": SCHEMATIC})])]
    security = [json.loads(resource("SecurityStates.talos.dev", "securitystate", {"secureBoot": False,
                                                                                  "bootedWithUKI": True}))]
    version = [json.loads(resource("Versions.runtime.talos.dev", "version", {"version": "v1.13.9", "name": "Talos"}))]
    assert boot.parse_boot(extensions, security, version) == {
        "schematic": SCHEMATIC, "extensions": [{"name": "amd-ucode", "version": "20251111"}],
        "talos_version": "v1.13.9", "booted_with_uki": True, "secure_boot": False}


def test_parse_boot_of_a_grub_node_from_a_stock_image():
    """bootedWithUKI is omitted when false; a stock image lists no schematic."""
    security = [json.loads(resource("SecurityStates.talos.dev", "securitystate", {"secureBoot": False}))]
    assert boot.parse_boot([], security, []) == {
        "schematic": None, "extensions": [], "talos_version": None, "booted_with_uki": False, "secure_boot": False}


def test_parse_boot_with_nothing_read_reports_none_not_false():
    assert boot.parse_boot([], [], []) == {
        "schematic": None, "extensions": [], "talos_version": None, "booted_with_uki": None, "secure_boot": None}


def test_sysctl_path_swaps_dots_and_slashes_as_sysctl_d_does():
    assert talos_node_facts.sysctl_path("net.ipv4.tcp_rmem") == "/proc/sys/net/ipv4/tcp_rmem"
    vlan = "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
    assert talos_node_facts.sysctl_path("net.ipv4.conf.eth0/100.rp_filter") == vlan
    assert talos_node_facts.sysctl_path("net/ipv4/conf/eth0.100/rp_filter") == vlan


def test_an_empty_read_fails_naming_the_file_instead_of_reporting_an_empty_value(run_module):
    """talosctl read prints nothing and exits 0 when the node's read of the file fails (machined's
    chunker only logs it): an empty sysctl must not reach verify as observed ''."""
    def talos(argv):
        if argv[1] == "version":
            return 0, "Client:\nTalos v1.14.1\n", ""
        return 0, ("" if argv[2] == "/proc/sys/net/core/rmem_max" else "1\n"), ""

    result = run_module(talos_node_facts, talos, {"node": "127.0.1.20"}, gather=["kernel"],
                        sysctls=["vm.swappiness", "net.core.rmem_max"])
    assert result["failed"]
    assert result["msg"].startswith("talosctl read /proc/sys/net/core/rmem_max on 127.0.1.20 printed nothing")
    assert "sysctls" not in result


def _request(name, node, gather, **options):
    return {"name": name, "node": node, "gather": gather, "numa_nodes": 1, "sysctls": [], "links": [], **options}


class _Cluster:
    """Answers talosctl as a cluster whose node 127.0.1.13 is down, recording each call's command
    and nodes."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv):
        nodes = argv[argv.index("--nodes") + 1].split(",") if "--nodes" in argv else []
        self.calls.append((argv[1], argv[2] if len(argv) > 2 else None, tuple(nodes)))
        if argv[1] == "version":
            return 0, "Client:\nTalos v1.14.1\n", ""
        down = "127.0.1.13" in nodes
        if argv[1] == "get":
            up = [n for n in nodes if n != "127.0.1.13"]
            running = {"running": True, "healthy": True}
            # etcd runs on the control planes only: each node's list is its own
            kind = "Services.v1alpha1.talos.dev"
            listed = [(n, service) for n in up
                      for service in ["apid"] + (["etcd"] if n.startswith("127.0.1.1") else [])]
            stdout = "\n".join(resource(kind, service, running, node=n) for n, service in listed)
            if down:  # talosctl lists the others, then fails for the one it could not reach
                return 1, stdout, "error listing resources on node 127.0.1.13: rpc error: code = Unavailable"
            return 0, stdout, ""
        if down:
            return 1, "", "rpc error: code = Unavailable desc = connection refused"
        return 0, {"/proc/cmdline": "talos.platform=metal hugepages=50000\n",
                   "/proc/sys/vm/swappiness": "1\n"}.get(argv[2], "x: 1\n"), ""


def test_many_nodes_are_read_in_one_run_and_a_node_down_fails_alone(run_module):
    cluster = _Cluster()
    requests = [_request("cp-1", "127.0.1.11", ["services"]), _request("cp-3", "127.0.1.13", ["services"]),
                _request("validator", "127.0.1.20", ["services", "kernel"], sysctls=["vm.swappiness"])]
    result = run_module(talos_node_facts, cluster, {"node": None, "endpoint": "127.0.1.11"}, nodes=requests)
    assert not result["failed"], result
    facts = result["nodes"]
    running = {"running": True, "healthy": True}
    assert facts["cp-1"] == {"services": {"apid": running, "etcd": running}}
    assert facts["validator"]["services"] == {"apid": {"running": True, "healthy": True}}
    assert facts["validator"]["cmdline"] == ["talos.platform=metal", "hugepages=50000"]
    assert facts["validator"]["sysctls"] == {"vm.swappiness": "1"}
    assert facts["cp-3"]["failed"] and facts["cp-3"]["error"] == "NodeUnreachable", facts["cp-3"]
    assert "on 127.0.1.13" in facts["cp-3"]["msg"]
    # the services of all three in one call; its failure, one call each to tell which node failed
    gets = [nodes for command, _kind, nodes in cluster.calls if command == "get"]
    assert gets[0] == ("127.0.1.11", "127.0.1.13", "127.0.1.20")
    assert sorted(gets[1:]) == [("127.0.1.11",), ("127.0.1.13",), ("127.0.1.20",)]
    # the validator's files, one read each: /proc/cmdline, meminfo, mounts, its NUMA node, the sysctl
    reads = sorted(path for command, path, nodes in cluster.calls if command == "read")
    assert reads == ["/proc/cmdline", "/proc/meminfo", "/proc/mounts", "/proc/sys/vm/swappiness",
                     "/sys/devices/system/node/node0/meminfo"]


def test_a_node_of_many_reads_as_it_does_alone(run_module):
    """The same node's facts, read alone (node) and among others (nodes), are the same."""
    validator = {"numa_nodes": 1, "sysctls": ["vm.swappiness"], "links": [], "gather": ["services", "kernel"]}
    alone = run_module(talos_node_facts, _Cluster(), {"node": "127.0.1.20", "nodes": None, **validator})
    among = run_module(talos_node_facts, _Cluster(), {"node": None, "endpoint": "127.0.1.11"},
                       nodes=[_request("cp-1", "127.0.1.11", ["services"]),
                              {"name": "validator", "node": "127.0.1.20", **validator}])
    assert not alone["failed"] and not among["failed"], (alone, among)
    assert {k: v for k, v in alone.items() if k not in ("changed", "failed", "talosctl_version")} == \
        among["nodes"]["validator"]


def test_a_node_alone_that_cannot_be_read_fails_the_module(run_module):
    result = run_module(talos_node_facts, _Cluster(), {"node": "127.0.1.13", "nodes": None, "gather": ["services"]})
    assert result["failed"] and result["error"] == "NodeUnreachable", result
    assert "nodes" not in result


def test_one_get_lists_every_node_and_each_keeps_its_own_resources(run_module):
    cluster = _Cluster()
    result = run_module(talos_node_facts, cluster, {"node": None, "endpoint": "127.0.1.11"},
                        nodes=[_request("cp-1", "127.0.1.11", ["services"]),
                               _request("validator", "127.0.1.20", ["services"])])
    assert not result["failed"], result
    assert sorted(result["nodes"]["cp-1"]["services"]) == ["apid", "etcd"]
    assert sorted(result["nodes"]["validator"]["services"]) == ["apid"]
    assert [nodes for command, _kind, nodes in cluster.calls if command == "get"] == [("127.0.1.11", "127.0.1.20")]


def test_no_nodes_read_nothing(run_module):
    cluster = _Cluster()
    result = run_module(talos_node_facts, cluster, {"node": None}, nodes=[])
    assert not result["failed"] and result["nodes"] == {}, result
    assert [command for command, _path, _nodes in cluster.calls] == ["version"]


def test_etcd_is_asked_in_the_same_run_beside_the_reads(run_module):
    """verify's etcd checks come from the run that reads the nodes: talos_etcd's answer, each
    control plane asked through itself, a node whose etcd does not answer in status with its error."""
    members = ("NODE         ID                 HOSTNAME         PEER URLS                 CLIENT URLS"
               "               LEARNER\n"
               + "".join(f"127.0.1.11   {member}   controlplane-{n}   https://127.0.1.1{n}:2380   "
                         f"https://127.0.1.1{n}:2379   false\n" for n, member in [(1, "aa"), (2, "bb"), (3, "cc")]))
    header = ("NODE         MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   "
              "RAFT APPLIED INDEX   LEARNER   PROTOCOL   STORAGE   ERRORS\n")
    cluster, asked = _Cluster(), []

    def talos(argv):
        if argv[1] != "etcd":
            return cluster(argv)
        node = argv[argv.index("--nodes") + 1]
        asked.append((argv[2], node, argv[argv.index("--endpoints") + 1]))
        if argv[2] == "members":
            return 0, members, ""
        if node == "127.0.1.13":
            return 1, "", f"error getting status: 1 error occurred:\n\t* {node}: rpc error: code = Unavailable\n"
        member = {"127.0.1.11": "aa", "127.0.1.12": "bb"}[node]
        return 0, header + f"{node}   {member}   1 MB   1 MB (100%)   aa   9   2   9   false   3.6.14   3.6.0   \n", ""

    result = run_module(talos_node_facts, talos, {"node": None, "endpoint": "127.0.1.11"},
                        nodes=[_request("cp-1", "127.0.1.11", ["services"])],
                        etcd=["127.0.1.11", "127.0.1.12", "127.0.1.13"])
    assert not result["failed"], result
    assert sorted(result["nodes"]["cp-1"]["services"]) == ["apid", "etcd"]
    etcd = result["etcd"]
    assert [m["hostname"] for m in etcd["members"]] == ["controlplane-1", "controlplane-2", "controlplane-3"]
    assert etcd["status"]["127.0.1.12"]["leader"] == "aa"
    assert "Unavailable" in etcd["status"]["127.0.1.13"]["error"]
    assert etcd["quorum"] == {"members": 3, "responding": 2, "needed": 2, "leader": "aa", "has_quorum": True}
    assert ("status", "127.0.1.12", "127.0.1.12") in asked and ("members", "127.0.1.11", "127.0.1.11") in asked
    # without the option, etcd is not asked and not reported
    cluster, asked = _Cluster(), []
    alone = run_module(talos_node_facts, talos, {"node": None, "endpoint": "127.0.1.11"},
                       nodes=[_request("cp-1", "127.0.1.11", ["services"])])
    assert "etcd" not in alone and asked == []


def test_an_etcd_answer_that_cannot_be_read_leaves_the_nodes_facts(run_module):
    cluster = _Cluster()

    def talos(argv):
        if argv[1] == "etcd":  # a table of other columns than talosctl prints
            return 0, "NODE         SOMETHING\n127.0.1.11   else\n", ""
        return cluster(argv)

    result = run_module(talos_node_facts, talos, {"node": None, "endpoint": "127.0.1.11"},
                        nodes=[_request("cp-1", "127.0.1.11", ["services"])], etcd=["127.0.1.11"])
    assert not result["failed"], result
    assert sorted(result["nodes"]["cp-1"]["services"]) == ["apid", "etcd"]
    assert result["etcd"]["members"] == [] and "could not be read" in result["etcd"]["error"]
