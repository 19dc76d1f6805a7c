# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource arithmetic for the validator node: quantities, huge pages, reservations.

Used by preflight (does it fit?), by the worker role's templates (what to configure) and by
verify (what Kubernetes must report). Quantities are exact: ``Decimal`` bytes or cores.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MI = 1024**2
GI = 1024**3

_SUFFIXES = {
    "Ki": Decimal(1024), "Mi": Decimal(1024**2), "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4), "Pi": Decimal(1024**5), "Ei": Decimal(1024**6),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")

# the huge page sizes the collection configures: name -> (bytes, kernel hugepagesz, k8s resource)
HUGEPAGE_SIZES = {
    "2Mi": (2 * MI, "2M", "hugepages-2Mi"),
    "1Gi": (1 * GI, "1G", "hugepages-1Gi"),
}


def parse_quantity(value):
    """A Kubernetes quantity ('100000Mi', '1.5Gi', '500m', 16) as an exact Decimal."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from exc
    return number * _SUFFIXES[match.group(2) or ""]


def format_quantity(value):
    """An exact quantity, readable: whole Mi (the unit kubelet reports huge pages in) or Ki for
    byte counts of at least 1 MiB, else the plain number."""
    value = Decimal(value)
    if value == value.to_integral_value() and value >= MI:
        for unit, size in (("Mi", MI), ("Ki", 1024)):
            if value % size == 0:
                return f"{int(value / size)}{unit}"
    return f"{value.normalize():f}"


def parse_cpuset(text):
    """'0-3,8,10-11' -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. 0-3,8)")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"not a CPU list: {text!r} ({part} runs backwards)")
        cpus.update(range(low, high + 1))
    return cpus


def hugepage_bytes(hugepages):
    """Total bytes of a {size: count} huge-page request, e.g. {'2Mi': 50000, '1Gi': 0}."""
    return sum(HUGEPAGE_SIZES[size][0] * int(count) for size, count in hugepages.items())


def hugepage_kernel_args(hugepages):
    """Kernel args that allocate the pages at boot, the only reliable time for 1 GiB pages.

    The default size is the larger one configured, so hugetlbfs mounts without a size option
    get the pages the validator asks for first.
    """
    args = []
    sizes = [size for size in ("2Mi", "1Gi") if int(hugepages.get(size, 0)) > 0]
    for size in sizes:
        args += [f"hugepagesz={HUGEPAGE_SIZES[size][1]}", f"hugepages={int(hugepages[size])}"]
    if sizes:
        args.append(f"default_hugepagesz={HUGEPAGE_SIZES[sizes[-1]][1]}")
    return args


def effective_cpu_reservation(reserved_system_cpus, kube_reserved, system_reserved):
    """Cores kept from pods. reservedSystemCPUs replaces the cpu entries of both reservations; an
    empty systemReserved is Talos' own (50m of cpu, constants.KubeletSystemReservedCPU)."""
    if reserved_system_cpus:
        return Decimal(len(parse_cpuset(reserved_system_cpus)))
    system = system_reserved.get("cpu", 0) if system_reserved else TALOS_SYSTEM_RESERVED_CPU
    return parse_quantity(kube_reserved.get("cpu", 0)) + parse_quantity(system)


# What the kubelet counts when the inventory leaves it out. Talos fills an empty systemReserved
# with its own, 384Mi of memory on a worker (internal/app/machined/pkg/controllers/k8s/kubelet_spec.go
# NewKubeletConfiguration, machinery constants.KubeletSystemReservedMemoryWorker). The kubelet's
# default hard eviction threshold for memory.available, 100Mi (pkg/kubelet/apis/config/v1beta1
# DefaultEvictionHard), joins a rendered evictionHard without it when mergeDefaultEvictionSettings is
# true (the worker template sets it from Kubernetes 1.33); otherwise a rendered evictionHard is all
# there is.
TALOS_WORKER_SYSTEM_RESERVED_MEMORY = "384Mi"
TALOS_SYSTEM_RESERVED_CPU = "50m"
KUBELET_DEFAULT_MEMORY_AVAILABLE = "100Mi"


def memory_reservation(kube_reserved, system_reserved, eviction_hard, merge_default_eviction=True):
    """Bytes the memory manager's reservedMemory must add up to: kube + system reserved memory +
    the hard eviction threshold, with the implicit defaults the kubelet counts (it refuses to start
    when the sum differs)."""
    system = system_reserved.get("memory", 0) if system_reserved else TALOS_WORKER_SYSTEM_RESERVED_MEMORY
    eviction = eviction_hard.get("memory.available", KUBELET_DEFAULT_MEMORY_AVAILABLE if merge_default_eviction else 0)
    return parse_quantity(kube_reserved.get("memory", 0)) + parse_quantity(system) + parse_quantity(eviction)


def usable_memory(installed):
    """What the huge-page pools and reservations can have of the installed memory: the kernel
    reports less as MemTotal (its page structs take about 1/64, firmware and the kernel image
    some 64 MiB) and keeps 2 GiB when it allocates the pools."""
    return installed - installed // 64 - 64 * MI - 2 * GI


def memory_manager_inputs(kubelet_config):
    """What the kubelet's memory_manager_state is written under and checked against at start (besides
    the huge pages the kernel booted): the policy, the kubelet's default None when unset, and
    reservedMemory."""
    config = kubelet_config or {}
    return {"memoryManagerPolicy": config.get("memoryManagerPolicy") or "None",
            "reservedMemory": config.get("reservedMemory") or []}


def reserved_memory_per_numa(total_bytes, numa_nodes):
    """Split a reservation over NUMA nodes in whole MiB; the parts sum exactly to the total."""
    total_mi = Decimal(total_bytes) / MI
    if total_mi != total_mi.to_integral_value():
        raise ValueError("the memory reservation must be a whole number of MiB")
    share, remainder = divmod(int(total_mi), int(numa_nodes))
    return [
        {"numaNode": node, "limits": {"memory": f"{share + (1 if node < remainder else 0)}Mi"}}
        for node in range(int(numa_nodes))
    ]


def expected_node_resources(hardware, hugepages, reserved_system_cpus,
                            kube_reserved, system_reserved, eviction_hard, memory_capacity=None):
    """Capacity and allocatable the kubelet will report for this node, as Decimals.

    allocatable cpu = cpus - effective reservation; allocatable memory = memory - huge pages -
    kube/system reservations - hard eviction threshold. The kubelet's memory capacity is the
    kernel's MemTotal, a little below the installed memory: pass the reported one as
    ``memory_capacity`` to derive allocatable from it.
    """
    memory = parse_quantity(memory_capacity if memory_capacity is not None else hardware["memory"])
    capacity = {"cpu": Decimal(int(hardware["cpus"])), "memory": memory}
    for size, (page_bytes, _kernel_name, resource) in HUGEPAGE_SIZES.items():
        capacity[resource] = Decimal(page_bytes * int(hugepages.get(size, 0)))
    allocatable = dict(capacity)
    allocatable["cpu"] = capacity["cpu"] - effective_cpu_reservation(
        reserved_system_cpus, kube_reserved, system_reserved)
    allocatable["memory"] = (memory - hugepage_bytes(hugepages)
                             - memory_reservation(kube_reserved, system_reserved, eviction_hard))
    return {"capacity": capacity, "allocatable": allocatable}


def kernel_memory_reserve(installed):
    """What the kernel keeps of the installed memory before it counts MemTotal, the project's one
    rule (README, Inventory; the testbed emulator's kernel view follows it): 1/64 of the installed
    memory (the struct page array) plus 64 MiB (kernel image, firmware, early allocations). Verify
    wants the kubelet's memory capacity (MemTotal) between ``installed - reserve`` and
    ``installed``."""
    installed = int(installed)
    return installed // 64 + 64 * MI


def _round_robin(count, numa_nodes):
    """One allocation run over the nodes with memory, from the first: node i gets count // n, the
    first count % n nodes one more (mm/hugetlb.c alloc_pool_huge_folio / for_each_node_mask_to_alloc)."""
    share, extra = divmod(int(count), int(numa_nodes))
    return [share + (1 if node < extra else 0) for node in range(int(numa_nodes))]


def boot_hugepages_per_node(size, count, numa_nodes, cpus):
    """How Linux 6.18 (Talos v1.13.9 ships 6.18.44) spreads ``hugepages=count`` of one page size,
    given without a per-node list, over the NUMA nodes at boot. mm/hugetlb.c
    hugetlb_hstate_alloc_pages:

    - 1 GiB (gigantic) pages: hugetlb_gigantic_pages_alloc_boot allocates one page at a time,
      round-robin over the N_MEMORY nodes from the first (``h->next_nid_to_alloc``): node i gets
      count // n, the first count % n nodes one more.
    - 2 MiB pages: hugetlb_pages_alloc_boot splits the count into padata chunks (kernel/padata.c
      padata_do_multithreaded) with ``hugepage_alloc_threads`` = online CPUs / 4 (at least 1)
      threads: min_chunk = count // threads; works = min(max(count // max(min_chunk, 1), 1), threads);
      one work takes the whole count, else chunk = max(count // (works * 4), min_chunk, 1) pages,
      handed out in order (the last chunk takes the rest). Each chunk
      (hugetlb_pages_alloc_boot_node) starts its round-robin again at the first online node, so
      node 0 gets one page more per odd-sized chunk: 50000 pages on 64 CPUs and 2 nodes are 16
      chunks of 3125, that is 25008 + 24992.

    Returns the pages per node, assuming memory enough for all of them.
    """
    count, numa_nodes = int(count), max(int(numa_nodes), 1)
    if count <= 0:
        return [0] * numa_nodes
    if size != "2Mi":
        return _round_robin(count, numa_nodes)
    threads = max(int(cpus) // 4, 1)
    min_chunk = count // threads
    works = min(max(count // max(min_chunk, 1), 1), threads)
    if works == 1:
        return _round_robin(count, numa_nodes)
    chunk = max(count // (works * 4), min_chunk, 1)
    per_node = [0] * numa_nodes
    for start in range(0, count, chunk):
        for node, pages in enumerate(_round_robin(min(chunk, count - start), numa_nodes)):
            per_node[node] += pages
    return per_node
