"""Fixtures of the integration tests: paths of the real tools built for the testbed, the
testbed itself, and a runner for ansible-playbook. The unit tests import nothing from here."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import secret_files

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
# (127.0.1.x): a test using one is marked `testbed`. make integration (tests/side_by_side.sh)
# runs those one at a time and, beside them in a second pytest, the tests that need no machine.
TESTBED_FIXTURES = {"emulator", "deploy", "deployed", "deployed_shared", "deployed_once", "deployed_v113",
                    "deployed_v113_once"}


def interrupt(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    config.addinivalue_line("markers", "testbed: starts the testbed's machines (fixed addresses: one at a time)")
    # a SIGTERM (a CI time limit, tests/side_by_side.sh cut short) ends the run as Ctrl-C does:
    # the fixtures are torn down, so no emulated machine is left holding the fixed addresses
    signal.signal(signal.SIGTERM, interrupt)


# first: `-m testbed` / `-m "not testbed"` is applied by the mark plugin's hook, called after it
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if TESTBED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.testbed)


def leaked_secrets(output: str, *configs: str) -> list[str]:
    """The secret values of these machine configs, secrets bundles or talosconfigs found in
    ``output``, and the lines of a secret that spans several (a PEM block's body) found there."""
    secrets = set()
    for text in configs:
        secrets |= secret_files.secret_values(text)
    lines = {line.strip() for secret in secrets for line in secret.splitlines() if len(line.strip()) > 20}
    return sorted(value for value in secrets | lines if value in output)


def talosctl_binary(version: str) -> Path:
    """Built if missing, or waited for while a build beside the tests makes it (make test's tools-rest)."""
    return gobuild.build("talosctl", version)


@pytest.fixture(scope="session")
def talosctl() -> Path:
    """The real talosctl at the pinned version."""
    return talosctl_binary(PINS["TALOSCTL_VERSION"])


@pytest.fixture(scope="session")
def upgrade_kube() -> Path:
    """The upgrade target's kube binary, built (or waited for): ask for it before the machines
    start, since the emulator serves a Kubernetes version only once its binary exists."""
    return gobuild.build("kube", PINS["KUBERNETES_UPGRADE_VERSION"])


@pytest.fixture(scope="session")
def talosctl_legacy() -> Path:
    """The real talosctl of the older (v1.10) contract."""
    return talosctl_binary(PINS["TALOSCTL_LEGACY_VERSION"])


@pytest.fixture(scope="session")
def talosctl_previous() -> Path:
    """The real talosctl of the previous (v1.13) contract."""
    return talosctl_binary(PINS["TALOSCTL_PREVIOUS_VERSION"])


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


def run_playbook(playbook: str | Path, *args: str, env: dict | None = None,
                 stop_when: Callable[[], bool] | None = None) -> PlaybookRun:
    """Run ansible-playbook from the repository root with the JSON callback. ``stop_when`` is
    asked every second; once it says so, the run and every process it started get SIGTERM (an AWX
    cancel, a controller going down) and what it reported so far is returned."""
    proc = subprocess.Popen(
        ["ansible-playbook", str(playbook), *args],
        cwd=REPO,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=stop_when is not None,
    )
    while True:
        try:
            stdout, stderr = proc.communicate(timeout=1 if stop_when else None)
            return PlaybookRun(proc.returncode, stdout, stderr)
        except subprocess.TimeoutExpired:
            if stop_when():
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    stdout, stderr = proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:  # it ignored SIGTERM
                    os.killpg(proc.pid, signal.SIGKILL)
                    stdout, stderr = proc.communicate()
                return PlaybookRun(proc.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def playbook():
    return run_playbook


def module_runner(folder: Path):
    """Run one module of the collection on localhost (its play written to FOLDER); return its task
    result and the run."""

    def run(name: str, args: dict, *options: str, vars_: dict | None = None) -> tuple[dict, PlaybookRun]:
        play = [{
            "name": f"run {name}",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", **(vars_ or {})},
            "tasks": [{"name": name, f"solanaops.talos.{name}": args}],
        }]
        path = folder / f"run-{name}.yml"
        path.write_text(json.dumps(play))
        run_ = run_playbook(path, "-i", "localhost,", "-c", "local", *options)
        task = run_.report["plays"][0]["tasks"][0]
        return task["hosts"]["localhost"], run_

    return run


@pytest.fixture
def module(tmp_path):
    return module_runner(tmp_path)


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

    def api_tls(self, scratch: Path) -> tuple[str, ssl.SSLContext]:
        """The admin kubeconfig's server and a TLS context with its client certificate (written
        to SCRATCH), for reading the API servers directly."""
        kubeconfig = yaml.safe_load((self.out / "kubeconfig").read_text())
        cluster, user = kubeconfig["clusters"][0]["cluster"], kubeconfig["users"][0]["user"]
        for name, field in (("api.crt", "client-certificate-data"), ("api.key", "client-key-data")):
            (scratch / name).write_bytes(base64.b64decode(user[field]))
        context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        context.load_cert_chain(scratch / "api.crt", scratch / "api.key")
        return cluster["server"], context

    def api_client(self):
        """A Kubernetes API client through the admin kubeconfig fetched to OUT."""
        from kubernetes import config
        return config.new_client_from_config(str(self.out / "kubeconfig"))

    def core_api(self):
        from kubernetes import client
        return client.CoreV1Api(self.api_client())

    def cordoned(self) -> list[str]:
        """The names of the cluster's cordoned Nodes."""
        return sorted(node.metadata.name for node in self.core_api().list_node().items if node.spec.unschedulable)

    def __call__(self, play: str, *extra: str, stop_when: Callable[[], bool] | None = None):
        # the drill powers nodes back on through this emulator's control socket
        return self.playbook(f"playbooks/{play}.yml", *self.args, *extra,
                             env={"TESTBED_STATE": str(self.emulator.state)}, stop_when=stop_when)


@pytest.fixture
def deploy(playbook, emulator, talosctl, tmp_path):
    """Blank machines in maintenance mode and the configs generated for them."""
    run = Deployment(playbook, emulator, talosctl, tmp_path / "out")
    generated = run("generate")
    assert generated.rc == 0, generated.failure_messages()
    return run


CONTRACT_V113 = REPO / "tests/integration/vars/contract-v1.13.yml"


def v113_args(talosctl_previous: Path) -> list[str]:
    """Extra args that run a stage as an operator of a v1.13 cluster before its upgrade to the
    default release: the v1.13 contract and that release's talosctl."""
    return ["-e", f"@{CONTRACT_V113}", "-e", f"talosctl_path={talosctl_previous}"]


def deploy_once(playbook, base: Path, *extra: str) -> Path:
    """One site run from blank machines into BASE, then the machines stopped: their state, the
    output folder and the site run itself (site-run.json)."""
    machines = Machines(LOCAL_MACHINES, base / "emulator")
    try:
        run = Deployment(playbook, machines, talosctl_binary(PINS["TALOSCTL_VERSION"]), base / "out")
        for play in ("generate", "site"):
            result = run(play, *extra)
            assert result.rc == 0, result.failure_messages()
        (base / "site-run.json").write_text(json.dumps(dataclasses.asdict(result)))
    finally:
        machines.stop()
    return base


@pytest.fixture(scope="session")
def deployed_once(playbook, tmp_path_factory):
    """The default release deployed once: what `deployed` copies for each test that starts from a
    deployed cluster instead of deploying again (minutes each); test_site_deploys_... judges its
    site run (`first_site_run`)."""
    return deploy_once(playbook, tmp_path_factory.mktemp("deployed"))


@pytest.fixture(scope="session")
def deployed_v113_once(playbook, talosctl_previous, tmp_path_factory):
    """A Talos v1.13 cluster deployed once, with talosctl v1.13 and the v1.13 contract."""
    return deploy_once(playbook, tmp_path_factory.mktemp("deployed-v113"), *v113_args(talosctl_previous))


def first_site_run(deployed_once: Path) -> PlaybookRun:
    """The site run that deployed `deployed_once` from blank machines."""
    return PlaybookRun(**json.loads((deployed_once / "site-run.json").read_text()))


def powered_on_copy(once: Path, playbook, module, talosctl, tmp_path):
    """A copy of a deployed cluster, its machines powered on again (a cold start of the whole
    cluster: etcd and Kubernetes from their data), once Talos says it is healthy."""
    for folder in ("emulator", "out"):
        shutil.copytree(once / folder, tmp_path / folder, symlinks=True)
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


@pytest.fixture
def deployed(deployed_once, playbook, module, talosctl, tmp_path):
    """A copy of the default release's deployed cluster, powered on (`powered_on_copy`)."""
    yield from powered_on_copy(deployed_once, playbook, module, talosctl, tmp_path)


@pytest.fixture(scope="class")
def deployed_shared(deployed_once, playbook, talosctl, tmp_path_factory):
    """One powered-on copy for a class of tests that only read the cluster or change nothing (a
    cold start saved per test); the class's tests must leave it as they found it."""
    folder = tmp_path_factory.mktemp("shared")
    yield from powered_on_copy(deployed_once, playbook, module_runner(folder), talosctl, folder)


@pytest.fixture
def deployed_v113(deployed_v113_once, playbook, module, talosctl, tmp_path):
    """A copy of the v1.13 cluster, powered on. Its Deployment runs the default release's
    talosctl and contract: a stage run as the v1.13 operator adds `v113_args`."""
    yield from powered_on_copy(deployed_v113_once, playbook, module, talosctl, tmp_path)
