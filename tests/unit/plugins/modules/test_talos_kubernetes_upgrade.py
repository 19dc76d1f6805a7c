"""talos_kubernetes_upgrade: the argv it runs, refused paths and a cluster on target never reach
talosctl upgrade-k8s, and what its log says was changed (or, on failure, already changed)."""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.solanaops.talos.plugins.modules import talos_kubernetes_upgrade

NODES = ["127.1.0.11", "127.1.0.12", "127.1.0.13", "127.1.0.20"]
# talosctl upgrade-k8s' own lines (pkg/cluster/kubernetes talos_managed.go and kubelet.go, go-kubernetes ssa/cli)
LOG = """\
automatically detected the lowest Kubernetes version 1.36.3
discovered controlplane nodes ["127.1.0.11" "127.1.0.12" "127.1.0.13"]
 > "127.1.0.11": pre-pulling registry.k8s.io/kube-apiserver:v1.37.2
updating "kube-apiserver" to version "1.37.2"
 > "127.1.0.11": starting update
 > update kube-apiserver: 1.36.3 -> 1.37.2
 > "127.1.0.11": machine configuration patched
 > "127.1.0.11": waiting for kube-apiserver pod update
 > "127.1.0.11": kube-apiserver: waiting, config version mismatch: got "1", expected "2"
 < "127.1.0.11": successfully updated
 > "127.1.0.12": starting update
 > update kube-apiserver: 1.36.3 -> 1.37.2
 > "127.1.0.12": machine configuration patched
 < "127.1.0.12": successfully updated
 > "127.1.0.13": starting update
 > update kube-apiserver: 1.36.3 -> 1.37.2
updating kube-proxy to version "1.37.2"
 > "127.1.0.11": starting update
updating manifests
 < configured DaemonSet/kube-system/kube-proxy
--- a/DaemonSet/kube-system/kube-proxy
+++ b/DaemonSet/kube-system/kube-proxy
-        image: registry.k8s.io/kube-proxy:v1.36.3
+        image: registry.k8s.io/kube-proxy:v1.37.2
 < created Secret/kube-system/bootstrap-token-abcdef
+stringData:
+  token-secret: 0123456789abcdef
 > skipped ServiceAccount/kube-system/coredns: no changes
waiting for kubernetes objects to be fully reconciled
"""


class FakeTalos:
    """`talosctl get version` for each node, and `upgrade-k8s`, which prints ``log`` (and fails with ``fail``)."""

    def __init__(self, versions, log=LOG, fail=None):
        self.versions, self.log, self.fail = versions, log, fail
        self.commands = []

    def __call__(self, argv):
        args = argv[1:]
        self.commands.append(args)
        if args[:2] == ["version", "--client"]:
            return 0, "Client:\n\tTalos v1.14.1\n", ""
        if args[:2] == ["get", "version"]:
            nodes = args[args.index("--nodes") + 1].split(",")
            return 0, "\n".join(json.dumps({"node": n, "metadata": {"id": "version"},
                                            "spec": {"version": self.versions[n]}}) for n in nodes), ""
        if args[0] == "upgrade-k8s":
            return (1, self.log, self.fail) if self.fail else (0, self.log, "")
        raise AssertionError(f"unexpected talosctl {args}")


@pytest.fixture
def run(run_module):
    def run_(talos, check_mode=False, **params):
        defaults = {"node": NODES[0], "nodes": NODES, "version": "1.37.2", "running": ["v1.36.3"],
                    "kubelets": ["v1.36.3"]}
        return run_module(talos_kubernetes_upgrade, talos, defaults, check_mode, **params)
    return run_


def upgrades(talos):
    return [args for args in talos.commands if args[0] == "upgrade-k8s"]


V114 = dict.fromkeys(NODES, "v1.14.1")


def test_upgrades_through_talosctl_and_reports_what_it_changed(run):
    talos = FakeTalos(V114)
    result = run(talos, running=["v1.36.3", "v1.37.2"], endpoint="127.1.0.12", upgrade_kubelet=False)
    assert not result["failed"] and result["changed"]
    assert upgrades(talos) == [["upgrade-k8s", "--from", "1.36.3", "--to", "1.37.2", "--with-docs=false",
                                "--with-examples=false", "--upgrade-kubelet=false", "--pre-pull-images=true",
                                "--nodes", "127.1.0.11", "--endpoints", "127.1.0.12"]]
    assert (result["from_version"], result["to_version"]) == ("1.36.3", "1.37.2")
    assert result["talos_versions"] == V114
    # an update counts once its node's config was patched (127.1.0.13's was not, in this log)
    assert result["updated"] == [
        {"component": "kube-apiserver", "node": n, "from": "1.36.3", "to": "1.37.2"} for n in NODES[:2]]
    assert result["manifests"] == ["configured DaemonSet/kube-system/kube-proxy",
                                   "created Secret/kube-system/bootstrap-token-abcdef"]


def test_check_mode_plans_and_what_is_on_target_is_left_alone(run):
    talos = FakeTalos(V114)
    planned = run(talos, check_mode=True)
    assert planned["changed"] and planned["needed"] and not planned["failed"]
    there = run(talos, running=["v1.37.2"], kubelets=["v1.37.2"], version="v1.37.2")
    assert not there["changed"] and not there["needed"] and not there["failed"]
    # the kubelets left to the caller: talosctl has nothing to do once the control plane is there
    kubelets_left = run(talos, running=["v1.37.2"], kubelets=["v1.36.3"], upgrade_kubelet=False)
    assert not kubelets_left["needed"] and kubelets_left["from_version"] == "1.36.3"
    assert upgrades(talos) == []


@pytest.mark.parametrize(("running", "version", "versions", "message"), [
    (["v1.35.4", "v1.36.3"], "1.37.2", V114, r"skips 1.36"),
    (["v1.37.2"], "1.36.3", V114, r"no supported downgrade"),
    (["v1.36.3"], "latest", V114, r"version 'latest' is not a Kubernetes release such as 1.37.2"),
    (["v1.36.3"], "1.37.0-rc.0", V114, r"is not a Kubernetes release"),
    (["v1.36.3"], "1.37.2", {**V114, NODES[3]: "v1.13.9"}, r"Talos v1.13 runs Kubernetes v1.31 to v1.36, not 1.37.2"),
])
def test_a_refused_path_never_reaches_upgrade_k8s(run, running, version, versions, message):
    talos = FakeTalos(versions)
    result = run(talos, running=running, version=version)
    assert result["failed"] and result["error"] == "RefusedPath"
    assert re.search(message, result["msg"])
    assert "nothing was changed" in result["msg"]
    assert upgrades(talos) == []


def test_a_failure_says_what_was_already_upgraded_and_never_returns_the_manifest_diffs(run):
    stopped = LOG.split("updating kube-proxy", maxsplit=1)[0]
    failed = run(FakeTalos(V114, log=stopped, fail="error updating node: context deadline exceeded"))
    assert failed["failed"] and failed["error"] == "PartlyUpgraded" and failed["changed"]
    assert len(failed["updated"]) == 2 and "re-run" in failed["msg"]
    assert failed["log"][-1] == ' > update kube-apiserver: 1.36.3 -> 1.37.2' and "stdout" not in failed
    late = run(FakeTalos(V114, fail="error waiting for objects: timeout"))
    assert late["failed"] and late["manifests"] and "token-secret" not in repr(late)
    assert ' < created Secret/kube-system/bootstrap-token-abcdef' in late["log"]
    # a failure before the first change (an image that cannot be pulled) changed nothing
    early = run(FakeTalos(V114, log=LOG.split('updating "kube-apiserver"', maxsplit=1)[0],
                          fail="error pre-pulling images: rpc error: code = NotFound"))
    assert early["failed"] and early["error"] == "CommandFailed" and not early["changed"]
    assert early["updated"] == [] and "pre-pulling" in early["msg"]


def test_a_dry_run_pulls_and_checks_and_force_runs_talosctl_with_nothing_left(run):
    talos = FakeTalos(V114)
    pulled = run(talos, upgrade_kubelet=True, dry_run=True)
    assert not pulled["failed"] and not pulled["changed"] and pulled["needed"]
    assert upgrades(talos)[-1][-6:] == ["--pre-pull-images=true", "--dry-run", "--nodes", "127.1.0.11",
                                        "--endpoints", "127.1.0.11"]
    forced = run(talos, running=["v1.37.2"], kubelets=["v1.37.2"], force=True)
    assert forced["needed"] and not forced["failed"] and len(upgrades(talos)) == 2
