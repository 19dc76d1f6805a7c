"""Unit tests for the pure functions of config_validation (talos_config_validate, talos_machineconfig)."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import config_validation


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"path": "/srv/talos/cp-1.yaml", "mode": "metal", "strict": True},
         ["validate", "--config", "/srv/talos/cp-1.yaml", "--mode", "metal", "--strict"]),
        ({"path": "/srv/talos/cp-1.yaml", "mode": "metal", "strict": False},
         ["validate", "--config", "/srv/talos/cp-1.yaml", "--mode", "metal"]),
        ({"path": "w.yaml", "mode": "container", "strict": True, "node_name": "w-1"},
         ["validate", "--config", "w.yaml", "--mode", "container", "--strict"]),
        ({"path": "w.yaml", "mode": "cloud", "strict": False},
         ["validate", "--config", "w.yaml", "--mode", "cloud"]),
    ],
)
def test_validate_argv(params, expected):
    assert config_validation.validate_argv(params) == expected


def _config(kubelet):
    return [{"version": "v1alpha1", "machine": {"type": "worker", "kubelet": kubelet}},
            {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "w-1"}]


@pytest.mark.parametrize(
    ("kubelet", "expected"),
    [
        ({}, {}),
        ({"extraConfig": {"featureGates": {"CPUManager": True, "Foo": "false"}}}, {"CPUManager": True, "Foo": False}),
        # the flag comes after the config file, so its value wins
        ({"extraConfig": {"featureGates": {"Foo": True}}, "extraArgs": {"feature-gates": " Foo=false, Bar=true "}},
         {"Foo": False, "Bar": True}),
    ],
)
def test_kubelet_feature_gates_from_config_and_flag(kubelet, expected):
    assert config_validation.kubelet_feature_gates(_config(kubelet)) == expected


def test_kubelet_feature_gates_from_a_v1_14_kubelet_document():
    """v1.14 keeps the kubelet in KubeletConfig: its config's gates and its flag (which may be a
    list of values) are judged the same way."""
    documents = [{"version": "v1alpha1", "machine": {"type": "worker"}},
                 {"apiVersion": "v1alpha1", "kind": "KubeletConfig", "image": "ghcr.io/siderolabs/kubelet:v1.36.3",
                  "config": {"featureGates": {"CPUManager": True, "Foo": True}},
                  "extraArgs": {"feature-gates": ["Foo=false", "Bar=true"]}}]
    assert config_validation.kubelet_feature_gates(documents) == {"CPUManager": True, "Foo": False, "Bar": True}
