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
VALIDATOR_ARGS = yaml.safe_load((REPO / "roles/talos_solana_worker/defaults/main.yml").read_text())[
    "talos_solana_worker_kernel_args"]
# the validator's tuning changed: its schematic, so its installer, changes; nothing else does
RETUNED = ["-e", json.dumps({"talos_solana_worker_kernel_args": [*VALIDATOR_ARGS, "mitigations=off"]})]


def upgrades(emulator):
    """The nodes the emulator saw upgraded, in order (the installer's last line in its log)."""
    log = (emulator.state / "emulator.log").read_text()
    return re.findall(r" (\S+): upgrade completed successfully", log)


def booted(module, deployed, talosctl, address):
    facts = module("talos_node_facts", {"node": address, "gather": ["kernel", "boot"],
                                        "talosconfig": str(deployed.out / "talosconfig"),
                                        "talosctl_path": str(talosctl)})[0]
    assert not facts.get("failed"), facts
    return facts


def test_a_retuned_validator_is_upgraded_to_its_new_image_alone_then_nothing_changes(deployed, module, talosctl):
    plan = deployed("upgrade", "--check", *RETUNED)
    assert plan.unchanged, plan.failure_messages()
    assert not (deployed.out / "etcd-snapshots").exists(), "check mode takes no snapshot"

    before = booted(module, deployed, talosctl, "127.0.1.20")
    assert "mitigations=off" not in before["cmdline"]
    run = deployed("upgrade", *RETUNED)
    assert run.rc == 0, run.failure_messages()
    assert upgrades(deployed.emulator) == ["solana-validator"]

    after = booted(module, deployed, talosctl, "127.0.1.20")
    assert "mitigations=off" in after["cmdline"], "the kernel of the new image runs"
    assert after["boot"]["schematic"] != before["boot"]["schematic"]
    report = json.loads((deployed.out / "upgrade-report.json").read_text())
    assert [node["name"] for node in report["nodes"]] == ["solana-validator"]
    assert report["nodes"][0]["after"] == {"talos_version": "v1.13.9", "schematic": after["boot"]["schematic"]}
    snapshot = report["snapshot"]
    assert snapshot["size"] > 0 and snapshot["total_keys"] > 0 and "snap" in snapshot["restored"]
    assert stat.S_IMODE((deployed.out / "etcd-snapshots").stat().st_mode) == 0o700
    assert stat.S_IMODE(REPO.joinpath(snapshot["dest"]).stat().st_mode) == 0o600

    again = deployed("upgrade", *RETUNED)
    assert again.unchanged, again.failure_messages()
    assert len(list((deployed.out / "etcd-snapshots").iterdir())) == 1, "nothing to do: no new snapshot"


def test_a_node_that_boots_back_into_its_previous_image_fails_the_upgrade(deployed, module, talosctl):
    before = booted(module, deployed, talosctl, "127.0.1.20")["boot"]
    boot_fallback(deployed.emulator.state, "solana-validator")
    run = deployed("upgrade", *RETUNED)
    assert run.rc != 0
    [message] = run.failure_messages()
    # the rolling part runs once for the cluster, on the play's first host
    assert f": 127.0.1.20 came back on Talos v1.13.9 schematic {before['schematic']}, not v1.13.9" in message, message
    assert booted(module, deployed, talosctl, "127.0.1.20")["boot"] == before


def test_a_patch_release_upgrade_goes_control_plane_by_control_plane_leader_last(deploy, module, talosctl):
    older = ["-e", "talos_cluster_talos_version=v1.13.8"]
    for play in ("generate", "site"):
        assert deploy(play, *older).rc == 0
    refused = deploy("upgrade", "-e", "talos_cluster_talos_version=v1.13.7")
    assert refused.rc != 0 and upgrades(deploy.emulator) == []
    assert any("a downgrade" in message for message in refused.failure_messages()), refused.failure_messages()

    etcd = module("talos_etcd", {"nodes": ["127.0.1.11", "127.0.1.12", "127.0.1.13"], "wait_for": "all",
                                 "talosconfig": str(deploy.out / "talosconfig"), "talosctl_path": str(talosctl)})[0]
    leader = next(CONTROLPLANES[int(address[-1]) - 1] for address, status in etcd["status"].items()
                  if status.get("member") == etcd["quorum"]["leader"])

    run = deploy("upgrade")
    assert run.rc == 0, run.failure_messages()
    order = upgrades(deploy.emulator)
    assert sorted(order[:3]) == CONTROLPLANES and order[2] == leader and order[3:] == ["solana-validator"], order
    report = json.loads((deploy.out / "upgrade-report.json").read_text())
    assert [node["name"] for node in report["nodes"]] == order
    assert {node["before"]["talos_version"] for node in report["nodes"]} == {"v1.13.8"}
    for address in ("127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.20"):
        assert booted(module, deploy, talosctl, address)["boot"]["talos_version"] == "v1.13.9"
    assert deploy("upgrade").unchanged
