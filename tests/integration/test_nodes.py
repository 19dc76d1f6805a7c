"""The whole deployment with the real talosctl against emulated Talos machines
(testbed/emulator) whose control planes run real etcd and Kubernetes: apply in maintenance mode
then authenticated, bootstrap exactly once, health, kubeconfig, post-configuration, verify, the
failover drill, and the faults an operator meets."""

from __future__ import annotations

import json
import re
import shutil
import stat
import time

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import contract, schematic
from conftest import ETCDUTL, LOCAL_INVENTORY, first_site_run, leaked_secrets, v113_args
from machines import power, read_error, shutdown_delay  # testbed/machines.py: the emulated machines' controls

FIRST_APPLY = "Apply the first machine configuration to nodes in maintenance mode (they install and reboot)"
UPDATE = "Apply the machine configuration to the running node (a reboot only if allowed)"
WORKER_APPLY = "Apply the validator's machine configuration (maintenance mode first time, authenticated later)"
BOOTSTRAP = "Bootstrap etcd once, on the first control-plane node"
SETTLED = "Ask every node, by Talos' dry run, whether its rendered config would change anything"
SETTLED_HEALTH = "Check the whole cluster's health, once every node runs a configuration"
KUBECONFIG_KEPT = "Fetch the admin kubeconfig, pointed at the cluster endpoint (the VIP)"
TALOSCONFIG_WRITE = "Write a talosconfig with the control-plane nodes as endpoints"


def task_results(run, name):
    """{host: result} of the task with this name (role tasks are prefixed 'role : ')."""
    return {host: result for play in run.report["plays"] for task in play["tasks"]
            if task["task"]["name"].split(" : ")[-1] == name for host, result in task["hosts"].items()}


def drift_answers(run):
    """{node: its answer} of the one module run that asks every node for drift."""
    (asked,) = task_results(run, SETTLED).values()
    return asked["nodes"]


class TestOnOneRunningCopy:
    """The tests that leave the cluster as they found it share one powered-on copy of the
    deployment (a cold start of the whole cluster saved per test)."""

    @pytest.fixture
    def deployed(self, deployed_shared):
        return deployed_shared

    def test_site_deploys_a_healthy_verified_cluster_then_changes_nothing(self, deployed_once, deployed, module,
                                                                          talosctl):
        # the session's one deployment from blank machines (deployed_once), judged here; then site
        # again on a copy of it, powered on again
        first, out = first_site_run(deployed_once), deployed_once / "out"
        assert first.rc == 0, first.failure_messages()
        applied = {**task_results(first, FIRST_APPLY), **task_results(first, WORKER_APPLY)}
        assert set(applied) == {"controlplane-1", "controlplane-2", "controlplane-3", "solana-validator"}
        assert all(r["changed"] and r["maintenance"] and r["reboots"] for r in applied.values())
        assert all(r["mode_details"] == "Applied configuration without a reboot" for r in applied.values())
        # each node was waited for after its install reboot, before the bootstrap and the health checks
        back = {
            **task_results(first, "Wait until the node answers over mutual TLS with etcd Preparing or Running"),
            **task_results(first, "Wait for the validator to be back from its install or reboot, its kubelet running")}
        assert set(back) == set(applied) and all(r.get("waited", 0) > 0 for r in back.values()), back
        bootstrapped = task_results(first, BOOTSTRAP)
        assert [r["changed"] for r in bootstrapped.values()] == [True]
        # real etcd formed a three-member cluster; every Talos health check passed
        (etcd,) = task_results(first, "Wait for etcd to form its cluster, every member healthy").values()
        assert sorted(m["hostname"] for m in etcd["members"]) == ["controlplane-1", "controlplane-2", "controlplane-3"]
        (health,) = task_results(first, "Wait for the workers to join and the whole cluster to report healthy").values()
        assert health["healthy"] and "all k8s nodes to report ready" in [c["name"] for c in health["checks"]]
        # the kubeconfig is private and names the VIP, whatever node it came from
        kubeconfig = out / "kubeconfig"
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == "https://127.0.1.10:6443"
        # verify covered both halves: Kubernetes objects, kernel, kubelet policies, services, etcd
        report = json.loads((out / "verify" / "report.json").read_text())
        names = {r["name"] for r in report["results"]}
        assert {"etcd quorum", "service etcd", "kubelet cpuManagerPolicy", "HugePages_Total", "PriorityClass",
                "allocatable hugepages-2Mi", "sysctl net.ipv4.tcp_rmem", "link enp1s0 MTU",
                "HugePages_Total per NUMA node", "PersistentVolume path", "node facts read"} <= names, names
        assert report["results"] and report["failed"] == 0, [r for r in report["results"] if not r["passed"]]
        assert {r["family"] for r in report["results"]} == {
            "nodes", "control plane", "validator", "priority class", "storage", "boot", "kernel", "services", "etcd",
            "hosts"}
        # each control plane's components, at the version the real API server reports (mirror pods)
        assert sorted(r["subject"] for r in report["results"] if r["name"] == "kube-apiserver version") == [
            "controlplane-1", "controlplane-2", "controlplane-3"]
        assert sorted(r["subject"] for r in report["results"] if r["name"] == "node facts read") == [
            "controlplane-1", "controlplane-2", "controlplane-3", "solana-validator"]
        # the same counts for machines: JUnit for CI, Markdown for a job summary, set_stats for AWX
        from xml.etree import ElementTree

        junit = ElementTree.parse(out / "verify" / "junit.xml").getroot()
        assert [int(junit.get(key)) for key in ("tests", "failures", "skipped")] == [
            len(report["results"]), report["failed"], report["information"]]
        assert {suite.get("name") for suite in junit.findall("testsuite")} == {r["family"] for r in report["results"]}
        counts = f"{report['passed']} passed, {report['failed']} failed, {report['information']} information"
        assert f"**{counts}**" in (out / "verify" / "summary.md").read_text()
        (shown,) = task_results(first, "Show the summary").values()
        assert shown["msg"][-1] == counts, "the summary is printed as lines"
        (published,) = task_results(first, "Publish the counts and the report's files as run statistics").values()
        assert published["ansible_stats"]["data"] == {
            "verify_passed_count": report["passed"], "verify_failed_count": 0,
            "verify_information_count": report["information"],
            "verify_report_files": {kind: str(out / "verify" / name) for kind, name in [
                ("json", "report.json"), ("summary", "summary.txt"), ("junit", "junit.xml"),
                ("markdown", "summary.md")]}}

        # again: every node asked once (authenticated: it runs its config), nothing to apply, the
        # cluster healthy, so the node plays leave every node out - nothing applied, nothing waited for
        again = deployed("site")
        assert again.unchanged, again.stats
        asked = drift_answers(again)
        assert set(asked) == set(applied) and all(
            r["maintenance"] is False and r["pending"] is False for r in asked.values()), asked
        health = task_results(again, SETTLED_HEALTH)
        assert {host: r["healthy"] for host, r in health.items()} == {"controlplane-1": True}, health
        assert not any(task_results(again, name) for name in (FIRST_APPLY, UPDATE, WORKER_APPLY, BOOTSTRAP))
        # the controller's talosconfig and kubeconfig are current: unchanged, and the kubeconfig is
        # kept without a fetch (no talosctl ran: the bundle's CA is the settled cluster's)
        written = task_results(again, TALOSCONFIG_WRITE)
        assert written and not any(r["changed"] for r in written.values()), written
        (kept,) = task_results(again, KUBECONFIG_KEPT).values()
        assert kept["changed"] is False and "talosctl_version" not in kept, kept

        # drift on one node (a config applied by hand) takes that node, and it alone, the whole way
        documents = list(yaml.safe_load_all((deployed.out / "controlplane-2.yaml").read_text()))
        next(d for d in documents if "cluster" in d)["cluster"].setdefault("etcd", {}).setdefault(
            "extraArgs", {})["election-timeout"] = "6000"
        by_hand = deployed.out.parent / "drifted.yaml"
        by_hand.write_text(yaml.safe_dump_all(documents))
        assert module("talos_apply_config", {
            "config_path": str(by_hand), "node": "127.0.1.12", "talosconfig": str(deployed.out / "talosconfig"),
            "talosctl_path": str(talosctl)})[0]["changed"]
        mended = deployed("site")
        assert mended.rc == 0 and mended.changed == 1, mended.failure_messages() or mended.stats
        assert {host: r["pending"] for host, r in drift_answers(mended).items()} == {
            "controlplane-1": False, "controlplane-2": True, "controlplane-3": False, "solana-validator": False}
        assert {host: r["changed"] for host, r in task_results(mended, UPDATE).items()} == {"controlplane-2": True}
        # the validator has nothing to apply, but its play's whole-cluster health wait follows the
        # control plane's change
        assert {host: r["changed"] for host, r in task_results(mended, WORKER_APPLY).items()} == {
            "solana-validator": False}
        assert task_results(mended, "Wait for the workers to join and the whole cluster to report healthy")
        assert deployed("site").unchanged

        # a kubeconfig naming another server is not current: fetched again, pointed at the VIP, the
        # run's only change
        kubeconfig = deployed.out / "kubeconfig"
        kubeconfig.write_text(kubeconfig.read_text().replace("https://127.0.1.10:6443", "https://127.0.1.11:6443"))
        renewed = deployed("site")
        assert renewed.rc == 0 and renewed.changed == 1, renewed.failure_messages() or renewed.stats
        (fetched,) = task_results(renewed, KUBECONFIG_KEPT).values()
        assert fetched["changed"] is True and fetched["talosctl_version"], fetched
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == "https://127.0.1.10:6443"

    def test_verify_runs_on_its_own_from_the_inventory_and_the_secrets_bundle(self, deployed, playbook, talosctl,
                                                                              tmp_path):
        """A fresh environment (an AWX job): no talosconfig, no kubeconfig, only the bundle."""
        fresh = tmp_path / "fresh"
        fresh.mkdir(mode=0o700)
        shutil.copy2(deployed.out / "secrets.yaml", fresh / "secrets.yaml")
        scratch = tmp_path / "tmp"
        scratch.mkdir()
        run = playbook("playbooks/verify.yml", "-i", str(LOCAL_INVENTORY), "-e", f"talos_cluster_output_dir={fresh}",
                       "-e", f"talosctl_path={talosctl}", env={"TMPDIR": str(scratch)})
        assert run.rc == 0, run.failure_messages()
        report = json.loads((fresh / "verify" / "report.json").read_text())
        assert {"etcd quorum", "PriorityClass"} <= {r["name"] for r in report["results"]}
        observed = {r["name"]: r["observed"] for r in report["results"]
                    if r["subject"] == "solana-validator" and r["name"] in VALIDATOR_FIGURES}
        assert observed == VALIDATOR_FIGURES
        derived_files = [*task_results(run, "Write a talosconfig with the control-plane nodes as endpoints").values(),
                         *task_results(run, "Fetch a kubeconfig, pointed at the cluster endpoint (the VIP)").values()]
        assert len(derived_files) == 2 and not any(r["changed"] for r in derived_files), derived_files
        # the derived credentials lived in a private temporary directory, gone after the run
        assert sorted(p.name for p in fresh.iterdir()) == ["secrets.yaml", "verify"]
        assert [p.name for p in scratch.iterdir() if p.name.startswith("talos-access-")] == []
        derived = list(task_results(run, "Create a private directory for the derived credentials").values())
        assert len(derived) == 1 and derived[0]["path"].startswith(str(scratch)), derived

    def test_node_facts_read_the_validator_kernel(self, deployed, module, talosctl):
        """The validator booted the image of its schematic: the testbed's factory gave the emulated
        machine that schematic's kernel args when it installed."""
        tuned = schematic.schematic_id(yaml.safe_load((deployed.out / "solana-validator.schematic.yaml").read_text()))
        facts = module("talos_node_facts", {
            "node": "127.0.1.20", "endpoint": "127.0.1.11", "numa_nodes": 2,
            "talosconfig": str(deployed.out / "talosconfig"), "talosctl_path": str(talosctl)})[0]
        assert facts.get("failed") is not True, facts
        assert {"talos.platform=metal", "hugepages=50000", "iommu=pt"} <= set(facts["cmdline"])
        assert facts["meminfo"]["HugePages_Total"] == 50000 and facts["meminfo"]["Hugepagesize"] == 2048
        # the kernel's boot-time split on 64 CPUs: 16 allocation chunks of 3125 pages, each from node 0
        assert [(n["node"], n["HugePages_Total"]) for n in facts["numa"]] == [(0, 25008), (1, 24992)]
        mounted = {m["mountpoint"]: m["fstype"] for m in facts["mounts"]}
        assert {mounted.get(f"/var/mnt/{v}") for v in ("ledger", "accounts", "snapshots")} == {"xfs"}
        assert facts["kubelet_config"]["cpuManagerPolicy"] == "static"
        assert facts["services"]["kubelet"] == {"running": True, "healthy": True}
        assert facts["boot"] == {"schematic": tuned, "extensions": [], "talos_version": "v1.14.1",
                                 "booted_with_uki": True, "secure_boot": False}
        control_plane = module("talos_node_facts", {
            "node": "127.0.1.12", "gather": ["boot"],
            "talosconfig": str(deployed.out / "talosconfig"), "talosctl_path": str(talosctl)})[0]
        assert control_plane["boot"]["schematic"] == schematic.EMPTY_ID, control_plane
        # read among others in one run, the validator reads the same; an address no machine
        # answers fails alone, its resources asked again one node at a time
        many = module("talos_node_facts", {
            "endpoint": "127.0.1.11", "talosconfig": str(deployed.out / "talosconfig"), "talosctl_path": str(talosctl),
            "nodes": [{"name": "validator", "node": "127.0.1.20", "numa_nodes": 2},
                      {"name": "controlplane-2", "node": "127.0.1.12", "gather": ["boot", "services"]},
                      {"name": "nobody", "node": "127.0.1.99", "gather": ["boot", "services"]}]})[0]
        assert many.get("failed") is not True, many
        read = ("cmdline", "meminfo", "mounts", "numa", "sysctls", "link_mtu", "kubelet_config", "services", "boot")
        assert many["nodes"]["validator"] == {key: facts[key] for key in read}
        assert many["nodes"]["controlplane-2"]["boot"] == control_plane["boot"]
        assert many["nodes"]["controlplane-2"]["services"]["etcd"] == {"running": True, "healthy": True}
        assert many["nodes"]["nobody"]["failed"] and "127.0.1.99" in many["nodes"]["nobody"]["msg"], many
        # the NUMA layout the NUMA test judges a pod's placement against, read through Talos
        layout = module("talos_numa_info", {
            "node": "127.0.1.20", "endpoint": "127.0.1.11",
            "talosconfig": str(deployed.out / "talosconfig"), "talosctl_path": str(talosctl)})[0]
        assert layout.get("failed") is not True, layout
        assert (layout["online"], layout["cpulists"]) == ("0-1", {"0": "0-31", "1": "32-63"}), layout

    def test_bootstrap_aimed_at_another_node_does_not_bootstrap_twice(self, deployed, talosctl):
        # the inventory now names controlplane-2 first: it joined the cluster, so it refuses
        run = deployed("controlplane", "-l", "controlplane-2,controlplane-3")
        assert run.rc == 0, run.failure_messages()
        (bootstrap,) = task_results(run, BOOTSTRAP).values()
        assert bootstrap["changed"] is False
        # the guard's own evidence: the members it found before sending anything (without the
        # guard, the node's "already bootstrapped" refusal would also leave changed=False)
        assert bootstrap["msg"] == "etcd already has members; not bootstrapping again", bootstrap
        # every control plane of the inventory is asked, the one the run is limited away from too
        assert sorted(bootstrap["members"]) == ["127.0.1.11", "127.0.1.12", "127.0.1.13"], bootstrap["members"]

    def test_wrong_talosconfig_is_a_credentials_mismatch(self, deployed, tmp_path, talosctl):
        other = tmp_path / "other"
        assert deployed("generate", "-e", f"talos_cluster_output_dir={other}").rc == 0
        run = deployed("controlplane", "-e", f"talos_cluster_talosconfig={other}/talosconfig")
        assert run.rc != 0
        applied = task_results(run, FIRST_APPLY)
        assert {r.get("error") for r in applied.values()} == {"CredentialsMismatch"}
        assert all("talosconfig does not belong to this cluster" in r["msg"] for r in applied.values())


# What verify must observe on the validator, worked out by hand from its machine in
# testbed/local-machines.yaml (64 CPUs, 2 NUMA nodes, 512Gi) and the role defaults, not from the
# inventory's copy of that hardware: if either description changes, these figures must be redone.
VALIDATOR_FIGURES = {
    "capacity cpu": "64",
    "allocatable cpu": "60",  # 64 less reservedSystemCPUs 0-3
    # 524288Mi installed less the kernel's reserve, 524288Mi / 64 + 64Mi = 8256Mi (README, Inventory)
    "capacity memory": "516032Mi",
    # 516032Mi less 50000 x 2Mi huge pages (100000Mi), kube 16Gi, system 16Gi, eviction 32Gi (65536Mi)
    "allocatable memory": "350496Mi",
    "capacity hugepages-2Mi": "100000Mi",
    "capacity hugepages-1Gi": "0",
    "HugePages_Total": 50000,
    # 64 CPUs / 4 = 16 allocation threads, 16 chunks of 3125 pages, each 1563 on node 0, 1562 on node 1
    "HugePages_Total per NUMA node": "25008 + 24992",
}


DRILL_PROOFS = ["etcd without the stopped members", "kubernetes API through the endpoint", "etcd quorum",
                "probe pod scheduled"]


def test_failover_drill_survives_one_control_plane_and_reports_lost_quorum_with_two(deployed):
    # Talos answers Shutdown at once and goes down afterwards: the drill must wait for the proof
    # (a drill checking quorum after the reply sees 3 of 3 members)
    assert shutdown_delay(deployed.emulator.state, "controlplane-1", "6s") == "controlplane-1: shutdown delay 6s"
    drill = deployed("failover")
    assert drill.rc == 0, drill.failure_messages()
    outcome = json.loads((deployed.out / "failover-drill.json").read_text())
    assert outcome["stopped"] == ["controlplane-1"] and outcome["survived"] and outcome["rejoined"]
    assert outcome["proofs"]["etcd quorum"] == "ok: 2 of 3 members respond, 2 needed"
    assert outcome["proofs"]["probe pod scheduled"].startswith("ok, on ")
    assert re.fullmatch(r"ok: its Talos API refused connections \d+\.\d s after the shutdown request",
                        outcome["proofs"]["controlplane-1 down"]), outcome
    assert outcome["proofs"]["etcd without the stopped members"] == \
        "ok: 2 of 3 members respond, none of them on controlplane-1"
    assert set(outcome["proofs"]) == {"controlplane-1 down", *DRILL_PROOFS}
    # each proof's time; the stop's is the node's shutdown delay, not the reply's
    seconds = outcome["seconds"]
    assert set(seconds) == set(outcome["proofs"]) and all(isinstance(s, (int, float)) for s in seconds.values())
    assert 5 <= seconds["controlplane-1 down"] < 20, seconds
    assert str(seconds["controlplane-1 down"]) in outcome["proofs"]["controlplane-1 down"]

    # both stops must be proven now: the emulated machines stop etcd and Kubernetes one node
    # after the other (each program gets 10 s to exit) before their APIs close
    shutdown_delay(deployed.emulator.state, "controlplane-1", "")
    lost = deployed("failover", "-e", "failover_drill_stop_count=2", "-e", "failover_drill_wait_timeout=60")
    assert lost.rc != 0
    message = "\n".join(lost.failure_messages())
    assert "etcd quorum: LOST: 0 of 3 members respond, 2 needed" in message, message
    assert "kubernetes API through the endpoint: unavailable through https://127.0.1.10:6443" in message
    outcome = json.loads((deployed.out / "failover-drill.json").read_text())
    assert outcome["rejoined"], "the nodes are powered back on and the cluster heals"
    # both stops were proven before the lost quorum was reported
    assert all(outcome["proofs"][f"{node} down"].startswith("ok: ") for node in ("controlplane-1", "controlplane-2"))
    assert outcome["proofs"]["etcd without the stopped members"].startswith("ok: 0 of 3 members respond")
    assert not outcome["survived"] and outcome["seconds"]["etcd quorum"] >= 20, outcome
    # and the cluster is whole again: a full site run changes nothing
    again = deployed("site")
    assert again.unchanged, again.failure_messages() or again.stats


def test_failover_drill_fails_when_the_node_does_not_go_down(deployed):
    # a shutdown that hangs (a drain that never ends): the node keeps answering
    shutdown_delay(deployed.emulator.state, "controlplane-1", "1h")
    drill = deployed("failover", "-e", "failover_drill_wait_timeout=8")
    assert drill.rc != 0 and drill.failed == 1, drill.stats
    message = "\n".join(drill.failure_messages())
    assert "controlplane-1 still answers after 8 s: the drill proved nothing" in message, message
    outcome = json.loads((deployed.out / "failover-drill.json").read_text())
    assert not outcome["survived"], "a stop that was not proven certifies nothing"
    assert outcome["proofs"]["etcd without the stopped members"] == "not tried: a node did not go down"
    for proof in DRILL_PROOFS[1:]:
        assert outcome["proofs"][proof] == "not tried: the stop of controlplane-1 was not proven", outcome
        assert outcome["seconds"][proof] is None
    assert 7 <= outcome["seconds"]["controlplane-1 down"] <= 12, outcome
    # it still ran its clean-up: the power-on, the rejoin proof, the probe pod's removal
    assert task_results(drill, "Power the stopped nodes back on - controlplane-1")["controlplane-1"]["changed"]
    assert outcome["rejoined"]
    assert set(task_results(drill, "Remove the probe pod")) == {"controlplane-1"}


def test_a_failed_power_on_names_the_node_never_the_command(deployed):
    """The power-on command may carry the BMC password: a failure says which node, not how."""
    command = "sh -c 'exit 3' ipmi-password-hunter2"
    try:
        drill = deployed("failover", "-e", json.dumps({"talos_node_power_on_command": command,
                                                       "talos_cluster_wait_timeout": 30}))
        assert drill.rc != 0
        message = "\n".join(drill.failure_messages())
        assert "controlplane-1: talos_node_power_on_command failed (rc 3)" in message, message
        assert "hunter2" not in drill.stdout + drill.stderr
    finally:
        power(deployed.emulator.state, "controlplane-1", True)


def test_worker_before_the_control_plane_is_refused_untouched(deploy, module, talosctl):
    run = deploy("worker")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert "the control plane is not up" in message and "no worker was touched" in message, message
    assert task_results(run, WORKER_APPLY) == {}, "the worker config was not applied"
    # the worker is still waiting in maintenance mode
    dry_run = module("talos_apply_config", {
        "config_path": str(deploy.out / "solana-validator.yaml"), "node": "127.0.1.20",
        "talosconfig": str(deploy.out / "talosconfig"), "talosctl_path": str(talosctl)}, "--check")[0]
    assert dry_run["maintenance"] is True and dry_run["changed"] is True


def test_a_changed_config_shows_a_redacted_diff_in_check_mode_and_applies(deployed):
    changed = ["-e", '{"talos_controlplane_etcd_extra_args": {"election-timeout": "6000", '
               '"heartbeat-interval": "600", "snapshot-count": "10000"}}']
    assert deployed("generate", *changed).changed == 3
    dry = deployed("controlplane", "--check", "--diff", *changed)
    assert dry.rc == 0
    controlplanes = ["controlplane-1", "controlplane-2", "controlplane-3"]
    assert sorted(task_results(dry, FIRST_APPLY)) == sorted(task_results(dry, UPDATE)) == controlplanes
    assert all(r["pending"] and not r["changed"] for r in task_results(dry, FIRST_APPLY).values())
    assert all(r["changed"] and not r["reboots"] for r in task_results(dry, UPDATE).values())
    diffs = [r["diff"]["prepared"] for r in task_results(dry, UPDATE).values()]
    assert all('+            election-timeout: "6000"' in d for d in diffs), diffs[0]
    applied = deployed("controlplane", *changed)
    assert applied.rc == 0 and applied.changed == 3
    again = deployed("controlplane", *changed)
    assert again.unchanged, again.failure_messages() or again.stats

    # a secret-bearing change: the configs of another secrets bundle, sent in check mode with
    # this cluster's talosconfig. Talos v1.14 would apply a new identity in place (no reboot to
    # refuse), locking the cluster out: the first control plane refuses it because its Talos API
    # CA is not the one the talosconfig trusts (one at a time: the others are not tried), showing
    # the diff redacted, never a value
    other = deployed.out.parent / "other-bundle"
    assert deployed("generate", "-e", f"talos_cluster_output_dir={other}").rc == 0
    secret_dry = deployed("controlplane", "--check", "--diff", "-e", f"talos_cluster_output_dir={other}",
                          "-e", f"talos_cluster_talosconfig={deployed.out}/talosconfig")
    assert secret_dry.rc != 0
    (refusal,) = task_results(secret_dry, UPDATE).values()
    assert "controlplane-1: this configuration's Talos API CA (machine.ca) is not the one the talosconfig trusts" \
        in refusal["msg"] and "nothing was applied" in refusal["msg"], refusal
    assert re.search(r"^-\s+token: <redacted>$", refusal["diff"]["prepared"], re.M), refusal["diff"]
    configs = [(folder / "controlplane-1.yaml").read_text() for folder in (deployed.out, other)]
    assert leaked_secrets(secret_dry.stdout + secret_dry.stderr, *configs) == []


def reboots(emulator):
    """The emulator's reboots in order: [(node, "rebooting" or "booted")]."""
    log = (emulator.state / "emulator.log").read_text()
    return [(match[1], match[2].split()[0])
            for match in re.finditer(r" (\S+): (rebooting \(|booted$)", log, re.MULTILINE)]


def test_v1_13_a_change_that_needs_a_reboot_stops_unless_allowed_then_goes_one_node_at_a_time(
        deployed_v113, talosctl_previous):
    # machined v1.13 cannot apply a change of machine.env without a reboot
    deployed = deployed_v113
    env = ["-e", '{"talos_controlplane_patches": [{"machine": {"env": {"TZ": "UTC"}}}]}', *v113_args(talosctl_previous)]
    assert deployed("generate", *env).changed == 3
    before = len(reboots(deployed.emulator))
    refused = deployed("controlplane", *env)
    assert refused.rc != 0
    (failed,) = [r for r in task_results(refused, UPDATE).values() if r.get("failed")]
    assert "controlplane-1: Talos' dry run says this change needs a reboot; nothing was applied" in failed["msg"]
    assert "+TZ: UTC" in failed["msg"] and "talos_controlplane_apply_allow_reboot" in failed["msg"]
    assert set(task_results(refused, UPDATE)) == {"controlplane-1"}, "serial: the other nodes were not asked"
    assert len(reboots(deployed.emulator)) == before, "nothing rebooted"

    allowed = deployed("controlplane", *env, "-e", "talos_controlplane_apply_allow_reboot=true")
    assert allowed.rc == 0 and allowed.changed == 3, allowed.failure_messages()
    # one node at a time: each control plane was back before the next one went down
    assert reboots(deployed.emulator)[before:] == [
        (node, event) for node in ("controlplane-1", "controlplane-2", "controlplane-3")
        for event in ("rebooting", "booted")]
    again = deployed("controlplane", *env)
    assert again.unchanged, again.failure_messages() or again.stats


def test_v1_14_applies_that_change_in_place(deployed):
    """Talos v1.14 applies every change without a reboot (its apply turns auto into no-reboot)."""
    env = ["-e", '{"talos_controlplane_patches": [{"machine": {"env": {"TZ": "UTC"}}}]}']
    assert deployed("generate", *env).changed == 3
    before = len(reboots(deployed.emulator))
    applied = deployed("controlplane", *env)
    assert applied.rc == 0 and applied.changed == 3, applied.failure_messages()
    assert all(not result["reboots"] for result in task_results(applied, UPDATE).values())
    assert len(reboots(deployed.emulator)) == before, "nothing rebooted"
    assert deployed("controlplane", *env).unchanged


def test_unreachable_node_fails_alone_and_a_rerun_completes(deploy, tmp_path):
    # an inventory whose controlplane-3 points at an address nothing listens on
    inventory = tmp_path / "inventory"
    shutil.copytree(LOCAL_INVENTORY, inventory)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("127.0.1.13", "127.0.1.99"))
    broken = deploy("controlplane", "-i", str(inventory))
    assert broken.rc != 0
    applied = task_results(broken, FIRST_APPLY)
    assert applied["controlplane-1"]["changed"] and applied["controlplane-2"]["changed"]
    assert applied["controlplane-3"]["failed"]
    assert "port 50000" in applied["controlplane-3"]["msg"] and "NodeUnreachable" == applied["controlplane-3"]["error"]
    # the bootstrap guard cannot see controlplane-3's etcd, so it refuses to bootstrap
    (bootstrap,) = task_results(broken, BOOTSTRAP).values()
    assert bootstrap["failed"] and "refusing to bootstrap" in bootstrap["msg"], bootstrap
    fixed = deploy("site")
    assert fixed.rc == 0, fixed.failure_messages()
    assert task_results(fixed, FIRST_APPLY)["controlplane-1"]["changed"] is False


def test_cluster_modules_against_the_testbed(deployed, module, talosctl, tmp_path):
    common = {"talosconfig": str(deployed.out / "talosconfig"), "talosctl_path": str(talosctl)}
    # etcd: a snapshot of the real database, private, kept once etcdutl restored a member from it
    snap = module("talos_etcd", {"nodes": ["127.0.1.12"], "state": "snapshot", "etcdutl_path": str(ETCDUTL),
                                 "dest": str(tmp_path / "etcd.db"), **common})[0]
    assert snap["changed"] and snap["snapshot"]["node"] == "127.0.1.12" and "snap" in snap["snapshot"]["restored"], snap
    assert stat.S_IMODE((tmp_path / "etcd.db").stat().st_mode) == 0o600
    assert (tmp_path / "etcd.db").stat().st_size == snap["snapshot"]["size"] > 0
    # kubeconfig: kept while valid for the same server and CA, rewritten for another server
    args = {"node": "127.0.1.11", "path": str(tmp_path / "kubeconfig"), **common}
    fetched = module("talos_kubeconfig", args)[0]
    assert fetched["changed"] and fetched["server"] == "https://127.0.1.10:6443", fetched
    assert module("talos_kubeconfig", args)[0]["changed"] is False
    direct = module("talos_kubeconfig", {**args, "server": "https://127.0.1.12:6443"})[0]
    assert direct["changed"] and direct["server"] == "https://127.0.1.12:6443"
    # health: a node the cluster does not have is named in the failure, within the bound
    health = module("talos_health", {
        "node": "127.0.1.11", "controlplane_nodes": ["127.0.1.11", "127.0.1.12", "127.0.1.13"],
        "worker_nodes": ["127.0.1.20", "127.0.1.21"], "timeout": 3, **common})[0]
    assert health["failed"] and health["healthy"] is False
    assert health["failed_check"] == "apid to be ready: 127.0.1.21: no such node", health
    # services: a running kubelet is left alone, restarted on request; Talos refuses to stop it
    kubelet = {"node": "127.0.1.20", "endpoint": "127.0.1.11", "service": "kubelet", **common}
    started = module("talos_service", kubelet)[0]
    assert started["changed"] is False and started["before"] == "Running", started
    restarted = module("talos_service", {**kubelet, "state": "restarted"})[0]
    assert restarted["changed"] and restarted["before"] == "Running"
    refused = module("talos_service", {**kubelet, "state": "stopped"})[0]
    assert refused["failed"] and "doesn't support stop operation via API" in refused["msg"]
    # waiting for a node: back at once when its services are as wanted; a bounded failure naming
    # what it saw otherwise (a service in another state; a node that refuses connections)
    back = module("talos_wait_node", {"node": "127.0.1.12", "services": {"etcd": ["Running"]}, **common})[0]
    assert back["services"]["etcd"]["state"] == "Running" and back["waited"] < 5 and not back["changed"], back
    other = module("talos_wait_node", {"node": "127.0.1.12", "services": {"etcd": ["Finished"]}, "timeout": 2,
                                       **common})[0]
    assert other["failed"] and "127.0.1.12 is not back after 2s: etcd is Running (wanted Finished)" in other["msg"]
    power(deployed.emulator.state, "controlplane-3", False)
    away = module("talos_wait_node", {"node": "127.0.1.13", "node_name": "controlplane-3", "timeout": 2, **common})[0]
    assert away["failed"] and "controlplane-3 is not back after 2s" in away["msg"], away
    assert "connection refused" in away["msg"] and "NodeUnreachable" in away["msg"], away


def test_verify_fails_a_validator_installed_from_the_empty_schematic(deploy):
    """A validator whose config names the control planes' (empty) schematic boots without the
    tuning, whatever its machine config says: verify names the schematic and the missing args."""
    config = deploy.out / "solana-validator.yaml"
    tuned = schematic.schematic_id(yaml.safe_load((deploy.out / "solana-validator.schematic.yaml").read_text()))
    empty = f"/metal-installer/{schematic.EMPTY_ID}:"
    config.write_text(config.read_text().replace(f"/metal-installer/{tuned}:", empty))
    for play in ("controlplane", "worker", "postconfig"):
        assert deploy(play).rc == 0, play
    run = deploy("verify")
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert f"booted schematic on solana-validator: expected {tuned}, observed {schematic.EMPTY_ID}" in message, message
    assert "kernel arg hugepages=50000 on solana-validator: expected hugepages=50000, observed absent" in message
    assert "HugePages_Total on solana-validator: expected 50000, observed 0" in message
    assert "booted schematic on controlplane-1" not in message, "the control planes booted theirs"


def test_verify_reports_a_node_whose_facts_cannot_be_read(deployed):
    """A powered-off validator's facts task fails: the node stays in the report, failing its
    checks as not read, instead of dropping out of it."""
    power(deployed.emulator.state, "solana-validator", False)
    (deployed.out / "verify" / "report.json").unlink()
    run = deployed("verify", "-e", "verify_kubernetes=false")
    assert run.rc != 0
    assert (deployed.out / "verify" / "report.json").exists(), run.failure_messages()
    report = json.loads((deployed.out / "verify" / "report.json").read_text())
    failures = {(r["name"], r["subject"]): r for r in report["results"] if not r["passed"]}
    assert {subject for _name, subject in failures} == {"solana-validator"}, sorted(failures)
    assert failures[("node facts read", "solana-validator")]["observed"].startswith("not read: "), failures
    assert failures[("service kubelet", "solana-validator")]["observed"] == "not read"
    assert {("booted schematic", "solana-validator"), ("HugePages_Total per NUMA node", "solana-validator")} <= set(
        failures)


def test_a_tuning_change_applies_but_verify_says_the_node_needs_an_upgrade(deployed):
    """A new schematic changes machine.install.image, which a running node takes without a
    reboot; its kernel stays the installed one until an upgrade, and verify says so."""
    before = schematic.schematic_id(yaml.safe_load((deployed.out / "solana-validator.schematic.yaml").read_text()))
    fewer = ["-e", "talos_solana_worker_hugepages_2mi=40000"]
    assert deployed("generate", *fewer).rc == 0
    after = schematic.schematic_id(yaml.safe_load((deployed.out / "solana-validator.schematic.yaml").read_text()))
    applied = deployed("worker", *fewer)
    assert applied.rc == 0 and task_results(applied, WORKER_APPLY)["solana-validator"]["changed"]
    run = deployed("verify", *fewer)
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert f"booted schematic on solana-validator: expected {after}, observed {before}" in message, message
    assert "HugePages_Total on solana-validator: expected 40000, observed 50000" in message


def test_verify_reads_every_sysctl_and_the_link_mtu_back_from_the_kernel(deploy):
    """The inventory asks for a sysctl the kernel does not have; the validator's config then
    sets another sysctl than the inventory wants and an MTU its NIC (max 9216) refuses: the
    unknown sysctl does not exist, the kernel shows the config's value, the link keeps 1500,
    and verify says so while the other sysctls pass."""
    unknown = ["-e", '{"talos_solana_worker_sysctls": {"vm.no_such_sysctl": "1"}}']
    assert deploy("generate", *unknown).rc == 0
    config = deploy.out / "solana-validator.yaml"
    text = config.read_text()
    assert 'vm.max_map_count: "1000000"' in text and "mtu: 9000" in text
    config.write_text(text.replace('vm.max_map_count: "1000000"', 'vm.max_map_count: "2000000"')
                      .replace("mtu: 9000", "mtu: 9300"))
    for play in ("controlplane", "worker", "postconfig"):
        assert deploy(play, *unknown).rc == 0, play
    run = deploy("verify", *unknown)
    assert run.rc != 0
    message = "\n".join(run.failure_messages())
    assert "sysctl vm.max_map_count on solana-validator: expected 1000000, observed 2000000" in message, message
    assert "sysctl vm.no_such_sysctl on solana-validator: expected 1, observed no such sysctl" in message, message
    assert "link enp1s0 MTU on solana-validator: expected 9000, observed 1500" in message, message
    report = json.loads((deploy.out / "verify" / "report.json").read_text())
    sysctls = {r["name"]: r for r in report["results"] if r["name"].startswith("sysctl ")}
    # the agave profile's five and the inventory's one
    assert len(sysctls) == 6, sorted(sysctls)
    assert sorted(name for name, r in sysctls.items() if not r["passed"]) == [
        "sysctl vm.max_map_count", "sysctl vm.no_such_sysctl"]
    assert sysctls["sysctl net.core.rmem_max"]["observed"] == "134217728"


def test_site_without_a_cni_completes_and_verify_says_the_nodes_wait_for_one(deploy):
    """talos_cluster_cni=none: the kubelets report NotReady for the runtime network, Talos'
    health skips the Ready check, the waits accept that reason and verify names it."""
    run = deploy("site", "-e", "talos_cluster_cni=none")
    assert run.rc == 0, run.failure_messages()
    (health,) = task_results(run, "Wait for the workers to join and the whole cluster to report healthy").values()
    assert {"name": "all k8s nodes to report ready", "ok": True, "detail": "SKIP"} in health["checks"], health
    report = json.loads((deploy.out / "verify" / "report.json").read_text())
    waiting = {r["subject"]: r for r in report["results"] if r["name"] == "node Ready or waiting for a CNI"}
    assert set(waiting) == {"controlplane-1", "controlplane-2", "controlplane-3", "solana-validator"}, waiting
    assert {r["observed"] for r in waiting.values()} == {"waiting for a CNI"}
    assert all(r["passed"] for r in report["results"])
    assert not any(r["name"] == "node Ready" for r in report["results"])


def test_the_validator_is_tainted_from_its_registration_before_postconfig(deploy):
    """Talos writes a worker's labels and taints with the kubelet's identity, and NodeRestriction
    lets a node set taints only when it registers: the validator must come up tainted, before
    postconfig (which works as an admin) runs, so nothing without the toleration lands on it."""
    for stage in ("controlplane", "worker"):
        run = deploy(stage)
        assert run.rc == 0, run.failure_messages()
    api = deploy.core_api()
    node = api.read_node("solana-validator")
    assert ("solana.io/validator", "true", "NoSchedule") in [(t.key, t.value, t.effect) for t in node.spec.taints or []]
    # Talos' pass found the registered taint equal and owns it, so its labels went through too
    assert json.loads(node.metadata.annotations["talos.dev/owned-taints"]) == ["solana.io/validator"]
    assert node.metadata.labels.get("solana.io/role") == "validator", node.metadata.labels

    # a pod aimed at the validator stays unscheduled for a taint; with the validator's toleration
    # the same pod lands there, so that taint is what kept the first one off
    def scheduling(name, tolerations):
        api.create_namespaced_pod("default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "solana-validator"}, "tolerations": tolerations,
                     "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
        for _attempt in range(60):
            conditions = api.read_namespaced_pod(name, "default").status.conditions or []
            scheduled = next((c for c in conditions if c.type == "PodScheduled"), None)
            if scheduled and (scheduled.status == "True" or scheduled.reason == "Unschedulable"):
                return scheduled
            time.sleep(0.5)
        pytest.fail(f"{name}: no scheduling decision: {conditions}")

    intruder = scheduling("intruder", [])
    assert intruder.status == "False" and "untolerated taint" in intruder.message, intruder
    tolerating = scheduling("tolerating", [{"key": "solana.io/validator", "operator": "Equal", "value": "true",
                                            "effect": "NoSchedule"}])
    assert tolerating.status == "True", tolerating


def test_reserved_memory_counts_the_kubelet_default_a_partial_eviction_hard_merges_in(deploy):
    """An evictionHard without memory.available gets the kubelet's 100Mi merged in
    (mergeDefaultEvictionSettings): reservedMemory must count it, or the real kubelet refuses to
    start with the Static memory manager and the validator never joins."""
    partial = ["-e", '{"talos_solana_worker_eviction_hard": {"nodefs.available": "10%"}}']
    assert deploy("generate", *partial).rc == 0
    run = deploy("site", *partial)
    assert run.rc == 0, run.failure_messages()
    extra = contract.rendered_kubelet(yaml.safe_load_all((deploy.out / "solana-validator.yaml").read_text()))[
        "extraConfig"]
    # 16Gi kube + 16Gi system reserved + the kubelet's 100Mi, over two NUMA nodes
    assert extra["reservedMemory"] == [{"numaNode": 0, "limits": {"memory": "16434Mi"}},
                                       {"numaNode": 1, "limits": {"memory": "16434Mi"}}], extra["reservedMemory"]


MORE_KUBE_RESERVED = ["-e", '{"talos_solana_worker_kube_reserved": {"memory": "20Gi"}}']


def _memory_manager_change_refused(deployed) -> str:
    """Render a change of the validator's reservations and run the worker stage: it must fail with
    nothing applied. Returns its failure messages."""
    assert deployed("generate", *MORE_KUBE_RESERVED).rc == 0
    refused = deployed("worker", *MORE_KUBE_RESERVED)
    assert refused.rc != 0
    assert task_results(refused, WORKER_APPLY) == {}, "nothing was applied"
    return "\n".join(refused.failure_messages())


def test_a_running_validator_whose_kubelet_configuration_cannot_be_read_is_refused_untouched(deployed):
    """machined ends a read that fails with no data and an OK status, so talos_node_facts fails on
    the empty read: the memory manager's guard must refuse, not take the node for one in
    maintenance mode and apply a change it could not compare."""
    read_error(deployed.emulator.state, "solana-validator", "/etc/kubernetes/kubelet.yaml")
    message = _memory_manager_change_refused(deployed)
    assert "talosctl read /etc/kubernetes/kubelet.yaml on 127.0.1.20 printed nothing" in message, message
    read_error(deployed.emulator.state, "solana-validator", "/etc/kubernetes/kubelet.yaml", on=False)
    again = deployed("worker", *MORE_KUBE_RESERVED)
    assert "solana-validator: the memory manager's inputs change" in "\n".join(again.failure_messages())


def _worker_refused_with_schematic(deployed, text: str | None) -> str:
    """Run the worker stage with the validator's schematic file holding text (None: removed), then
    put the file back; the stage must fail with nothing applied. Its failure messages, one line."""
    path = deployed.out / "solana-validator.schematic.yaml"
    original = path.read_text()
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    try:
        refused = deployed("worker")
    finally:
        path.write_text(original)
    assert refused.rc != 0
    assert task_results(refused, WORKER_APPLY) == {}, "nothing was applied"
    return " ".join("\n".join(refused.failure_messages()).split())


def test_a_schematic_file_the_factory_registers_under_another_id_leaves_the_validator_untouched(deployed):
    """The worker stage registers the schematic file generate.yml wrote and checks the ID the
    factory computed against the installer this run's inventory gives the node: a file rendered
    with other variables (here its huge pages edited), or one the factory refuses, stops the node
    before it is touched."""
    text = (deployed.out / "solana-validator.schematic.yaml").read_text()
    edited = text.replace("hugepages=50000", "hugepages=40000")
    assert edited != text
    message = _worker_refused_with_schematic(deployed, edited)
    edited_id = schematic.schematic_id(yaml.safe_load(edited))
    assert f"solana-validator: the Image Factory at http://127.0.1.5:5000 registered solana-validator.schematic.yaml " \
           f"as {edited_id}, but this run's inventory installs" in message, message
    # a schematic the factory refuses (a misspelt field: 400) stops its node the same way
    message = _worker_refused_with_schematic(deployed, text.replace("extraKernelArgs:", "extraKernelArg:"))
    assert "solana-validator: the Image Factory at http://127.0.1.5:5000 did not register " \
           "solana-validator.schematic.yaml (Status code was 400" in message, message


def test_a_missing_schematic_file_stops_its_validator_and_names_the_file(deployed):
    """A node's schematic file missing from the output (generate.yml not run for it) is named on its
    own host and stops it before it is touched. The file lookup's errors='ignore' used to drop every
    node's file for one missing: nothing was registered, every node's check was skipped, and the
    validator was applied (here its schematic was registered by the deployment; on a first install
    the factory would not know it)."""
    message = _worker_refused_with_schematic(deployed, None)
    assert re.search(r"solana-validator: \S*/solana-validator\.schematic\.yaml is missing: run playbooks/generate\.yml "
                     r"with this inventory first; this node was not touched\.", message), message


def test_a_memory_manager_change_on_a_running_validator_is_refused_then_performed_when_opted_in(
        deployed, module, talosctl):
    """The kubelet refuses to start against a memory_manager_state written under other
    reservations, and Talos never clears it: the worker stage refuses the change, untouched;
    opted in, it drains, stages, wipes EPHEMERAL, reboots once, checks and uncordons."""
    more = MORE_KUBE_RESERVED
    message = _memory_manager_change_refused(deployed)
    assert "solana-validator: the memory manager's inputs change" in message, message
    assert "talos_solana_worker_memory_manager_reset=true" in message, message
    # the validator still runs, its kubelet up
    assert deployed("verify").rc == 0

    before = len(reboots(deployed.emulator))
    performed = deployed("worker", *more, "-e", "talos_solana_worker_memory_manager_reset=true")
    assert performed.rc == 0, performed.failure_messages()
    wipe = "Wipe EPHEMERAL (the kubelet's state) and reboot into the staged configuration"
    (reset,) = task_results(performed, wipe).values()
    assert reset["changed"] and reset["wiped"] == ["EPHEMERAL"]
    assert reboots(deployed.emulator)[before:] == [("solana-validator", "rebooting"), ("solana-validator", "booted")]
    # the config stayed (STATE kept) and is the new one; the kubelet runs with the new reservations
    facts = module("talos_node_facts", {"node": "127.0.1.20", "endpoint": "127.0.1.11", "gather": ["kubelet"],
                                        "talosconfig": str(deployed.out / "talosconfig"),
                                        "talosctl_path": str(talosctl)})[0]
    # (20Gi kube + 16Gi system reserved + 32Gi eviction) / 2 NUMA nodes = 34Gi
    assert facts["kubelet_config"]["reservedMemory"] == [{"numaNode": 0, "limits": {"memory": "34816Mi"}},
                                                         {"numaNode": 1, "limits": {"memory": "34816Mi"}}]
    api = deployed.core_api()
    node = api.read_node("solana-validator")
    assert not node.spec.unschedulable, "uncordoned"
    again = deployed("worker", *more)
    assert again.unchanged, again.failure_messages() or again.stats
    assert deployed("verify", *more).rc == 0
