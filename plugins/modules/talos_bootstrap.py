#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_bootstrap
short_description: Bootstrap etcd on one control-plane node, exactly once
version_added: 0.1.0
description:
  - Before bootstrapping, asks every control-plane node for its etcd members. If any node
    already has a member, the cluster exists and nothing is done (C(changed=false)); if any
    node cannot be asked, the module refuses, because bootstrapping a second etcd cluster next
    to an unseen one is a split brain.
  - Otherwise runs C(talosctl bootstrap) on O(node). A node answering C(AlreadyExists) ("etcd
    data directory is not empty") counts as already bootstrapped.
options:
  node:
    description: Address of the control-plane node to bootstrap.
    type: str
    required: true
  controlplane_nodes:
    description: Addresses of every control-plane node, asked for etcd members first.
    type: list
    elements: str
    required: true
  node_name:
    description: Name of the node, used in messages.
    type: str
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Only the etcd members are read.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Bootstrap etcd on the first control-plane node
  solanaops.talos.talos_bootstrap:
    node: 10.0.1.11
    controlplane_nodes: [10.0.1.11, 10.0.1.12, 10.0.1.13]
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
members:
  description: etcd members found before bootstrapping, per control-plane node that has any.
  returned: always
  type: dict
  sample: {"10.0.1.11": [{"id": "7fa1c2", "hostname": "controlplane-1"}]}
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    AlreadyBootstrapped,
    NodeUnreachable,
    Talosctl,
    TalosError,
    fail_json_from,
    parse_etcd_members,
)


def existing_members(talosctl, nodes):
    """{node: members} for every node that has etcd members; refuses when a node is unreachable."""
    found = {}
    for node in nodes:
        try:
            _rc, stdout, _stderr = talosctl.run(["etcd", "members"], nodes=[node], endpoints=[node], node_name=node)
        except NodeUnreachable as error:
            raise TalosError(
                f"cannot tell whether {node} already runs etcd ({error}); refusing to bootstrap, since a second "
                "etcd cluster next to an unseen one would split the brain",
                hint="bring every control-plane node up (or remove it from the inventory) and run again") from None
        except TalosError:
            continue  # etcd is not running there: no member on this node
        members = parse_etcd_members(stdout)
        if members:
            found[node] = members
    return found


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "controlplane_nodes": {"type": "list", "elements": "str", "required": True},
            "node_name": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = {"changed": False, "members": {}}
    if params["node"] not in params["controlplane_nodes"]:
        module.fail_json(msg=f"{params['node']} is not one of controlplane_nodes; only a control-plane node "
                             "can be bootstrapped", **result)
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["members"] = existing_members(talosctl, params["controlplane_nodes"])
        if result["members"]:
            module.exit_json(msg="etcd already has members; not bootstrapping again", **result)
        result["changed"] = True
        if not module.check_mode:
            try:
                talosctl.run(["bootstrap"], nodes=[params["node"]], endpoints=[params["node"]],
                             node_name=params["node_name"] or params["node"])
            except AlreadyBootstrapped:
                result["changed"] = False
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
