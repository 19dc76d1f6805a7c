#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_numa_info
short_description: Read a Talos node's NUMA layout, the CPUs of each NUMA node
version_added: 0.1.0
description:
  - Reads C(/sys/devices/system/node/online) with C(talosctl read), then the C(cpulist) of each
    online NUMA node (C(/sys/devices/system/node/nodeN/cpulist)), in the kernel's list format
    (C(0-15,32-47); empty for a node with memory only).
  - The layout a pod's own C(/proc/self/status) is judged against (the C(solanaops.talos.numa_placement_checks)
    filter). Talos has no NUMA resource (there is no C(talosctl get numa)), so the kernel's files are the source.
  - Read-only; never changes anything.
options:
  node:
    description: Address of the node.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through; defaults to O(node).
    type: str
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
- name: Read the validator's NUMA layout
  solanaops.talos.talos_numa_info:
    node: 10.0.1.20
    endpoint: 10.0.1.11
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: validator_numa
"""

RETURN = r"""
online:
  description: The online NUMA nodes as the kernel lists them.
  returned: success
  type: str
  sample: "0-1"
cpulists:
  description: Each online NUMA node's CPUs as the kernel lists them, keyed by the node number.
  returned: success
  type: dict
  sample: {"0": "0-15,32-47", "1": "16-31,48-63"}
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.numa import NODE_ROOT, cpulist_paths
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
)


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    nodes, endpoints = [params["node"]], [params["endpoint"] or params["node"]]
    try:
        talosctl = Talosctl(module)

        def read(path):
            return talosctl.run(["read", path], nodes=nodes, endpoints=endpoints, node_name=params["node"])[1].strip()

        online = read(f"{NODE_ROOT}/online")
        cpulists = {str(node): read(path) for node, path in cpulist_paths(online).items()}
    except TalosError as error:
        fail_json_from(module, error)
    except ValueError as error:  # the kernel's list did not parse
        module.fail_json(msg=f"{params['node']}: {error}")
    module.exit_json(changed=False, online=online, cpulists=cpulists, talosctl_version=talosctl.version)


if __name__ == "__main__":
    main()
