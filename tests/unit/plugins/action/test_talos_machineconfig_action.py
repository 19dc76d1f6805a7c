"""Unit tests for the talos_machineconfig action plugin: a comparison with the render record is
answered on the controller, without starting the module; anything else runs the module."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from ansible import constants as C
from ansible_collections.solanaops.talos.plugins.action.talos_machineconfig import ActionModule
from ansible_collections.solanaops.talos.plugins.module_utils import machineconfig

MODULE_RESULT = {"changed": True, "from": "the module"}


@pytest.fixture(autouse=True)
def run_tmp(tmp_path, monkeypatch):
    """The run's local temporary directory (where the talosctl version is remembered): a new run per test."""
    path = tmp_path / "ansible-local"
    path.mkdir()
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(path))
    return path


@pytest.fixture
def node(tmp_path):
    """A node rendered before: its config (private), its record, the bundle and a talosctl."""
    talosctl = tmp_path / "talosctl"
    # counts its calls in calls.log
    talosctl.write_text(f"#!/bin/sh\necho called >> {tmp_path}/calls.log\nprintf 'Client:\\n\\tTalos v1.13.9\\n'\n")
    talosctl.chmod(0o755)
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("bundle\n")
    patch = tmp_path / "patch.yaml"
    patch.write_text("machine: {}\n")
    args = {"dest": str(tmp_path / "cp-1.yaml"), "secrets_path": str(secrets), "cluster_name": "solana-cluster",
            "cluster_endpoint": "https://10.0.1.10:6443", "machine_type": "controlplane",
            "talos_version": "v1.13", "patches": [{"machine": {"sysctls": {"a": "1"}}}, f"@{patch}"],
            "validate": True, "record": str(tmp_path / "cp-1.record.json"), "talosctl_path": str(talosctl)}
    dest = tmp_path / "cp-1.yaml"
    dest.write_text("version: v1alpha1\n")
    dest.chmod(0o600)
    params = {**{option: spec.get("default") for option, spec in machineconfig.ARGUMENT_SPEC.items()}, **args}
    inputs = machineconfig.inputs_sha256(params, "bundle\n", "v1.13.9")
    record = machineconfig.record_text(inputs, machineconfig.sha256(dest.read_text()))
    (tmp_path / "cp-1.record.json").write_text(record)
    return args


def run(args, transport="local", become=False, environment=None):
    """The action plugin's result, and whether it started the module."""
    task = mock.MagicMock(args=args, async_val=0, check_mode=False, environment=environment)
    connection = mock.MagicMock(transport=transport)
    connection._shell.tmpdir = None
    play_context = mock.MagicMock(become=become)
    action = ActionModule(task, connection, play_context, loader=None, templar=None)
    with mock.patch.object(ActionModule, "_execute_module", return_value=dict(MODULE_RESULT)) as module, \
            mock.patch.object(ActionModule, "_early_needs_tmp_path", return_value=False), \
            mock.patch.object(ActionModule, "_remove_tmp_path"):
        result = action.run(task_vars={})
    return result, module.called


def test_an_up_to_date_node_is_answered_without_the_module(node):
    result, module_ran = run(node)
    assert not module_ran
    assert result == {"changed": False, "dest": node["dest"], "talosctl_version": "v1.13.9", "up_to_date": True,
                      "sha256": machineconfig.sha256("version: v1alpha1\n")}


def test_talosctl_from_path_is_answered_without_the_module_when_the_task_sets_no_environment(node, monkeypatch):
    """ansible-core 2.19 gives a task without an environment of its own [{}], which changes no PATH."""
    monkeypatch.setenv("PATH", f"{os.path.dirname(node['talosctl_path'])}{os.pathsep}{os.environ['PATH']}")
    args = {key: value for key, value in node.items() if key != "talosctl_path"}
    result, module_ran = run(args, environment=[{}])
    assert not module_ran and result["up_to_date"] and result["talosctl_version"] == "v1.13.9"


def test_record_only_answers_a_stale_node_without_the_module(node):
    with open(node["dest"], "a") as handle:
        handle.write("# edited by hand\n")
    result, module_ran = run({**node, "record_only": True})
    assert not module_ran
    assert result == {"changed": False, "dest": node["dest"], "talosctl_version": "v1.13.9", "up_to_date": False}


@pytest.mark.parametrize("change", ["edited", "input", "patch file", "talosctl", "mode", "no record", "bundle"])
def test_a_node_that_is_not_up_to_date_is_rendered_by_the_module(node, tmp_path, change):
    args = dict(node)
    if change == "edited":
        with open(node["dest"], "a") as handle:
            handle.write("# edited by hand\n")
    elif change == "input":
        args["install_image"] = "factory.talos.dev/metal-installer/def456:v1.13.9"
    elif change == "patch file":
        (tmp_path / "patch.yaml").write_text("machine: {sysctls: {b: '2'}}\n")
    elif change == "talosctl":
        (tmp_path / "talosctl").write_text("#!/bin/sh\nprintf 'Client:\\n\\tTalos v1.13.10\\n'\n")
    elif change == "mode":
        os.chmod(node["dest"], 0o644)
    elif change == "no record":
        os.remove(node["record"])
    else:
        (tmp_path / "secrets.yaml").write_text("another bundle\n")
    result, module_ran = run(args)
    assert module_ran and result == MODULE_RESULT


def test_a_vaulted_bundle_is_compared_by_its_content(node, tmp_path):
    # the file lookup that decrypts it drops the trailing newline
    args = {key: value for key, value in node.items() if key != "secrets_path"}
    result, module_ran = run({**args, "secrets_content": "bundle"})
    assert not module_ran and result["up_to_date"]
    result, module_ran = run({**args, "secrets_content": "another bundle"})
    assert module_ran and result == MODULE_RESULT


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({}, {"transport": "ssh"}),
        ({}, {"become": True}),
        ({}, {"environment": [{"PATH": "/opt/talos/bin"}], "drop_talosctl_path": True}),
        ({"talosctl_path": "/nonexistent/talosctl"}, {}),
        ({"secrets_path": "/nonexistent/secrets.yaml", "record_only": True}, {}),
        ({"record": None}, {}),
        ({"machine_type": "etcd"}, {}),
        ({"secrets_content": "bundle"}, {}),
    ],
    ids=["another-connection", "become", "task-environment", "no-talosctl", "no-bundle", "no-record",
         "invalid-argument", "exclusive-arguments"],
)
def test_what_the_controller_cannot_answer_for_the_module_runs_the_module(node, overrides, where):
    args = {**node, **overrides}
    if where.pop("drop_talosctl_path", False):
        del args["talosctl_path"]
    result, module_ran = run({key: value for key, value in args.items() if value is not None}, **where)
    assert module_ran and result == MODULE_RESULT


def test_async_runs_the_module(node):
    task = mock.MagicMock(args=node, async_val=10, check_mode=False, environment=None)
    connection = mock.MagicMock(transport="local", has_native_async=False)
    connection._shell.tmpdir = None
    action = ActionModule(task, connection, mock.MagicMock(become=False), loader=None, templar=None)
    with mock.patch.object(ActionModule, "_execute_module", return_value=dict(MODULE_RESULT)) as module, \
            mock.patch.object(ActionModule, "_early_needs_tmp_path", return_value=False):
        assert action.run(task_vars={}) == MODULE_RESULT
    assert module.call_args.kwargs["wrap_async"]


def test_talosctl_is_asked_its_version_once_per_binary_in_a_run(node, tmp_path):
    calls = tmp_path / "calls.log"
    for _node in range(3):
        assert run(node)[0]["up_to_date"]
    assert calls.read_text().count("called") == 1, "the later nodes read the version the first asked"
    # another binary at the same path (an upgrade mid-run): asked again, and found different
    (tmp_path / "talosctl").write_text(f"#!/bin/sh\necho called >> {calls}\nprintf 'Client:\\n\\tTalos v1.13.10\\n'\n")
    result, module_ran = run(node)
    assert module_ran and result == MODULE_RESULT
    assert calls.read_text().count("called") == 2


def test_a_talosctl_gone_before_its_version_is_asked_runs_the_module(node, monkeypatch):
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path) == node["talosctl_path"]:
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    result, module_ran = run(node)
    assert module_ran and result == MODULE_RESULT
