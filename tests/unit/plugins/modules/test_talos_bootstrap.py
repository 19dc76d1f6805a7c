"""talos_bootstrap: parsing `talosctl etcd members` and the split-brain guard."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    CommandFailed,
    NodeUnreachable,
    TalosError,
)
from ansible_collections.solanaops.talos.plugins.modules import talos_bootstrap

MEMBERS = """NODE        ID                HOSTNAME        PEER URLS                CLIENT URLS              LEARNER
127.0.1.11  5c1f0e8b7a2d4c11  controlplane-1  https://127.0.1.11:2380  https://127.0.1.11:2379  false
127.0.1.11  9a0b3c4d5e6f7081  controlplane-2  https://127.0.1.12:2380  https://127.0.1.12:2379  false
"""


def test_parse_etcd_members():
    assert [(m["id"], m["hostname"]) for m in talos_bootstrap.parse_etcd_members(MEMBERS)] == [
        ("5c1f0e8b7a2d4c11", "controlplane-1"), ("9a0b3c4d5e6f7081", "controlplane-2")]
    assert talos_bootstrap.parse_etcd_members("NODE ID HOSTNAME PEER URLS CLIENT URLS LEARNER\n") == []


class FakeTalosctl:
    """Answers `etcd members` per node from a table of outputs or exceptions."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def run(self, args, nodes, endpoints, node_name):
        self.asked.append((tuple(args), nodes[0], endpoints[0]))
        answer = self.answers[nodes[0]]
        if isinstance(answer, Exception):
            raise answer
        return 0, answer, ""


def test_members_found_on_any_node_are_reported():
    fake = FakeTalosctl({"a": CommandFailed("etcd is not running"), "b": MEMBERS, "c": ""})
    found = talos_bootstrap.existing_members(fake, ["a", "b", "c"])
    assert list(found) == ["b"] and len(found["b"]) == 2
    assert [asked[1:] for asked in fake.asked] == [("a", "a"), ("b", "b"), ("c", "c")]


def test_no_members_anywhere_allows_bootstrap():
    fake = FakeTalosctl({"a": CommandFailed("etcd is not running"), "b": CommandFailed("not running")})
    assert talos_bootstrap.existing_members(fake, ["a", "b"]) == {}


def test_an_unreachable_control_plane_node_refuses_bootstrap():
    fake = FakeTalosctl({"a": CommandFailed("etcd is not running"), "b": NodeUnreachable("connection refused")})
    with pytest.raises(TalosError, match="cannot tell whether b already runs etcd.*split the brain"):
        talos_bootstrap.existing_members(fake, ["a", "b"])
