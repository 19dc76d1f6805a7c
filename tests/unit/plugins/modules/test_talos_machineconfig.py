"""Unit tests for the pure functions of the talos_machineconfig module."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TalosError
from ansible_collections.solanaops.talos.plugins.modules import talos_machineconfig

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
    argv = talos_machineconfig.gen_config_argv(params(**overrides), "/tmp/work/secrets.yaml", patches)
    assert argv == BASE + tail


def test_gen_config_argv_controlplane():
    argv = talos_machineconfig.gen_config_argv(params(machine_type="controlplane"), "/s.yaml", [])
    assert argv[argv.index("--output-types") + 1] == "controlplane"
    assert argv[argv.index("--with-secrets") + 1] == "/s.yaml"


def test_flags_cover_every_optional_option_of_the_spec():
    spec = talos_machineconfig.ARGUMENT_SPEC
    assert set(talos_machineconfig._FLAGS) <= set(spec)
    assert all(not spec[option].get("required") for option in talos_machineconfig._FLAGS)


def _read_patch(argument):
    assert argument.startswith("@")
    with open(argument[1:]) as handle:
        return handle.read()


def test_patch_argument_dict_is_written_as_yaml_in_order(tmp_path):
    patch = {"machine": {"sysctls": {"vm.max_map_count": "1000000"}, "kubelet": {"extraArgs": {"a": "1"}}}}
    argument = talos_machineconfig.patch_argument(patch, 0, str(tmp_path))
    assert argument == "@" + os.path.join(str(tmp_path), "patch-000.yaml")
    text = _read_patch(argument)
    assert yaml.safe_load(text) == patch
    assert text.index("sysctls") < text.index("kubelet")


def test_patch_argument_json_patch_list(tmp_path):
    patch = [{"op": "add", "path": "/machine/network/hostname", "value": "cp-1"},
             {"op": "remove", "path": "/cluster/proxy"}]
    argument = talos_machineconfig.patch_argument(patch, 12, str(tmp_path))
    assert argument == f"@{tmp_path}/patch-012.yaml"
    loaded = yaml.safe_load(_read_patch(argument))
    assert isinstance(loaded, list)
    assert loaded == patch


@pytest.mark.parametrize(
    "text",
    [
        "machine:\n  sysctls:\n    vm.swappiness: \"1\"\n",
        "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: cp-1\n---\napiVersion: v1alpha1\n"
        "kind: TimeSyncConfig\nntp:\n  servers: [10.0.1.3]\n",
        "# comment kept\nmachine: {}",
    ],
)
def test_patch_argument_string_is_written_verbatim(tmp_path, text):
    argument = talos_machineconfig.patch_argument(text, 3, str(tmp_path))
    assert argument == f"@{tmp_path}/patch-003.yaml"
    assert _read_patch(argument) == text


@pytest.mark.parametrize("reference", ["@/srv/talos/patches/worker-network.yaml", "@patch.yaml"])
def test_patch_argument_file_reference_passes_through(tmp_path, reference):
    assert talos_machineconfig.patch_argument(reference, 0, str(tmp_path)) == reference
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("patch", "type_name"), [(42, "int"), (1.5, "float"), (None, "NoneType"), (True, "bool")])
def test_patch_argument_rejects_other_types(tmp_path, patch, type_name):
    with pytest.raises(TalosError, match=rf"^patches\[4\] is a {type_name}; use a dict, a list or a string$"):
        talos_machineconfig.patch_argument(patch, 4, str(tmp_path))


# The render record: a re-run skips talosctl only while nothing it would read has changed.
RECORD_PARAMS = {**params(talos_version="v1.13", kubernetes_version="1.36.3",
                          install_image="factory.talos.dev/metal-installer/abc123:v1.13.9"),
                 "patches": [{"machine": {"sysctls": {"vm.max_map_count": "1000000"}}}], "validate": True}


def _recorded(tmp_path):
    """dest written private and its record, as a successful render leaves them."""
    dest, text = tmp_path / "node.yaml", "version: v1alpha1\n"
    dest.write_text(text)
    dest.chmod(0o600)
    inputs = talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle\n", "v1.13.9")
    record = {"inputs": inputs, "output": talos_machineconfig.sha256(text)}
    return str(dest), record, inputs


def test_up_to_date_when_inputs_and_file_match_the_record(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    assert talos_machineconfig.up_to_date(dest, record, inputs)


def test_a_hand_edited_config_is_not_up_to_date(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    with open(dest, "a") as handle:
        handle.write("# edited\n")
    assert not talos_machineconfig.up_to_date(dest, record, inputs)


def test_a_config_with_the_wrong_mode_or_missing_is_not_up_to_date(tmp_path):
    dest, record, inputs = _recorded(tmp_path)
    os.chmod(dest, 0o644)
    assert not talos_machineconfig.up_to_date(dest, record, inputs)
    os.remove(dest)
    assert not talos_machineconfig.up_to_date(dest, record, inputs)


def test_no_or_unreadable_record_is_not_up_to_date(tmp_path):
    dest, _record, inputs = _recorded(tmp_path)
    assert not talos_machineconfig.up_to_date(dest, None, inputs)
    (tmp_path / "record.json").write_text("not json {")
    assert talos_machineconfig.read_record(str(tmp_path / "record.json")) is None
    assert talos_machineconfig.read_record(str(tmp_path / "absent.json")) is None


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
    inputs = talos_machineconfig.inputs_sha256({**RECORD_PARAMS, **change}, secrets, version)
    assert not talos_machineconfig.up_to_date(dest, record, inputs)


def test_the_bundle_hashes_alike_read_from_its_file_or_through_the_lookup():
    # the file lookup (vault-encrypted bundles) drops the trailing newline
    assert (talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle\n", "v1.13.9")
            == talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9"))


def test_a_patch_file_is_hashed_by_its_content(tmp_path):
    patch = tmp_path / "patch.yaml"
    patch.write_text("machine: {}\n")
    with_file = {**RECORD_PARAMS, "patches": [f"@{patch}"]}
    before = talos_machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9")
    patch.write_text("machine: {sysctls: {a: '1'}}\n")
    assert talos_machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9") != before
    patch.unlink()
    assert talos_machineconfig.inputs_sha256(with_file, "bundle", "v1.13.9") is None


def test_the_record_follows_the_collection_not_only_the_options(monkeypatch):
    """A new fixed talosctl flag, another feature-gate table or a new record layout renders again."""
    before = talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9")
    real_argv = talos_machineconfig.gen_config_argv
    with monkeypatch.context() as patched:
        patched.setattr(talos_machineconfig, "gen_config_argv", lambda *args: [*real_argv(*args), "--with-kubespan"])
        assert talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    with monkeypatch.context() as patched:
        patched.setattr(talos_machineconfig, "KUBELET", {"1.36": {"NewGate": {"default": False}}})
        assert talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    with monkeypatch.context() as patched:
        patched.setattr(talos_machineconfig, "RECORD_FORMAT", talos_machineconfig.RECORD_FORMAT + 1)
        assert talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") != before
    assert talos_machineconfig.inputs_sha256(RECORD_PARAMS, "bundle", "v1.13.9") == before
