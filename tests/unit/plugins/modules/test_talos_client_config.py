"""Unit tests for the pure functions of the talos_client_config module."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.modules import talos_client_config

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
        (TALOSCONFIG, "solana-cluster",
         {"endpoints": ["10.0.1.11", "10.0.1.12", "10.0.1.13"], "nodes": ["10.0.1.11"],
          "ca": "Y2E=", "crt": "Y3J0", "key": "a2V5"}),
        (TALOSCONFIG, "other", {"endpoints": ["192.168.0.2"]}),
        (TALOSCONFIG, "missing", {}),
        (None, "solana-cluster", {}),
        ("", "solana-cluster", {}),
        ("context: x\ncontexts:\n", "x", {}),
        ("context: x\ncontexts:\n  x:\n", "x", {}),
        ("context: x\n", "x", {}),
    ],
)
def test_context_of(text, name, expected):
    assert talos_client_config.context_of(text, name) == expected
