#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_config_drift
short_description: Ask many Talos nodes at once whether their rendered configs would change anything
version_added: 0.1.0
description:
  - For each of O(nodes), runs Talos' own dry run of its rendered config, C(talosctl apply-config
    --dry-run), as M(solanaops.talos.talos_apply_config) does before applying, up to O(parallel)
    at once, and reports whether the node runs a configuration and whether this one would change
    it (RV(nodes)).
  - A node the talosconfig's credentials cannot reach but whose maintenance-mode API answers is in
    maintenance mode (waiting for its first configuration). A node that cannot be asked at all is
    reported with its own failure; the others are still asked.
  - Changes nothing, in check mode or not; the configs' secrets are kept out of the output.
options:
  nodes:
    description: The nodes to ask.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's name, its key in RV(nodes).
        type: str
        required: true
      node:
        description: Address of the node.
        type: str
        required: true
      endpoint:
        description: Talos API endpoint the request goes through; defaults to O(nodes[].node) itself.
        type: str
      config_path:
        description: The node's rendered machine configuration.
        type: path
        required: true
extends_documentation_fragment:
  - solanaops.talos.talosctl
  - solanaops.talos.talosctl.parallel
attributes:
  check_mode:
    support: full
    description: Asks the same in check mode (a dry run changes nothing).
  diff_mode:
    support: none
    description: No diff is produced; M(solanaops.talos.talos_apply_config) shows a node's diff.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Ask every node whether its rendered config would change anything
  solanaops.talos.talos_config_drift:
    nodes:
      - {name: cp-1, node: 10.0.1.11, config_path: /srv/talos/solana-cluster/cp-1.yaml}
      - {name: validator-1, node: 10.0.1.20, endpoint: 10.0.1.11,
         config_path: /srv/talos/solana-cluster/validator-1.yaml}
    talosconfig: /srv/talos/solana-cluster/talosconfig
  register: drift
"""

RETURN = r"""
nodes:
  description:
    - Each node by its name, with C(maintenance) (it waits for its first configuration) and
      C(pending) (it runs a configuration that this one would change), or, when it could not be
      asked, its failure (C(failed), C(msg), C(error) and the command's output).
  returned: success
  type: dict
  sample: {"cp-1": {"maintenance": false, "pending": false},
           "validator-1": {"failed": true, "msg": "talosctl apply-config failed on validator-1: ...",
                           "error": "NodeUnreachable"}}
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.14.1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils import secret_files
from ansible_collections.solanaops.talos.plugins.module_utils.apply_config import Applier
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    PARALLEL_ARGSPEC,
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
    failure_result,
    side_by_side,
)


def drift(talosctl, node):
    """{maintenance, pending} of one node, or its failure."""
    try:
        maintenance, changed, _diff, _reboot = Applier(
            talosctl, {**node, "mode": "auto", "node_name": node["name"]}).dry_run()
    except TalosError as error:
        return failure_result(error)
    return {"maintenance": maintenance, "pending": changed and not maintenance}


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "nodes": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "node": {"type": "str", "required": True},
                "endpoint": {"type": "str"},
                "config_path": {"type": "path", "required": True},
            }},
            **PARALLEL_ARGSPEC,
        },
        supports_check_mode=True,
    )
    params = module.params
    configs = {node["config_path"]: secret_files.read_text(node["config_path"]) for node in params["nodes"]}
    missing = [path for path, text in configs.items() if text is None]
    if missing:
        module.fail_json(msg=f"no rendered config at {', '.join(missing)}: render them with generate.yml first")
    for text in configs.values():
        # a failed dry run's output may quote the config
        module.no_log_values.update(secret_files.secret_values(text))
    try:
        talosctl = Talosctl(module)
        with side_by_side(module) as pool:
            answers = dict(zip([n["name"] for n in params["nodes"]],  # noqa: B905 (py3.8)
                               pool.map(lambda node: drift(talosctl, node), params["nodes"])))
        module.exit_json(changed=False, nodes=answers, talosctl_version=talosctl.version)
    except TalosError as error:
        fail_json_from(module, error)


if __name__ == "__main__":
    main()
