#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_kubernetes_upgrade
short_description: Upgrade a Talos cluster's Kubernetes through talosctl upgrade-k8s
version_added: 0.1.0
description:
  - Compares the Kubernetes versions the cluster runs (O(running) and O(kubelets), read by the
    caller from its control-plane pods, kube-proxy DaemonSet and Nodes) with O(version). When
    every component talosctl would upgrade is already on it, talosctl is not called.
  - Refuses, before touching the cluster, an upgrade the collection does not allow - more than one
    minor version at once, a downgrade, a version the Talos release of any of O(nodes) does not run
    (read with C(talosctl get version)); see the module utility C(upgrade_path).
  - Otherwise runs C(talosctl upgrade-k8s) through O(node) (a control plane), Talos' own
    mechanism. It pulls the new images first; patches each control plane's config, one node at a
    time, for kube-apiserver, then kube-controller-manager, then kube-scheduler, waiting for each
    new static pod to be Ready; then kube-proxy's image; then, with O(upgrade_kubelet), each
    node's kubelet, control planes first; then syncs the bootstrap manifests (the kube-proxy
    DaemonSet, CoreDNS). A component already on the target is skipped, so a re-run after an
    interruption continues where it stopped.
  - The configs are re-encoded without documentation and examples, as the collection renders them.
  - What it reports comes from talosctl's log - a component counts as updated once its node's
    config was patched. On failure only talosctl's progress lines are returned, never the
    manifest diffs it prints (Talos' manifests hold the bootstrap token's secret).
  - talosctl waits without a deadline of its own for some events; run the task with C(async) to
    bound it (the solanaops.talos.talos_upgrade role does).
options:
  node:
    description: Control-plane node talosctl reads the cluster through (its kubeconfig, the Nodes).
    type: str
    required: true
  endpoint:
    description: Talos API endpoint the requests go through; defaults to O(node).
    type: str
  nodes:
    description: Every node of the cluster, whose Talos release must run O(version).
    type: list
    elements: str
    default: []
  version:
    description: Kubernetes version to upgrade to, e.g. C(1.37.2).
    type: str
    required: true
  running:
    description: The versions the control-plane components and kube-proxy run.
    type: list
    elements: str
    required: true
  kubelets:
    description: The versions the Nodes' kubelets run; checked on the path, and upgraded with O(upgrade_kubelet).
    type: list
    elements: str
    default: []
  upgrade_kubelet:
    description:
      - Upgrade the kubelets too (C(--upgrade-kubelet)), every node one after the other without a
        drain; the solanaops.talos.talos_upgrade role does them itself, node by node.
    type: bool
    default: true
  pre_pull_images:
    description: Pull every new image on its nodes before changing anything (C(--pre-pull-images)).
    type: bool
    default: true
  dry_run:
    description:
      - Run C(talosctl upgrade-k8s --dry-run) - its checks, and with O(pre_pull_images) the pull of
        every new image on its nodes - and change nothing (it does re-apply each control plane's
        config unchanged, a talosctl quirk). C(changed) is false.
    type: bool
    default: false
  force:
    description:
      - Run talosctl even when every component it upgrades is on O(version), for example after a
        run that stopped before the bootstrap manifests were synced (talosctl skips the rest).
    type: bool
    default: false
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Reads the nodes' releases and checks the path; reports the planned upgrade without making it.
  diff_mode:
    support: none
    description: No diff is produced; RV(from_version) and RV(to_version) show the change.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Upgrade Kubernetes one minor version
  solanaops.talos.talos_kubernetes_upgrade:
    node: 10.0.1.11
    nodes: [10.0.1.11, 10.0.1.12, 10.0.1.13, 10.0.1.20]
    version: 1.37.2
    running: [v1.36.3]
    kubelets: [v1.36.3]
    upgrade_kubelet: false
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
from_version:
  description: The lowest version the cluster ran (kubelets included), the start of the path.
  returned: always, once read
  type: str
  sample: 1.36.3
to_version:
  description: The target.
  returned: always
  type: str
  sample: 1.37.2
needed:
  description: Whether talosctl has something to upgrade (in check mode, the same as C(changed)).
  returned: success
  type: bool
talos_versions:
  description: The Talos release each of O(nodes) runs.
  returned: when O(nodes) is given
  type: dict
  sample: {"10.0.1.11": "v1.14.1"}
updated:
  description:
    - What talosctl changed, one entry per component and node whose config it patched,
      C(component), C(node), C(from), C(to). kube-proxy's image is patched on every control
      plane without a log line of its own, so it is not listed.
  returned: once talosctl ran
  type: list
  elements: dict
manifests:
  description:
    - The bootstrap manifests talosctl created, configured or deleted, e.g.
      C(Configured DaemonSet/kube-system/kube-proxy).
  returned: once talosctl ran
  type: list
  elements: str
log:
  description: talosctl's progress lines (not the manifest diffs), when it failed.
  returned: failure of talosctl
  type: list
  elements: str
took:
  description: Seconds talosctl upgrade-k8s ran.
  returned: changed and not check mode
  type: float
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    Talosctl,
    TalosError,
    fail_json_from,
    last_line,
)
from ansible_collections.solanaops.talos.plugins.module_utils.upgrade_path import (
    UpgradePathError,
    check_kubernetes_path,
    parse_version,
)


class RefusedPath(TalosError):
    hint = "nothing was changed on the cluster"


class PartlyUpgraded(TalosError):
    hint = ("the components talosctl reached run the new version, the others the old one (Kubernetes' version skew "
            "policy allows this while the upgrade completes); fix the cause and re-run, which skips what is "
            "already upgraded")


# talosctl upgrade-k8s' log lines (pkg/cluster/kubernetes talos_managed.go, kubelet.go; go-kubernetes
# ssa/cli LogApplyResults, whose actions are fluxcd's lowercase ones)
_STARTING = re.compile(r'^ > "([^"]+)": starting update')
_UPDATE = re.compile(r"^ > update (\S+): (\S+) -> (\S+)")
_PATCHED = re.compile(r'^ > "([^"]+)": machine configuration patched')
_MANIFEST = re.compile(r"^ < ((?:created|configured|deleted) \S+)")
# every progress line; anything else is a manifest diff (which may hold a Secret) or noise
_PROGRESS = re.compile(r"^(?: [<>] |automatically detected|discovered|updating|checking|waiting|skipping|done|"
                       r"kubernetes endpoint watch error)")


def parse_upgrade_log(text):
    """talosctl upgrade-k8s' output -> (updates [{component, node, from, to}] whose config was
    patched, manifest changes)."""
    updates, manifests, node, pending = [], [], None, None
    for line in text.splitlines():
        if match := _STARTING.match(line):
            node, pending = match.group(1), None
        elif match := _UPDATE.match(line):
            pending = {"component": match.group(1), "node": node, "from": match.group(2), "to": match.group(3)}
        elif (match := _PATCHED.match(line)) and pending and match.group(1) == node:
            updates.append(pending)
            pending = None
        elif match := _MANIFEST.match(line):
            manifests.append(match.group(1))
    return updates, manifests


def progress(text):
    """The progress lines of talosctl's output, without the manifest diffs."""
    return [line for line in (text or "").splitlines() if _PROGRESS.match(line)]


def release(version, what):
    """'v1.37.2' -> '1.37.2'; anything but a plain release is refused."""
    text = str(version or "").strip().lstrip("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", text):
        raise RefusedPath(f"{what} {version!r} is not a Kubernetes release such as 1.37.2")
    return text


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "nodes": {"type": "list", "elements": "str", "default": []},
            "version": {"type": "str", "required": True},
            "running": {"type": "list", "elements": "str", "required": True},
            "kubelets": {"type": "list", "elements": "str", "default": []},
            "upgrade_kubelet": {"type": "bool", "default": True},
            "pre_pull_images": {"type": "bool", "default": True},
            "dry_run": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    route = {"nodes": [params["node"]], "endpoints": [params["endpoint"] or params["node"]]}
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["to_version"] = target = release(params["version"], "version")
        running = [release(v, "running version") for v in params["running"]]
        kubelets = [release(v, "kubelet version") for v in params["kubelets"]]
        talos_versions = {}
        if params["nodes"]:
            for resource in talosctl.get("version", nodes=params["nodes"], endpoints=route["endpoints"]):
                talos_versions[resource.get("node") or params["node"]] = resource["spec"].get("version")
            result["talos_versions"] = talos_versions
        try:
            check_kubernetes_path(running + kubelets, target, talos_versions.values())
        except UpgradePathError as error:
            raise RefusedPath(str(error)) from None
        result["from_version"] = lowest = min(running + kubelets, key=parse_version)
        upgraded = running + (kubelets if params["upgrade_kubelet"] else [])
        result["needed"] = any(v != target for v in upgraded) or params["force"]
        result["changed"] = result["needed"] and not params["dry_run"]
        if not result["needed"]:
            module.exit_json(msg=f"talosctl has nothing to upgrade: the components run Kubernetes {target}", **result)
        if module.check_mode:
            module.exit_json(msg=f"Kubernetes would be upgraded from {lowest} to {target}", **result)
        started = time.monotonic()
        try:
            _rc, stdout, _stderr = talosctl.run([
                "upgrade-k8s", "--from", lowest, "--to", target, "--with-docs=false", "--with-examples=false",
                f"--upgrade-kubelet={str(params['upgrade_kubelet']).lower()}",
                f"--pre-pull-images={str(params['pre_pull_images']).lower()}",
                *(["--dry-run"] if params["dry_run"] else [])], **route)
            if params["dry_run"]:
                module.exit_json(msg=f"talosctl upgrade-k8s --dry-run to {target}: its checks passed"
                                 + (", every new image pulled" if params["pre_pull_images"] else ""), **result)
        except TalosError as error:
            output = error.details.get("stdout") or ""
            result["updated"], result["manifests"] = parse_upgrade_log(output)
            result["changed"] = bool(result["updated"] or result["manifests"])
            # talosctl's own output holds the manifest diffs: only its progress lines go back
            details = {"command": error.details.get("command"), "rc": error.details.get("rc"),
                       "stderr": last_line(error.details.get("stderr")), "log": progress(output)}
            if not result["changed"]:  # it stopped before its first change (a pull, a check)
                raise type(error)(str(error), **details) from None
            raise PartlyUpgraded(str(error), **details) from None
        result["took"] = round(time.monotonic() - started, 1)
        result["updated"], result["manifests"] = parse_upgrade_log(stdout)
        result["changed"] = bool(result["updated"] or result["manifests"])
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(msg=f"Kubernetes upgraded from {lowest} to {target} in {result['took']} s", **result)


if __name__ == "__main__":
    main()
