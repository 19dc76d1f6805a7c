"""Each module against the real talosctl (offline commands only: nothing contacts a node)."""

from __future__ import annotations

import stat
import subprocess

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import secret_files
from conftest import leaked_secrets

CLUSTER = {"cluster_name": "it-cluster", "cluster_endpoint": "https://127.0.1.10:6443"}


def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def secrets(module, talosctl, tmp_path):
    path = tmp_path / "secrets.yaml"
    result, _run = module("talos_secrets", {"path": str(path), "talosctl_path": str(talosctl)})
    assert result["changed"] and path.exists()
    return path


def test_secrets_are_generated_once_private(module, talosctl, secrets):
    assert mode_of(secrets) == 0o600
    before = secrets.read_bytes()
    result, _run = module("talos_secrets", {"path": str(secrets), "talosctl_path": str(talosctl)})
    assert result["changed"] is False
    assert secrets.read_bytes() == before


def test_secrets_check_mode_writes_nothing(module, talosctl, tmp_path):
    path = tmp_path / "secrets.yaml"
    result, _run = module("talos_secrets", {"path": str(path), "talosctl_path": str(talosctl)}, "--check")
    assert result["changed"] is True
    assert not path.exists()


def test_vault_encrypted_bundle_is_kept_and_usable(module, talosctl, secrets, tmp_path):
    plain = secrets.read_text()
    password = tmp_path / "vault-pass"
    password.write_text("correct horse battery staple\n")
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(password), str(secrets)], check=True)
    result, _run = module("talos_secrets", {"path": str(secrets), "talosctl_path": str(talosctl)})
    assert result == {**result, "changed": False, "encrypted": True}
    # the file lookup decrypts the bundle on the controller; talosctl gets a private temp copy
    dest = tmp_path / "worker.yaml"
    args = {**CLUSTER, "dest": str(dest), "machine_type": "worker", "talosctl_path": str(talosctl),
            "secrets_content": f"{{{{ lookup('ansible.builtin.file', '{secrets}') }}}}"}
    result, run = module("talos_machineconfig", args, "--vault-password-file", str(password))
    assert result["changed"] is True, run.stderr
    token = yaml.safe_load(plain)["trustdinfo"]["token"]
    assert token not in run.stdout
    assert mode_of(dest) == 0o600


def render(module, talosctl, secrets, dest, *options, **overrides):
    args = {**CLUSTER, "dest": str(dest), "secrets_path": str(secrets), "machine_type": "worker",
            "talosctl_path": str(talosctl), "node_name": "solana-validator",
            "patches": [{"machine": {"sysctls": {"vm.max_map_count": "1000000"}}}], **overrides}
    return module("talos_machineconfig", args, *options)


def test_machineconfig_changes_only_when_the_rendering_differs(module, talosctl, secrets, tmp_path):
    dest = tmp_path / "worker.yaml"
    first, _run = render(module, talosctl, secrets, dest)
    assert first["changed"] is True
    assert first["talosctl_version"].startswith("v1.14.")
    assert mode_of(dest) == 0o600
    config = list(yaml.safe_load_all(dest.read_text()))
    assert config[0]["machine"]["sysctls"] == {"vm.max_map_count": "1000000"}
    again, _run = render(module, talosctl, secrets, dest)
    assert again["changed"] is False
    assert again["sha256"] == first["sha256"]


def test_machineconfig_check_and_diff_modes_redact_secrets(module, talosctl, secrets, tmp_path):
    dest = tmp_path / "worker.yaml"
    render(module, talosctl, secrets, dest)
    before = dest.read_text()
    patches = [{"machine": {"sysctls": {"vm.max_map_count": "2000000"}}}]
    result, run = render(module, talosctl, secrets, dest, "--check", "--diff", patches=patches)
    assert result["changed"] is True
    assert dest.read_text() == before, "check mode must not write"
    assert '2000000' in result["diff"]["after"] and '1000000' in result["diff"]["before"]
    assert "<redacted>" in result["diff"]["after"]
    assert len(secret_files.secret_values(before)) >= 3  # a worker: its token, the cluster token and secret
    assert leaked_secrets(run.stdout, before) == []


def test_machineconfig_reports_talosctl_error_with_node(module, talosctl, secrets, tmp_path):
    dest = tmp_path / "worker.yaml"
    result, _run = render(module, talosctl, secrets, dest, patches=[{"machine": {"nosuchfield": 1}}])
    assert result["failed"] is True
    assert "solana-validator" in result["msg"] and "nosuchfield" in result["stderr"] + result["msg"]
    assert not dest.exists()


def test_machineconfig_without_secrets_bundle_says_what_to_do(module, talosctl, tmp_path):
    result, _run = render(module, talosctl, tmp_path / "missing.yaml", tmp_path / "w.yaml")
    assert result["failed"] is True
    assert "does not exist" in result["msg"] and "talos_secrets" in result["msg"]


def test_validate_passes_a_good_config_and_names_the_node_on_a_bad_one(module, talosctl, secrets, tmp_path):
    good = tmp_path / "good.yaml"
    render(module, talosctl, secrets, good)
    result, _run = module("talos_config_validate", {"path": str(good), "talosctl_path": str(talosctl)})
    assert result["changed"] is False and "valid for metal mode" in result["message"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("type: worker", "type: nonsense", 1))
    args = {"path": str(bad), "node_name": "solana-validator", "talosctl_path": str(talosctl)}
    result, _run = module("talos_config_validate", args)
    assert result["failed"] is True
    assert result["msg"].startswith("solana-validator: the machine configuration is not valid")
    assert "nonsense" in result["msg"]


def test_client_config_created_once_and_endpoints_kept_current(module, talosctl, secrets, tmp_path):
    path = tmp_path / "talosconfig"
    args = {**CLUSTER, "path": str(path), "secrets_path": str(secrets), "talosctl_path": str(talosctl),
            "endpoints": ["127.0.1.11", "127.0.1.12", "127.0.1.13"]}
    result, _run = module("talos_client_config", args)
    assert result["changed"] is True and mode_of(path) == 0o600
    context = yaml.safe_load(path.read_text())["contexts"]["it-cluster"]
    assert context["endpoints"] == args["endpoints"]
    key = context["key"]
    result, _run = module("talos_client_config", args)
    assert result["changed"] is False
    result, _run = module("talos_client_config", {**args, "endpoints": ["127.0.1.11"]})
    assert result["changed"] is True
    context = yaml.safe_load(path.read_text())["contexts"]["it-cluster"]
    assert context["endpoints"] == ["127.0.1.11"] and context["key"] == key, "the client key is kept"


def test_preflight_module_lists_every_problem(module):
    cluster = {"talos_version": "v1.13.9", "kubernetes_version": "1.37.0", "vip": "10.0.2.10",
               "subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}
    nodes = [{"name": "cp-1", "ip": "10.0.1.11", "role": "controlplane"},
             {"name": "cp-2", "ip": "10.0.1.11", "role": "controlplane"}]
    result, _run = module("talos_preflight", {"cluster": cluster, "nodes": nodes})
    assert result["failed"] is True
    joined = "\n".join(result["errors"])
    assert "Kubernetes 1.37.0 is not supported by Talos v1.13" in joined
    assert "talos_cluster_vip: 10.0.2.10 is outside" in joined
    assert "odd number" in joined and "10.0.1.11 is used by cp-1, cp-2" in joined
