#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_config_validate
short_description: Validate a Talos machine configuration with talosctl
version_added: 0.1.0
description:
  - Runs C(talosctl validate --mode MODE --strict) on a machine configuration file and fails
    with talosctl's own message and the node's name when the configuration is not valid.
  - With O(kubernetes_version), also refuses the kubelet feature gates a kubelet of that version
    refuses to start with (unknown or removed gates, locked gates set against their default),
    from C(machine.kubelet.extraConfig.featureGates) and the C(feature-gates) flag in
    C(machine.kubelet.extraArgs), or on Talos v1.14 the C(KubeletConfig) document's C(config)
    and C(extraArgs); talosctl does not check them.
  - Never changes anything.
options:
  path:
    description: The machine configuration file.
    type: path
    required: true
  mode:
    description: Platform mode to validate for.
    type: str
    choices: [metal, cloud, container]
    default: metal
  strict:
    description: Treat validation warnings (deprecated fields, for example) as errors.
    type: bool
    default: true
  node_name:
    description: Name of the node the configuration is for, used in messages.
    type: str
  kubernetes_version:
    description:
      - The Kubernetes version the node runs, for the kubelet feature-gate check. For a minor
        version the collection has no table of, the check is skipped with a warning.
    type: str
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Check mode reports what would change and writes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Validate the validator worker's config
  solanaops.talos.talos_config_validate:
    path: /srv/talos/solana-cluster/solana-validator.yaml
    node_name: solana-validator
"""

RETURN = r"""
message:
  description: What talosctl reported.
  returned: always
  type: str
  sample: /srv/talos/solana-cluster/solana-validator.yaml is valid for metal mode
talosctl_version:
  description: Version of the talosctl that validated the configuration.
  returned: success
  type: str
  sample: v1.13.9
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.solanaops.talos.plugins.module_utils.config_validation import validate, yaml
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
            "path": {"type": "path", "required": True},
            "mode": {"type": "str", "default": "metal", "choices": ["metal", "cloud", "container"]},
            "strict": {"type": "bool", "default": True},
            "node_name": {"type": "str"},
            "kubernetes_version": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = {"changed": False, "message": ""}
    node = params["node_name"] or os.path.basename(params["path"])
    if params["kubernetes_version"] and yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    try:
        if not os.path.exists(params["path"]):
            raise TalosError(f"{node}: {params['path']} does not exist")
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["message"] = validate(module, talosctl, params, node)
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
