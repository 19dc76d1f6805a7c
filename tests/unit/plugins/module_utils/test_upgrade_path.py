"""upgrade_path: the upgrades the collection lets through, and the way forward it names otherwise."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.upgrade_path import (
    UpgradePathError,
    check_kubernetes_path,
    check_upgrade_path,
    parse_version,
)


@pytest.mark.parametrize(("running", "target", "kubernetes"), [
    ("v1.13.8", "v1.13.9", "1.36.3"),   # a patch release
    ("v1.13.9", "v1.13.9", "1.36.3"),   # the same release (a schematic change)
    ("v1.12.3", "v1.13.9", "v1.31.0"),  # the next minor, Kubernetes at its oldest
    ("v1.13.9", "v1.14.1", "1.37.0"),
    ("v1.14.0-beta.1", "v1.14.1", None),
])
def test_allowed(running, target, kubernetes):
    check_upgrade_path(running, target, kubernetes)


@pytest.mark.parametrize(("running", "target", "kubernetes", "message"), [
    # Talos' v1.13 installer refuses hosts older than v1.11.0; the collection one minor at a time
    ("v1.10.6", "v1.13.9", None,
     r"^v1.10.6 -> v1.13.9 skips v1.11, v1.12: .* upgrade to the latest v1.11 patch, "
     r"then the latest v1.12 patch first$"),
    ("v1.12.3", "v1.14.1", None, r"skips v1.13: .*the latest v1.13 patch first"),
    ("v1.13.9", "v1.13.8", None, r"older than the running v1.13.9: a downgrade .* `talosctl rollback`"),
    ("v1.14.1", "v1.13.9", None, r"a downgrade"),
    ("v1.13.9", "v1.14.1", "1.31.4", r"^Talos v1.14 runs Kubernetes v1.32 to v1.37, the cluster runs 1.31.4"),
    ("v1.13.9", "v1.13.9", "1.37.0", r"Talos v1.13 runs Kubernetes v1.31 to v1.36"),
    ("v1.14.1", "v1.15.0", None, r"^Talos v1.15.0 is not a release this collection knows"),
    ("1.13", "v1.13.9", None, r"running version '1.13' is not a Talos version"),
    (None, "v1.13.9", None, r"running version None"),
])
def test_refused(running, target, kubernetes, message):
    with pytest.raises(UpgradePathError, match=message):
        check_upgrade_path(running, target, kubernetes)


def test_parse_version():
    assert parse_version("v1.13.9") == (1, 13, 9) == parse_version("1.13.9")
    assert parse_version("v1.14.0-alpha.2") == (1, 14, 0)


@pytest.mark.parametrize(("running", "target", "talos"), [
    (["v1.36.3", "v1.36.3"], "1.37.2", ["v1.14.1"]),  # the next minor
    (["v1.36.3"], "v1.36.5", ["v1.13.9", "v1.14.1"]),  # a patch release, mixed Talos releases that run it
    (["v1.36.3", "v1.37.2"], "1.37.2", ["v1.14.1"]),  # an interrupted upgrade, resumed
    (["v1.37.2"], "1.37.2", []),  # already there
    (["v1.32.0"], "1.32.4", ["v1.13.9", "v1.14.1"]),  # in both releases' ranges
])
def test_kubernetes_allowed(running, target, talos):
    check_kubernetes_path(running, target, talos)


@pytest.mark.parametrize(("running", "target", "talos", "message"), [
    (["v1.35.1", "v1.36.3"], "1.37.2", [],
     r"^Kubernetes 1.35.1 -> 1.37.2 skips 1.36: .* set talos_cluster_kubernetes_version to the latest 1.36 patch"),
    (["v1.34.0"], "1.37.2", [], r"skips 1.35, 1.36: .*the latest 1.35 patch, then the latest 1.36 patch and"),
    (["v1.37.2"], "1.37.1", [],
     r"^the cluster runs Kubernetes 1.37.2, newer than the target 1.37.1: .*"
     r"set talos_cluster_kubernetes_version to 1.37.2"),
    (["v1.36.3"], "1.37.2", ["v1.14.1", "v1.13.9"],
     r"^Talos v1.13 runs Kubernetes v1.31 to v1.36, not 1.37.2: upgrade Talos first \(playbooks/upgrade.yml\)"),
    (["v1.31.0"], "1.31.4", ["v1.14.1"], r"Talos v1.14 runs Kubernetes v1.32 to v1.37, not 1.31.4: choose a version"),
    (["v1.36.3"], "1.36.4", ["v1.15.0"], r"a node runs Talos 1.15.0, a release this collection does not know"),
    ([], "1.37.2", [], r"no Kubernetes component version was read"),
    (["fake"], "1.37.2", [], r"running Kubernetes version 'fake' is not"),
])
def test_kubernetes_refused(running, target, talos, message):
    with pytest.raises(UpgradePathError, match=message):
        check_kubernetes_path(running, target, talos)
