"""The harness itself: the test control plane (readiness, failure reporting, a clean stop) and the
kubelet feature-gate table preflight judges patches by."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
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


def test_first_and_rest_split_every_tool_and_first_holds_what_the_machines_run():
    pins = gobuild.pinned_versions()
    first = [tool for chain in gobuild.first_chains(pins) for tool in chain]
    rest = [tool for chain in gobuild.rest_chains(pins) for tool in chain]
    assert not set(first) & set(rest)
    assert {name for name, _version in first + rest} == set(gobuild.TOOLS)
    # testbed/machines.py builds these for every start of the machines (make test's phase one)
    for needed in [("talosctl", pins["TALOSCTL_VERSION"]), ("kube", pins["KUBERNETES_VERSION"]),
                   ("etcd", pins["ETCD_VERSION"]), ("kwok", pins["KWOK_VERSION"]),
                   ("talos-emulator", gobuild.default_version("talos-emulator", pins)),
                   ("image-factory", gobuild.default_version("image-factory", pins))]:
        assert needed in first


def _build_while_another_holds_the_lock(monkeypatch, tmp_path, *, other_makes_it: bool):
    """build() of a tool while another builder holds its lock for about 2 s; what it built itself."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = []

    def fake_build(name, version, _tool, target):
        built.append((name, version))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("built here")
        return target

    monkeypatch.setattr(gobuild, "_build", fake_build)
    target = gobuild.binary_path("kwok", "v0.0.1")
    holding = threading.Event()

    def other_builder():
        with gobuild.building("kwok", "v0.0.1"):
            holding.set()
            time.sleep(2)
            if other_makes_it:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("built by the other")

    other = threading.Thread(target=other_builder)
    other.start()
    holding.wait(5)
    started = time.monotonic()
    assert gobuild.build("kwok", "v0.0.1") == target
    waited = time.monotonic() - started
    other.join()
    return built, waited, target.read_text()


def test_a_build_waits_for_another_process_building_the_same_tool_and_takes_its_binary(monkeypatch, tmp_path):
    built, waited, content = _build_while_another_holds_the_lock(monkeypatch, tmp_path, other_makes_it=True)
    assert waited >= 1.5
    assert built == [] and content == "built by the other"


def test_a_build_whose_other_builder_failed_builds_it_itself(monkeypatch, tmp_path):
    built, waited, content = _build_while_another_holds_the_lock(monkeypatch, tmp_path, other_makes_it=False)
    assert waited >= 1.5
    assert built == [("kwok", "v0.0.1")] and content == "built here"


def test_the_machines_serve_the_upgrade_target_kubernetes_only_once_it_is_built(monkeypatch, tmp_path):
    import machines

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pins = gobuild.pinned_versions()
    deployed, upgrade = (gobuild.binary_path("kube", pins[key]) for key in ("KUBERNETES_VERSION",
                                                                             "KUBERNETES_UPGRADE_VERSION"))

    def fake_build(name, version):
        path = gobuild.binary_path(name, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kube")
        return path

    monkeypatch.setattr(gobuild, "build", fake_build)
    # not built yet: its images are not found, as in a registry without them (never a path to nothing)
    assert machines.kube_flags(pins) == ["--kube", f"{pins['KUBERNETES_VERSION']}={deployed}"]
    fake_build("kube", pins["KUBERNETES_UPGRADE_VERSION"])
    assert machines.kube_flags(pins) == ["--kube", f"{pins['KUBERNETES_VERSION']}={deployed}",
                                         "--kube", f"{pins['KUBERNETES_UPGRADE_VERSION']}={upgrade}"]
