"""Unit tests for module_utils/resources.py: quantities, huge pages, CPU sets and reservations."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import resources

KI, MI, GI, TI = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1Ki", KI),
        ("100000Mi", 100000 * MI),
        ("512Gi", 512 * GI),
        ("2Ti", 2 * TI),
        ("1.5Gi", 3 * GI // 2),
        ("1k", 1000),
        ("16M", 16 * 10**6),
        ("16G", 16 * 10**9),
        ("15T", 15 * 10**12),
        ("500m", Decimal("0.5")),
        ("250m", Decimal("0.25")),
        ("16", 16),
        (16, 16),
        ("0", 0),
        ("  4Gi  ", 4 * GI),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2.5e2", 250),
        ("1e-3", Decimal("0.001")),
        ("1e3k", 10**6),
        # "E" on its own is the exa suffix, not an exponent
        ("1E", 10**18),
    ],
)
def test_parse_quantity(text, expected):
    value = resources.parse_quantity(text)
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    ["", "Gi", "16 Gi", "16GiB", "16gi", "16KI", "1.2.3", "ten", "0x10", "16Gi ram", "1e", "--1", None, "5%"],
)
def test_parse_quantity_rejects(text):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        resources.parse_quantity(text)


def test_validator_hugepages_are_100000mi_not_100gi():
    """The design's 50000 x 2 MiB pages are 100000 MiB (97.7 GiB), not 100 GiB."""
    page_bytes = resources.hugepage_bytes({"2Mi": 50000, "1Gi": 0})
    assert page_bytes == 104_857_600_000
    assert page_bytes == resources.parse_quantity("100000Mi")
    assert page_bytes != resources.parse_quantity("100Gi")
    assert resources.format_quantity(page_bytes) == "100000Mi"
    # 100Gi would need 51200 pages of 2 MiB
    assert resources.parse_quantity("100Gi") / resources.HUGEPAGE_SIZES["2Mi"][0] == 51200
    assert resources.hugepage_bytes({"2Mi": 51200}) == resources.parse_quantity("100Gi")


@pytest.mark.parametrize(
    ("hugepages", "expected"),
    [
        ({"2Mi": 50000, "1Gi": 0}, 50000 * 2 * MI),
        ({"1Gi": 32}, 32 * GI),
        ({"2Mi": 512, "1Gi": 2}, GI + 2 * GI),
        ({"2Mi": "50000", "1Gi": "0"}, 50000 * 2 * MI),
        ({}, 0),
    ],
)
def test_hugepage_bytes(hugepages, expected):
    assert resources.hugepage_bytes(hugepages) == expected


@pytest.mark.parametrize(
    ("byte_count", "expected"),
    [(0, "0"), (MI, "1Mi"), (GI, "1024Mi"), (Decimal(64 * GI), "65536Mi"),
     (Decimal(104857600000), "100000Mi"), (GI + 1024, "1048577Ki"), (Decimal(60), "60"), (Decimal("0.5"), "0.5")],
)
def test_format_quantity(byte_count, expected):
    assert resources.format_quantity(byte_count) == expected


@pytest.mark.parametrize(("byte_count", "expected"), [(1, "1"), (MI + 1, "1048577"), (16 * 10**9, "15625000Ki")])
def test_format_quantity_keeps_partial_mebibytes_exact(byte_count, expected):
    # never rounded: a figure in a report must be the one observed
    assert resources.format_quantity(byte_count) == expected


@pytest.mark.parametrize(
    ("hugepages", "expected"),
    [
        ({"2Mi": 50000, "1Gi": 0}, ["hugepagesz=2M", "hugepages=50000", "default_hugepagesz=2M"]),
        ({"2Mi": 0, "1Gi": 32}, ["hugepagesz=1G", "hugepages=32", "default_hugepagesz=1G"]),
        # both: the default size is the larger one, whatever the dict order
        ({"1Gi": 32, "2Mi": 50000},
         ["hugepagesz=2M", "hugepages=50000", "hugepagesz=1G", "hugepages=32", "default_hugepagesz=1G"]),
        ({"2Mi": "1024", "1Gi": "4"},
         ["hugepagesz=2M", "hugepages=1024", "hugepagesz=1G", "hugepages=4", "default_hugepagesz=1G"]),
        ({"2Mi": 0, "1Gi": 0}, []),
        ({}, []),
    ],
)
def test_hugepage_kernel_args(hugepages, expected):
    assert resources.hugepage_kernel_args(hugepages) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,8,10-11", {0, 1, 2, 3, 8, 10, 11}),
        ("0-3", {0, 1, 2, 3}),
        ("5", {5}),
        ("2-2", {2}),
        (" 0-1 , 4 ", {0, 1, 4}),
        ("0-3,2-5", {0, 1, 2, 3, 4, 5}),
        ("", set()),
        (7, {7}),
    ],
)
def test_parse_cpuset(text, expected):
    assert resources.parse_cpuset(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a-b", "not a CPU list"),
        ("0-3,x", "not a CPU list"),
        ("-3", "not a CPU list"),
        ("1-2-3", "not a CPU list"),
        ("0.5", "not a CPU list"),
        ("3-0", "runs backwards"),
        ("0-3,11-10", "11-10 runs backwards"),
    ],
)
def test_parse_cpuset_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        resources.parse_cpuset(text)


def test_parse_cpuset_rejects_half_open_range():
    with pytest.raises(ValueError):
        resources.parse_cpuset("3-")


@pytest.mark.parametrize(
    ("reserved_cpus", "kube_reserved", "system_reserved", "expected"),
    [
        # reservedSystemCPUs replaces the cpu entries of both reservations: 4, not 4 + 4 + 4
        ("0-3", {"cpu": "4"}, {"cpu": "4"}, 4),
        ("0-3", {}, {}, 4),
        ("0-1,32-33", {"cpu": "500m"}, {}, 4),
        # without it, the cpu entries add up
        ("", {"cpu": "4"}, {"cpu": "4"}, 8),
        (None, {"cpu": "500m"}, {"cpu": "1.5"}, 2),
        ("", {"cpu": "250m"}, {"memory": "1Gi"}, Decimal("0.25")),
        ("", {"memory": "16Gi"}, {"memory": "16Gi"}, 0),
        # an empty systemReserved is Talos' own, with 50m of cpu
        ("", {"cpu": "250m"}, {}, Decimal("0.3")),
    ],
)
def test_effective_cpu_reservation(reserved_cpus, kube_reserved, system_reserved, expected):
    assert resources.effective_cpu_reservation(reserved_cpus, kube_reserved, system_reserved) == Decimal(expected)


@pytest.mark.parametrize(
    ("kube_reserved", "system_reserved", "eviction_hard", "merge", "expected"),
    [
        ({"memory": "16Gi"}, {"memory": "16Gi"}, {"memory.available": "32Gi"}, True, 64 * GI),
        # an empty systemReserved is Talos' own (384Mi on a worker); a merged evictionHard without
        # memory.available gets the kubelet's 100Mi; an unmerged one has none
        ({"memory": "1Gi", "cpu": "2"}, {}, {}, True, GI + 384 * MI + 100 * MI),
        ({"memory": "1Gi"}, {}, {}, False, GI + 384 * MI),
        ({}, {"memory": "1Gi"}, {"nodefs.available": "10%"}, True, GI + 100 * MI),
        ({}, {"memory": "1Gi"}, {"nodefs.available": "10%"}, False, GI),
        ({}, {"cpu": "1"}, {"memory.available": "200Mi"}, True, 200 * MI),
    ],
)
def test_memory_reservation_counts_the_implicit_defaults(kube_reserved, system_reserved, eviction_hard, merge,
                                                         expected):
    assert resources.memory_reservation(kube_reserved, system_reserved, eviction_hard, merge) == expected


@pytest.mark.parametrize(
    ("total", "numa_nodes", "expected_mi"),
    [
        (64 * GI, 1, [65536]),
        (64 * GI, 2, [32768, 32768]),
        # 65536 = 21846 + 21845 + 21845: the remainder goes to the first nodes
        (64 * GI, 3, [21846, 21845, 21845]),
        (100 * MI, 8, [13, 13, 13, 13, 12, 12, 12, 12]),
        (MI, 2, [1, 0]),
    ],
)
def test_reserved_memory_per_numa(total, numa_nodes, expected_mi):
    parts = resources.reserved_memory_per_numa(total, numa_nodes)
    assert [p["numaNode"] for p in parts] == list(range(numa_nodes))
    assert [p["limits"]["memory"] for p in parts] == [f"{mi}Mi" for mi in expected_mi]
    assert sum(resources.parse_quantity(p["limits"]["memory"]) for p in parts) == total
    assert all(set(p) == {"numaNode", "limits"} and set(p["limits"]) == {"memory"} for p in parts)


@pytest.mark.parametrize("total", [MI + 1, 16 * 10**9, Decimal("0.5")])
def test_reserved_memory_per_numa_rejects_partial_mebibytes(total):
    with pytest.raises(ValueError, match="whole number of MiB"):
        resources.reserved_memory_per_numa(total, 2)


DESIGN = {
    "hardware": {"cpus": 64, "numa_nodes": 2, "memory": "512Gi"},
    "hugepages": {"2Mi": 50000, "1Gi": 0},
    "reserved_system_cpus": "0-3",
    "kube_reserved": {"memory": "16Gi"},
    "system_reserved": {"memory": "16Gi"},
    "eviction_hard": {"memory.available": "32Gi"},
}


def test_expected_node_resources_for_the_design_validator():
    result = resources.expected_node_resources(**DESIGN)
    assert result["capacity"] == {
        "cpu": 64,
        "memory": 512 * GI,
        "hugepages-2Mi": 104_857_600_000,
        "hugepages-1Gi": 0,
    }
    allocatable = result["allocatable"]
    assert allocatable["cpu"] == 60
    # 524288Mi - 100000Mi of huge pages - 65536Mi reserved = 358752Mi
    assert allocatable["memory"] == 358752 * MI == 376_178_737_152
    assert resources.format_quantity(allocatable["memory"]) == "358752Mi"
    assert allocatable["hugepages-2Mi"] == result["capacity"]["hugepages-2Mi"]
    assert allocatable["hugepages-1Gi"] == 0


@pytest.mark.parametrize(
    ("overrides", "cpu", "memory_mi"),
    [
        # kube/system reserved cpu are ignored next to reservedSystemCPUs
        ({"kube_reserved": {"memory": "16Gi", "cpu": "4"}, "system_reserved": {"memory": "16Gi", "cpu": "4"}},
         60, 358752),
        # without reservedSystemCPUs they count
        ({"reserved_system_cpus": "", "kube_reserved": {"memory": "16Gi", "cpu": "4"},
          "system_reserved": {"memory": "16Gi", "cpu": "4"}}, 56, 358752),
        # firedancer profile: 32 x 1 GiB pages as well
        ({"hugepages": {"2Mi": 50000, "1Gi": 32}}, 60, 358752 - 32768),
        ({"hugepages": {}}, 60, 524288 - 65536),
    ],
)
def test_expected_node_resources_variants(overrides, cpu, memory_mi):
    result = resources.expected_node_resources(**{**DESIGN, **overrides})
    assert result["allocatable"]["cpu"] == cpu
    assert result["allocatable"]["memory"] == memory_mi * MI
    # the computation must not mutate capacity
    assert result["capacity"]["cpu"] == 64
    assert result["capacity"]["memory"] == 512 * GI


def test_memory_manager_inputs_default_to_what_the_kubelet_assumes():
    assert resources.memory_manager_inputs(None) == {"memoryManagerPolicy": "None", "reservedMemory": []}
    reserved = [{"numaNode": 0, "limits": {"memory": "2Gi"}}]
    assert resources.memory_manager_inputs({"memoryManagerPolicy": "Static", "reservedMemory": reserved,
                                            "cpuManagerPolicy": "static"}) == {
        "memoryManagerPolicy": "Static", "reservedMemory": reserved}
