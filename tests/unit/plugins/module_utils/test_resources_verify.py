"""The rules verify compares against: the kernel's memory reserve and the boot-time huge-page split
over NUMA nodes (resources.kernel_memory_reserve, resources.boot_hugepages_per_node). Figures by hand."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import resources


def test_kernel_memory_reserve_is_a_64th_and_64_mib():
    # 512Gi: 8Gi of struct pages + 64Mi = 8256Mi; 16Gi: 256Mi + 64Mi = 320Mi
    assert resources.kernel_memory_reserve(512 * resources.GI) == 8256 * resources.MI
    assert resources.kernel_memory_reserve(16 * resources.GI) == 320 * resources.MI


@pytest.mark.parametrize(("size", "count", "numa", "cpus", "split"), [
    # 1 GiB pages: one round-robin run from node 0, lower nodes take the remainder
    ("1Gi", 32, 2, 64, [16, 16]),
    ("1Gi", 5, 2, 64, [3, 2]),
    ("1Gi", 7, 4, 64, [2, 2, 2, 1]),
    # 2 MiB pages, 64 CPUs -> 16 threads: min_chunk 3125, 16 works, chunk max(50000 // 64, 3125) = 3125;
    # 16 chunks each 1563 + 1562
    ("2Mi", 50000, 2, 64, [25008, 24992]),
    # 4 CPUs -> 1 thread: one run, an even split
    ("2Mi", 50000, 2, 4, [25000, 25000]),
    # 16 CPUs -> 4 threads: 4 chunks of 12500, even
    ("2Mi", 50000, 2, 16, [25000, 25000]),
    # 64 CPUs, 3 pages: min_chunk 0 -> 3 works of chunk 1, each from node 0
    ("2Mi", 3, 2, 64, [3, 0]),
    # 64 CPUs, 1000 pages: min_chunk 62, 16 works, chunk 62: 16 x 62 (31 + 31) + 8 (4 + 4)
    ("2Mi", 1000, 2, 64, [500, 500]),
    # 64 CPUs, 1001 pages: chunk 62: 16 x 62 + 9 (5 + 4)
    ("2Mi", 1001, 2, 64, [501, 500]),
    ("2Mi", 0, 2, 64, [0, 0]),
    ("2Mi", 100, 1, 64, [100]),
])
def test_boot_hugepages_per_node(size, count, numa, cpus, split):
    assert resources.boot_hugepages_per_node(size, count, numa, cpus) == split
    assert sum(split) == count
