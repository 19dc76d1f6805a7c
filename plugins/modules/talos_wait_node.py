#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_wait_node
short_description: Wait until a Talos node is back after an install or a reboot
version_added: 0.1.0
description:
  - A node goes away after its first configuration (the installer ends with a reboot) and
    after a configuration change that needs a reboot. Its API refuses connections for tens of
    seconds to minutes, then comes back requiring the cluster's client certificates. This
    module polls C(talosctl service) once a second until the node answers with the
    talosconfig's credentials and every service of O(services) is in one of its wanted states,
    or O(timeout) passes.
  - Call it in a loop (C(until)/C(retries)) with a short O(timeout) so long waits show
    progress; it fails with what the node last answered (connection refused while it reboots,
    a certificate error while it is still in maintenance mode, a service in another state).
options:
  node:
    description: Address of the node.
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the request goes through (a control plane for workers); defaults to O(node).
    type: str
  node_name:
    description: Name of the node, used in messages.
    type: str
  services:
    description:
      - Service id to the list of states it may be in, for example etcd to C(Preparing) and
        C(Running) (etcd waits in C(Preparing) for its bootstrap).
    type: dict
    default: {}
  timeout:
    description: Seconds to wait in this call.
    type: int
    default: 30
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Wait for a control plane to be back from its install, etcd waiting for its bootstrap
  solanaops.talos.talos_wait_node:
    node: 10.0.1.11
    services:
      etcd: [Preparing, Running]
    timeout: 30
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: back
  until: back is succeeded
  retries: 20
  delay: 0
"""

RETURN = r"""
services:
  description: State and health of each service of the node, as it last answered.
  returned: success
  type: dict
  sample: {etcd: {state: Preparing, health: "?"}}
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
waited:
  description: Seconds this call waited.
  returned: always
  type: float
  sample: 12.4
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    CommandFailed,
    Talosctl,
    TalosError,
    fail_json_from,
    parse_table,
)

POLL_INTERVAL = 1.0


class NotBack(TalosError):
    hint = ("a node takes tens of seconds to minutes to install and reboot; if it stays away, look at its "
            "console or `talosctl dmesg`")


def parse_services(stdout):
    """`talosctl service`: NODE SERVICE STATE HEALTH LAST CHANGE LAST EVENT -> {id: {state, health}}."""
    rows = parse_table(stdout)
    if not rows or "SERVICE" not in rows[0] or "STATE" not in rows[0]:
        raise CommandFailed(f"cannot read the service list from: {stdout.strip()!r}")
    return {row["SERVICE"]: {"state": row["STATE"], "health": row.get("HEALTH", "?")} for row in rows}


def unmet(services, wanted):
    """What keeps the node from being back: one phrase per service not in a wanted state."""
    problems = []
    for service, states in sorted(wanted.items()):
        state = services.get(service, {}).get("state")
        if state not in states:
            problems.append(f"{service} is {state or 'not running'} (wanted {' or '.join(states)})")
    return problems


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "node_name": {"type": "str"},
            "services": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    name = params["node_name"] or params["node"]
    wanted = {service: [states] if isinstance(states, str) else list(states)
              for service, states in params["services"].items()}
    started = time.monotonic()
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        while True:
            try:
                _rc, stdout, _stderr = talosctl.run(["service"], nodes=[params["node"]],
                                                    endpoints=[params["endpoint"] or params["node"]], node_name=name)
                services = parse_services(stdout)
                last = "; ".join(unmet(services, wanted))
                if not last:
                    result.update(services=services, waited=round(time.monotonic() - started, 1))
                    module.exit_json(**result)
            except CommandFailed as error:  # rebooting, still in maintenance mode, ...
                last = f"{str(error).split(': ', 1)[-1]} ({type(error).__name__})"
            if time.monotonic() - started + POLL_INTERVAL > params["timeout"]:
                result["waited"] = round(time.monotonic() - started, 1)
                raise NotBack(f"{name} is not back after {params['timeout']}s: {last}")
            time.sleep(POLL_INTERVAL)
    except TalosError as error:
        fail_json_from(module, error, **result)


if __name__ == "__main__":
    main()
