"""The harness itself: the test control plane (readiness, failure reporting, a clean stop) and the
kubelet feature-gate table preflight judges patches by."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import gobuild
from pytest_helpers import ControlPlane

TESTBED = Path(__file__).resolve().parents[1]


def running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_down_leaves_no_process_behind(tmp_path):
    plane = ControlPlane(tmp_path)
    started = plane.run("up", str(tmp_path), "--port", "16444", check=False)
    assert started.returncode == 0, started.stderr
    pids = {p.name: int(p.read_text()) for p in (tmp_path / "pids").iterdir()}
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert all(running(pid) for pid in pids.values())
    stopped = plane.run("down", str(tmp_path), check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert [name for name, pid in pids.items() if running(pid)] == []


def test_a_component_that_dies_fails_startup_with_its_log_tail(tmp_path):
    with socket.socket() as squatter:  # the API server's port is taken
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        started = ControlPlane(tmp_path).run("up", str(tmp_path), "--port", str(port), check=False)
    assert started.returncode != 0
    assert "kube-apiserver exited" in started.stderr
    assert "address already in use" in started.stderr
    pids = tmp_path / "pids"
    assert not pids.exists() or not any(pids.iterdir()), "the components that started were stopped"


def test_the_kubelet_feature_gate_table_is_the_kubelets_registry():
    # the table preflight judges patches by, against the registry of the pinned kubelet itself
    checked = subprocess.run([sys.executable, str(TESTBED / "kubelet_feature_gates.py"), "--check"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert checked.stdout.strip().endswith("matches the kubelet " + gobuild.pinned_versions()["KUBERNETES_VERSION"]
                                           + " registry")


def test_build_all_builds_every_tool_and_stops_starting_builds_after_a_failure(monkeypatch):
    built = []

    def fake_build(name, version):
        built.append((name, version))
        if name == "talosctl":
            raise SystemExit(f"building talosctl {version} failed")
        time.sleep(0.5)  # the other builds take a while: talosctl fails while kube compiles

    monkeypatch.setattr(gobuild, "build", fake_build)
    pins = gobuild.pinned_versions()
    try:
        gobuild.build_all(pins)
    except SystemExit as error:
        assert str(error) == f"building talosctl {pins['TALOSCTL_VERSION']} failed"
    else:
        raise AssertionError("a failed build must be the exit")
    # the first two chains started side by side; after the failure no build starts, not even the
    # rest of the first chain
    assert sorted(built) == [("kube", pins["KUBERNETES_VERSION"]), ("talosctl", pins["TALOSCTL_VERSION"])]

    built.clear()
    monkeypatch.setattr(gobuild, "build", lambda name, version: built.append((name, version)))
    gobuild.build_all(pins)
    assert {name for name, _version in built} == set(gobuild.TOOLS)
    assert {version for name, version in built if name == "talosctl"} == {
        pins["TALOSCTL_VERSION"], pins["TALOSCTL_PREVIOUS_VERSION"], pins["TALOSCTL_LEGACY_VERSION"]}
    assert {version for name, version in built if name == "kube"} == {
        pins["KUBERNETES_VERSION"], pins["KUBERNETES_UPGRADE_VERSION"]}
