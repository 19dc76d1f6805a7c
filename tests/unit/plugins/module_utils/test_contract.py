"""Unit tests for module_utils/contract.py: what each machine-config contract supports."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import contract


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.13.9", (1, 13, 9)),
        ("1.36.3", (1, 36, 3)),
        ("v1.10", (1, 10, None)),
        (" v1.12.0 ", (1, 12, 0)),
        ("v1.13.9-beta.0", None),
        ("1", None),
        ("vv1.10", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_version(text, expected):
    assert contract.parse_version(text) == expected


@pytest.mark.parametrize(
    ("talos", "expected"),
    [("v1.10", (1, 10)), ("v1.13.9", (1, 13)), ("1.12.4", (1, 12))],
)
def test_contract(talos, expected):
    assert contract.contract(talos) == expected


@pytest.mark.parametrize("talos", ["banana", "", "v1", "latest"])
def test_contract_rejects_malformed_talos_version(talos):
    with pytest.raises(ValueError, match="not a Talos version"):
        contract.contract(talos)


@pytest.mark.parametrize(
    ("talos", "kubernetes"),
    [
        ("v1.10", "1.28.0"),
        ("v1.10.6", "1.30.14"),
        ("v1.10", "1.33.5"),
        ("v1.10", "v1.33"),
        ("v1.11.0", "1.34.1"),
        ("v1.12.0", "1.30.0"),
        ("v1.13", "1.31.0"),
        ("v1.13.9", "1.36.3"),
        ("v1.14.1", "1.36.3"),
        ("v1.14.1", "1.37.1"),
    ],
)
def test_kubernetes_supported(talos, kubernetes):
    assert contract.kubernetes_support_error(talos, kubernetes) is None


@pytest.mark.parametrize(
    ("talos", "kubernetes", "fragments"),
    [
        ("v1.10", "1.34.0", ["Kubernetes 1.34.0 is not supported by Talos v1.10", "supported: 1.28 to 1.33"]),
        ("v1.10.6", "1.27.9", ["Kubernetes 1.27.9 is not supported by Talos v1.10", "supported: 1.28 to 1.33"]),
        ("v1.13.9", "1.30.0", ["not supported by Talos v1.13", "supported: 1.31 to 1.36"]),
        ("v1.13.9", "1.37.0", ["not supported by Talos v1.13", "supported: 1.31 to 1.36"]),
        ("v1.13", "2.31.0", ["not supported by Talos v1.13"]),
        ("v1.9", "1.30.0", ["Talos v1.9 is not a contract this collection knows", "v1.10", "v1.13"]),
        ("v1.15.0", "1.36.0", ["Talos v1.15 is not a contract this collection knows", "v1.14"]),
        ("v1.14.1", "1.31.4", ["not supported by Talos v1.14", "supported: 1.32 to 1.37"]),
        ("v1.13", "1.x", ["not a Kubernetes version: '1.x'", "X.Y.Z"]),
        ("v1.13", "", ["not a Kubernetes version"]),
        ("v1.13", None, ["not a Kubernetes version: None"]),
        ("v1.13", "latest", ["not a Kubernetes version"]),
    ],
)
def test_kubernetes_unsupported(talos, kubernetes, fragments):
    message = contract.kubernetes_support_error(talos, kubernetes)
    assert message is not None
    for fragment in fragments:
        assert fragment in message


def test_kubernetes_support_error_rejects_malformed_talos_version():
    with pytest.raises(ValueError, match="not a Talos version"):
        contract.kubernetes_support_error("banana", "1.36.3")


@pytest.mark.parametrize(
    ("talos", "expected"),
    [("v1.10.6", False), ("v1.11", False), ("v1.12.0", True), ("v1.13.9", True), ("v2.0.0", True)],
)
def test_uses_multidoc_network(talos, expected):
    assert contract.uses_multidoc_network(talos) is expected


@pytest.mark.parametrize(
    ("talos", "boot_mode", "expected"),
    [
        ("v1.10", "grub", "install"),
        ("v1.10.6", "grub", "install"),
        ("v1.11.2", "grub", "install"),
        ("v1.10", "uki", "schematic"),
        ("v1.12.0", "grub", "schematic"),
        ("v1.13", "grub", "schematic"),
        ("v1.13.9", "uki", "schematic"),
    ],
)
def test_kernel_args_target(talos, boot_mode, expected):
    assert contract.kernel_args_target(talos, boot_mode) == expected


@pytest.mark.parametrize(
    ("talos", "expected"),
    [("v1.10", False), ("v1.12.4", False), ("v1.13", True), ("v1.13.9", True), ("v1.14.0", True)],
)
def test_supports_disable_access_time(talos, expected):
    assert contract.supports_disable_access_time(talos) is expected
