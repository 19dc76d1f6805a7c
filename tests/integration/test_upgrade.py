"""playbooks/upgrade.yml against the testbed: the real talosctl upgrades emulated machines, which
boot the installer they pulled from the testbed's Image Factory (or fall back to the previous
one when told to), run real etcd and Kubernetes, and reboot for the emulator's reboot delay."""

from __future__ import annotations

import json
import re
import ssl
import stat
import threading
import urllib.request

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


def task_result(run, suffix):
    """The result of the (run_once) task whose name ends so, after the role's name."""
    for play in run.report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(suffix):
                return next(iter(task["hosts"].values()))
    raise AssertionError(f"no task {suffix!r}")


def plan_lines(run):
    """The plan the run showed: {node: its line}."""
    return {result["item"]: result["msg"] for result in task_result(run, "Show the plan, in upgrade order")["results"]}


def test_a_retuned_validator_is_upgraded_to_its_new_image_alone_then_nothing_changes(deployed, module, talosctl):
    # a node someone else cordoned is refused, even in check mode: whoever cordoned it decides
    api = deployed.core_api()
    api.patch_node("controlplane-2", {"spec": {"unschedulable": True}})
    try:
        cordoned = deployed("upgrade", "--check", *RETUNED)
    finally:
        api.patch_node("controlplane-2", {"spec": {"unschedulable": False}})
    assert cordoned.rc != 0
    assert any("controlplane-2 is cordoned, not by an upgrade of this collection" in message
               for message in cordoned.failure_messages()), cordoned.failure_messages()

    plan = deployed("upgrade", "--check", *RETUNED)
    assert plan.unchanged, plan.failure_messages()
    lines = plan_lines(plan)
    assert "-> v1.14.1" in lines["solana-validator"], lines
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
        "talos_version": "v1.14.1", "schematic": after["boot"]["schematic"]}
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
    assert any(f"{address} came back on Talos v1.14.1 schematic {before['schematic']}, not v1.14.1" in message
               for message in run.failure_messages()), run.failure_messages()
    assert upgrades(deployed.emulator) == [first], "no other node is touched"
    assert booted(module, deployed, talosctl, first)["boot"] == before
    report = json.loads((deployed.out / "upgrade-report.json").read_text())
    assert report["nodes"] == [] and report["failed"]["name"] == first
    assert report["failed"]["after"]["schematic"] == before["schematic"] and report["snapshot"]["size"] > 0


class Probe:
    """What the cluster's clients see during an upgrade: every half second a read through the VIP
    and each etcd member's /health (true only from a member with a leader: no true answer at all
    is a lost quorum). Credentials: the admin kubeconfig, and a control plane's etcd certificate."""

    def __init__(self, deployment, tmp_path):
        server, self.api = deployment.api_tls(tmp_path)
        self.api_url = server + "/api/v1/namespaces/kube-system"
        pki = deployment.emulator.state / "machines" / CONTROLPLANES[0] / "pki"
        self.etcd = ssl.create_default_context(cafile=pki / "etcd-ca.crt")
        self.etcd.load_cert_chain(pki / "etcd.crt", pki / "etcd.key")
        self.samples = self.failed_reads = self.quorum_lost = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _get(url, context):
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as reply:
                return reply.read()
        except (OSError, ValueError):
            return None

    def _sample(self):
        while not self._stop.wait(0.5):
            self.samples += 1
            if self._get(self.api_url, self.api) is None:
                self.failed_reads += 1
            health = [self._get(f"https://{ADDRESSES[name]}:2379/health", self.etcd) for name in CONTROLPLANES]
            if not any(b'"health":"true"' in (answer or b"") for answer in health):
                self.quorum_lost += 1


def test_a_v1_13_cluster_goes_to_v1_14_node_by_node_leader_last_resuming_after_an_interruption(
        deployed_v113, module, talosctl, tmp_path):
    """The previous minor release (deployed with its own talosctl and contract) upgraded to the
    default one: control planes one at a time with the etcd leader last, then the validator; the
    run is killed while its first node reboots (drained by talosctl, never uncordoned) and a
    second run uncordons it and continues with the others; the cluster's API answers and etcd
    keeps its quorum throughout; then site moves the configs to v1.14's documents."""
    deploy = deployed_v113
    assert {booted(module, deploy, talosctl, name)["boot"]["talos_version"] for name in ADDRESSES} == {"v1.13.9"}
    refused = deploy("upgrade", "-e", "talos_cluster_talos_version=v1.13.8")
    assert refused.rc != 0 and upgrades(deploy.emulator) == []
    assert any("a downgrade" in message for message in refused.failure_messages()), refused.failure_messages()

    # the default release's configs sent before the upgrade: the v1.13 nodes refuse their documents,
    # nothing is applied and the message names the way out
    assert deploy("generate").rc == 0
    early = deploy("controlplane")
    assert early.rc != 0
    assert any("upgrade the node first (playbooks/upgrade.yml)" in message and "not registered" in message
               for message in early.failure_messages()), early.failure_messages()

    # move the leadership off the bootstrap node, so the order is not the inventory's by chance
    bootstrapped = leader(module, deploy, talosctl)
    moved = etcd(module, deploy, talosctl, state="forfeit_leadership",
                 nodes=[ADDRESSES[name] for name in sorted(CONTROLPLANES, key=lambda name: name != bootstrapped)])
    assert moved["changed"], moved
    last = leader(module, deploy, talosctl)
    expected = [name for name in CONTROLPLANES if name != last] + [last, "solana-validator"]

    # stopped while the node is down, before talosctl can see it back and uncordon it (stopping
    # once it booted raced talosctl's uncordon on a slow machine)
    log = deploy.emulator.state / "emulator.log"
    before = len(log.read_text())

    def first_node_rebooting():
        return f"{expected[0]}: rebooting (reboot requested)" in log.read_text()[before:]

    with Probe(deploy, tmp_path) as probe:
        interrupted = deploy("upgrade", stop_when=first_node_rebooting)
        assert interrupted.rc != 0 and upgrades(deploy.emulator) == expected[:1]
        assert [path.name for path in (deploy.out / "upgrading").iterdir()] == expected[:1], "marked as ours"
        assert deploy.cordoned() == expected[:1], "left drained"
        # the operator looks before running it again: every member healthy
        assert not etcd(module, deploy, talosctl).get("failed")
        resumed = deploy("upgrade")
    assert resumed.rc == 0, resumed.failure_messages()
    assert re.search(r"already on target$", plan_lines(resumed)[expected[0]]), plan_lines(resumed)
    uncordon = task_result(resumed, "Uncordon the nodes an interrupted run left drained on their target")
    assert [result["item"] for result in uncordon["results"] if result.get("changed")] == expected[:1]
    assert list((deploy.out / "upgrading").iterdir()) == []
    assert upgrades(deploy.emulator) == expected, (upgrades(deploy.emulator), last)
    report = json.loads((deploy.out / "upgrade-report.json").read_text())
    assert [node["name"] for node in report["nodes"]] == expected[1:]
    assert {node["before"]["talos_version"] for node in report["nodes"]} == {"v1.13.9"}
    assert {booted(module, deploy, talosctl, name)["boot"]["talos_version"] for name in ADDRESSES} == {"v1.14.1"}
    print(f"probe: {probe.samples} samples, {probe.failed_reads} failed API reads, "
          f"{probe.quorum_lost} without etcd quorum")
    assert probe.samples > 100 and probe.quorum_lost == 0 and probe.failed_reads == 0

    # the nodes kept their v1.13 configs, which v1.14 reads; site renders and applies v1.14's documents
    migrated = deploy("site")
    assert migrated.rc == 0, migrated.failure_messages()
    assert migrated.changed > 0
    assert "KubeletConfig" in (deploy.out / "solana-validator.yaml").read_text()
    assert deploy("upgrade").unchanged


def test_the_async_jobs_are_found_when_home_is_not_the_users_passwd_home(playbook, tmp_path):
    """With HOME elsewhere than the user's passwd home (a CI container's), Ansible wrote the job's
    status under $HOME and looked for it under the passwd home: "could not find job", and the
    pre-reboot command failed every upgrade of a validator. The role's ansible_async_dir is absolute."""
    run = playbook(REPO / "tests/integration/playbooks/async_home.yml", env={"HOME": str(tmp_path)})
    assert run.rc == 0, run.failure_messages() or run.stderr
    assert (tmp_path / ".ansible_async").is_dir()
