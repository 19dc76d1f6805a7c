#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_kubernetes_upgrade
short_description: Upgrade a Talos cluster's Kubernetes through talosctl upgrade-k8s
version_added: 0.2.0
description:
  - Compares the Kubernetes versions the cluster runs (O(running), read by the caller from its
    Nodes and control-plane pods) with O(version). A cluster whose every component is already on
    it is left alone, without calling talosctl.
  - Refuses, before touching the cluster, an upgrade the collection does not allow - more than one
    minor version at once, a downgrade, a version the Talos release of any of O(nodes) does not run
    (read with C(talosctl get version)); see the module utility C(upgrade_path).
  - Otherwise runs C(talosctl upgrade-k8s) through O(node) (a control plane), Talos' own
    mechanism. It patches each control plane's config, one node at a time, for kube-apiserver,
    then kube-controller-manager, then kube-scheduler, waiting for each new static pod to be
    Ready; then kube-proxy; then each node's kubelet, control planes first, waiting for the
    restarted kubelet and its Node at the new version; then syncs the bootstrap manifests (the
    kube-proxy DaemonSet, CoreDNS). A component already on the target is skipped, so a re-run
    after an interruption continues where it stopped.
  - The configs are re-encoded without documentation and examples, as the collection renders them.
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
    description: Every Kubernetes version the cluster's components run (kubelets and control-plane pods).
    type: list
    elements: str
    required: true
  upgrade_kubelet:
    description: Upgrade the kubelets too (C(--upgrade-kubelet)).
    type: bool
    default: true
  pre_pull_images:
    description: Pull every new image on its nodes before changing anything (C(--pre-pull-images)).
    type: bool
    default: true
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
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
from_version:
  description: The lowest version the cluster ran, the start of the path.
  returned: always, once read
  type: str
  sample: 1.36.3
to_version:
  description: The target.
  returned: always
  type: str
  sample: 1.37.2
needed:
  description: Whether any component was not on the target (in check mode, the same as C(changed)).
  returned: success
  type: bool
talos_versions:
  description: The Talos release each of O(nodes) runs.
  returned: when O(nodes) is given
  type: dict
  sample: {"10.0.1.11": "v1.14.1"}
updated:
  description: What talosctl changed, one entry per component and node, C(component), C(node), C(from), C(to).
  returned: changed and not check mode
  type: list
  elements: dict
manifests:
  description:
    - The bootstrap manifests talosctl created, configured or deleted, e.g.
      C(Configured DaemonSet/kube-system/kube-proxy).
  returned: changed and not check mode
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
)
from ansible_collections.solanaops.talos.plugins.module_utils.upgrade_path import (
    UpgradePathError,
    check_kubernetes_path,
    parse_version,
)


class RefusedPath(TalosError):
    hint = "nothing was changed on the cluster"


class PartlyUpgraded(TalosError):
    hint = ("the components talosctl reached are on the new version, the others on the old one (Kubernetes' version "
            "skew policy allows this while the upgrade completes); fix the cause and re-run, which skips what is "
            "already upgraded; the etcd snapshot taken before is the way back")


# talosctl upgrade-k8s' log lines (pkg/cluster/kubernetes talos_managed.go, kubelet.go; go-kubernetes ssa/cli)
_STARTING = re.compile(r'^ > "([^"]+)": starting update')
_UPDATE = re.compile(r"^ > update (\S+): (\S+) -> (\S+)")
_MANIFEST = re.compile(r"^ < ((?:Created|Configured|Deleted) \S+)")


def parse_upgrade_log(text):
    """talosctl upgrade-k8s' output -> (updates [{component, node, from, to}], manifest changes)."""
    updates, manifests, node = [], [], None
    for line in text.splitlines():
        if match := _STARTING.match(line):
            node = match.group(1)
        elif match := _UPDATE.match(line):
            updates.append({"component": match.group(1), "node": node, "from": match.group(2), "to": match.group(3)})
        elif match := _MANIFEST.match(line):
            manifests.append(match.group(1))
    return updates, manifests


def dotted(version):
    return ".".join(str(part) for part in parse_version(version, "Kubernetes version"))


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "node": {"type": "str", "required": True},
            "endpoint": {"type": "str"},
            "nodes": {"type": "list", "elements": "str", "default": []},
            "version": {"type": "str", "required": True},
            "running": {"type": "list", "elements": "str", "required": True},
            "upgrade_kubelet": {"type": "bool", "default": True},
            "pre_pull_images": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    route = {"nodes": [params["node"]], "endpoints": [params["endpoint"] or params["node"]]}
    result = {"changed": False}
    try:
        talosctl = Talosctl(module)
        result["talosctl_version"] = talosctl.version
        result["to_version"] = target = dotted(params["version"])
        talos_versions = {}
        if params["nodes"]:
            for resource in talosctl.get("version", nodes=params["nodes"], endpoints=route["endpoints"]):
                talos_versions[resource.get("node") or params["node"]] = resource["spec"].get("version")
            result["talos_versions"] = talos_versions
        try:
            check_kubernetes_path(params["running"], target, talos_versions.values())
        except UpgradePathError as error:
            raise RefusedPath(str(error)) from None
        result["from_version"] = lowest = min((dotted(v) for v in params["running"]), key=parse_version)
        result["needed"] = result["changed"] = any(dotted(v) != target for v in params["running"])
        if not result["needed"]:
            module.exit_json(msg=f"every component already runs Kubernetes {target}", **result)
        if module.check_mode:
            module.exit_json(msg=f"Kubernetes would be upgraded from {lowest} to {target}", **result)
        started = time.monotonic()
        try:
            _rc, stdout, _stderr = talosctl.run([
                "upgrade-k8s", "--from", lowest, "--to", target, "--with-docs=false", "--with-examples=false",
                f"--upgrade-kubelet={str(params['upgrade_kubelet']).lower()}",
                f"--pre-pull-images={str(params['pre_pull_images']).lower()}"], **route)
        except TalosError as error:
            result["updated"], result["manifests"] = parse_upgrade_log(error.details.get("stdout") or "")
            if not (result["updated"] or result["manifests"]):
                result["changed"] = False  # it stopped before its first change (a pull, a check)
                raise
            raise PartlyUpgraded(str(error), **error.details) from None
        result["took"] = round(time.monotonic() - started, 1)
        result["updated"], result["manifests"] = parse_upgrade_log(stdout)
        result["changed"] = bool(result["updated"] or result["manifests"])
    except TalosError as error:
        fail_json_from(module, error, **result)
    module.exit_json(msg=f"Kubernetes upgraded from {lowest} to {target} in {result['took']} s", **result)


if __name__ == "__main__":
    main()
