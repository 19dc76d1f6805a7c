# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the kubelet placed a Guaranteed pod: its view from inside (/proc/self/status'
Cpus_allowed_list and Mems_allowed_list) against the node's NUMA layout
(/sys/devices/system/node/online and nodeN/cpulist), as named check results in the verify
report's shape (module_utils/checks.py).

The files' formats are the kernel's (Documentation/filesystems/proc.rst and
Documentation/ABI/stable/sysfs-devices-node): CPU and node lists such as ``0-15,32-47``; a node
without CPUs (memory only) has an empty cpulist."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.checks import result
from ansible_collections.solanaops.talos.plugins.module_utils.resources import parse_cpuset

NODE_ROOT = "/sys/devices/system/node"


def parse_status(text):
    """/proc/<pid>/status -> {cpus, mems}: the CPUs and memory nodes the task may use."""
    fields = {}
    for line in str(text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    missing = [key for key in ("Cpus_allowed_list", "Mems_allowed_list") if key not in fields]
    if missing:
        raise ValueError(f"not a /proc/<pid>/status: it has no {' or '.join(missing)}")
    return {"cpus": parse_cpuset(fields["Cpus_allowed_list"]), "mems": parse_cpuset(fields["Mems_allowed_list"])}


def cpulist_paths(online):
    """{node: path of its cpulist} for the text of /sys/devices/system/node/online."""
    return {node: f"{NODE_ROOT}/node{node}/cpulist" for node in sorted(parse_cpuset(online))}


def parse_layout(cpulists):
    """{node: cpulist text} -> {node: set of CPUs}."""
    return {int(node): parse_cpuset(text) for node, text in cpulists.items()}


def format_cpuset(cpus):
    """{0, 1, 2, 3, 8} -> '0-3,8' (the kernel's list format); '' for none."""
    ranges, ordered = [], sorted(cpus)
    for cpu in ordered:
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def placement_checks(status, layout, reserved_system_cpus, requested_cpus, subject):
    """The pod's CPUs exclusive (as many as it requested: the static CPU manager's shared pool holds
    every CPU not reserved or given out), all on one NUMA node, none of reservedSystemCPUs, and its
    memory (huge pages included: hugetlb allocations follow the cpuset's memory nodes) only from
    that node.

    status: parse_status(). layout: parse_layout(). reserved_system_cpus: the kubelet's list (e.g.
    '0-3'); requested_cpus: the pod's integer CPU request."""
    cpus, mems = status["cpus"], status["mems"]
    reserved = parse_cpuset(reserved_system_cpus or "")
    touched = sorted(node for node, node_cpus in layout.items() if cpus & node_cpus)
    unknown = cpus - set().union(*layout.values())
    where = "; ".join(f"node {node}: {format_cpuset(cpus & layout[node])}" for node in touched)
    wanted_mems = format_cpuset(touched) if len(touched) == 1 else "the one node holding its CPUs"
    return [
        result("pod CPUs exclusive", subject, len(cpus) == int(requested_cpus),
               f"{int(requested_cpus)} CPUs (its request)", f"{len(cpus)} CPUs ({format_cpuset(cpus)})",
               "more CPUs than requested: the pod runs in the shared pool (CPU manager not static, or the pod "
               "not Guaranteed with an integer CPU request)"),
        result("pod CPUs on one NUMA node", subject, len(touched) == 1 and not unknown, "one NUMA node",
               (where or "none") + (f"; not on any node: {format_cpuset(unknown)}" if unknown else ""),
               "the topology manager (single-numa-node) should have refused a split placement"),
        result("pod CPUs outside reservedSystemCPUs", subject, not cpus & reserved,
               f"none of {format_cpuset(reserved) or 'none reserved'}", format_cpuset(cpus & reserved) or "none"),
        result("pod memory on its CPUs' NUMA node", subject, len(touched) == 1 and mems == set(touched),
               wanted_mems, format_cpuset(mems) or "none",
               "other nodes allowed: the memory manager (Static) did not pin its memory and huge pages"),
    ]
