"""Unit tests for module_utils/schematic.py: the canonical form and IDs, image references.

The IDs below were produced by the Image Factory's own package (v0.9.0's tests for the first
three); tests/integration/test_image_factory.py compares the whole module with that package
running in testbed/imagefactory."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import schematic

KNOWN_IDS = [
    ({}, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
    ({"customization": {}}, "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
    ({"customization": {"extraKernelArgs": ["noapic", "nolapic"]}},
     "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"),
    ({"customization": {"secureboot": {"includeWellKnownCertificates": True}}},
     "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6"),
]


@pytest.mark.parametrize(("document", "expected"), KNOWN_IDS)
def test_known_ids_of_the_factory_package(document, expected):
    assert schematic.schematic_id(document) == expected


def test_canonical_form_is_go_yaml_with_four_space_indent_in_struct_order():
    document = {"customization": {"systemExtensions": {"officialExtensions": ["siderolabs/amd-ucode"]},
                                  "extraKernelArgs": ["hugepages=0:16,1:16", "-console", "yes", "null", "#x", "~",
                                                      "a:"]}}
    assert schematic.canonical_yaml(document) == (
        "customization:\n"
        "    extraKernelArgs:\n"
        "        - hugepages=0:16,1:16\n"
        "        - -console\n"
        '        - "yes"\n'
        '        - "null"\n'
        "        - '#x'\n"
        '        - "~"\n'
        "        - 'a:'\n"
        "    systemExtensions:\n"
        "        officialExtensions:\n"
        "            - siderolabs/amd-ucode\n")


@pytest.mark.parametrize(("kernel_args", "extensions"), [("hugepages=50000", []), ([], "siderolabs/amd-ucode")])
def test_build_refuses_a_string_where_a_list_belongs(kernel_args, extensions):
    """A string would otherwise be read as a list of one-character args."""
    with pytest.raises(schematic.SchematicError, match="must be a list"):
        schematic.build(kernel_args, extensions)


def test_build_omits_what_is_empty():
    assert schematic.build() == {"customization": {}}
    assert schematic.build(["iommu=pt"], ["siderolabs/amd-ucode"]) == {"customization": {
        "extraKernelArgs": ["iommu=pt"], "systemExtensions": {"officialExtensions": ["siderolabs/amd-ucode"]}}}


@pytest.mark.parametrize(("document", "fragment"), [
    ({"overlay": {"name": "rpi_generic"}}, "overlays are for single-board computers"),
    ({"customization": {"meta": [{"key": 10, "value": "x"}]}}, "customization fields ['meta']"),
    ({"customization": {"extraKernelArgs": "iommu=pt"}}, "must be a list of strings"),
    ({"customization": {"extraKernelArgs": ["console=ttyS0 quiet"]}}, "without spaces"),
    ({"customization": {"extraKernelArgs": [1]}}, "must be a non-empty string"),
    *[({"customization": {"extraKernelArgs": [value]}}, "starts like a number") for value in (
        # go-yaml reads these with Go's number and date parsers: never guessed here
        "0X1F", "0B1", "0O7", "+_1", "-_1", "1e1_0", ".5_5", "2024-13-01", "2024-02-30", "2024-1-1T", "0x_",
        "0b_", "0x11111111111111111", "-0", ".inf", "-1", "+x")],
    ({"customization": {"systemExtensions": {"extensions": []}}}, "only officialExtensions"),
])
def test_what_cannot_be_hashed_exactly_is_refused(document, fragment):
    with pytest.raises(schematic.SchematicError, match=None) as raised:
        schematic.canonical_yaml(document)
    assert fragment in str(raised.value)


def test_installer_image_and_its_parse_round_trip():
    image = schematic.installer_image("factory.talos.dev", schematic.EMPTY_ID, "v1.13.9")
    assert image == f"factory.talos.dev/metal-installer/{schematic.EMPTY_ID}:v1.13.9"
    assert schematic.parse_installer_image(image) == {
        "registry": "factory.talos.dev", "flavour": "metal-installer", "id": schematic.EMPTY_ID, "tag": "v1.13.9",
        "secureboot": False}
    secure = schematic.installer_image("127.0.1.5:5000", schematic.EMPTY_ID, "v1.13.9", secureboot=True)
    assert schematic.parse_installer_image(secure)["flavour"] == "metal-installer-secureboot"
    assert schematic.parse_installer_image(secure)["registry"] == "127.0.1.5:5000"


@pytest.mark.parametrize("image", [
    "ghcr.io/siderolabs/installer:v1.13.9",
    "factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.9",
    "factory.talos.dev/metal-installer/376567988ad3:v1.13.9",
    "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
    "",
    None,
])
def test_images_that_name_no_schematic(image):
    assert schematic.parse_installer_image(image) is None


def test_validator_only_args():
    assert schematic.validator_only_args(["hugepagesz=1G", "hugepages=0:16,1:16", "iommu=pt", "nohz_full=4-63",
                                          "processor.max_cstate=1", "console=ttyS0"]) == [
        "hugepagesz=1G", "hugepages=0:16,1:16", "nohz_full=4-63", "processor.max_cstate=1"]
