#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_secrets
short_description: Generate a Talos cluster secrets bundle once
version_added: 0.1.0
description:
  - Runs C(talosctl gen secrets) when the bundle does not exist yet.
  - An existing bundle is never overwritten, whether plain or encrypted with ansible-vault;
    regenerating secrets would orphan every node of the cluster.
  - The bundle is written with mode C(0600).
options:
  path:
    description: Where the secrets bundle lives.
    type: path
    required: true
  talos_version:
    description:
      - Talos version whose secrets format to generate, for example C(v1.10).
      - Omit to use the format of the talosctl that runs.
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
- name: Generate the cluster secrets once
  solanaops.talos.talos_secrets:
    path: /srv/talos/solana-cluster/secrets.yaml
"""

RETURN = r"""
path:
  description: Path of the secrets bundle.
  returned: always
  type: str
  sample: /srv/talos/solana-cluster/secrets.yaml
encrypted:
  description: Whether the existing bundle is encrypted with ansible-vault.
  returned: always
  type: bool
  sample: false
talosctl_version:
  description: Version of the talosctl that ran.
  returned: when talosctl ran
  type: str
  sample: v1.13.9
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import (
    SECRETS_BUNDLE_ARGSPEC,
    existing_bundle,
)
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import Talosctl, TalosError, fail_json_from


def main():
    module = AnsibleModule(argument_spec=SECRETS_BUNDLE_ARGSPEC, supports_check_mode=True)
    path = module.params["path"]
    existing = existing_bundle(path)
    if existing:
        result, warnings = existing
        for warning in warnings:
            module.warn(warning)
        module.exit_json(**result)
    result = {"changed": True, "path": path, "encrypted": False}
    if module.check_mode:
        module.exit_json(**result)
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        args = ["gen", "secrets", "--output-file", path]
        if module.params["talos_version"]:
            args += ["--talos-version", module.params["talos_version"]]
        talosctl.run(args)
    except TalosError as error:
        fail_json_from(module, error, **result)
    os.chmod(path, 0o600)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
