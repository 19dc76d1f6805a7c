#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_client_config
short_description: Create the cluster's talosconfig and keep its endpoints and nodes current
version_added: 0.1.0
description:
  - Creates the talosconfig (the admin client certificate signed by the cluster's OS CA) with
    C(talosctl gen config --output-types talosconfig) when it does not exist; an existing one is
    kept, since each generation issues a new client key.
  - Sets the context's endpoints and default nodes with C(talosctl config endpoint) and
    C(talosctl config node) when they differ.
  - Endpoints must be the control-plane node addresses, never the VIP (the VIP only exists
    once etcd is up, and moves during failover).
  - The file is written with mode C(0600).
options:
  path:
    description: Path of the talosconfig.
    type: path
    required: true
  secrets_path:
    description: Path of a plain secrets bundle.
    type: path
  secrets_content:
    description: Content of the secrets bundle (for vault-encrypted bundles).
    type: str
  cluster_name:
    description: Name of the cluster, also the talosconfig context name.
    type: str
    required: true
  cluster_endpoint:
    description: Kubernetes API endpoint, required by talosctl to generate the file.
    type: str
    required: true
  endpoints:
    description: Talos API endpoints (the control-plane node addresses).
    type: list
    elements: str
    required: true
  nodes:
    description: Default target nodes of the context.
    type: list
    elements: str
    default: []
  talos_version:
    description: Config contract to generate for, for example C(v1.10).
    type: str
requirements:
  - PyYAML
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
- name: Write the talosconfig for the control plane
  solanaops.talos.talos_client_config:
    path: /srv/talos/solana-cluster/talosconfig
    secrets_path: /srv/talos/solana-cluster/secrets.yaml
    cluster_name: solana-cluster
    cluster_endpoint: https://10.0.1.10:6443
    endpoints: [10.0.1.11, 10.0.1.12, 10.0.1.13]
"""

RETURN = r"""
path:
  description: Path of the talosconfig.
  returned: always
  type: str
  sample: /srv/talos/solana-cluster/talosconfig
endpoints:
  description: Endpoints of the context after the run.
  returned: always
  type: list
  elements: str
  sample: [10.0.1.11, 10.0.1.12, 10.0.1.13]
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.solanaops.talos.plugins.module_utils import secret_files, talosconfig
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import yaml
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    Talosctl,
    TalosError,
    fail_json_from,
)


def main():
    module = AnsibleModule(argument_spec=talosconfig.CLIENT_CONFIG_ARGSPEC, supports_check_mode=True,
                           **secret_files.SECRETS_INPUT_CONSTRAINTS)
    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    params = module.params
    path = params["path"]
    result = {"changed": False, "path": path, "endpoints": params["endpoints"]}
    current = secret_files.read_text(path)
    unchanged = talosconfig.unchanged_result(params, current)
    if unchanged:
        module.exit_json(**unchanged)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    wanted = talosconfig.wanted_settings(params["endpoints"], params["nodes"])
    actual = talosconfig.context_settings(current, params["cluster_name"])
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        if current is None:
            with secret_files.private_dir() as workdir:
                argv = ["gen", "config", params["cluster_name"], params["cluster_endpoint"],
                        "--with-secrets", secret_files.secrets_bundle_path(params, workdir),
                        "--output-types", "talosconfig", "--output", "-"]
                if params["talos_version"]:
                    argv += ["--talos-version", params["talos_version"]]
                _rc, generated, _stderr = talosctl.run(argv)
            module.no_log_values.update(secret_files.secret_values(generated))
            secret_files.write_private(path, generated)
            actual = {"endpoint": [], "node": []}
        for command, values in wanted.items():
            if values != actual[command]:
                talosctl.run(["--talosconfig", path, "config", command, *values])
    except TalosError as error:
        fail_json_from(module, error, **result)
    os.chmod(path, 0o600)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
