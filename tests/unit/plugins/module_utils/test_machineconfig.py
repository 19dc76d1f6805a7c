"""Unit tests for talos_machineconfig's argv and render record (module_utils/machineconfig.py), shared by the
module and its action plugin."""

from __future__ import annotations

import os

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import machineconfig

BASE = ["gen", "config", "solana-cluster", "https://10.0.1.10:6443",
        "--with-secrets", "/tmp/work/secrets.yaml",
        "--output-types", "worker", "--output", "-", "--with-docs=false", "--with-examples=false"]


def params(**overrides):
    return {
        "cluster_name": "solana-cluster",
        "cluster_endpoint": "https://10.0.1.10:6443",
        "machine_type": "worker",
        "talos_version": None,
        "kubernetes_version": None,
        "install_disk": None,
        "install_image": None,
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "patches", "tail"),
    [
        ({}, [], []),
        ({"talos_version": "v1.13", "kubernetes_version": "1.36.3", "install_disk": "/dev/sda",
          "install_image": "factory.talos.dev/metal-installer/abc123:v1.13.9"},
         ["@/tmp/work/patch-000.yaml", "@/srv/talos/patches/worker-network.yaml"],
         ["--talos-version", "v1.13", "--kubernetes-version", "1.36.3", "--install-disk", "/dev/sda",
          "--install-image", "factory.talos.dev/metal-installer/abc123:v1.13.9",
          "--config-patch", "@/tmp/work/patch-000.yaml",
          "--config-patch", "@/srv/talos/patches/worker-network.yaml"]),
        # flags keep their fixed order whatever the dict order; unset ones (None or "") are left out
        ({"install_image": "ghcr.io/siderolabs/installer:v1.10.6", "talos_version": "v1.10", "install_disk": ""},
         ["@/p1", "@/p2", "@/p3"],
         ["--talos-version", "v1.10", "--install-image", "ghcr.io/siderolabs/installer:v1.10.6",
          "--config-patch", "@/p1", "--config-patch", "@/p2", "--config-patch", "@/p3"]),
        ({"kubernetes_version": "1.33.5"}, [], ["--kubernetes-version", "1.33.5"]),
    ],
)
def test_gen_config_argv(overrides, patches, tail):
    argv = machineconfig.gen_config_argv(params(**overrides), "/tmp/work/secrets.yaml", patches)
    assert argv == BASE + tail


def test_gen_config_argv_controlplane():
    argv = machineconfig.gen_config_argv(params(machine_type="controlplane"), "/s.yaml", [])
    assert argv[argv.index("--output-types") + 1] == "controlplane"
    assert argv[argv.index("--with-secrets") + 1] == "/s.yaml"


def test_flags_cover_every_optional_option_of_the_spec():
    spec = machineconfig.ARGUMENT_SPEC
    assert set(machineconfig._FLAGS) <= set(spec)
    assert all(not spec[option].get("required") for option in machineconfig._FLAGS)


# The render record: a re-run skips talosctl only while nothing it would read has changed.
RECORD_PARAMS = {**params(talos_version="v1.13", kubernetes_version="1.36.3",
                          install_image="factory.talos.dev/metal-installer/abc123:v1.13.9"),
                 "patches": [{"machine": {"sysctls": {"vm.max_map_count": "1000000"}}}], "validate": True}


def _recorded(tmp_path):
    """dest written private and its record, as a successful render leaves them."""
    dest, text = tmp_path / "node.yaml", "version: v1alpha1\n"
    dest.write_text(text)
    dest.chmod(0o600)
    inputs = machineconfig.inputs_sha256(RECORD_PARAMS, "bundle\n", "v1.13.9")
    record = {"inputs": inputs, "output": machineconfig.sha256(text)}
    return str(dest), record, inputs


def test_up_to_date_when_inputs_and_file_match_the_record(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    assert machineconfig.up_to_date(dest, record, inputs)


def test_a_hand_edited_config_is_not_up_to_date(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    with open(dest, "a") as handle:
        handle.write("# edited\n")
    assert not machineconfig.up_to_date(dest, record, inputs)


def test_a_config_with_the_wrong_mode_or_missing_is_not_up_to_date(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    os.chmod(dest, 0o644)
    assert not machineconfig.up_to_date(dest, record, inputs)
    os.remove(dest)
    assert not machineconfig.up_to_date(dest, record, inputs)


def test_no_or_unreadable_record_is_not_up_to_date(tmp_path):
    dest, _record, inputs = _recorded(tmp_path)
    assert not machineconfig.up_to_date(dest, None, inputs)
    (tmp_path / "record.json").write_text("not json {")
    assert machineconfig.read_record(str(tmp_path / "record.json")) is None
    assert machineconfig.read_record(str(tmp_path / "absent.json")) is None


@pytest.mark.parametrize(
    ("change", "secrets", "version"),
    [
        ({"install_image": "factory.talos.dev/metal-installer/def456:v1.13.9"}, "bundle\n", "v1.13.9"),
        ({"kubernetes_version": "1.36.4"}, "bundle\n", "v1.13.9"),
        ({"patches": [{"machine": {"sysctls": {"vm.max_map_count": "2000000"}}}]}, "bundle\n", "v1.13.9"),
        ({"validate": False}, "bundle\n", "v1.13.9"),
        ({}, "another bundle\n", "v1.13.9"),
        ({}, "bundle\n", "v1.13.10"),
    ],
    ids=["installer", "kubernetes", "patch", "validation", "secrets", "talosctl-version"],
)
def test_a_changed_input_or_talosctl_version_is_not_up_to_date(tmp_path, change, secrets, version):
    dest, record, _inputs = _recorded(tmp_path)
    inputs = machineconfig.inputs_sha256({**RECORD_PARAMS, **change}, secrets, version)
    assert not machineconfig.up_to_date(dest, record, inputs)


def test_the_bundle_hashes_alike_read_from_its_file_or_through_the_lookup():
    # the file lookup (vault-encrypted bundles) drops the trailing newline
    assert (machineconfig.inputs_sha256(RECORD_PARAMS, "bundle\n", "v1.13.9")
            == machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9"))


def test_a_patch_file_is_hashed_by_its_content(tmp_path):
    patch = tmp_path / "patch.yaml"
    patch.write_text("machine: {}\n")
    with_file = {**RECORD_PARAMS, "patches": [f"@{patch}"]}
    before = machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9")
    patch.write_text("machine: {sysctls: {a: '1'}}\n")
    assert machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9") != before
    patch.unlink()
    assert machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9") is None


def test_the_record_follows_the_collection_not_only_the_options(monkeypatch):
    """A new fixed talosctl flag, another feature-gate table or a new record layout renders again."""
    before = machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9")
    real_argv = machineconfig.gen_config_argv
    with monkeypatch.context() as patched:
        patched.setattr(machineconfig, "gen_config_argv", lambda *args: [*real_argv(*args), "--with-kubespan"])
        assert machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    with monkeypatch.context() as patched:
        patched.setattr(machineconfig, "KUBELET", {"1.36": {"NewGate": {"default": False}}})
        assert machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    with monkeypatch.context() as patched:
        patched.setattr(machineconfig, "RECORD_FORMAT", machineconfig.RECORD_FORMAT + 1)
        assert machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    assert machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") == before
