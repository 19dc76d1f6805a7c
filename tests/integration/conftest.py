"""Fixtures of the integration tests: paths of the real tools built for the testbed, the
testbed itself, and a runner for ansible-playbook. The unit tests import nothing from here."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "testbed"))

import gobuild  # noqa: E402  (testbed/gobuild.py: where the pinned tools live)
from controlplane import free_port  # noqa: E402  (testbed/controlplane.py: the test control plane)
from machines import LOCAL_INVENTORY, LOCAL_MACHINES, Machines  # noqa: E402  (testbed/machines.py: the node emulator)
from pytest_helpers import ControlPlane  # noqa: E402  (testbed/pytest_helpers.py: what testbed/tests use too)

PINS = gobuild.pinned_versions()
# proves etcd snapshots restorable (talos_etcd state=snapshot, the upgrade)
ETCDUTL = gobuild.binary_path("etcdutl", PINS["ETCD_VERSION"])


# The fixtures that start the testbed's machines, which listen on fixed loopback addresses
# (127.0.1.x): a test using one is marked `testbed`. make integration (tests/integration.sh)
# runs those one at a time and, beside them in a second pytest, the tests that need no machine.
TESTBED_FIXTURES = {"emulator", "deploy", "deployed", "deployed_once"}


def pytest_configure(config):
    config.addinivalue_line("markers", "testbed: starts the testbed's machines (fixed addresses: one at a time)")


# first: `-m testbed` / `-m "not testbed"` is applied by the mark plugin's hook, called after it
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if TESTBED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.testbed)


def talosctl_binary(version: str) -> Path:
    path = gobuild.binary_path("talosctl", version)
    if not path.exists():
        pytest.fail(f"talosctl {version} is not built: run `make setup` first")
    return path


@pytest.fixture(scope="session")
def talosctl() -> Path:
    """The real talosctl at the pinned version."""
    return talosctl_binary(PINS["TALOSCTL_VERSION"])


@pytest.fixture(scope="session")
def talosctl_legacy() -> Path:
    """The real talosctl of the older (v1.10) contract."""
    return talosctl_binary(PINS["TALOSCTL_LEGACY_VERSION"])


@pytest.fixture(scope="session")
def talosctl_next() -> Path:
    """The real talosctl of the newest (v1.14) contract."""
    return talosctl_binary(PINS["TALOSCTL_NEXT_VERSION"])


@dataclasses.dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict:
        """The ansible.posix.json callback's document."""
        return json.loads(self.stdout[self.stdout.index("{"):])

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.report["stats"]

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.stats.values())

    @property
    def unchanged(self) -> bool:
        """Succeeded and changed nothing: the idempotence proof (a run that fails on its first
        task changes nothing either, so the return code is part of it)."""
        return self.rc == 0 and self.failed == 0 and self.changed == 0

    @property
    def failed(self) -> int:
        return sum(host["failures"] + host["unreachable"] for host in self.stats.values())

    def failure_messages(self) -> list[str]:
        messages = []
        for play in self.report["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed"):
                        messages.append(f"{host}: {result.get('msg', '')}")
                        # a loop's own message says only that an item failed: name the items'
                        messages += [f"{host}: {item.get('item')}: {item.get('msg', '')}"
                                     for item in result.get("results", []) if item.get("failed")]
        return messages


def run_playbook(playbook: str | Path, *args: str, env: dict | None = None) -> PlaybookRun:
    """Run ansible-playbook from the repository root with the JSON callback."""
    proc = subprocess.run(
        ["ansible-playbook", str(playbook), *args],
        cwd=REPO,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            **(env or {}),
        },
        capture_output=True,
        text=True,
    )
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def playbook():
    return run_playbook


@pytest.fixture
def module(tmp_path):
    """Run one module of the collection on localhost; return its task result and the run."""

    def run(name: str, args: dict, *options: str, vars_: dict | None = None) -> tuple[dict, PlaybookRun]:
        play = [{
            "name": f"run {name}",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", **(vars_ or {})},
            "tasks": [{"name": name, f"solanaops.talos.{name}": args}],
        }]
        path = tmp_path / f"run-{name}.yml"
        path.write_text(json.dumps(play))
        run_ = run_playbook(path, "-i", "localhost,", "-c", "local", *options)
        task = run_.report["plays"][0]["tasks"][0]
        return task["hosts"]["localhost"], run_

    return run


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory):
    """etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1, started once."""
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.run("up", str(plane.state), "--address", "127.0.0.1", "--port", str(free_port("127.0.0.1")))
    yield plane
    plane.run("down", str(plane.state))



@pytest.fixture
def emulator(tmp_path):
    """The testbed inventory's machines (testbed/local-machines.yaml), fresh in maintenance mode."""
    machines = Machines(LOCAL_MACHINES, tmp_path / "emulator")
    yield machines
    machines.stop()


class Deployment:
    """Runs the stage playbooks on the testbed's inventory against one emulator, writing to OUT."""

    def __init__(self, playbook, emulator, talosctl, out):
        self.playbook, self.emulator, self.out = playbook, emulator, out
        self.args = ["-i", str(LOCAL_INVENTORY), "-e", f"talos_cluster_output_dir={out}",
                     "-e", f"talosctl_path={talosctl}"]
        # the upgrade proves its etcd snapshot restorable with the pinned etcd's etcdutl
        self.args += ["-e", f"talos_upgrade_etcdutl_path={ETCDUTL}"]

    def __call__(self, play: str, *extra: str):
        # the drill powers nodes back on through this emulator's control socket
        return self.playbook(f"playbooks/{play}.yml", *self.args, *extra,
                             env={"TESTBED_STATE": str(self.emulator.state)})


@pytest.fixture
def deploy(playbook, emulator, talosctl, tmp_path):
    """Blank machines in maintenance mode and the configs generated for them."""
    run = Deployment(playbook, emulator, talosctl, tmp_path / "out")
    generated = run("generate")
    assert generated.rc == 0, generated.failure_messages()
    return run


@pytest.fixture(scope="session")
def deployed_once(playbook, talosctl, tmp_path_factory):
    """One site run from blank machines, then the machines stopped: their state and the output
    folder, which `deployed` copies for each test that starts from a deployed cluster instead of
    deploying again (minutes each), and the site run itself (site-run.json, read by
    `first_site_run`), which test_site_deploys_... judges."""
    base = tmp_path_factory.mktemp("deployed")
    machines = Machines(LOCAL_MACHINES, base / "emulator")
    try:
        run = Deployment(playbook, machines, talosctl, base / "out")
        for play in ("generate", "site"):
            result = run(play)
            assert result.rc == 0, result.failure_messages()
        (base / "site-run.json").write_text(json.dumps(dataclasses.asdict(result)))
    finally:
        machines.stop()
    return base


def first_site_run(deployed_once: Path) -> PlaybookRun:
    """The site run that deployed `deployed_once` from blank machines."""
    return PlaybookRun(**json.loads((deployed_once / "site-run.json").read_text()))


@pytest.fixture
def deployed(deployed_once, playbook, module, talosctl, tmp_path):
    """A copy of the deployed cluster, its machines powered on again (a cold start of the whole
    cluster: etcd and Kubernetes from their data), once Talos says it is healthy."""
    for folder in ("emulator", "out"):
        shutil.copytree(deployed_once / folder, tmp_path / folder, symlinks=True)
    machines = Machines(LOCAL_MACHINES, tmp_path / "emulator")
    try:
        run = Deployment(playbook, machines, talosctl, tmp_path / "out")
        health = module("talos_health", {
            "node": "127.0.1.11", "controlplane_nodes": ["127.0.1.11", "127.0.1.12", "127.0.1.13"],
            "worker_nodes": ["127.0.1.20"], "timeout": 300,
            "talosconfig": str(run.out / "talosconfig"), "talosctl_path": str(talosctl)})[0]
        assert health.get("healthy"), health
        yield run
    finally:
        machines.stop()
