#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_health
short_description: Wait, within a bound, for a Talos cluster to report healthy
version_added: 0.1.0
description:
  - Runs C(talosctl health) on one control-plane node with the cluster's node lists given
    explicitly (control planes and workers), so the check never depends on discovery.
  - Each of Talos' checks (etcd healthy and consistent, apid, kubelet, boot sequence, control
    plane components, Kubernetes nodes reported and Ready, ...) must pass in turn within
    O(timeout). The result lists every check with its outcome; a failure names the check that
    did not pass and what it last saw.
  - A check Talos skips reports C(SKIP) and counts as passed. Without a CNI (C(cluster.network.cni.name)
    C(none)) Talos skips C(all k8s nodes to report ready) and C(coredns to report ready), so the
    cluster is healthy while its Nodes wait for a CNI.
  - Read-only. Pair it with C(retries)/C(until) for visible progress on long waits.
options:
  node:
    description: Control-plane node that runs the checks (also the endpoint).
    type: str
    required: true
  controlplane_nodes:
    description: Addresses of every control-plane node.
    type: list
    elements: str
    required: true
  worker_nodes:
    description: Addresses of every worker node.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the checks may take in total before the module fails.
    type: int
    default: 300
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Checks the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Wait for the cluster to be healthy
  solanaops.talos.talos_health:
    node: 10.0.1.11
    controlplane_nodes: [10.0.1.11, 10.0.1.12, 10.0.1.13]
    worker_nodes: [10.0.1.20]
    timeout: 60
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: health
  retries: 10
  delay: 0
  until: health is succeeded
"""

RETURN = r"""
healthy:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Each check reached, in order, with whether it passed and the last thing it reported.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "etcd to be healthy", "ok": true, "detail": "OK"},
           {"name": "all k8s nodes to report ready", "ok": true, "detail": "SKIP"}]
failed_check:
  description: The check that did not pass, with what it last saw.
  returned: when not healthy
  type: str
  sample: "all k8s nodes to report ready: some nodes are not ready: [10.0.1.20]"
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
    failure,
)

_PROGRESS = re.compile(r"^waiting for (.+?): (.*)$")


def parse_progress(text):
    """talosctl's 'waiting for <check>: <detail>' lines -> [{name, ok, detail}], last word per check;
    OK passes, and so does SKIP (a check that does not apply, pkg/conditions ErrSkipAssertion)."""
    checks = {}
    for line in text.splitlines():
        match = _PROGRESS.match(line.strip())
        if match:
            name, detail = match.groups()
            checks[name] = {"name": name, "ok": detail in ("OK", "SKIP"), "detail": detail}
    return list(checks.values())


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "controlplane_nodes": {"type": "list", "elements": "str", "required": True},
            "worker_nodes": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = {"changed": False, "healthy": False, "checks": []}
    if params["node"] not in params["controlplane_nodes"]:
        module.fail_json(msg=f"node {params['node']} must be one of controlplane_nodes: the checks run on a "
                             "control-plane node", **result)
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        args = ["health", "--control-plane-nodes", ",".join(params["controlplane_nodes"]),
                "--wait-timeout", f"{params['timeout']}s"]
        if params["worker_nodes"]:
            args += ["--worker-nodes", ",".join(params["worker_nodes"])]
        rc, stdout, stderr = talosctl.run(args, nodes=[params["node"]], endpoints=[params["node"]], check=False)
        result["checks"] = parse_progress(stderr)
        if rc == 0:
            result["healthy"] = True
            module.exit_json(**result)
        pending = [check for check in result["checks"] if not check["ok"]]
        if pending:
            # the checks ran and one did not pass in time
            result["failed_check"] = f"{pending[0]['name']}: {pending[0]['detail']}"
            module.fail_json(msg=f"the cluster is not healthy after {params['timeout']}s: waiting for "
                                 f"{result['failed_check']}", stderr=stderr, **result)
        # the checks could not run at all: unreachable node, wrong credentials, ...
        raise failure([talosctl.path, *args], rc, stdout, stderr, params["node"])
    except TalosError as error:
        fail_json_from(module, error, **result)


if __name__ == "__main__":
    main()
