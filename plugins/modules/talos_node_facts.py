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
  - Read-only; never changes anything.
options:
  node:
    description: Address of the node.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through; defaults to O(node).
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
"""

RETURN = r"""
cmdline:
  description: The kernel command line, one argument per item.
  returned: success
  type: list
  elements: str
  sample: ["talos.platform=metal", "hugepagesz=2M", "hugepages=50000"]
meminfo:
  description: C(/proc/meminfo) as numbers (kB for sizes, counts for huge pages).
  returned: success
  type: dict
  sample: {"MemTotal": 528416768, "HugePages_Total": 50000, "Hugepagesize": 2048, "Hugetlb": 102400000}
mounts:
  description: C(/proc/mounts) entries.
  returned: success
  type: list
  elements: dict
  sample: [{"device": "/dev/nvme1n1p1", "mountpoint": "/var/mnt/ledger", "fstype": "xfs", "options": ["rw"]}]
numa:
  description: Per NUMA node, its C(meminfo) as numbers.
  returned: success
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
from ansible_collections.solanaops.talos.plugins.module_utils.boot import read_boot
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    CommandFailed,
    Talosctl,
    TalosError,
    fail_json_from,
)

_MEMINFO_LINE = re.compile(r"^(?:Node \d+ )?([A-Za-z0-9_()]+):\s+(\d+)")


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


def parse_services(resources):
    """``Service`` resources -> {id: {running, healthy}}."""
    return {r["metadata"]["id"]: {"running": bool(r["spec"].get("running")), "healthy": bool(r["spec"].get("healthy"))}
            for r in resources}


def _int_or_none(text):
    return None if text is None else int(text)


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "numa_nodes": {"type": "int", "default": 1},
            "sysctls": {"type": "list", "elements": "str", "default": []},
            "links": {"type": "list", "elements": "str", "default": []},
            "gather": {"type": "list", "elements": "str", "choices": ["kernel", "kubelet", "services", "boot"],
                       "default": ["kernel", "kubelet", "services", "boot"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    if yaml is None and "kubelet" in params["gather"]:
        module.fail_json(msg="reading the kubelet configuration needs PyYAML on the controller")
    nodes, endpoints = [params["node"]], [params["endpoint"] or params["node"]]
    try:
        talosctl = Talosctl(module)

        def read(path):
            content = talosctl.run(["read", path], nodes=nodes, endpoints=endpoints, node_name=params["node"])[1]
            if not content:
                # none of these files is empty on a running node, yet a read that fails on the node
                # reaches talosctl as no data and an OK status: machined's chunker only logs the
                # error (machined v1alpha1_server.go Read, pkg/chunker/stream/stream.go); talosctl
                # v1.13 and v1.10 also end a read on a Canceled or DeadlineExceeded status as if
                # complete (machinery client.go metaToErr). '' is a read that failed, not a value.
                raise CommandFailed(f"talosctl read {path} on {params['node']} printed nothing: the node could not "
                                    "read the file, or the read was cut short",
                                    hint="nothing is reported from it; if it persists, look at the node's log "
                                         "(talosctl dmesg) for a read error")
            return content

        def read_if_exists(path):
            """The file's content, None when the node has no such file."""
            try:
                return read(path).rstrip("\n")
            except CommandFailed as error:
                if "no such file or directory" in str(error.details.get("stderr") or error):
                    return None
                raise

        def get(resource):
            return talosctl.get(resource, nodes=nodes, endpoints=endpoints, node_name=params["node"])

        result = {"changed": False, "talosctl_version": talosctl.version}
        if "kernel" in params["gather"]:
            result.update(
                cmdline=read("/proc/cmdline").split(),
                meminfo=parse_meminfo(read("/proc/meminfo")),
                mounts=parse_mounts(read("/proc/mounts")),
                numa=[{"node": n, **parse_meminfo(read(f"/sys/devices/system/node/node{n}/meminfo"))}
                      for n in range(params["numa_nodes"])],
                sysctls={key: read_if_exists(sysctl_path(key)) for key in params["sysctls"]},
                link_mtu={link: _int_or_none(read_if_exists(f"/sys/class/net/{link}/mtu")) for link in params["links"]},
            )
        if "kubelet" in params["gather"]:
            result["kubelet_config"] = yaml.safe_load(read("/etc/kubernetes/kubelet.yaml")) or {}
        if "services" in params["gather"]:
            result["services"] = parse_services(get("services"))
        if "boot" in params["gather"]:
            result["boot"] = read_boot(talosctl, params["node"], params["endpoint"])
    except TalosError as error:
        fail_json_from(module, error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
