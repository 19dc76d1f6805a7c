"""playbooks/upgrade.yml against the testbed: the real talosctl upgrades emulated machines, which
boot the installer they pulled from the testbed's Image Factory (or fall back to the previous
one when told to), run real etcd and Kubernetes, and reboot for the emulator's reboot delay."""

from __future__ import annotations

import json
import re
import stat

import yaml
from conftest import REPO
from machines import boot_fallback  # testbed/machines.py: the emulated machines' controls

CONTROLPLANES = ["controlplane-1", "controlplane-2", "controlplane-3"]
ADDRESSES = {"controlplane-1": "127.0.1.11", "controlplane-2": "127.0.1.12", "controlplane-3": "127.0.1.13",
             "solana-validator": "127.0.1.20"}
VALIDATOR_ARGS = yaml.safe_load((REPO / "roles/talos_solana_worker/defaults/main.yml").read_text())[
    "talos_solana_worker_kernel_args"]
# the validator's tuning changed: its schematic, so its installer, changes; nothing else does
RETUNED = ["-e", json.dumps({"talos_solana_worker_kernel_args": [*VALIDATOR_ARGS, "mitigations=off"]})]
# the control planes' kernel args changed too: every node has a new schematic
ALL_RETUNED = [*RETUNED, "-e", json.dumps({"talos_controlplane_kernel_args": ["mitigations=off"]})]


def upgrades(emulator):
    """The nodes the emulator saw upgraded, in order (the installer's last line in its log)."""
    log = (emulator.state / "emulator.log").read_text()
    return re.findall(r" (\S+): upgrade completed successfully", log)


def booted(module, deployment, talosctl, name):
    facts = module("talos_node_facts", {"node": ADDRESSES[name], "gather": ["kernel", "boot"],
                                        "talosconfig": str(deployment.out / "talosconfig"),
                                        "talosctl_path": str(talosctl)})[0]
    assert not facts.get("failed"), facts
    return facts


def etcd(module, deployment, talosctl, **args):
    return module("talos_etcd", {"nodes": [ADDRESSES[name] for name in CONTROLPLANES], "wait_for": "all",
                                 "talosconfig": str(deployment.out / "talosconfig"),
                                 "talosctl_path": str(talosctl), **args})[0]


def leader(module, deployment, talosctl):
    status = etcd(module, deployment, talosctl)
    return next(name for name in CONTROLPLANES
                if status["status"][ADDRESSES[name]].get("member") == status["quorum"]["leader"])


def plan_lines(run):
    """The plan the run showed: {node: its line}."""
    for play in run.report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Show the plan, in upgrade order"):  # after the role's name
                results = next(iter(task["hosts"].values()))["results"]
                return {result["item"]: result["msg"] for result in results}
    raise AssertionError("no plan shown")


def test_a_retuned_validator_is_upgraded_to_its_new_image_alone_then_nothing_changes(deployed, module, talosctl):
    plan = deployed("upgrade", "--check", *RETUNED)
    assert plan.unchanged, plan.failure_messages()
    lines = plan_lines(plan)
    assert "-> v1.13.9" in lines["solana-validator"], lines
    assert all(re.search(r"already on target(, the etcd leader)?$", lines[name]) for name in CONTROLPLANES), lines
    assert upgrades(deployed.emulator) == [] and not (deployed.out / "etcd-snapshots").exists()

    before = booted(module, deployed, talosctl, "solana-validator")
    assert "mitigations=off" not in before["cmdline"]
    # a pre-reboot command that fails stops the run: installed, never rebooted into it
    refused = deployed("upgrade", *RETUNED, "-e", '{"talos_upgrade_pre_reboot_command": ["false"]}')
    assert refused.rc != 0 and upgrades(deployed.emulator) == ["solana-validator"]
    assert booted(module, deployed, talosctl, "solana-validator")["boot"] == before["boot"]

    hook_log = deployed.out.parent / "pre-reboot.log"
    hook = ["sh", "-c", f'echo "$TALOS_NODE $TALOS_NODE_IP" >> {hook_log}']
    run = deployed("upgrade", *RETUNED, "-e", json.dumps({"talos_upgrade_pre_reboot_command": hook}))
    assert run.rc == 0, run.failure_messages()
    assert hook_log.read_text() == "solana-validator 127.0.1.20\n"

    after = booted(module, deployed, talosctl, "solana-validator")
    assert "mitigations=off" in after["cmdline"], "the kernel of the new image runs"
    assert after["boot"]["schematic"] != before["boot"]["schematic"]
    report = json.loads((deployed.out / "upgrade-report.json").read_text())
    assert [node["name"] for node in report["nodes"]] == ["solana-validator"] and report["failed"] is None
    assert {key: report["nodes"][0]["after"][key] for key in ("talos_version", "schematic")} == {
        "talos_version": "v1.13.9", "schematic": after["boot"]["schematic"]}
    snapshot = report["snapshot"]
    assert snapshot["size"] > 0 and snapshot["total_keys"] > 0 and "snap" in snapshot["restored"]
    snapshots = deployed.out / "etcd-snapshots"
    assert stat.S_IMODE(snapshots.stat().st_mode) == 0o700
    assert stat.S_IMODE(REPO.joinpath(snapshot["dest"]).stat().st_mode) == 0o600

    taken = sorted(snapshots.iterdir())
    again = deployed("upgrade", *RETUNED)
    assert again.unchanged, again.failure_messages()
    assert sorted(snapshots.iterdir()) == taken, "nothing to do: no new snapshot"


def test_a_node_that_boots_back_into_its_previous_image_stops_the_upgrade_there(deployed, module, talosctl):
    first = next(name for name in CONTROLPLANES if name != leader(module, deployed, talosctl))
    before = booted(module, deployed, talosctl, first)["boot"]
    boot_fallback(deployed.emulator.state, first)
    run = deployed("upgrade", *ALL_RETUNED)
    assert run.rc != 0
    address = ADDRESSES[first]
    assert any(f"{address} came back on Talos v1.13.9 schematic {before['schematic']}, not v1.13.9" in message
               for message in run.failure_messages()), run.failure_messages()
    assert upgrades(deployed.emulator) == [first], "no other node is touched"
    assert booted(module, deployed, talosctl, first)["boot"] == before
    report = json.loads((deployed.out / "upgrade-report.json").read_text())
    assert report["nodes"] == [] and report["failed"]["name"] == first
    assert report["failed"]["after"]["schematic"] == before["schematic"] and report["snapshot"]["size"] > 0


def test_a_patch_release_upgrade_goes_control_plane_by_control_plane_leader_last(deploy, module, talosctl):
    older = ["-e", "talos_cluster_talos_version=v1.13.8"]
    for play in ("generate", "site"):
        assert deploy(play, *older).rc == 0
    refused = deploy("upgrade", "-e", "talos_cluster_talos_version=v1.13.7")
    assert refused.rc != 0 and upgrades(deploy.emulator) == []
    assert any("a downgrade" in message for message in refused.failure_messages()), refused.failure_messages()

    # move the leadership off the bootstrap node, so the order is not the inventory's by chance
    bootstrapped = leader(module, deploy, talosctl)
    moved = etcd(module, deploy, talosctl, state="forfeit_leadership",
                 nodes=[ADDRESSES[name] for name in sorted(CONTROLPLANES, key=lambda name: name != bootstrapped)])
    assert moved["changed"], moved
    last = leader(module, deploy, talosctl)

    run = deploy("upgrade")
    assert run.rc == 0, run.failure_messages()
    order = upgrades(deploy.emulator)
    assert order == [name for name in CONTROLPLANES if name != last] + [last, "solana-validator"], (order, last)
    report = json.loads((deploy.out / "upgrade-report.json").read_text())
    assert [node["name"] for node in report["nodes"]] == order
    assert {node["before"]["talos_version"] for node in report["nodes"]} == {"v1.13.8"}
    for name in ADDRESSES:
        assert booted(module, deploy, talosctl, name)["boot"]["talos_version"] == "v1.13.9"
    assert deploy("upgrade").unchanged
