"""The NUMA placement proof: /proc/self/status and the /sys/devices/system/node tree of the machine
the tests run on, then synthetic 2- and 4-node layouts written in the kernel's formats
(Documentation/ABI/stable/sysfs-devices-node: node lists and cpulists such as 0-15,32-47)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from ansible_collections.solanaops.talos.plugins.filter import bench
from ansible_collections.solanaops.talos.plugins.module_utils import numa

THIS_STATUS = Path("/proc/self/status").read_text()
CHECKS = ["pod CPUs exclusive", "pod CPUs on one NUMA node", "pod CPUs outside reservedSystemCPUs",
          "pod memory on its CPUs' NUMA node"]


def read_tree(root: Path) -> dict[int, str]:
    """{node: cpulist text} read the way talos_numa_info reads the node's: online, then each cpulist."""
    online = (root / "online").read_text()
    return {node: (root / path.removeprefix(numa.NODE_ROOT + "/")).read_text()
            for node, path in numa.cpulist_paths(online).items()}


def write_tree(root: Path, cpulists: dict[int, str]) -> Path:
    root.mkdir()
    (root / "online").write_text(numa.format_cpuset(cpulists) + "\n")
    (root / "possible").write_text(numa.format_cpuset(cpulists) + "\n")
    for node, cpulist in cpulists.items():
        (root / f"node{node}").mkdir()
        (root / f"node{node}" / "cpulist").write_text(cpulist + "\n")
    return root


def status(cpus: str, mems: str) -> str:
    """This process's own status with the two lists replaced, so every other line is real."""
    text = re.sub(r"(?m)^Cpus_allowed_list:.*$", f"Cpus_allowed_list:\t{cpus}", THIS_STATUS)
    return re.sub(r"(?m)^Mems_allowed_list:.*$", f"Mems_allowed_list:\t{mems}", text)


def verdicts(results):
    return {r["name"]: r["passed"] for r in results}


def test_this_machines_status_matches_its_own_affinity():
    parsed = numa.parse_status(THIS_STATUS)
    assert parsed["cpus"] == os.sched_getaffinity(0)
    assert parsed["mems"]


@pytest.mark.skipif(not Path(numa.NODE_ROOT, "online").exists(), reason="this kernel has no NUMA node tree")
def test_this_machines_node_tree_covers_its_cpus_and_memory():
    layout = numa.parse_layout(read_tree(Path(numa.NODE_ROOT)))
    parsed = numa.parse_status(THIS_STATUS)
    assert parsed["cpus"] <= set().union(*layout.values())
    assert parsed["mems"] <= set(layout)
    # this process is pinned to nothing: it is on one node only on a one-node machine
    results = bench.numa_placement_checks(THIS_STATUS, read_tree(Path(numa.NODE_ROOT)), "", len(parsed["cpus"]),
                                          "this machine")
    assert [r["name"] for r in results] == CHECKS
    assert {r["family"] for r in results} == {"numa placement"}
    single = len([node for node, cpus in layout.items() if cpus & parsed["cpus"]]) == 1
    assert verdicts(results)["pod CPUs on one NUMA node"] is single
    assert verdicts(results)["pod CPUs exclusive"] is True


TWO_NODES = {0: "0-15,32-47", 1: "16-31,48-63"}
# node 3 holds memory only (CXL or a memory-only socket): its cpulist is empty
FOUR_NODES = {0: "0-7,32-39", 1: "8-15,40-47", 2: "16-31,48-63", 3: ""}


@pytest.fixture
def two_nodes(tmp_path):
    return read_tree(write_tree(tmp_path / "node", TWO_NODES))


@pytest.fixture
def four_nodes(tmp_path):
    return read_tree(write_tree(tmp_path / "node", FOUR_NODES))


def test_two_nodes_a_pod_pinned_to_node_one_passes(two_nodes):
    results = bench.numa_placement_checks(status("16-23", "1"), two_nodes, "0-3", 8, "v")
    assert verdicts(results) == dict.fromkeys(CHECKS, True)
    assert {r["name"]: r["observed"] for r in results}["pod CPUs on one NUMA node"] == "node 1: 16-23"


def test_two_nodes_hyperthread_siblings_of_one_node_are_one_node(two_nodes):
    results = bench.numa_placement_checks(status("4-7,36-39", "0"), two_nodes, "0-3,32-35", 8, "v")
    assert verdicts(results) == dict.fromkeys(CHECKS, True)


def test_two_nodes_a_split_pod_fails_and_names_both_halves(two_nodes):
    results = bench.numa_placement_checks(status("12-19", "0-1"), two_nodes, "0-3", 8, "v")
    by_name = {r["name"]: r for r in results}
    assert verdicts(results) == {**dict.fromkeys(CHECKS, True), "pod CPUs on one NUMA node": False,
                                 "pod memory on its CPUs' NUMA node": False}
    assert by_name["pod CPUs on one NUMA node"]["observed"] == "node 0: 12-15; node 1: 16-19"


def test_two_nodes_reserved_cpus_and_the_shared_pool_fail(two_nodes):
    # the shared pool: every CPU of the machine but the reserved ones, as a Burstable pod sees it
    results = bench.numa_placement_checks(status("0-63", "0-1"), two_nodes, "0-3", 8, "v")
    assert not any(verdicts(results).values())
    by_name = {r["name"]: r for r in results}
    assert by_name["pod CPUs outside reservedSystemCPUs"]["observed"] == "0-3"
    assert by_name["pod CPUs exclusive"]["observed"] == "64 CPUs (0-63)"


def test_two_nodes_memory_from_the_other_node_fails(two_nodes):
    results = bench.numa_placement_checks(status("16-23", "0"), two_nodes, "0-3", 8, "v")
    by_name = {r["name"]: r for r in results}
    assert [name for name, passed in verdicts(results).items() if not passed] == ["pod memory on its CPUs' NUMA node"]
    assert (by_name["pod memory on its CPUs' NUMA node"]["expected"],
            by_name["pod memory on its CPUs' NUMA node"]["observed"]) == ("1", "0")


def test_four_nodes_with_a_memory_only_node(four_nodes):
    assert numa.parse_layout(four_nodes)[3] == set()
    assert verdicts(bench.numa_placement_checks(status("16-31", "2"), four_nodes, "0-1", 16, "v")) == \
        dict.fromkeys(CHECKS, True)
    # memory spilling to the memory-only node is memory off the CPUs' node
    spill = verdicts(bench.numa_placement_checks(status("16-31", "2-3"), four_nodes, "0-1", 16, "v"))
    assert spill["pod memory on its CPUs' NUMA node"] is False
    across = bench.numa_placement_checks(status("6-9", "0-1"), four_nodes, "0-1", 4, "v")
    assert {r["name"]: r["observed"] for r in across}["pod CPUs on one NUMA node"] == "node 0: 6-7; node 1: 8-9"


def test_a_cpu_outside_the_layout_fails(two_nodes):
    results = bench.numa_placement_checks(status("64-65", "0"), two_nodes, "", 2, "v")
    by_name = {r["name"]: r for r in results}
    assert by_name["pod CPUs on one NUMA node"]["passed"] is False
    assert by_name["pod CPUs on one NUMA node"]["observed"] == "none; not on any node: 64-65"


def test_a_text_that_is_not_a_status_file_is_refused():
    with pytest.raises(ValueError, match="has no Cpus_allowed_list or Mems_allowed_list"):
        numa.parse_status("Name:\tbash\n")


@pytest.mark.parametrize(("cpus", "text"), [({0, 1, 2, 3, 8}, "0-3,8"), (set(), ""), ({5}, "5"),
                                            ({0, 2, 4}, "0,2,4")])
def test_format_cpuset_is_the_kernels_list_format(cpus, text):
    assert numa.format_cpuset(cpus) == text
