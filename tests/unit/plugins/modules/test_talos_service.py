"""talos_service: reading a service's state and choosing the action."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import CommandFailed
from ansible_collections.solanaops.talos.plugins.modules import talos_service

KUBELET = """NODE     127.0.1.20
ID       kubelet
STATE    Running
HEALTH   OK
EVENTS   [Running]: Health check successful (1m ago)
         [Running]: Service started (1m ago)
"""


def test_parse_state():
    assert talos_service.parse_state(KUBELET) == "Running"
    with pytest.raises(CommandFailed, match="cannot read the service state"):
        talos_service.parse_state("NODE 127.0.1.20\n")


@pytest.mark.parametrize(("state", "running", "action"), [
    ("started", True, None), ("started", False, "start"),
    ("stopped", True, "stop"), ("stopped", False, None),
    ("restarted", True, "restart"), ("restarted", False, "restart"),
])
def test_action_for(state, running, action):
    assert talos_service.action_for(state, running) == action
