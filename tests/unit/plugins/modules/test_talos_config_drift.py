"""talos_config_drift: every node's dry run in one module run, each answered on its own."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.modules import talos_config_drift

NO_CHANGES = "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nNo changes.\n"
A_CHANGE = ("Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n\nConfig diff:\n\n"
            "--- a\n+++ b\n@@ -1 +1 @@\n-  election-timeout: 5000\n+  election-timeout: 6000\n")


def cluster(argv):
    """cp-1 runs its config, cp-2 would change, the validator waits in maintenance mode, cp-3 is down."""
    node = argv[argv.index("--nodes") + 1] if "--nodes" in argv else None
    if argv[1] == "version":
        return 0, "Client:\nTalos v1.14.1\n", ""
    if node == "127.0.1.13":
        return 1, "", "rpc error: code = Unavailable desc = connection refused"
    if node == "127.0.1.20":
        if "--insecure" in argv:
            return 0, "", "Dry run summary:\nApplied configuration with a reboot (skipped in dry-run).\n"
        return 1, "", "rpc error: code = Unavailable desc = authentication handshake failed: x509: unknown authority"
    return 0, "", NO_CHANGES if node == "127.0.1.11" else A_CHANGE


def test_each_node_is_answered_on_its_own(run_module, tmp_path):
    nodes = []
    for name, address in [("cp-1", "127.0.1.11"), ("cp-2", "127.0.1.12"), ("cp-3", "127.0.1.13"),
                          ("validator", "127.0.1.20")]:
        (tmp_path / f"{name}.yaml").write_text("machine:\n  type: controlplane\n")
        nodes.append({"name": name, "node": address, "endpoint": None, "config_path": str(tmp_path / f"{name}.yaml")})
    result = run_module(talos_config_drift, cluster, {}, nodes=nodes)
    assert not result["failed"], result
    answers = result["nodes"]
    assert answers["cp-1"] == {"maintenance": False, "pending": False}
    assert answers["cp-2"] == {"maintenance": False, "pending": True}
    # a node in maintenance mode has nothing pending: all of its config is new, its play applies it
    assert answers["validator"] == {"maintenance": True, "pending": False}
    assert answers["cp-3"]["failed"] and answers["cp-3"]["error"] == "NodeUnreachable", answers["cp-3"]
    assert "on cp-3" in answers["cp-3"]["msg"]
    assert result["changed"] is False


def test_a_missing_config_fails_before_any_node_is_asked(run_module, tmp_path):
    asked = []

    def talos(argv):
        asked.append(argv)
        return 0, "", NO_CHANGES

    result = run_module(talos_config_drift, talos, {}, nodes=[
        {"name": "cp-1", "node": "127.0.1.11", "endpoint": None, "config_path": str(tmp_path / "cp-1.yaml")}])
    assert result["failed"] and "no rendered config at" in result["msg"], result
    assert asked == []


def test_parallel_below_one_is_refused_before_any_node_is_asked(run_module, tmp_path):
    asked = []

    def talos(argv):
        asked.append(argv)
        return 0, "", NO_CHANGES

    (tmp_path / "cp-1.yaml").write_text("machine:\n  type: controlplane\n")
    result = run_module(talos_config_drift, talos, {}, parallel=0, nodes=[
        {"name": "cp-1", "node": "127.0.1.11", "endpoint": None, "config_path": str(tmp_path / "cp-1.yaml")}])
    assert result["failed"] and result["msg"] == "parallel must be 1 or more, got 0", result
    assert [argv for argv in asked if argv[1] != "version"] == []


def test_a_failed_dry_run_that_quotes_the_config_shows_none_of_its_secrets(monkeypatch, capsys, tmp_path):
    # the real AnsibleModule, which masks no_log_values in what the module prints
    token, secret = "a1b2c3.d4e5f6a7b8c9d0e1", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    key_line = "MHcCAQEEIBkAzbpT1nJ8pD0Q2rmIr5Z7OeMtJxYwUHnhVQFsDtQYoAoGCCqGSM49"
    key = f"-----BEGIN EC PRIVATE KEY-----\n{key_line}\n-----END EC PRIVATE KEY-----\n"
    config = tmp_path / "validator.yaml"
    config.write_text(f"machine:\n  type: worker\n  token: {token}\n  ca:\n    key: |\n"
                      + "".join(f"      {line}\n" for line in key.splitlines())
                      + f"cluster:\n  secret: {secret}\n")

    def run_command(_module, argv, **_kwargs):
        if argv[1] == "version":
            return 0, "Client:\nTalos v1.14.1\n", ""
        return 1, "", f"error applying: token: {token} secret: {secret}\n{key_line}\n"

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    with patch_module_args({"talosctl_path": "/bin/true", "nodes": [
            {"name": "validator", "node": "127.0.1.20", "config_path": str(config)}]}), pytest.raises(SystemExit):
        talos_config_drift.main()
    printed = capsys.readouterr().out
    answer = json.loads(printed)["nodes"]["validator"]
    assert answer["failed"] and "********" in answer["stderr"], answer
    for value in (token, secret, key_line):
        assert value not in printed
