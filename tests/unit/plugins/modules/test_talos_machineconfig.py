"""Unit tests for the pure functions of the talos_machineconfig module (its argv and render
record: tests/unit/plugins/module_utils/test_machineconfig.py)."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TalosError
from ansible_collections.solanaops.talos.plugins.modules import talos_machineconfig


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
