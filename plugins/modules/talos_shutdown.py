#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_shutdown
short_description: Power a Talos node off through its API
version_added: 0.1.0
description:
  - Runs C(talosctl shutdown) for one node. The node stops its services (etcd, the Kubernetes
    control plane on a control-plane node, the kubelet) and powers off; bringing it back needs
    its power control (BMC), outside Talos.
  - A node whose API already does not answer counts as off (no change).
options:
  node:
    description: Node to power off.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through; defaults to O(node).
    type: str
  force:
    description: Skip cordoning and draining the node first.
    type: bool
    default: false
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reports whether the node would be powered off.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Power off a control-plane node for a failover drill
  solanaops.talos.talos_shutdown:
    node: 10.0.1.11
    force: true
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    NodeUnreachable,
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
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    nodes, endpoints = [params["node"]], [params["endpoint"] or params["node"]]
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        try:
            talosctl.run(["version", "--short"], nodes=nodes, endpoints=endpoints, node_name=params["node"])
        except NodeUnreachable:
            module.exit_json(msg=f"{params['node']} does not answer: already off", **result)
        result["changed"] = True
        if not module.check_mode:
            talosctl.run(["shutdown", "--wait=false", f"--force={str(params['force']).lower()}"],
                         nodes=nodes, endpoints=endpoints, node_name=params["node"])
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
