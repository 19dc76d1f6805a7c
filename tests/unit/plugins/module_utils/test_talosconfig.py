"""Unit tests for module_utils/talosconfig.py: what talos_client_config and the current_talosconfig test compare."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import talosconfig

TALOSCONFIG = """\
context: solana-cluster
contexts:
  solana-cluster:
    endpoints:
      - 10.0.1.11
      - 10.0.1.12
      - 10.0.1.13
    nodes:
      - 10.0.1.11
    ca: Y2E=
    crt: Y3J0
    key: a2V5
  other:
    endpoints: [192.168.0.2]
"""


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (TALOSCONFIG, "solana-cluster", {"endpoint": ["10.0.1.11", "10.0.1.12", "10.0.1.13"], "node": ["10.0.1.11"]}),
        (TALOSCONFIG, "other", {"endpoint": ["192.168.0.2"], "node": []}),
        (TALOSCONFIG, "missing", {"endpoint": [], "node": []}),
        (None, "solana-cluster", {"endpoint": [], "node": []}),
        ("", "solana-cluster", {"endpoint": [], "node": []}),
        ("context: x\ncontexts:\n", "x", {"endpoint": [], "node": []}),
        ("context: x\ncontexts:\n  x:\n", "x", {"endpoint": [], "node": []}),
        ("context: x\n", "x", {"endpoint": [], "node": []}),
    ],
)
def test_context_settings(text, name, expected):
    assert talosconfig.context_settings(text, name) == expected


def test_wanted_settings_compare_with_the_context_as_lists():
    wanted = talosconfig.wanted_settings(("10.0.1.11", "10.0.1.12", "10.0.1.13"), ["10.0.1.11"])
    assert talosconfig.context_settings(TALOSCONFIG, "solana-cluster") == wanted
    assert talosconfig.context_settings(TALOSCONFIG, "other") == talosconfig.wanted_settings(["192.168.0.2"])


@pytest.mark.parametrize("text", ["- a\n", "abc\n", "contexts: [a]\n", "contexts:\n  solana-cluster: [a]\n"])
def test_a_file_of_another_shape_has_no_settings(text):
    assert talosconfig.context_settings(text, "solana-cluster") == {"endpoint": [], "node": []}


def _params(**overrides):
    return {"path": "/out/talosconfig", "cluster_name": "solana-cluster",
            "endpoints": ["10.0.1.11", "10.0.1.12", "10.0.1.13"], "nodes": ["10.0.1.11"], **overrides}


def test_the_unchanged_result_only_for_the_same_endpoints_and_nodes():
    assert talosconfig.unchanged_result(_params(), TALOSCONFIG) == {
        "changed": False, "path": "/out/talosconfig", "endpoints": ["10.0.1.11", "10.0.1.12", "10.0.1.13"]}
    assert talosconfig.unchanged_result(_params(nodes=[]), TALOSCONFIG) is None
    assert talosconfig.unchanged_result(_params(endpoints=["10.0.1.11"]), TALOSCONFIG) is None
    assert talosconfig.unchanged_result(_params(cluster_name="other"), TALOSCONFIG) is None
    assert talosconfig.unchanged_result(_params(), None) is None
