"""The current_talosconfig test (plugins/test/files.py): talosconfig.yml leaves its module run out
only for a file the module would leave as it is, private to this user."""

from __future__ import annotations

import os

import pytest
from ansible_collections.solanaops.talos.plugins.test.files import current_talosconfig

CONTROLPLANES = ["127.1.0.11", "127.1.0.12", "127.1.0.13"]
TALOSCONFIG = """\
context: solana
contexts:
  solana:
    endpoints: [127.1.0.11, 127.1.0.12, 127.1.0.13]
    ca: Y2E=
    crt: Y3J0
    key: a2V5
"""


@pytest.fixture
def talosconfig(tmp_path):
    path = tmp_path / "talosconfig"
    path.write_text(TALOSCONFIG)
    path.chmod(0o600)
    return path


def test_the_cluster_context_with_the_control_planes_passes(talosconfig):
    assert current_talosconfig(str(talosconfig), "solana", CONTROLPLANES)
    assert current_talosconfig(str(talosconfig), "solana", CONTROLPLANES, [])


@pytest.mark.parametrize(("name", "endpoints", "nodes"), [
    ("other", CONTROLPLANES, []),  # no such context
    ("solana", CONTROLPLANES[:2], []),  # a control plane missing
    ("solana", [*CONTROLPLANES, "127.1.0.14"], []),  # one more
    ("solana", list(reversed(CONTROLPLANES)), []),  # talosctl tries them in order
    ("solana", CONTROLPLANES, ["127.1.0.11"]),  # default nodes wanted, none set
])
def test_another_context_or_other_endpoints_or_nodes_fail(talosconfig, name, endpoints, nodes):
    assert not current_talosconfig(str(talosconfig), name, endpoints, nodes)


def test_a_file_others_may_read_fails(talosconfig):
    talosconfig.chmod(0o644)
    assert not current_talosconfig(str(talosconfig), "solana", CONTROLPLANES)


def test_a_file_of_another_user_fails(talosconfig, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(talosconfig).st_uid + 1)
    assert not current_talosconfig(str(talosconfig), "solana", CONTROLPLANES)


def test_a_missing_or_unreadable_path_fails(tmp_path):
    assert not current_talosconfig(str(tmp_path / "missing"), "solana", CONTROLPLANES)
    (tmp_path / "dir").mkdir(mode=0o600)
    assert not current_talosconfig(str(tmp_path / "dir"), "solana", CONTROLPLANES)


def test_home_is_expanded(talosconfig, monkeypatch):
    monkeypatch.setenv("HOME", str(talosconfig.parent))
    assert current_talosconfig("~/talosconfig", "solana", CONTROLPLANES)
