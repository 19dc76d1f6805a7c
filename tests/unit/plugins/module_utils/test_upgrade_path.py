"""upgrade_path: the upgrades the collection lets through, and the way forward it names otherwise."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.upgrade_path import (
    UpgradePathError,
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
