# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which Talos upgrades the collection lets through, before any node is touched.

Talos' installer refuses a host older than the target release's minimum (machinery
compatibility/talos1XX/talos1XX.go, MinimumHostUpgradeVersion, checked by
TalosVersion.UpgradeableFrom), and Talos tests its migrations between adjacent minor releases
only ("the recommended upgrade path is to always upgrade to the latest patch release of all
intermediate minor releases", upgrading-talos docs). The collection holds to the stricter of
the two: one minor release per upgrade, never a downgrade (that is `talosctl rollback`).
The Kubernetes range each release supports is contract.KUBERNETES_RANGE.

Kubernetes itself moves one minor version at a time (its version skew policy; `talosctl
upgrade-k8s` refuses any other path, go-kubernetes upgrade/path.go `IsSupported`) and has no
supported downgrade: the API server may already have stored objects in the newer version.
"""

from __future__ import annotations

import re

from ansible_collections.solanaops.talos.plugins.module_utils import contract

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$")


class UpgradePathError(ValueError):
    """An upgrade the collection refuses; the message names the way forward."""


def parse_version(text, what="version"):
    """'v1.13.9' -> (1, 13, 9); a pre-release sorts as its release (Talos' own tags)."""
    match = _VERSION.match(str(text or "").strip())
    if not match:
        raise UpgradePathError(f"{what} {text!r} is not a Talos version such as v1.13.9")
    return tuple(int(part) for part in match.groups())


def _minor(version):
    return f"v{version[0]}.{version[1]}"


def check_upgrade_path(running, target, kubernetes_version=None):
    """Raise UpgradePathError unless a node running ``running`` may go to ``target`` in one
    upgrade (with the cluster on ``kubernetes_version``); the same release passes the path checks."""
    host, goal = parse_version(running, "running version"), parse_version(target, "target version")
    if goal[:2] not in contract.KUBERNETES_RANGE:
        known = ", ".join(_minor(m) for m in sorted(contract.KUBERNETES_RANGE))
        raise UpgradePathError(f"Talos {target} is not a release this collection knows ({known})")
    if host > goal:
        raise UpgradePathError(
            f"{target} is older than the running {running}: a downgrade is not an upgrade; "
            f"to go back after a failed upgrade use `talosctl rollback`")
    if (goal[0], goal[1] - 1) > host[:2]:
        steps = [f"the latest v{host[0]}.{minor} patch" for minor in range(host[1] + 1, goal[1])]
        raise UpgradePathError(
            f"{running} -> {target} skips {', '.join(_minor((host[0], m)) for m in range(host[1] + 1, goal[1]))}: "
            f"Talos upgrades one minor release at a time; upgrade to {', then '.join(steps)} first")
    if kubernetes_version:
        k8s = parse_version(kubernetes_version, "Kubernetes version")[:2]
        oldest, newest = contract.KUBERNETES_RANGE[goal[:2]]
        if not oldest <= k8s <= newest:
            raise UpgradePathError(
                f"Talos {_minor(goal)} runs Kubernetes {_minor(oldest)} to {_minor(newest)}, the cluster runs "
                f"{kubernetes_version}: upgrade Kubernetes into that range first (playbooks/upgrade_kubernetes.yml)")


def check_kubernetes_path(running, target, talos_versions=()):
    """Raise UpgradePathError unless a cluster whose components run the versions ``running``
    (kubelets, control-plane pods) may go to Kubernetes ``target`` in one upgrade, on nodes
    running the Talos releases ``talos_versions``; a cluster already on ``target`` passes."""
    goal = parse_version(target, "target Kubernetes version")
    versions = sorted({parse_version(v, "running Kubernetes version") for v in running})
    if not versions:
        raise UpgradePathError("no Kubernetes component version was read: is the cluster up?")
    lowest, highest = versions[0], versions[-1]
    if highest > goal:
        raise UpgradePathError(
            f"the cluster runs Kubernetes {_dotted(highest)}, newer than the target {target}: Kubernetes has no "
            f"supported downgrade (the API server may have stored objects in the newer version); set "
            f"talos_cluster_kubernetes_version to {_dotted(highest)} or newer")
    if goal[:2] > (lowest[0], lowest[1] + 1):
        steps = [f"the latest {lowest[0]}.{minor} patch" for minor in range(lowest[1] + 1, goal[1])]
        raise UpgradePathError(
            f"Kubernetes {_dotted(lowest)} -> {target} skips "
            f"{', '.join(f'{lowest[0]}.{m}' for m in range(lowest[1] + 1, goal[1]))}: Kubernetes upgrades one minor "
            f"version at a time; set talos_cluster_kubernetes_version to {', then '.join(steps)} and upgrade first")
    for talos in sorted({parse_version(v, "Talos version") for v in talos_versions}):
        if talos[:2] not in contract.KUBERNETES_RANGE:
            raise UpgradePathError(f"a node runs Talos {_dotted(talos)}, a release this collection does not know")
        oldest, newest = contract.KUBERNETES_RANGE[talos[:2]]
        if not oldest <= goal[:2] <= newest:
            raise UpgradePathError(
                f"Talos {_minor(talos)} runs Kubernetes {_minor(oldest)} to {_minor(newest)}, not {target}: "
                + ("upgrade Talos first (playbooks/upgrade.yml)" if goal[:2] > newest
                   else "choose a version in that range"))


def _dotted(version):
    return ".".join(str(part) for part in version)
