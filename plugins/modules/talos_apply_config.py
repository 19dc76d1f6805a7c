#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_apply_config
short_description: Apply a machine configuration to a Talos node, deciding C(changed) from a dry run
version_added: 0.1.0
description:
  - Runs C(talosctl apply-config --dry-run) first. A node that already runs a configuration is
    reached with the talosconfig's credentials and C(changed) follows the node's own config diff
    (C(No changes.) means nothing to do). A node that answers only insecure connections is in
    maintenance mode, waiting for its first configuration; it is always changed, and the
    configuration is applied with C(--insecure).
  - When the authenticated and the insecure dry runs both fail, the error says whether the node
    is unreachable or its certificates do not match the talosconfig.
  - In diff mode the node's config diff is shown with secrets redacted; in maintenance mode the
    whole configuration would be new, so only a summary is shown.
options:
  config_path:
    description: The machine configuration file to apply.
    type: path
    required: true
  node:
    description: Address of the node (its Talos API, port 50000).
    type: str
    required: true
  endpoint:
    description:
      - Talos API endpoint the request goes through; defaults to O(node) itself.
      - In maintenance mode the node is always reached directly.
    type: str
  mode:
    description:
      - How the node takes the configuration. C(auto) applies without a reboot when it can and
        reboots otherwise; C(staged) applies at the next reboot; C(try) reverts after
        O(try_timeout) unless confirmed. C(reboot) is not offered (removed in Talos 1.14).
    type: str
    choices: [auto, no-reboot, staged, try]
    default: auto
  try_timeout:
    description: How long a C(try) configuration stays before it is reverted, for example C(1m).
    type: str
  node_name:
    description: Name of the node, used in messages.
    type: str
  allow_reboot:
    description:
      - Whether the node may reboot to take the configuration. When Talos' dry run answers that
        the change needs a reboot (C(Applied configuration with a reboot)) and this is false,
        nothing is applied and the module fails naming the node and the changed lines (a
        reboot takes a control plane out of etcd and a validator out of its slots).
      - The first configuration of a node in maintenance mode always ends with the installer's
        reboot; that is not refused.
    type: bool
    default: false
  allow_identity_change:
    description:
      - Whether the configuration may bring another Talos API CA (C(machine.ca)) than the one the
        talosconfig trusts. Such a config was rendered from another secrets bundle; applied, it
        would lock the cluster out of its own nodes, and Talos v1.14 applies it without a reboot.
        So nothing is applied and the module fails, unless this is true (a deliberate CA rotation).
      - Not judged in maintenance mode, or when the talosconfig cannot be read.
    type: bool
    default: false
  allow_kubernetes_change:
    description:
      - Whether the configuration may change the version of a Kubernetes image (kubelet,
        kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy) on a node that runs.
        Talos would restart those components at once, without the image pre-pulls, the waits and
        the manifest sync of C(talosctl upgrade-k8s), so nothing is applied and the module fails
        naming the images, unless this is true. M(solanaops.talos.talos_kubernetes_upgrade) is the way.
      - Not judged in maintenance mode.
    type: bool
    default: false
  only_kubernetes_images:
    description:
      - Kubernetes images (C(kubelet), C(kube-apiserver), ...) whose version this apply may change,
        and nothing else on a node that runs - a change of any other line of the config is
        refused, naming the lines. Used for a kubelet upgrade node by node.
    type: list
    elements: str
    default: []
  maintenance_only:
    description:
      - Apply only to a node in maintenance mode (its first configuration). A node that already
        runs a configuration is left alone and R(pending,return-pending) says whether it has a
        change waiting, so running control planes can be changed one at a time later.
    type: bool
    default: false
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Only the dry run is made.
  diff_mode:
    support: full
    description: Shows the node's config diff with secrets redacted.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Apply the control-plane config (first time in maintenance mode, later authenticated)
  solanaops.talos.talos_apply_config:
    config_path: /srv/talos/solana-cluster/controlplane-1.yaml
    node: 10.0.1.11
    talosconfig: /srv/talos/solana-cluster/talosconfig
    node_name: controlplane-1
"""

RETURN = r"""
maintenance:
  description: Whether the node was in maintenance mode (no configuration yet).
  returned: success
  type: bool
  sample: false
pending:
  description: With O(maintenance_only), whether a node that runs a configuration has a change that was not applied.
  returned: success
  type: bool
  sample: false
reboots:
  description:
    - Whether the node is now rebooting to take the configuration (the installer after a first
      configuration, or a change that needs a reboot).
  returned: success
  type: bool
  sample: true
mode_details:
  description: What the node reported about how it takes the configuration.
  returned: success
  type: str
  sample: Applied configuration without a reboot
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
  sample: v1.13.9
"""

import base64
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils import checks, contract, secret_files
from ansible_collections.solanaops.talos.plugins.module_utils.apply_config import Applier
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
)


class RebootRefused(TalosError):
    hint = ("allow it (allow_reboot; in the roles talos_controlplane_apply_allow_reboot or "
            "talos_solana_worker_apply_allow_reboot) when the node may go down now, or apply it with mode staged "
            "to take effect at the node's next reboot")


class IdentityChangeRefused(TalosError):
    hint = ("render the configs from the cluster's own secrets bundle (talos_cluster_output_dir/secrets.yaml); "
            "allow it (talos_apply_config's allow_identity_change) only to rotate the CA on purpose")


class KubernetesChangeRefused(TalosError):
    hint = ("upgrade Kubernetes with playbooks/upgrade_kubernetes.yml (talos_cluster_kubernetes_version is its "
            "target), or keep talos_cluster_kubernetes_version at the version the cluster runs")


# an image line of a config diff: '+    image: registry.k8s.io/kube-apiserver:v1.37.2'
_IMAGE_LINE = re.compile(r"^([+-])\s*image:\s*[\"']?(\S+?)[\"']?\s*$")


def diff_changes(diff):
    """The changed lines of a unified config diff (its '+'/'-' lines, not the file headers)."""
    return [line for line in diff.splitlines() if line[:1] in ("+", "-") and not line.startswith(("+++", "---"))]


def _kubernetes_image(line):
    """(component, tag) of a changed line naming a Kubernetes image (contract.KUBERNETES_IMAGES), else None."""
    match = _IMAGE_LINE.match(line)
    if match and checks.image_name(match.group(2)) in contract.KUBERNETES_IMAGES:
        return checks.image_name(match.group(2)), checks.image_version(match.group(2))
    return None


def kubernetes_changes(diff):
    """The Kubernetes images (contract.KUBERNETES_IMAGES) a config diff gives another tag:
    ['kubelet v1.36.3 -> v1.37.2', ...]; an image line added or removed alone is a change from
    or to the release's default version."""
    old, new = {}, {}
    for line in diff_changes(diff):
        if image := _kubernetes_image(line):
            (old if line[0] == "-" else new)[image[0]] = image[1]
    return [f"{component} {old.get(component) or '(default)'} -> {new.get(component) or '(default)'}"
            for component in [*new, *(c for c in old if c not in new)] if old.get(component) != new.get(component)]


class OtherChangesRefused(TalosError):
    hint = "apply those with site.yml at the version the node runs first, then upgrade"


def other_changes(diff, images):
    """The changed lines of a config diff other than the image lines of IMAGES."""
    return [line for line in diff_changes(diff) if (_kubernetes_image(line) or (None,))[0] not in images]


def identity_refused(name):
    return IdentityChangeRefused(
        f"{name}: this configuration's Talos API CA (machine.ca) is not the one the talosconfig trusts: it was "
        "rendered from another secrets bundle, or the bundle was regenerated. Applying it would lock the cluster "
        "out of its own nodes; nothing was applied")


def machine_ca(config_text):
    """machine.ca.crt of a machine config (base64 PEM), None if it has none."""
    for document in secret_files.yaml.safe_load_all(config_text):
        if isinstance(document, dict) and "kind" not in document:
            return ((document.get("machine") or {}).get("ca") or {}).get("crt")
    return None


def certificates(encoded):
    """The PEM certificate blocks of a base64-encoded PEM value (one or a bundle)."""
    try:
        text = base64.b64decode(str(encoded)).decode()
    except (ValueError, TypeError, UnicodeDecodeError):
        return set()
    return {" ".join(block.split()) for block in re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                                                            text, re.S)}


def trusted_by(config_ca, trusted):
    """Whether the config's machine CA is one the talosconfig trusts (its ca may be a bundle)."""
    ours = certificates(config_ca)
    return bool(ours) and ours <= certificates(trusted)


def trusted_ca(talosconfig):
    """The Talos API CA (base64 PEM) the talosconfig's current context trusts, as talosctl finds
    it (the option, TALOSCONFIG, ~/.talos/config); None when it cannot be read."""
    path = talosconfig or os.environ.get("TALOSCONFIG") or os.path.join(os.environ.get("HOME", "/"), ".talos", "config")
    try:
        with open(path, encoding="utf-8") as handle:
            document = secret_files.yaml.safe_load(handle)
        return document["contexts"][document["context"]]["ca"]
    except (OSError, LookupError, TypeError, secret_files.yaml.YAMLError):
        return None


def changed_lines(diff, limit=6):
    """The first changed lines of a (redacted) config diff, for a message a person can act on."""
    lines = [line[0] + line[1:].strip() for line in diff_changes(diff)]
    return "; ".join(lines[:limit]) + (f"; ... ({len(lines) - limit} more)" if len(lines) > limit else "")


def reboot_refused(name, redacted_diff):
    """The error for a change that needs a reboot the caller did not allow."""
    return RebootRefused(f"{name}: Talos' dry run says this change needs a reboot; nothing was applied. "
                         f"Changed: {changed_lines(redacted_diff)}")


def mode_details(stderr):
    """The node's summary line, e.g. 'Applied configuration without a reboot'."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "config_path": {"type": "path", "required": True},
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "mode": {"type": "str", "default": "auto", "choices": ["auto", "no-reboot", "staged", "try"]},
            "try_timeout": {"type": "str"},
            "node_name": {"type": "str"},
            "allow_reboot": {"type": "bool", "default": False},
            "allow_identity_change": {"type": "bool", "default": False},
            "allow_kubernetes_change": {"type": "bool", "default": False},
            "only_kubernetes_images": {"type": "list", "elements": "str", "default": []},
            "maintenance_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = {"changed": False}
    try:
        if not os.path.exists(params["config_path"]):
            raise TalosError(f"{params['config_path']} does not exist",
                             hint="render it with solanaops.talos.talos_machineconfig first")
        with open(params["config_path"]) as handle:
            config_text = handle.read()
        module.no_log_values.update(secret_files.secret_values(config_text))
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        applier = Applier(talosctl, params)
        maintenance, changed, diff, reboot = applier.dry_run()
        if params["maintenance_only"] and not maintenance:
            module.exit_json(**result, maintenance=False, pending=changed, reboots=False, mode_details="")
        result.update(changed=changed, maintenance=maintenance, pending=False, reboots=changed and reboot,
                      mode_details="")
        if module._diff and changed:
            result["diff"] = {"prepared": f"{applier.name}: in maintenance mode, the whole configuration is new\n"
                              if maintenance else secret_files.redact_diff(diff) + "\n"}
        if changed and not maintenance and not params["allow_identity_change"]:
            trusted = trusted_ca(params["talosconfig"])
            if trusted is None:
                module.warn(f"{applier.name}: the talosconfig's CA could not be read; whether this configuration "
                            "belongs to the cluster's secrets bundle was not checked")
            elif not trusted_by(machine_ca(config_text), trusted):
                raise identity_refused(applier.name)
        if changed and not maintenance and params["only_kubernetes_images"]:
            others = other_changes(diff, params["only_kubernetes_images"])
            if others:
                shown = changed_lines(secret_files.redact_diff("\n".join(others)))
                raise OtherChangesRefused(
                    f"{applier.name}: besides the {', '.join(params['only_kubernetes_images'])} image, this "
                    f"configuration changes: {shown}; nothing was applied")
        elif changed and not maintenance and not params["allow_kubernetes_change"] and kubernetes_changes(diff):
            raise KubernetesChangeRefused(
                f"{applier.name}: this configuration changes Kubernetes on a running node "
                f"({', '.join(kubernetes_changes(diff))}); Talos would restart those components at once, without "
                "the pre-pulls, waits and manifest sync of an upgrade; nothing was applied")
        if changed and reboot and not maintenance and not params["allow_reboot"]:
            raise reboot_refused(applier.name, secret_files.redact_diff(diff))
        if changed and not module.check_mode:
            _rc, _out, stderr = applier.run(insecure=maintenance, dry_run=False)
            result["mode_details"] = mode_details(stderr)
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
