"""NodeRestriction's label rule: what a node may set on its own Node."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import node_restriction


@pytest.mark.parametrize(("label", "allowed"), [
    ("solana.io/role", True),
    ("example.com/rack", True),
    ("plain", True),
    ("kubernetes.io/hostname", True),
    ("topology.kubernetes.io/zone", True),
    ("node.kubernetes.io/exclude-from-external-load-balancers", True),
    ("kubelet.kubernetes.io/anything", True),
    ("node-role.kubernetes.io/validator", False),
    ("kubernetes.io/role", False),
    ("example.k8s.io/x", False),
    ("node-restriction.kubernetes.io/pool", False),
    ("team.node-restriction.kubernetes.io/pool", False),
])
def test_node_may_set(label, allowed):
    assert node_restriction.node_may_set(label) is allowed


def test_self_set_labels_keeps_only_what_the_node_may_set():
    labels = {"solana.io/role": "validator", "node-role.kubernetes.io/validator": ""}
    assert node_restriction.self_set_labels(labels) == {"solana.io/role": "validator"}
    assert node_restriction.self_set_labels(None) == {}
