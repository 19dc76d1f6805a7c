"""playbooks/upgrade_kubernetes.yml against the testbed: the real talosctl upgrade-k8s patches
emulated machines whose control planes run the real Kubernetes of the version their config names
(two builds, testbed/versions.env), so the version each component reports afterwards comes from the
binary that runs, never from the emulator's say-so."""

from __future__ import annotations

import json
import stat
import subprocess
import time
import urllib.request

from conftest import PINS, REPO

ADDRESSES = {"controlplane-1": "127.0.1.11", "controlplane-2": "127.0.1.12", "controlplane-3": "127.0.1.13"}
RUNNING = PINS["KUBERNETES_VERSION"].lstrip("v")
TARGET = PINS["KUBERNETES_UPGRADE_VERSION"].lstrip("v")
TO_TARGET = ["-e", f"talos_cluster_kubernetes_version={TARGET}"]


def api_server_versions(deployment) -> dict[str, str]:
    """What each control plane's kube-apiserver says it is (GET /version: its own build info)."""
    _server, context = deployment.api_tls(deployment.out.parent)
    versions = {}
    for name, address in ADDRESSES.items():
        with urllib.request.urlopen(f"https://{address}:6443/version", context=context, timeout=5) as response:
            versions[name] = json.load(response)["gitVersion"]
    return versions


def kubelet_versions(deployment) -> dict[str, str]:
    """Read through the VIP, whose API server may be restarting into another version mid-upgrade
    (the connection reset, as on a real cluster): retried for up to a minute."""
    from urllib3.exceptions import HTTPError

    api = deployment.core_api()
    deadline = time.monotonic() + 60
    while True:
        try:
            return {node.metadata.name: node.status.node_info.kubelet_version for node in api.list_node().items}
        except HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_kubernetes_goes_one_minor_up_through_talos_resuming_after_an_interruption_then_nothing_changes(
        upgrade_kube, deployed):
    assert set(kubelet_versions(deployed).values()) == {f"v{RUNNING}"}

    # site.yml with the new version must not restart every component at once through an apply
    refused = deployed("site", *TO_TARGET)
    assert refused.rc != 0
    assert any(f"changes Kubernetes on a running node (kubelet v{RUNNING} -> v{TARGET}" in message
               and "playbooks/upgrade_kubernetes.yml" in message for message in refused.failure_messages()), \
        refused.failure_messages()

    # a downgrade is refused before anything is touched, even in check mode
    downgrade = deployed("upgrade_kubernetes", "--check", "-e", "talos_cluster_kubernetes_version=1.36.0")
    assert downgrade.rc != 0 and any("no supported downgrade" in m for m in downgrade.failure_messages())

    # check mode: the plan, nothing touched
    planned = deployed("upgrade_kubernetes", "--check", *TO_TARGET)
    assert planned.rc == 0, planned.failure_messages()
    assert f"-> v{TARGET}" in planned.stdout
    assert not (deployed.out / "etcd-snapshots").exists()
    assert set(kubelet_versions(deployed).values()) == {f"v{RUNNING}"}

    # an image the registry lacks (a patch release nobody built here) stops the run at talosctl's
    # pre-pull, before any change: nothing on the nodes moved, and the report says so
    unpullable = ".".join([*TARGET.split(".")[:2], str(int(TARGET.split(".")[2]) + 1)])
    stopped = deployed("upgrade_kubernetes", "-e", f"talos_cluster_kubernetes_version={unpullable}")
    assert stopped.rc != 0
    assert any("pre-pull" in message and unpullable in message for message in stopped.failure_messages()), \
        stopped.failure_messages()
    report = json.loads((deployed.out / "kubernetes-upgrade-report.json").read_text())
    # the images are pulled before the snapshot: a run that cannot pull takes none
    assert report["failed"]["task"].startswith("Pull every new image") and report["updated"] == []
    assert report["snapshot"] is None and not (deployed.out / "etcd-snapshots").exists()
    assert report["kubelets"] == []
    assert set(api_server_versions(deployed).values()) == set(kubelet_versions(deployed).values()) == {f"v{RUNNING}"}

    # interrupted once the first API server runs the new version, talosctl killed with the run (a
    # controller or execution environment stopped)...
    def first_api_server_upgraded():
        try:
            return f"v{TARGET}" in api_server_versions(deployed).values()
        except OSError:
            return False

    interrupted = deployed("upgrade_kubernetes", *TO_TARGET, stop_when=first_api_server_upgraded)
    assert interrupted.rc != 0
    subprocess.run(["pkill", "-TERM", "-f", f"talosctl upgrade-k8s --from {RUNNING} --to {TARGET}"], check=False)
    assert set(kubelet_versions(deployed).values()) == {f"v{RUNNING}"}, "stopped before the kubelets"
    # ...the re-run learns how the job ended, plans again from what the cluster runs, has talosctl
    # finish the control plane (skipping what is done), then the kubelets, the validator's after its
    # pre-reboot command
    hook_log = deployed.out.parent / "pre-reboot.log"
    hook = ["sh", "-c", f'echo "$TALOS_NODE $TALOS_NODE_IP" >> {hook_log}']
    started = time.monotonic()
    upgraded = deployed("upgrade_kubernetes", *TO_TARGET, "-e", json.dumps({"talos_upgrade_pre_reboot_command": hook}))
    assert upgraded.rc == 0, upgraded.failure_messages()
    assert "the upgrade an interrupted run started has ended" in upgraded.stdout
    assert hook_log.read_text() == "solana-validator 127.0.1.20\n"
    print(f"resumed upgrade: {time.monotonic() - started:.0f} s")

    # every component runs the new version: the real API servers say so, the Nodes' kubelets too
    assert set(api_server_versions(deployed).values()) == {f"v{TARGET}"}
    assert set(kubelet_versions(deployed).values()) == {f"v{TARGET}"}
    summary = (deployed.out / "verify" / "summary.txt").read_text()
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"{component} version" in summary
    report = json.loads((deployed.out / "kubernetes-upgrade-report.json").read_text())
    assert report["failed"] is None and report["running"] == [f"v{TARGET}"] and report["to"] == TARGET
    # the resumed talosctl did what the first left: not the first API server again
    assert report["updated"] and ("kube-apiserver", "127.0.1.11") not in {
        (u["component"], u["node"]) for u in report["updated"]}
    assert report["kubelets"] == [*ADDRESSES, "solana-validator"]
    # every node drained for its kubelet is back in service, no marker left
    assert deployed.cordoned() == []
    assert not list((deployed.out / "upgrading").iterdir())
    snapshot = report["snapshot"]
    assert snapshot["size"] > 0 and stat.S_IMODE(REPO.joinpath(snapshot["dest"]).stat().st_mode) == 0o600
    assert not (deployed.out / "kubernetes-upgrading").exists()

    # on target: nothing to do, and site.yml finds the nodes' configs as it renders them
    again = deployed("upgrade_kubernetes", *TO_TARGET)
    assert again.unchanged, (again.changed, again.failure_messages())
    site = deployed("site", *TO_TARGET)
    assert site.unchanged, (site.changed, site.failure_messages())
