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
  - Talos answers the request at once and shuts down in the background (it drains the node
    unless O(force), stops the pods, then its services, its API last), so the reply proves
    nothing about the node being down. With O(wait_down) the module polls the node's own API
    once a second until it refuses connections, for at most O(timeout) seconds, and fails when
    it still answers then.
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
  wait_down:
    description: Wait until the node's own Talos API refuses connections (see above).
    type: bool
    default: false
  timeout:
    description: Seconds O(wait_down) may wait after the shutdown request was answered.
    type: int
    default: 90
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
    wait_down: true
    timeout: 120
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: stopped

- name: Show how long the node took to go down
  ansible.builtin.debug:
    msg: "10.0.1.11 refused its API {{ stopped.down_after }} s after the shutdown request"
"""

RETURN = r"""
down_after:
  description:
    - Seconds from the answered shutdown request until the node's API first refused a
      connection (or the poll gave up reaching it); with O(wait_down), when the node was shut down.
  returned: success and O(wait_down) and changed and not check mode
  type: float
  sample: 3.2
waited:
  description: Seconds O(wait_down) polled, also when the node still answered.
  returned: O(wait_down) and a shutdown was requested
  type: float
  sample: 3.2
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    NodeUnreachable,
    Talosctl,
    TalosError,
    fail_json_from,
)

POLL_INTERVAL = 1.0


class StillUp(TalosError):
    hint = ("Talos shuts down in the background after answering: a node that keeps answering is still "
            "draining or stopping its pods and services, or stuck there; look at its console or `talosctl dmesg`")


def wait_down(talosctl, node, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll the node's own API until it refuses connections; return the seconds that took."""
    started = clock()
    while True:
        try:
            talosctl.run(["version", "--short"], nodes=[node], endpoints=[node], node_name=node)
        except NodeUnreachable:
            return round(clock() - started, 1)
        except TalosError:
            pass  # answering, with whatever error: it is not down
        if clock() - started + POLL_INTERVAL > timeout:
            raise StillUp(f"{node} still answers its Talos API {timeout}s after the shutdown request",
                          waited=round(clock() - started, 1))
        sleep(POLL_INTERVAL)


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "force": {"type": "bool", "default": False},
            "wait_down": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 90},
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
            if params["wait_down"]:
                result["down_after"] = result["waited"] = wait_down(talosctl, params["node"], params["timeout"])
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
