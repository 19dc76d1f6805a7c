"""talos_shutdown: after the answered request, the node counts as down only once its own API
refuses connections, within the timeout."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    CredentialsMismatch,
    NodeUnreachable,
)
from ansible_collections.solanaops.talos.plugins.modules import talos_shutdown


class FakeTalosctl:
    """Answers `version` with each outcome in turn (None: the node answers)."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def run(self, args, **kwargs):
        self.calls.append((args, kwargs))
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome("talosctl version failed")
        return 0, "Tag: v1.13.9", ""


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_waits_until_the_node_itself_refuses_connections():
    clock = Clock()
    talosctl = FakeTalosctl([None, None, CredentialsMismatch, NodeUnreachable])
    assert talos_shutdown.wait_down(talosctl, "10.0.1.11", 90, clock, clock.sleep) == 3.0
    # asked directly, never through another endpoint: a node answering through apid is not down
    assert {(tuple(args), tuple(kw["nodes"]), tuple(kw["endpoints"])) for args, kw in talosctl.calls} == {
        (("version", "--short"), ("10.0.1.11",), ("10.0.1.11",))}


def test_a_node_that_keeps_answering_fails_with_how_long_it_was_watched():
    clock = Clock()
    talosctl = FakeTalosctl([None] * 100)
    with pytest.raises(talos_shutdown.StillUp, match=r"^10.0.1.11 still answers its Talos API 5s after") as raised:
        talos_shutdown.wait_down(talosctl, "10.0.1.11", 5, clock, clock.sleep)
    assert raised.value.details == {"waited": 5.0} and len(talosctl.calls) == 6  # at 0, 1, ... 5 s


def test_an_already_refusing_node_is_down_at_once():
    clock = Clock()
    assert talos_shutdown.wait_down(FakeTalosctl([NodeUnreachable]), "10.0.1.11", 5, clock, clock.sleep) == 0.0
