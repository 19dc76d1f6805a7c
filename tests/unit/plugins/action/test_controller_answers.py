"""Unit tests for the action plugins that answer on the controller (plugin_utils/controller_answer):
talos_secrets answers for a bundle that exists, talos_verify_report writes the report there,
talos_preflight checks the inventory there, talos_client_config for a talosconfig that names the
endpoints, talos_kubeconfig for a kubeconfig that names the known CA and server, node_taints for
Nodes observed with their taints; any other case, another connection or become runs the module."""

from __future__ import annotations

import base64
import json
import os
from unittest import mock

import pytest
from ansible_collections.solanaops.talos.plugins.action import (
    node_taints,
    talos_client_config,
    talos_kubeconfig,
    talos_preflight,
    talos_secrets,
    talos_verify_report,
)
from ansible_collections.solanaops.talos.plugins.plugin_utils import controller_answer

MODULE_RESULT = {"changed": True, "from": "the module"}
CHECK = {"name": "node Ready", "subject": "validator-1", "passed": True, "expected": True, "observed": True}


def run(plugin, args, transport="local", become=False, check_mode=False, environment=None, async_val=0):
    """The action plugin's result, and whether it started the module."""
    task = mock.MagicMock(args=args, async_val=async_val, check_mode=check_mode, environment=environment)
    connection = mock.MagicMock(transport=transport)
    connection._shell.tmpdir = None
    action = plugin.ActionModule(task, connection, mock.MagicMock(become=become), loader=None, templar=None)
    with mock.patch.object(plugin.ActionModule, "_execute_module", return_value=dict(MODULE_RESULT)) as module, \
            mock.patch.object(plugin.ActionModule, "_early_needs_tmp_path", return_value=False), \
            mock.patch.object(plugin.ActionModule, "_remove_tmp_path"):
        result = action.run(task_vars={})
    return result, module.called


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text("cluster:\n  id: x\n")
    path.chmod(0o600)
    return path


def test_an_existing_bundle_is_answered_without_the_module(bundle):
    result, module_ran = run(talos_secrets, {"path": str(bundle), "talos_version": "v1.13"})
    assert not module_ran
    assert result == {"changed": False, "path": str(bundle), "encrypted": False}


def test_a_vaulted_bundle_readable_by_others_is_answered_with_a_warning(bundle):
    bundle.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    bundle.chmod(0o644)
    result, module_ran = run(talos_secrets, {"path": str(bundle)})
    assert not module_ran and result["encrypted"] is True
    assert result["warnings"] == [f"{bundle} is readable by group or others; it holds the cluster's keys: chmod 0600"]


def test_a_missing_bundle_runs_the_module(tmp_path):
    result, module_ran = run(talos_secrets, {"path": str(tmp_path / "secrets.yaml")})
    assert module_ran and result["from"] == "the module"


@pytest.mark.parametrize("transport, become", [("ssh", False), ("local", True)])
def test_elsewhere_or_as_another_user_the_module_runs(bundle, transport, become):
    _result, module_ran = run(talos_secrets, {"path": str(bundle)}, transport=transport, become=become)
    assert module_ran


def test_arguments_the_module_would_refuse_run_it(bundle):
    _result, module_ran = run(talos_secrets, {"path": str(bundle), "no_such_option": 1})
    assert module_ran


def report_args(tmp_path, **extra):
    return {"results": [CHECK], "json_path": str(tmp_path / "report.json"),
            "summary_path": str(tmp_path / "summary.txt"), **extra}


def test_the_report_is_written_on_the_controller(tmp_path):
    old_umask = os.umask(0o022)
    try:
        result, module_ran = run(talos_verify_report, report_args(tmp_path, markdown_path=str(tmp_path / "s.md")))
    finally:
        os.umask(old_umask)
    assert not module_ran
    assert (result["passed_count"], result["failed_count"], result["written"]) == (1, 0, True)
    assert json.loads((tmp_path / "report.json").read_text())["results"][0]["subject"] == "validator-1"
    assert (tmp_path / "summary.txt").read_text().splitlines() == result["summary_lines"]
    assert "validator-1" in (tmp_path / "s.md").read_text()
    assert oct((tmp_path / "report.json").stat().st_mode & 0o777) == "0o644"
    # nothing left behind by the atomic writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "s.md", "summary.txt"]


def test_a_rewritten_report_keeps_its_mode(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    # not mkstemp's 0600: the file's own mode, kept
    (tmp_path / "report.json").chmod(0o640)
    run(talos_verify_report, report_args(tmp_path))
    assert json.loads((tmp_path / "report.json").read_text())["passed"] == 1
    assert oct((tmp_path / "report.json").stat().st_mode & 0o777) == "0o640"


def test_check_mode_writes_nothing(tmp_path):
    result, module_ran = run(talos_verify_report, report_args(tmp_path), check_mode=True)
    assert not module_ran and result["written"] is False and result["passed_count"] == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    {"results": [{"name": "no subject"}]},
    {"junit_path": "SAME"},
])
def test_a_report_the_module_would_refuse_runs_it(tmp_path, args):
    if args.get("junit_path") == "SAME":
        args = {"junit_path": str(tmp_path / "report.json")}
    result, module_ran = run(talos_verify_report, report_args(tmp_path, **args))
    assert module_ran and result["from"] == "the module"
    assert list(tmp_path.iterdir()) == []


def test_a_report_elsewhere_runs_the_module(tmp_path):
    _result, module_ran = run(talos_verify_report, report_args(tmp_path), transport="ssh")
    assert module_ran and list(tmp_path.iterdir()) == []


CLUSTER = {"talos_version": "v1.13.9", "kubernetes_version": "1.36.3", "vip": "10.0.1.10",
           "subnet": "10.0.1.0/24", "gateway": "10.0.1.1", "image_factory": "factory.talos.dev",
           "nameservers": ["10.0.1.1"], "ntp_servers": ["10.0.1.1"]}
CONTROLPLANES = [{"name": f"cp-{n}", "ip": f"10.0.1.1{n}", "role": "controlplane", "link": {"name": "enp1s0"}}
                 for n in (1, 2, 3)]


def test_the_inventory_check_runs_on_the_controller():
    result, module_ran = run(talos_preflight, {"cluster": CLUSTER, "nodes": CONTROLPLANES})
    assert not module_ran
    assert result == {"changed": False, "warnings_found": []}


def test_the_inventory_check_fails_listing_every_problem_as_the_module_would():
    nodes = CONTROLPLANES[:2] + [{**CONTROLPLANES[0], "ip": "10.0.1.10"}]
    result, module_ran = run(talos_preflight, {"cluster": CLUSTER, "nodes": nodes})
    assert not module_ran and result["failed"] is True
    assert result["msg"].startswith(f"the inventory has {len(result['errors'])} problem(s):\n- ")
    assert len(result["errors"]) >= 2  # the repeated name and the node on the VIP, at once
    assert all(error in result["msg"] for error in result["errors"])


def test_an_inventory_check_without_nodes_runs_the_module():
    _result, module_ran = run(talos_preflight, {"cluster": CLUSTER})
    assert module_ran


def test_a_warning_of_the_inventory_check_is_shown_as_the_module_would():
    result, module_ran = run(talos_preflight, {"cluster": CLUSTER, "nodes": CONTROLPLANES[:1]})
    assert not module_ran and "failed" not in result
    assert result["warnings"] == result["warnings_found"]
    assert len(result["warnings"]) == 1 and "single control-plane node has no failover" in result["warnings"][0]


@pytest.mark.parametrize("task", [{"environment": [{"HOME": "/elsewhere"}]}, {"async_val": 60}])
def test_a_task_with_its_own_environment_or_async_runs_the_module(bundle, task):
    _result, module_ran = run(talos_secrets, {"path": str(bundle)}, **task)
    assert module_ran


class Failing:
    """An action plugin whose answer fails unexpectedly."""
    class ActionModule(controller_answer.ControllerAnswer):
        def answer(self):
            raise TypeError("unexpected")


def test_an_error_of_the_answer_runs_the_module():
    """The module reports what it makes of the task, not a traceback of the controller's answer."""
    result, module_ran = run(Failing, {})
    assert module_ran and result["from"] == "the module"


def test_the_answer_sees_the_arguments_as_the_module_would(bundle):
    """Ansible's own str subclasses (tagged values) reach the answer as plain JSON types."""
    class Tagged(str):
        pass
    result, module_ran = run(talos_secrets, {"path": Tagged(str(bundle))})
    assert not module_ran and not isinstance(result["path"], Tagged)


TALOSCONFIG = """\
context: solana
contexts:
  solana:
    endpoints: [127.1.0.11, 127.1.0.12, 127.1.0.13]
    ca: Y2E=
    crt: Y3J0
    key: a2V5
"""


def _client_config(path, **overrides):
    return {"path": str(path), "secrets_path": "/out/secrets.yaml", "cluster_name": "solana",
            "cluster_endpoint": "https://127.1.0.10:6443", "endpoints": ["127.1.0.11", "127.1.0.12", "127.1.0.13"],
            **overrides}


def test_a_talosconfig_naming_the_endpoints_is_answered_without_the_module(tmp_path):
    (tmp_path / "talosconfig").write_text(TALOSCONFIG)
    result, module_ran = run(talos_client_config, _client_config(tmp_path / "talosconfig"))
    assert not module_ran
    assert result == {"changed": False, "path": str(tmp_path / "talosconfig"),
                      "endpoints": ["127.1.0.11", "127.1.0.12", "127.1.0.13"]}


@pytest.mark.parametrize(("overrides", "written"), [
    ({}, None),  # no talosconfig yet: the module generates it
    ({"endpoints": ["127.1.0.11"]}, TALOSCONFIG),  # other endpoints: the module sets them
    ({"nodes": ["127.1.0.11"]}, TALOSCONFIG),
    ({"cluster_name": "other"}, TALOSCONFIG),
    ({"secrets_content": "x"}, TALOSCONFIG),  # refused arguments: the module says why
])
def test_a_talosconfig_to_write_runs_the_module(tmp_path, overrides, written):
    if written:
        (tmp_path / "talosconfig").write_text(written)
    _result, module_ran = run(talos_client_config, _client_config(tmp_path / "talosconfig", **overrides))
    assert module_ran


CA = b"-----BEGIN CERTIFICATE-----\ncluster CA\n-----END CERTIFICATE-----\n"


def _kubeconfig_args(path, **overrides):
    return {"node": "127.1.0.11", "path": str(path), "server": "https://127.1.0.10:6443",
            "ca": base64.b64encode(CA).decode(), **overrides}


def test_a_kubeconfig_naming_the_known_ca_and_server_is_answered_without_a_fetch(tmp_path, kubeconfig_text):
    (tmp_path / "kubeconfig").write_text(kubeconfig_text("https://127.1.0.10:6443", 365, CA))
    result, module_ran = run(talos_kubeconfig, _kubeconfig_args(tmp_path / "kubeconfig"))
    assert not module_ran
    assert result["changed"] is False and result["server"] == "https://127.1.0.10:6443" and "expires" in result


@pytest.mark.parametrize(("overrides", "written"), [
    ({}, None),
    ({"ca": None}, {}),  # the CA not known: the module compares with a fetch
    ({}, {"ca": b"another CA"}),
    ({}, {"days": 10}),
    ({}, {"server": "https://127.1.0.11:6443"}),
])
def test_a_kubeconfig_to_compare_or_renew_runs_the_module(tmp_path, kubeconfig_text, overrides, written):
    if written is not None:
        (tmp_path / "kubeconfig").write_text(kubeconfig_text(**{"server": "https://127.1.0.10:6443", "ca": CA,
                                                                **written}))
    _result, module_ran = run(talos_kubeconfig, _kubeconfig_args(tmp_path / "kubeconfig", **overrides))
    assert module_ran


def test_with_become_the_kubeconfig_module_runs(tmp_path, kubeconfig_text):
    (tmp_path / "kubeconfig").write_text(kubeconfig_text("https://127.1.0.10:6443", 365, CA))
    _result, module_ran = run(talos_kubeconfig, _kubeconfig_args(tmp_path / "kubeconfig"), become=True)
    assert module_ran


TAINT = {"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}


def taint_args(observed_taints):
    return {"kubeconfig": "/srv/kubeconfig", "nodes": [{"name": "validator-1", "taints": [TAINT]}],
            "observed": [{"kind": "Node", "metadata": {"name": "validator-1"}, "spec": {"taints": observed_taints}}]}


def test_nodes_observed_with_their_taints_are_answered_without_the_module():
    result, module_ran = run(node_taints, taint_args([TAINT]))
    assert not module_ran and result == {"changed": False, "changed_nodes": []}


@pytest.mark.parametrize("observed_taints", [[], [{**TAINT, "value": "false"}]])
def test_a_node_observed_without_its_taint_runs_the_module(observed_taints):
    _result, module_ran = run(node_taints, taint_args(observed_taints))
    assert module_ran


@pytest.mark.parametrize("change", [
    pytest.param({"observed": []}, id="not-observed"),
    pytest.param({"observed": [{"kind": "Node", "metadata": {"name": "validator-2"}, "spec": {"taints": [TAINT]}}]},
                 id="another-node-observed"),
    pytest.param({"no_such_option": 1}, id="refused-argument"),
])
def test_a_node_not_observed_or_arguments_the_module_would_refuse_run_it(change):
    _result, module_ran = run(node_taints, {**taint_args([TAINT]), **change})
    assert module_ran
