#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_service
short_description: Start, stop or restart a service of a Talos node
version_added: 0.1.0
description:
  - Reads the service's state with C(talosctl service ID) and runs C(talosctl service ID
    start|stop|restart) only when needed. O(state=started) on a running service and
    O(state=stopped) on a stopped one change nothing; O(state=restarted) always restarts.
  - Talos decides which services its API may control (the kubelet may be started and
    restarted; system services such as etcd or apid may not be stopped); its refusal is
    reported as is.
options:
  node:
    description: Node whose service to control.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through; defaults to O(node).
    type: str
  service:
    description: Service id, e.g. C(kubelet).
    type: str
    required: true
  state:
    description: What the service should be.
    type: str
    choices: [started, stopped, restarted]
    default: started
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reports whether the service would be acted on.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Restart the validator's kubelet
  solanaops.talos.talos_service:
    node: 10.0.1.20
    endpoint: 10.0.1.11
    service: kubelet
    state: restarted
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
before:
  description: The service's state before (C(Running), C(Finished), C(Preparing), ...).
  returned: success
  type: str
  sample: Running
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    CommandFailed,
    Talosctl,
    TalosError,
    fail_json_from,
)


def parse_state(stdout):
    """The STATE line of `talosctl service ID`."""
    match = re.search(r"^STATE\s+(\S+)", stdout, re.MULTILINE)
    if not match:
        raise CommandFailed(f"cannot read the service state from: {stdout.strip()!r}")
    return match.group(1)


def action_for(state, running):
    """The talosctl action the wanted state needs, or None."""
    if state == "restarted":
        return "restart"
    if state == "started":
        return None if running else "start"
    return "stop" if running else None


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "service": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "stopped", "restarted"], "default": "started"},
        },
        supports_check_mode=True,
    )
    params = module.params
    where = {"nodes": [params["node"]], "endpoints": [params["endpoint"] or params["node"]],
             "node_name": params["node"]}
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["before"] = parse_state(talosctl.run(["service", params["service"]], **where)[1])
        action = action_for(params["state"], result["before"] == "Running")
        if action:
            result["changed"] = True
            if not module.check_mode:
                talosctl.run(["service", params["service"], action], **where)
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
