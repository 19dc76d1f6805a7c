"""Whether a Node's pods really run: kwok's Nodes (the testbed) are named as such, and a check that
could not run there is reported as information, never as a pass."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import checks, real_nodes


def test_a_kwok_node_needs_real_nodes_and_says_why():
    node = {"metadata": {"name": "solana-validator", "annotations": {"kwok.x-k8s.io/node": "fake"}}}
    reason = real_nodes.needs_real_node(node)
    assert reason.startswith("kwok-managed (kwok.x-k8s.io/node=fake): kwok runs no containers")
    assert reason.endswith("needs real nodes")


def test_a_node_a_kubelet_runs_needs_nothing():
    annotated = {"metadata": {"name": "v", "annotations": {"node.alpha.kubernetes.io/ttl": "0"}}}
    assert real_nodes.needs_real_node(annotated) == ""
    assert real_nodes.needs_real_node({"metadata": {"name": "v"}}) == ""


def test_a_check_not_run_is_information_and_alone_verifies_nothing():
    entry = real_nodes.not_run("fio", "solana-validator", "kwok-managed")
    assert (entry["info"], entry["observed"]) == (True, "not run: kwok-managed")
    passed, failed, failures = checks.counts([entry])
    assert (passed, failed, failures) == (0, 1, ["no check ran: nothing was verified"])
