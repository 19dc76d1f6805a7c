#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_node_facts
short_description: Read what a Talos node's kernel reports, for verification
version_added: 0.1.0
description:
  - Reads C(/proc/cmdline), C(/proc/meminfo), C(/proc/mounts) and each NUMA node's
    C(/sys/devices/system/node/nodeN/meminfo) with C(talosctl read) and returns them parsed
    (O(gather) C(kernel)), with the C(/proc/sys) file of each of O(sysctls) and the
    C(/sys/class/net/<link>/mtu) of each of O(links).
  - Reads the kubelet configuration Talos rendered, C(/etc/kubernetes/kubelet.yaml)
    (O(gather) C(kubelet)), and the state of the node's services from its C(Service)
    resources (O(gather) C(services)).
  - Reads what the node booted (O(gather) C(boot)) from its resources, that is the Image Factory
    schematic ID (the C(schematic) entry of C(talosctl get extensions)), the extensions, the
    Talos version (C(get version)) and whether it booted a UKI (C(get securitystate)).
  - A read that prints nothing fails the module, naming the file; none of these files is empty
    on a running node, and C(talosctl read) prints nothing and exits 0 when the node's read of
    the file fails. A read cut short after some data is not detected here.
  - With O(nodes), reads many nodes in one run, up to O(parallel) talosctl processes at once (one
    C(talosctl read) per file and node, one C(talosctl get) per resource kind for all of them), and
    returns each node's facts, or its failure, under RV(nodes); one node that cannot be read does
    not hide the others.
  - With O(etcd), also asks etcd for its members and each member's status, side by side with the
    reads (what M(solanaops.talos.talos_etcd) answers), under RV(etcd).
  - Read-only; never changes anything.
options:
  etcd:
    description:
      - Control-plane nodes whose etcd to ask, as M(solanaops.talos.talos_etcd) O(nodes) (each
        through its own endpoint); empty asks none.
    type: list
    elements: str
    default: []
  node:
    description:
      - Address of the node, whose facts are returned at the top level; a failed read fails the module.
      - Exactly one of O(node) and O(nodes).
    type: str
  nodes:
    description:
      - The nodes to read, each with its own O(numa_nodes), O(sysctls), O(links) and O(gather) (the
        top-level ones are not used).
      - Exactly one of O(node) and O(nodes).
    type: list
    elements: dict
    suboptions:
      name:
        description: The node's name, its key in RV(nodes).
        type: str
        required: true
      node:
        description: Address of the node.
        type: str
        required: true
      numa_nodes:
        description: As O(numa_nodes).
        type: int
        default: 1
      sysctls:
        description: As O(sysctls).
        type: list
        elements: str
        default: []
      links:
        description: As O(links).
        type: list
        elements: str
        default: []
      gather:
        description: As O(gather).
        type: list
        elements: str
        choices: [kernel, kubelet, services, boot]
        default: [kernel, kubelet, services, boot]
  endpoint:
    description: Talos API endpoint the requests go through; defaults to each node itself.
    type: str
  numa_nodes:
    description: How many NUMA nodes to read C(meminfo) of.
    type: int
    default: 1
  sysctls:
    description:
      - Sysctls to read (O(gather) C(kernel)), named as in C(machine.sysctls); C(net.ipv4.tcp_rmem)
        is read from C(/proc/sys/net/ipv4/tcp_rmem).
    type: list
    elements: str
    default: []
  links:
    description: Kernel names of links whose MTU to read (O(gather) C(kernel)).
    type: list
    elements: str
    default: []
  gather:
    description: Which facts to read.
    type: list
    elements: str
    choices: [kernel, kubelet, services, boot]
    default: [kernel, kubelet, services, boot]
extends_documentation_fragment:
  - solanaops.talos.talosctl
  - solanaops.talos.talosctl.parallel
attributes:
  check_mode:
    support: full
    description: Reads the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Read the validator's kernel view
  solanaops.talos.talos_node_facts:
    node: 10.0.1.20
    endpoint: 10.0.1.11
    numa_nodes: 2
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: validator_kernel

- name: Read what every node booted and its services, in one run
  solanaops.talos.talos_node_facts:
    endpoint: 10.0.1.11
    nodes:
      - {name: cp-1, node: 10.0.1.11, gather: [boot, services]}
      - {name: validator-1, node: 10.0.1.20, gather: [boot, services, kernel], numa_nodes: 2}
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: cluster_facts
"""

RETURN = r"""
cmdline:
  description: The kernel command line, one argument per item.
  returned: when O(gather) has C(kernel)
  type: list
  elements: str
  sample: ["talos.platform=metal", "hugepagesz=2M", "hugepages=50000"]
meminfo:
  description: C(/proc/meminfo) as numbers (kB for sizes, counts for huge pages).
  returned: when O(gather) has C(kernel)
  type: dict
  sample: {"MemTotal": 528416768, "HugePages_Total": 50000, "Hugepagesize": 2048, "Hugetlb": 102400000}
mounts:
  description: C(/proc/mounts) entries.
  returned: when O(gather) has C(kernel)
  type: list
  elements: dict
  sample: [{"device": "/dev/nvme1n1p1", "mountpoint": "/var/mnt/ledger", "fstype": "xfs", "options": ["rw"]}]
numa:
  description: Per NUMA node, its C(meminfo) as numbers.
  returned: when O(gather) has C(kernel)
  type: list
  elements: dict
  sample: [{"node": 0, "HugePages_Total": 25000}]
sysctls:
  description: Each of O(sysctls) as the kernel prints it (trailing newline removed); null when the file does not exist.
  returned: when O(gather) has C(kernel)
  type: dict
  sample: {"vm.swappiness": "1", "net.ipv4.tcp_rmem": "4096\t131072\t268435456", "vm.no_such_sysctl": null}
link_mtu:
  description: Each of O(links) and its MTU; null when the link does not exist.
  returned: when O(gather) has C(kernel)
  type: dict
  sample: {"enp1s0": 9000}
kubelet_config:
  description: The KubeletConfiguration the node's kubelet runs with.
  returned: when O(gather) has C(kubelet)
  type: dict
  sample: {"cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node", "reservedSystemCPUs": "0-1,32-33"}
services:
  description: Each running service's C(Service) resource (Talos lists only running services).
  returned: when O(gather) has C(services)
  type: dict
  sample: {"kubelet": {"running": true, "healthy": true}, "etcd": {"running": true, "healthy": true}}
boot:
  description: What the node booted.
  returned: when O(gather) has C(boot)
  type: dict
  contains:
    schematic:
      description: The Image Factory schematic ID of the installed image; null for an image the factory did not build.
      type: str
      sample: 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
    extensions:
      description: The system extensions, C(name) and C(version) each (the schematic entry excluded).
      type: list
      elements: dict
      sample: [{"name": "amd-ucode", "version": "20251111"}]
    talos_version:
      description: The Talos version running.
      type: str
      sample: v1.13.9
    booted_with_uki:
      description: Whether the node booted a unified kernel image (systemd-boot); null when not read.
      type: bool
      sample: true
    secure_boot:
      description: Whether the node booted with SecureBoot; null when not read.
      type: bool
      sample: false
nodes:
  description:
    - With O(nodes), each node's facts by its name, as the other return values describe them, or,
      when they could not be read, its failure (C(failed), C(msg), C(error) and the command's output).
  returned: when O(nodes) is set
  type: dict
  sample: {"cp-1": {"services": {"etcd": {"running": true, "healthy": true}}},
           "validator-1": {"failed": true, "msg": "talosctl read failed on 10.0.1.20: ...", "error": "NodeUnreachable"}}
etcd:
  description:
    - With O(etcd), what M(solanaops.talos.talos_etcd) returns for them, C(members), C(status) (each
      node's, or its error) and C(quorum); a node that does not answer is in C(status) with its error.
    - When talosctl's answer could not be read, empty ones and C(error), which says why.
  returned: when O(etcd) is set
  type: dict
  sample: {"members": [{"hostname": "cp-1", "id": "8e3e1f...", "learner": false}],
           "status": {"10.0.1.11": {"member": "8e3e1f...", "leader": "8e3e1f..."}},
           "quorum": {"members": 3, "responding": 3, "needed": 2, "leader": "8e3e1f...", "has_quorum": true}}
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
"""

import re

from ansible.module_utils.basic import AnsibleModule

try:
    import yaml
except ImportError:  # pragma: no cover - ships with ansible-core
    yaml = None
from ansible_collections.solanaops.talos.plugins.module_utils import etcd
from ansible_collections.solanaops.talos.plugins.module_utils.boot import BOOT_RESOURCES, parse_boot
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    PARALLEL_ARGSPEC,
    TALOSCTL_ARGSPEC,
    CommandFailed,
    Talosctl,
    TalosError,
    fail_json_from,
    failure_result,
    side_by_side,
)

_MEMINFO_LINE = re.compile(r"^(?:Node \d+ )?([A-Za-z0-9_()]+):\s+(\d+)")
KUBELET_CONFIG = "/etc/kubernetes/kubelet.yaml"
GATHER = ["kernel", "kubelet", "services", "boot"]
# what one node's facts are read for (O(node) and each of O(nodes))
NODE_OPTIONS = {
    "numa_nodes": {"type": "int", "default": 1},
    "sysctls": {"type": "list", "elements": "str", "default": []},
    "links": {"type": "list", "elements": "str", "default": []},
    "gather": {"type": "list", "elements": "str", "choices": GATHER, "default": GATHER},
}


def parse_meminfo(text):
    """'MemTotal:  528416768 kB' (or 'Node 0 MemTotal: ...') -> {'MemTotal': 528416768}."""
    values = {}
    for line in text.splitlines():
        match = _MEMINFO_LINE.match(line.strip())
        if match:
            values[match.group(1)] = int(match.group(2))
    return values


def parse_mounts(text):
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts.append({"device": fields[0], "mountpoint": fields[1], "fstype": fields[2],
                           "options": fields[3].split(",")})
    return mounts


def sysctl_path(key):
    """The /proc/sys file of a sysctl key, by sysctl.d(5) as Talos applies it: when the first
    separator is a dot, dots and slashes swap (``net.ipv4.conf.eth0/100.rp_filter``)."""
    first = re.search(r"[./]", key)
    if first and first.group(0) == ".":
        key = key.translate(str.maketrans("./", "/."))
    return "/proc/sys/" + key


def numa_meminfo_path(numa_node):
    return f"/sys/devices/system/node/node{numa_node}/meminfo"


def link_mtu_path(link):
    return f"/sys/class/net/{link}/mtu"


def parse_services(resources):
    """``Service`` resources -> {id: {running, healthy}}."""
    return {r["metadata"]["id"]: {"running": bool(r["spec"].get("running")), "healthy": bool(r["spec"].get("healthy"))}
            for r in resources}


def _int_or_none(text):
    return None if text is None else int(text)


def files_to_read(request):
    """{path: whether the file may be absent} of every file a node's request reads: a sysctl or a
    link the kernel does not have is an answer (null), any other missing file a failed read."""
    files = {}
    if "kernel" in request["gather"]:
        files.update(dict.fromkeys(["/proc/cmdline", "/proc/meminfo", "/proc/mounts"], False))
        files.update(dict.fromkeys(map(numa_meminfo_path, range(request["numa_nodes"])), False))
        files.update(dict.fromkeys(map(sysctl_path, request["sysctls"]), True))
        files.update(dict.fromkeys(map(link_mtu_path, request["links"]), True))
    if "kubelet" in request["gather"]:
        files[KUBELET_CONFIG] = False
    return files


def resources_to_read(request):
    return (["services"] if "services" in request["gather"] else []) + (
        list(BOOT_RESOURCES) if "boot" in request["gather"] else [])


def node_facts(request, files, resources):
    """One node's facts from the contents of its files ({path: text, None when absent}) and its
    resources ({kind: list})."""
    facts = {}
    if "kernel" in request["gather"]:
        facts.update(
            cmdline=files["/proc/cmdline"].split(),
            meminfo=parse_meminfo(files["/proc/meminfo"]),
            mounts=parse_mounts(files["/proc/mounts"]),
            numa=[{"node": n, **parse_meminfo(files[numa_meminfo_path(n)])} for n in range(request["numa_nodes"])],
            sysctls={key: files[sysctl_path(key)] for key in request["sysctls"]},
            link_mtu={link: _int_or_none(files[link_mtu_path(link)]) for link in request["links"]},
        )
    if "kubelet" in request["gather"]:
        facts["kubelet_config"] = yaml.safe_load(files[KUBELET_CONFIG]) or {}
    if "services" in request["gather"]:
        facts["services"] = parse_services(resources["services"])
    if "boot" in request["gather"]:
        facts["boot"] = parse_boot(*(resources[kind] for kind in BOOT_RESOURCES))
    return facts


class NodeReader:
    """Reads the facts of many nodes in a pool of threads (side_by_side): one ``talosctl read`` per
    file and node (it reads one file of one node), one ``talosctl get`` per resource kind for all
    the nodes behind an endpoint (it lists each node in turn)."""

    def __init__(self, talosctl, endpoint):
        self.talosctl, self.endpoint = talosctl, endpoint

    def read_all(self, requests, pool):
        """{request's name: its facts, or the TalosError that kept them from being read}."""
        files = {(r["name"], path): pool.submit(self._read, r["node"], path, absent_ok)
                 for r in requests for path, absent_ok in files_to_read(r).items()}
        nodes_by_kind = {}
        for request in requests:
            for kind in resources_to_read(request):
                nodes_by_kind.setdefault(kind, []).append(request["node"])
        listed = {kind: pool.submit(self._get_each, kind, nodes) for kind, nodes in nodes_by_kind.items()}
        files = {key: future.result() for key, future in files.items()}
        listed = {kind: future.result() for kind, future in listed.items()}
        facts = {}
        for request in requests:
            name = request["name"]
            contents = {path: files[name, path] for path in files_to_read(request)}
            resources = {kind: listed[kind][request["node"]] for kind in resources_to_read(request)}
            error = next((v for v in [*contents.values(), *resources.values()] if isinstance(v, TalosError)), None)
            facts[name] = error or node_facts(request, contents, resources)
        return facts

    def _endpoint(self, node):
        return self.endpoint or node

    def _read(self, node, path, absent_ok):
        """The file's content (None when it may be absent and is), or the TalosError of its read."""
        try:
            content = self.talosctl.run(["read", path], nodes=[node], endpoints=[self._endpoint(node)],
                                        node_name=node)[1]
        except CommandFailed as error:
            if absent_ok and "no such file or directory" in str(error.details.get("stderr") or error):
                return None
            return error
        if not content:
            # none of these files is empty on a running node, yet a read that fails on the node
            # reaches talosctl as no data and an OK status: machined's chunker only logs the
            # error (machined v1alpha1_server.go Read, pkg/chunker/stream/stream.go); talosctl
            # v1.13 and v1.10 also end a read on a Canceled or DeadlineExceeded status as if
            # complete (machinery client.go metaToErr). '' is a read that failed, not a value.
            return CommandFailed(f"talosctl read {path} on {node} printed nothing: the node could not read the "
                                 "file, or the read was cut short",
                                 hint="nothing is reported from it; if it persists, look at the node's log "
                                      "(talosctl dmesg) for a read error")
        return content.rstrip("\n") if absent_ok else content

    def _get_each(self, kind, nodes):
        """{node: its resources of the kind, or the TalosError of the read}: one call per endpoint;
        when it fails (one node down fails it all), one call per node tells which."""
        by_endpoint = {}
        for node in nodes:
            by_endpoint.setdefault(self._endpoint(node), []).append(node)
        listed = {}
        for endpoint, group in by_endpoint.items():
            try:
                resources = self.talosctl.get(kind, nodes=group, endpoints=[endpoint],
                                              node_name=group[0] if len(group) == 1 else None)
            except TalosError as error:
                if len(group) == 1:
                    listed[group[0]] = error
                else:
                    listed.update(self._get_each_alone(kind, group, endpoint))
                continue
            # each resource names the node it came from, as the call named it
            listed.update({node: [r for r in resources if len(group) == 1 or r.get("node") == node]
                           for node in group})
        return listed

    def _get_each_alone(self, kind, nodes, endpoint):
        listed = {}
        for node in nodes:
            try:
                listed[node] = self.talosctl.get(kind, nodes=[node], endpoints=[endpoint], node_name=node)
            except TalosError as error:
                listed[node] = error
        return listed


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str"},
            "nodes": {"type": "list", "elements": "dict", "options": {
                "name": {"type": "str", "required": True},
                "node": {"type": "str", "required": True},
                **NODE_OPTIONS,
            }},
            "endpoint": {"type": "str"},
            "etcd": {"type": "list", "elements": "str", "default": []},
            **PARALLEL_ARGSPEC,
            **NODE_OPTIONS,
        },
        mutually_exclusive=[["node", "nodes"]],
        required_one_of=[["node", "nodes"]],
        supports_check_mode=True,
    )
    params = module.params
    requests = params["nodes"] if params["nodes"] is not None else [
        {"name": params["node"], "node": params["node"], **{option: params[option] for option in NODE_OPTIONS}}]
    if yaml is None and any("kubelet" in r["gather"] for r in requests):
        module.fail_json(msg="reading the kubelet configuration needs PyYAML on the controller")
    try:
        talosctl = Talosctl(module)
        with side_by_side(module) as pool:
            # etcd's members and status, one worker of the pool, beside the nodes' reads
            etcd_answer = pool.submit(etcd.ask, talosctl, params["etcd"]) if params["etcd"] else None
            facts = NodeReader(talosctl, params["endpoint"]).read_all(requests, pool)
        result = {"changed": False, "talosctl_version": talosctl.version}
        if etcd_answer is not None:
            try:
                result["etcd"] = {key: value for key, value in etcd_answer.result().items() if key != "changed"}
            except (KeyError, ValueError) as error:  # a table talosctl printed otherwise: the nodes' facts stay
                result["etcd"] = {"members": [], "status": {}, "quorum": {},
                                  "error": f"etcd's answer could not be read: {error!r}"}
    except TalosError as error:
        fail_json_from(module, error)
    if params["nodes"] is None:
        node = facts[requests[0]["name"]]
        if isinstance(node, TalosError):
            fail_json_from(module, node)
        module.exit_json(**result, **node)
    # one node's failed read leaves the others' facts: each is reported with its own error
    module.exit_json(**result, nodes={name: failure_result(node) if isinstance(node, TalosError) else node
                                      for name, node in facts.items()})


if __name__ == "__main__":
    main()
