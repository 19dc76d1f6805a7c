"""talos_wait_node: reading `talosctl service` and what keeps a node from being back."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import CommandFailed
from ansible_collections.solanaops.talos.plugins.modules import talos_wait_node

SERVICES = """NODE         SERVICE      STATE       HEALTH   LAST CHANGE   LAST EVENT
127.0.1.11   apid         Running     OK       12s ago       Health check successful
127.0.1.11   etcd         Preparing   ?        12s ago       Running pre state
127.0.1.11   kubelet      Running     OK       11s ago       Health check successful
"""


def test_parse_services():
    assert talos_wait_node.parse_services(SERVICES) == {
        "apid": {"state": "Running", "health": "OK"},
        "etcd": {"state": "Preparing", "health": "?"},
        "kubelet": {"state": "Running", "health": "OK"},
    }
    with pytest.raises(CommandFailed, match="cannot read the service list"):
        talos_wait_node.parse_services("")


@pytest.mark.parametrize(("wanted", "problems"), [
    ({}, []),
    ({"etcd": ["Preparing", "Running"]}, []),
    ({"etcd": ["Running"]}, ["etcd is Preparing (wanted Running)"]),
    ({"trustd": ["Running"], "kubelet": ["Running"]}, ["trustd is not running (wanted Running)"]),
])
def test_unmet(wanted, problems):
    assert talos_wait_node.unmet(talos_wait_node.parse_services(SERVICES), wanted) == problems
