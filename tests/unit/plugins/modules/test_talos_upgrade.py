"""talos_upgrade: the argv it runs, a node on target left alone, refused paths touch nothing, and
a node that comes back on its previous image fails the upgrade."""

from __future__ import annotations

import json

import pytest
from ansible_collections.solanaops.talos.plugins.modules import talos_upgrade

OLD = "a" * 64
NEW = "b" * 64
IMAGE = f"127.0.0.1:5080/metal-installer/{NEW}:v1.13.9"


class FakeTalos:
    """A node as talosctl shows it: `get version|extensions|securitystate`, and `upgrade`, which
    boots ``comes_back_on`` (the target, or the old image after an A/B fallback)."""

    def __init__(self, version, schematic, comes_back_on=None, fail=None):
        self.booted = (version, schematic)
        self.comes_back_on = comes_back_on
        self.installed = None
        self.boots = 1
        self.fail = fail or {}  # command -> stderr it fails with
        self.commands = []

    def __call__(self, argv):
        args = argv[1:]
        self.commands.append(args)
        if args[:2] == ["version", "--client"]:
            return 0, "Client:\n\tTalos v1.13.9\n", ""
        if args[0] in self.fail:
            return 1, "", self.fail[args[0]]
        if args[0] == "get":
            return 0, json.dumps(self.resource(args[1])), ""
        if args[:2] == ["read", "/proc/sys/kernel/random/boot_id"]:
            return 0, f"boot-{self.boots}\n", ""
        if args[0] == "upgrade":
            self.installed = self.comes_back_on
            if "--no-reboot" not in args:
                self.reboot()
            return 0, "", "watching nodes: [127.0.1.20]\n"
        if args[0] == "reboot":
            self.reboot()
            return 0, "", ""
        raise AssertionError(f"unexpected talosctl {args}")

    def reboot(self):
        self.boots += 1
        self.booted, self.installed = self.installed or self.booted, None

    def resource(self, kind):
        version, schematic = self.booted
        spec = {"version": {"version": version},
                "extensions": {"metadata": {"name": "schematic", "version": schematic}},
                "securitystate": {"bootedWithUKI": True}}[kind]
        return {"node": "127.0.1.20", "metadata": {"id": kind}, "spec": spec}


@pytest.fixture
def run(run_module):
    def run_(talos, check_mode=False, **params):
        defaults = {"node": "127.0.1.20", "image": IMAGE, "schematic": NEW}
        return run_module(talos_upgrade, talos, defaults, check_mode, **params)
    return run_


def upgrades(talos):
    return [args for args in talos.commands if args[0] == "upgrade"]


def test_upgrades_and_proves_the_node_booted_the_target(run):
    talos = FakeTalos("v1.13.8", OLD, comes_back_on=("v1.13.9", NEW))
    result = run(talos, kubernetes_versions=["v1.36.3"], drain=False)
    assert not result["failed"] and result["changed"] and result["needed"]
    assert upgrades(talos) == [["upgrade", "--image", IMAGE, "--wait", "--timeout=1800s", "--drain=false",
                                "--drain-timeout=300s", "--reboot-mode=default",
                                "--nodes", "127.0.1.20", "--endpoints", "127.0.1.20"]]
    assert result["before"] == {"talos_version": "v1.13.8", "schematic": OLD, "boot_id": "boot-1"}
    assert result["after"] == {"talos_version": "v1.13.9", "schematic": NEW, "boot_id": "boot-2"}
    assert result["target"] == {"talos_version": "v1.13.9", "schematic": NEW}


def test_install_then_reboot_through_a_control_plane_endpoint(run):
    talos = FakeTalos("v1.13.8", OLD, comes_back_on=("v1.13.9", NEW))
    installed = run(talos, phase="install", endpoint="127.0.1.11")
    assert installed["changed"] and not installed["failed"] and "after" not in installed
    assert upgrades(talos) == [["upgrade", "--image", IMAGE, "--no-reboot",
                                "--nodes", "127.0.1.20", "--endpoints", "127.0.1.11"]]
    assert talos.booted == ("v1.13.8", OLD), "installed, not booted"
    rebooted = run(talos, phase="reboot", endpoint="127.0.1.11", drain_timeout=900,
                   reboot_mode="powercycle")
    assert rebooted["changed"] and not rebooted["failed"] and rebooted["after"]["talos_version"] == "v1.13.9"
    assert [args for args in talos.commands if args[0] == "reboot"] == [
        ["reboot", "--wait", "--timeout=1800s", "--drain=true", "--drain-timeout=900s", "--mode=powercycle",
         "--nodes", "127.0.1.20", "--endpoints", "127.0.1.11"]]
    assert len(upgrades(talos)) == 1, "the reboot phase installs nothing"


def test_a_failure_after_the_install_says_the_image_may_be_the_next_boot(run):
    drain = FakeTalos("v1.13.8", OLD, fail={"upgrade": "error draining nodes: Cannot evict pod (PDB)"})
    result = run(drain)
    assert result["failed"] and result["error"] == "AfterInstall" and "next boot" in result["msg"]
    pull = FakeTalos("v1.13.8", OLD, fail={"upgrade": "error pulling upgrade image: NotFound"})
    result = run(pull)
    assert result["failed"] and result["error"] == "CommandFailed" and "next boot" not in result["msg"]


def test_a_node_already_on_target_is_left_alone(run):
    talos = FakeTalos("v1.13.9", NEW)
    result = run(talos)
    assert not result["failed"] and not result["changed"] and not result["needed"]
    assert upgrades(talos) == []


def test_a_schematic_change_alone_is_an_upgrade(run):
    talos = FakeTalos("v1.13.9", OLD, comes_back_on=("v1.13.9", NEW))
    result = run(talos)
    assert result["changed"] and not result["failed"] and len(upgrades(talos)) == 1


def test_check_mode_plans_without_upgrading(run):
    talos = FakeTalos("v1.13.8", OLD)
    result = run(talos, check_mode=True)
    assert result["changed"] and result["needed"] and not result["failed"] and upgrades(talos) == []


def test_a_node_back_on_its_previous_image_fails_the_upgrade(run):
    talos = FakeTalos("v1.13.8", OLD, comes_back_on=("v1.13.8", OLD))  # talosctl itself reports success
    result = run(talos)
    assert result["failed"] and result["error"] == "NotOnTarget"
    assert result["msg"].startswith(
        f"127.0.1.20 came back on Talos v1.13.8 schematic {OLD}, not v1.13.9 schematic {NEW}")
    assert {key: result["after"][key] for key in ("talos_version", "schematic")} == {
        key: result["before"][key] for key in ("talos_version", "schematic")}
    assert result["after"]["boot_id"] != result["before"]["boot_id"]


@pytest.mark.parametrize(("booted", "kubernetes", "message"), [
    ("v1.10.6", [], "skips v1.11, v1.12"),
    ("v1.14.1", [], "a downgrade"),
    ("v1.13.8", ["v1.36.3", "v1.37.0"], "runs Kubernetes v1.31 to v1.36"),
])
def test_a_refused_path_touches_nothing(run, booted, kubernetes, message):
    talos = FakeTalos(booted, OLD)
    result = run(talos, kubernetes_versions=kubernetes)
    assert result["failed"] and result["error"] == "RefusedPath" and message in result["msg"]
    assert upgrades(talos) == []


def test_an_image_without_a_tag_is_refused(run):
    talos = FakeTalos("v1.13.8", OLD)
    result = run(talos, image=f"127.0.0.1:5080/metal-installer/{NEW}")
    assert result["failed"] and "names no tag" in result["msg"] and upgrades(talos) == []
