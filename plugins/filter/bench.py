# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the storage benchmark and the NUMA placement proof."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench
short_description: The storage benchmark's fio jobs and verdicts, and the NUMA placement proof
version_added: 0.1.0
description:
  - C(fio_job_file) renders fio's job file from the benchmark's jobs (C(name), C(rw), C(volume))
    and settings (C(ioengine), C(direct), C(block_size), C(iodepth), C(numjobs), C(size), C(runtime),
    C(volumes_dir), C(test_file)); each job writes C(<volumes_dir>/<volume>/<test_file>), and each
    job after the first waits for the one before (C(stonewall)).
  - C(fio_results) reads fio's JSON report (C(fio --output-format=json)) out of its output, other
    lines before it allowed, and returns one entry per job with, per direction, C(ios), C(iops),
    C(bandwidth) (bytes/s) and the completion-latency percentiles C(p99) and C(p99.9) in ns.
  - C(fio_checks) judges those results against thresholds (C(name), C(rw), C(min_iops),
    C(min_bandwidth_mib), C(max_clat_p99_ms), C(max_clat_p999_ms)) and returns named check results
    of the family C(storage bench), the shape M(solanaops.talos.talos_verify_report) writes.
  - C(numa_placement_checks) judges a pod's C(/proc/self/status) against the node's NUMA layout
    (each node's cpulist text, as M(solanaops.talos.talos_numa_info) returns it), that is its CPUs exclusive,
    on one NUMA node, none of the reserved system CPUs, its memory from that node (family
    C(numa placement)).
  - C(needs_real_node) says why a Node runs no containers (kwok manages it, and reports its pods
    Running without any container), or returns an empty string for a Node a kubelet runs;
    C(not_run) makes the report's information entry for a check that could not run there.
author:
  - SolanaOps platform team (@solanaops)
"""

from ansible.errors import AnsibleFilterError

# Ansible finds any of this collection's filters by importing its filter files in name order
# until one defines it (plugins/loader.py, Jinja2Loader.get_with_context): every process that
# uses a talos filter imports this file first, so it imports its helpers when they are used.


def fio_job_file(jobs, settings):
    from ansible_collections.solanaops.talos.plugins.module_utils import fio
    try:
        return fio.job_file(jobs, settings)
    except (KeyError, ValueError) as error:
        raise AnsibleFilterError(f"fio_job_file: {error}") from error


def fio_results(output):
    from ansible_collections.solanaops.talos.plugins.module_utils import fio
    try:
        return fio.job_results(fio.parse_output(output))
    except fio.FioOutputError as error:
        raise AnsibleFilterError(f"fio_results: {error}") from error


def fio_checks(jobs, thresholds, subject, block_size):
    from ansible_collections.solanaops.talos.plugins.module_utils import checks, fio
    return checks.tagged(fio.checks(jobs, thresholds, subject, block_size), "storage bench")


def numa_placement_checks(status, cpulists, reserved_system_cpus, requested_cpus, subject):
    from ansible_collections.solanaops.talos.plugins.module_utils import checks, numa
    try:
        parsed = numa.parse_status(status)
    except ValueError as error:
        raise AnsibleFilterError(f"numa_placement_checks: {error}") from error
    return checks.tagged(numa.placement_checks(parsed, numa.parse_layout(cpulists), reserved_system_cpus,
                                               requested_cpus, subject), "numa placement")


def needs_real_node(node):
    from ansible_collections.solanaops.talos.plugins.module_utils import real_nodes
    return real_nodes.needs_real_node(node)


def not_run(check, subject, reason):
    from ansible_collections.solanaops.talos.plugins.module_utils import real_nodes
    return real_nodes.not_run(check, subject, reason)


class FilterModule:
    def filters(self):
        return {
            "fio_job_file": fio_job_file,
            "fio_results": fio_results,
            "fio_checks": fio_checks,
            "numa_placement_checks": numa_placement_checks,
            "needs_real_node": needs_real_node,
            "not_run": not_run,
        }
