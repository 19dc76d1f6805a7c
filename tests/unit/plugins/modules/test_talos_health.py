"""talos_health: reading talosctl health's progress lines."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.modules import talos_health

PROGRESS = """waiting for etcd to be healthy: 127.0.1.13: service "etcd" not running
waiting for etcd to be healthy: OK
waiting for etcd members to be consistent across nodes: OK
waiting for all k8s nodes to report ready: some nodes are not ready: [127.0.1.20]
rpc error: code = DeadlineExceeded desc = all k8s nodes to report ready: some nodes are not ready: [127.0.1.20]
"""


def test_parse_progress_keeps_the_last_word_of_each_check_in_order():
    assert talos_health.parse_progress(PROGRESS) == [
        {"name": "etcd to be healthy", "ok": True, "detail": "OK"},
        {"name": "etcd members to be consistent across nodes", "ok": True, "detail": "OK"},
        {"name": "all k8s nodes to report ready", "ok": False, "detail": "some nodes are not ready: [127.0.1.20]"},
    ]


def test_parse_progress_of_nothing():
    assert talos_health.parse_progress("error: connection refused\n") == []


def test_a_skipped_check_counts_as_passed():
    """Without a CNI Talos skips the Ready check: 'waiting for all k8s nodes to report ready: SKIP'."""
    assert talos_health.parse_progress("waiting for all k8s nodes to report ready: SKIP\n") == [
        {"name": "all k8s nodes to report ready", "ok": True, "detail": "SKIP"}]
