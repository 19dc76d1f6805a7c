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
    (O(gather) C(kernel)).
  - Reads the kubelet configuration Talos rendered, C(/etc/kubernetes/kubelet.yaml)
    (O(gather) C(kubelet)), and the state of the node's services (O(gather) C(services)).
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
  gather:
    description: Which facts to read.
    type: list
    elements: str
    choices: [kernel, kubelet, services]
    default: [kernel, kubelet, services]
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
kubelet_config:
  description: The KubeletConfiguration the node's kubelet runs with.
  returned: when O(gather) has C(kubelet)
  type: dict
  sample: {"cpuManagerPolicy": "static", "topologyManagerPolicy": "single-numa-node", "reservedSystemCPUs": "0-1,32-33"}
services:
  description: Each service's state and health.
  returned: when O(gather) has C(services)
  type: dict
  sample: {"kubelet": {"state": "Running", "health": "OK"}, "etcd": {"state": "Running", "health": "OK"}}
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
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
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


def parse_services(stdout):
    """`talosctl service` rows (NODE SERVICE STATE HEALTH LAST CHANGE LAST EVENT) -> {id: {state, health}}."""
    services = {}
    for line in stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4:
            services[fields[1]] = {"state": fields[2], "health": fields[3]}
    return services


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "numa_nodes": {"type": "int", "default": 1},
            "gather": {"type": "list", "elements": "str", "choices": ["kernel", "kubelet", "services"],
                       "default": ["kernel", "kubelet", "services"]},
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
            return talosctl.run(["read", path], nodes=nodes, endpoints=endpoints, node_name=params["node"])[1]

        result = {"changed": False, "talosctl_version": talosctl.version}
        if "kernel" in params["gather"]:
            result.update(
                cmdline=read("/proc/cmdline").split(),
                meminfo=parse_meminfo(read("/proc/meminfo")),
                mounts=parse_mounts(read("/proc/mounts")),
                numa=[{"node": n, **parse_meminfo(read(f"/sys/devices/system/node/node{n}/meminfo"))}
                      for n in range(params["numa_nodes"])],
            )
        if "kubelet" in params["gather"]:
            result["kubelet_config"] = yaml.safe_load(read("/etc/kubernetes/kubelet.yaml")) or {}
        if "services" in params["gather"]:
            stdout = talosctl.run(["service"], nodes=nodes, endpoints=endpoints, node_name=params["node"])[1]
            result["services"] = parse_services(stdout)
    except TalosError as error:
        fail_json_from(module, error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
