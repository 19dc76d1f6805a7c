#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_machineconfig
short_description: Render one node's Talos machine configuration with talosctl
version_added: 0.1.0
description:
  - Runs C(talosctl gen config) for one machine type from an existing secrets bundle, applies
    the given patches in order, and writes the result to O(dest) with mode C(0600).
  - Rendering is deterministic for a given secrets bundle, so the module reports C(changed)
    only when the rendered configuration differs from the file on disk.
  - In diff mode the difference is shown with every private key, token and secret redacted.
  - Nothing is sent to any node.
options:
  dest:
    description: Where to write the machine configuration.
    type: path
    required: true
  secrets_path:
    description: Path of a plain secrets bundle made by M(solanaops.talos.talos_secrets).
    type: path
  secrets_content:
    description:
      - Content of the secrets bundle, for bundles kept encrypted with ansible-vault
        (read them with C(lookup('ansible.builtin.file', path)), which decrypts).
      - It is written to a private temporary file for talosctl and removed afterwards.
    type: str
  cluster_name:
    description: Name of the cluster.
    type: str
    required: true
  cluster_endpoint:
    description: Kubernetes API endpoint, for example C(https://10.0.1.10:6443).
    type: str
    required: true
  machine_type:
    description: Which configuration to render.
    type: str
    required: true
    choices: [controlplane, worker]
  talos_version:
    description: Config contract to generate, for example C(v1.10) or C(v1.13.9).
    type: str
  kubernetes_version:
    description: Kubernetes version the node runs, for example C(1.36.3).
    type: str
  install_disk:
    description: Disk Talos installs to (C(machine.install.disk)).
    type: str
  install_image:
    description: Installer image, for example an Image Factory installer for a schematic.
    type: str
  patches:
    description:
      - Patches applied in order after generation.
      - A dict is a strategic merge patch; a list is an RFC 6902 JSON patch (not usable on the
        multi-document configs of v1.12+ contracts); a string is YAML text (one or more
        documents), or C(@path) to read a patch file.
    type: list
    elements: raw
    default: []
  node_name:
    description: Name of the node, used in messages.
    type: str
  validate:
    description:
      - Validate the written configuration with C(talosctl validate --mode metal --strict) and
        check its kubelet feature gates against O(kubernetes_version) (as
        M(solanaops.talos.talos_config_validate) does). Not in check mode, where nothing is written.
    type: bool
    default: false
  record:
    description:
      - A file recording a hash of this render's inputs (talosctl's arguments, the content of the
        secrets bundle and of each C(@path) patch, the talosctl version and, with O(validate), the
        kubelet feature-gate table) and of the configuration written, kept with mode C(0600). When
        both still match, talosctl is not run again; a changed input, another talosctl version (by
        its version string, not its build), a new record layout or an edited O(dest) renders it
        again.
      - Written after a successful render (and validation, when O(validate)); never in check mode.
      - The comparison (a node up to date with its record, or any O(record_only) run) is made by the
        collection's action plugin in the controller's worker process, without starting the module,
        when the task runs on the controller as the same user (C(ansible_connection=local), no
        become). It then reads O(dest), O(record), the secrets bundle and C(@path) patches there and
        runs C(talosctl version --client) there. Under any other connection the module compares on the
        target as before.
    type: path
  record_only:
    description:
      - Only compare with O(record) and return RV(up_to_date); render, validate and write nothing.
    type: bool
    default: false
requirements:
  - PyYAML
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Check mode reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the configuration change with every secret redacted.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Render the validator worker's config
  solanaops.talos.talos_machineconfig:
    dest: /srv/talos/solana-cluster/solana-validator.yaml
    secrets_path: /srv/talos/solana-cluster/secrets.yaml
    cluster_name: solana-cluster
    cluster_endpoint: https://10.0.1.10:6443
    machine_type: worker
    talos_version: v1.13
    kubernetes_version: 1.36.3
    patches:
      - machine:
          sysctls:
            vm.max_map_count: "1000000"
      - "@/srv/talos/patches/worker-network.yaml"

- name: Render from a vault-encrypted secrets bundle
  solanaops.talos.talos_machineconfig:
    dest: /srv/talos/solana-cluster/cp-1.yaml
    secrets_content: "{{ lookup('ansible.builtin.file', 'secrets.vault.yaml') }}"
    cluster_name: solana-cluster
    cluster_endpoint: https://10.0.1.10:6443
    machine_type: controlplane
"""

RETURN = r"""
dest:
  description: Path of the machine configuration.
  returned: always
  type: str
  sample: /srv/talos/solana-cluster/cp-1.yaml
sha256:
  description: SHA-256 of the rendered configuration.
  returned: success
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
up_to_date:
  description: Whether O(dest) matches O(record) for these inputs (the render was skipped).
  returned: when O(record) is given
  type: bool
  sample: true
talosctl_version:
  description: Version of the talosctl that rendered the configuration.
  returned: success
  type: str
  sample: v1.13.9
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.solanaops.talos.plugins.module_utils import config_validation, secret_files
from ansible_collections.solanaops.talos.plugins.module_utils.machineconfig import (
    ARGUMENT_SPEC,
    compare_with_record,
    gen_config_argv,
    is_private,
    record_text,
    sha256,
)
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import yaml
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import Talosctl, TalosError, fail_json_from


def patch_argument(patch, index, workdir):
    """The --config-patch value for one patch: '@file' written into the private workdir."""
    if isinstance(patch, str) and patch.startswith("@"):
        return patch
    path = os.path.join(workdir, f"patch-{index:03d}.yaml")
    with open(path, "w") as handle:
        if isinstance(patch, str):
            handle.write(patch)
        elif isinstance(patch, (dict, list)):
            yaml.safe_dump(patch, handle, sort_keys=False)
        else:
            raise TalosError(f"patches[{index}] is a {type(patch).__name__}; use a dict, a list or a string")
    return "@" + path


def render(module, talosctl):
    params = module.params
    with secret_files.private_dir() as workdir:
        secrets_path = secret_files.secrets_bundle_path(params, workdir)
        patches = [patch_argument(p, i, workdir) for i, p in enumerate(params["patches"])]
        _rc, stdout, _stderr = talosctl.run(gen_config_argv(params, secrets_path, patches),
                                            node_name=params["node_name"])
    return stdout


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        **secret_files.SECRETS_INPUT_CONSTRAINTS,
        supports_check_mode=True,
    )
    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    dest = module.params["dest"]
    result = {"changed": False, "dest": dest}
    if module.params["secrets_content"]:
        module.no_log_values.update(secret_files.secret_values(module.params["secrets_content"]))
    secrets_path = module.params["secrets_path"]
    if module.check_mode and secrets_path and not os.path.exists(secrets_path):
        # a dry run before the first real one: the bundle would be generated first
        module.exit_json(changed=True, dest=dest, msg=f"{secrets_path} does not exist yet; the config would be created")
    params = module.params
    if params["record_only"] and not params["record"]:
        module.fail_json(msg="record_only compares the node with its record: set record too")
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        if params["record"]:
            inputs, compared = compare_with_record(params, talosctl.version)
            result.update(compared)
            if result["up_to_date"] or params["record_only"]:
                module.exit_json(**result)
        rendered = render(module, talosctl)
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.no_log_values.update(secret_files.secret_values(rendered))

    current = secret_files.read_text(dest)
    result["changed"] = current != rendered or (current is not None and not is_private(dest))
    result["sha256"] = sha256(rendered)
    if module._diff and current != rendered:
        result["diff"] = {
            "before_header": dest, "after_header": dest,
            "before": secret_files.redact(current or ""), "after": secret_files.redact(rendered),
        }
    if module.check_mode:
        module.exit_json(**result)
    if result["changed"]:
        secret_files.write_private(dest, rendered)
    if params["validate"]:
        try:
            result["message"] = config_validation.validate(
                module, talosctl, {"path": dest, "mode": "metal", "strict": True,
                                   "kubernetes_version": params["kubernetes_version"]},
                params["node_name"] or os.path.basename(dest))
        except TalosError as error:
            fail_json_from(module, error, **result)
    if params["record"]:
        secret_files.write_private(params["record"], record_text(inputs, result["sha256"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
