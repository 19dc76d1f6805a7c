#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_reset
short_description: Wipe system partitions of a Talos node and reboot it
version_added: 0.1.0
description:
  - Runs C(talosctl reset) for one node with the system partitions to wipe named, never the
    whole disk. Wiping C(EPHEMERAL) clears C(/var) (the kubelet's state, container images,
    pod logs) and keeps the machine config on C(STATE) and every user volume; the node boots
    the config persisted on C(STATE), a staged one included.
  - Talos answers at once and resets in the background; wait for the node afterwards
    (M(solanaops.talos.talos_wait_node)).
  - Always a change; in check mode nothing is sent.
options:
  node:
    description: Node to reset.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through; defaults to O(node).
    type: str
  wipe:
    description: System partitions to wipe, by label.
    type: list
    elements: str
    choices: [EPHEMERAL, STATE]
    required: true
  reboot:
    description: Reboot after the wipe; otherwise the node powers off.
    type: bool
    default: true
  graceful:
    description: Let Talos cordon and drain the node (and leave etcd on a control plane) first.
    type: bool
    default: true
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reports the reset as a change without sending it.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Clear the validator's kubelet state, keeping its config and user volumes
  solanaops.talos.talos_reset:
    node: 10.0.1.21
    endpoint: 10.0.1.11
    wipe: [EPHEMERAL]
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
wiped:
  description: The system partitions wiped.
  returned: success
  type: list
  elements: str
  sample: [EPHEMERAL]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
)


def reset_args(wipe, reboot, graceful):
    """talosctl's arguments: named partitions only, and no wait (Talos resets after replying)."""
    return ["reset", "--wait=false", f"--system-labels-to-wipe={','.join(wipe)}",
            f"--reboot={str(reboot).lower()}", f"--graceful={str(graceful).lower()}"]


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "wipe": {"type": "list", "elements": "str", "choices": ["EPHEMERAL", "STATE"], "required": True},
            "reboot": {"type": "bool", "default": True},
            "graceful": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not params["wipe"]:
        module.fail_json(msg="wipe: name the system partitions to wipe (EPHEMERAL, STATE); "
                             "wiping the whole system disk is not offered")
    wipe = sorted(set(params["wipe"]))
    result = {"changed": True, "wiped": wipe}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        if not module.check_mode:
            talosctl.run(reset_args(wipe, params["reboot"], params["graceful"]),
                         nodes=[params["node"]], endpoints=[params["endpoint"] or params["node"]],
                         node_name=params["node"])
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
