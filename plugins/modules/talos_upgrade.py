#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_upgrade
short_description: Upgrade one Talos node to an installer image and prove it booted it
version_added: 0.1.0
description:
  - Reads the Talos release and Image Factory schematic the node booted. A node already on
    the target (the image's tag, and O(schematic) when given) is left alone, so a re-run after
    an interruption continues with the nodes not yet upgraded.
  - Refuses, before touching the node, an upgrade the collection does not allow (more than one
    minor release at once, a downgrade, a Kubernetes version the target release does not run;
    see the module utility C(upgrade_path)), naming the way forward.
  - Otherwise runs C(talosctl upgrade --image IMAGE --wait), which pulls the image, runs its
    installer into the node's other boot slot, drains the node when O(drain) and reboots it,
    then waits until it is back (boot ID changed, machine ready) for at most O(timeout) seconds
    (the pull and the install have no deadline of their own, the drain has O(drain_timeout)).
    O(phase) splits this in two, so something can run between the install and the reboot (a
    validator's restart window) - C(install) (C(talosctl upgrade --no-reboot)), then C(reboot)
    (C(talosctl reboot --wait), draining when O(drain)).
  - A failure after the install (the drain, the reboot, the wait) says that the new image may
    already be the node's next boot.
  - C(talosctl) reports success for a node that booted back into its previous slot (an A/B
    fallback after the new image failed to boot) as long as that node came back ready, so the
    module reads the booted release and schematic again and fails when they are not the
    target's, reporting both.
  - Talos' upgrade API does not check etcd quorum; the caller gates control planes on etcd
    health (the solanaops.talos.talos_upgrade role does).
options:
  node:
    description: Node to upgrade.
    type: str
    required: true
  endpoint:
    description:
      - Talos API endpoint the requests go through; defaults to O(node).
      - With O(drain), a control plane other than O(node) - talosctl fetches the kubeconfig for
        the drain from the endpoint, which only control planes serve.
    type: str
  image:
    description:
      - Installer image to boot, C(<registry>/<flavour>/<schematic id>:<talos version>) for an
        Image Factory image; its tag is the target Talos release.
    type: str
    required: true
  schematic:
    description: Image Factory schematic ID the node must boot afterwards; not compared when omitted.
    type: str
  kubernetes_versions:
    description:
      - The Kubernetes versions the cluster runs (each Node's kubelet), each checked against the
        range the target release runs.
    type: list
    elements: str
    default: []
  phase:
    description:
      - C(all) upgrades and reboots; C(install) only installs the image as the next boot;
        C(reboot) reboots a node whose image was installed and proves what it booted.
    type: str
    choices: [all, install, reboot]
    default: all
  drain:
    description: Cordon and drain the node before the reboot (uncordoned once it is back).
    type: bool
    default: true
  drain_timeout:
    description: Seconds the drain may take (a PodDisruptionBudget can block it).
    type: int
    default: 300
  reboot_mode:
    description: C(default) (kexec where the node can) or C(powercycle).
    type: str
    choices: [default, powercycle]
    default: default
  timeout:
    description: Seconds talosctl may wait for the node to come back from its reboot.
    type: int
    default: 1800
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reads the node and checks the path; reports the planned upgrade without making it.
  diff_mode:
    support: none
    description: No diff is produced; RV(before) and RV(target) show the change.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Upgrade a validator to its new installer image
  solanaops.talos.talos_upgrade:
    node: 10.0.1.20
    image: factory.talos.dev/metal-installer/4a3b1c...e9:v1.13.9
    schematic: 4a3b1c...e9
    kubernetes_versions: [v1.36.3]
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
before:
  description: What the node booted before, C(talos_version) and C(schematic), and its C(boot_id) once it is changed.
  returned: always, once read
  type: dict
  sample: {"talos_version": "v1.13.8", "schematic": "376567988ad3...", "boot_id": "0b9d6a4e-..."}
target:
  description: What it must boot, C(talos_version) and C(schematic) (null when not compared).
  returned: always
  type: dict
needed:
  description: Whether the node is not on the target yet (the same as C(changed), also when a caller overrides that).
  returned: success
  type: bool
after:
  description: What it booted after the upgrade, read again from the node, with its new C(boot_id).
  returned: changed and not check mode, except O(phase=install)
  type: dict
took:
  description: Seconds the upgrade took, from the request until the node was back.
  returned: changed and not check mode, except O(phase=install)
  type: float
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils import checks
from ansible_collections.solanaops.talos.plugins.module_utils.boot import read_boot
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
)
from ansible_collections.solanaops.talos.plugins.module_utils.upgrade_path import (
    UpgradePathError,
    check_upgrade_path,
)


class RefusedPath(TalosError):
    hint = "nothing was changed on the node"


class NotOnTarget(TalosError):
    hint = ("the node came back on another image than the one installed: the new boot entry failed and the "
            "bootloader fell back to the previous one (Talos' A/B upgrade), or something else reinstalled it; "
            "read its console or `talosctl dmesg` before retrying, and upgrade no other node until it is understood")


def image_tag(image):
    """The tag of an installer image reference, the release it boots; a digest pins no release."""
    tag = checks.image_version(image)
    if tag is None or "@" in image:
        raise RefusedPath(f"image {image!r} names no tag: the tag is the Talos release to boot, e.g. ...:v1.13.9")
    return tag


def booted(talosctl, node, endpoint):
    """The release and schematic the node runs now."""
    boot = read_boot(talosctl, node, endpoint)
    return {"talos_version": boot.get("talos_version"), "schematic": boot.get("schematic")}


def boot_id(talosctl, route):
    """The kernel's boot ID, new on every boot (what talosctl's own wait compares)."""
    return talosctl.run(["read", BOOT_ID], **route)[1].strip()


def on_target(boot, target):
    return boot["talos_version"] == target["talos_version"] and target["schematic"] in (None, boot["schematic"])


BOOT_ID = "/proc/sys/kernel/random/boot_id"
# talosctl upgrade's errors up to and including the install (cmd/talosctl/cmd/talos/upgrade.go):
# nothing is installed yet; any later failure (drain, reboot, wait) comes after the install
_BEFORE_INSTALL = re.compile(r"error pulling upgrade image|error during upgrade")


class AfterInstall(TalosError):
    hint = ("the node may already have the new image installed as its next boot (talosctl installs it before "
            "draining and rebooting): any reboot now boots it; fix the cause (a drain blocked by a "
            "PodDisruptionBudget, the node not coming back) and re-run")


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "image": {"type": "str", "required": True},
            "schematic": {"type": "str"},
            "kubernetes_versions": {"type": "list", "elements": "str", "default": []},
            "phase": {"type": "str", "choices": ["all", "install", "reboot"], "default": "all"},
            "drain": {"type": "bool", "default": True},
            "drain_timeout": {"type": "int", "default": 300},
            "reboot_mode": {"type": "str", "choices": ["default", "powercycle"], "default": "default"},
            "timeout": {"type": "int", "default": 1800},
        },
        supports_check_mode=True,
    )
    params = module.params
    node = params["node"]
    route = {"nodes": [node], "endpoints": [params["endpoint"] or node], "node_name": node}
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["target"] = target = {"talos_version": image_tag(params["image"]), "schematic": params["schematic"]}
        result["before"] = before = booted(talosctl, node, params["endpoint"])
        result["needed"] = not on_target(before, target)
        if not result["needed"]:
            module.exit_json(msg=f"{node} already boots {params['image']}", **result)
        try:
            for kubernetes in params["kubernetes_versions"] or [None]:
                check_upgrade_path(before["talos_version"], target["talos_version"], kubernetes)
        except UpgradePathError as error:
            raise RefusedPath(f"{node}: {error}") from None
        result["changed"] = True
        if module.check_mode:
            module.exit_json(msg=f"{node} would be upgraded to {params['image']}", **result)
        before["boot_id"] = boot_id(talosctl, route)
        started = time.monotonic()
        drain = [f"--drain={str(params['drain']).lower()}", f"--drain-timeout={params['drain_timeout']}s"]
        try:
            if params["phase"] == "install":
                talosctl.run(["upgrade", "--image", params["image"], "--no-reboot"], **route)
                module.exit_json(msg=f"{node}: {params['image']} installed, booted at the next reboot", **result)
            if params["phase"] == "all":
                talosctl.run(["upgrade", "--image", params["image"], "--wait", f"--timeout={params['timeout']}s",
                              *drain, f"--reboot-mode={params['reboot_mode']}"], **route)
            else:
                talosctl.run(["reboot", "--wait", f"--timeout={params['timeout']}s", *drain,
                              f"--mode={params['reboot_mode']}"], **route)
            result["took"] = round(time.monotonic() - started, 1)
            result["after"] = after = booted(talosctl, node, params["endpoint"])
            after["boot_id"] = boot_id(talosctl, route)
        except TalosError as error:
            if params["phase"] == "install" or _BEFORE_INSTALL.search(str(error.details.get("stderr") or "")):
                raise
            raise AfterInstall(str(error), **error.details) from None
        if not on_target(after, target):
            raise NotOnTarget(
                f"{node} came back on Talos {after['talos_version']} schematic {after['schematic']}, "
                f"not {target['talos_version']} schematic {target['schematic'] or '(any)'}")
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(msg=f"{node} upgraded to {params['image']} in {result['took']} s", **result)


if __name__ == "__main__":
    main()
