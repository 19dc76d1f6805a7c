# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage benchmark: the fio job file it runs, fio's JSON output (``--output-format=json``)
read back per job, and each job judged against its thresholds as named check results in the
verify report's shape (module_utils/checks.py)."""

from __future__ import annotations

import json
import re

from ansible_collections.solanaops.talos.plugins.module_utils.checks import result

# fio keys completion-latency percentiles by the percentile printed with six decimals
PERCENTILES = {"p99": "99.000000", "p99.9": "99.900000"}
# what each rw= pattern reads and writes (fio(1), "rw")
_DIRECTIONS = {
    "read": ("read",), "randread": ("read",), "write": ("write",), "randwrite": ("write",),
    "rw": ("read", "write"), "readwrite": ("read", "write"), "randrw": ("read", "write"),
}
_JOB_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MIB = 1024 ** 2
_SIZE = re.compile(r"^([0-9]+)([kKmMgGtT])?[iI]?[bB]?$")


class FioOutputError(ValueError):
    """fio's output holds no JSON report (fio failed, or something else printed instead)."""


def directions(rw):
    """('read',), ('write',) or both, for fio's rw= value; ValueError for a pattern not measured here."""
    if rw not in _DIRECTIONS:
        raise ValueError(f"rw {rw!r} is not one of {', '.join(sorted(_DIRECTIONS))}")
    return _DIRECTIONS[rw]


def job_file(jobs, settings):
    """fio's job file: [global] from settings (ioengine, direct, block_size, iodepth, numjobs, size,
    runtime), then one section per job {name, rw, volume} writing bench_file_path(settings, volume).
    Every job after the first waits for the
    one before (stonewall): measured together, two volumes would share CPUs and PCIe lanes and each
    would look slower than it is. Each job's threads report as one (group_reporting)."""
    lines = ["[global]",
             f"ioengine={settings['ioengine']}",
             f"direct={1 if settings.get('direct', True) else 0}",
             f"bs={settings['block_size']}",
             f"iodepth={int(settings['iodepth'])}",
             f"numjobs={int(settings['numjobs'])}",
             f"size={settings['size']}",
             f"runtime={int(settings['runtime'])}",
             "time_based=1",
             "group_reporting=1"]
    for index, job in enumerate(jobs):
        if not _JOB_NAME.match(str(job["name"])):
            raise ValueError(f"job name {job['name']!r}: letters, digits, '-' and '_' only (it names a fio section)")
        directions(job["rw"])
        lines += ["", f"[{job['name']}]", f"filename={bench_file_path(settings, job['volume'])}", f"rw={job['rw']}"]
        if index:
            lines.append("stonewall")
    return "\n".join(lines) + "\n"


def bench_file_path(settings, volume):
    """The one file the benchmark writes in a volume: settings' test_file in volumes_dir/<volume>."""
    return f"{settings['volumes_dir']}/{volume}/{settings['test_file']}"


def parse_output(text):
    """fio's JSON report from its output. A container log holds stderr too (an image's package
    install, fio's own notes), so the report is the first JSON object starting on a line of its own."""
    decoder = json.JSONDecoder()
    offset = 0
    for line in str(text).splitlines(keepends=True):
        if line.startswith("{"):
            try:
                report, _end = decoder.raw_decode(str(text)[offset:])
            except json.JSONDecodeError:
                report = None
            if isinstance(report, dict) and "jobs" in report:
                return report
        offset += len(line)
    lines = [line for line in str(text).splitlines() if line.strip()]
    raise FioOutputError("no fio JSON report in the output"
                         + (f"; its last line: {lines[-1][:300]}" if lines else " (it was empty)"))


def job_results(report):
    """One entry per job name: rw, error and, per direction, ios, iops, bandwidth (bytes/s) and
    the completion-latency percentiles in ns (None when fio reported none). Entries of one name
    (numjobs without group_reporting) are added up, their percentiles the worst of them."""
    options = report.get("global options") or {}
    jobs = {}
    for entry in report.get("jobs") or []:
        name = entry.get("jobname")
        job = jobs.setdefault(name, {"name": name, "rw": (entry.get("job options") or {}).get("rw", options.get("rw")),
                                     "error": 0, **{d: _empty_direction() for d in ("read", "write")}})
        job["error"] = job["error"] or entry.get("error", 0)
        for direction in ("read", "write"):
            stats, total = entry.get(direction) or {}, job[direction]
            total["ios"] += int(stats.get("total_ios", 0))
            total["iops"] += float(stats.get("iops", 0))
            total["bandwidth"] += int(stats.get("bw_bytes", int(stats.get("bw", 0)) * 1024))
            for label, key in PERCENTILES.items():
                value = ((stats.get("clat_ns") or {}).get("percentile") or {}).get(key)
                if value is not None:
                    total[label] = max(total[label] or 0, int(value))
    return list(jobs.values())


def _empty_direction():
    return {"ios": 0, "iops": 0.0, "bandwidth": 0, **{label: None for label in PERCENTILES}}


def size_bytes(text):
    """A fio size ('4k', '1m', '4096') in bytes; fio counts k, m, g, t in powers of 1024 (kb_base=1024)."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise ValueError(f"not a fio size: {text!r} (expected e.g. 4k or 4096)")
    return int(match.group(1)) * 1024 ** " kmgt".index((match.group(2) or " ").lower())


def checks(jobs, thresholds, subject, block_size):
    """Each expected job judged: it ran without error and, for each direction its rw measures,
    IOPS and bandwidth at least, p99 and p99.9 completion latency at most the thresholds.

    jobs: job_results(). thresholds: [{name, rw, min_iops, min_bandwidth_mib (MiB/s; absent: min_iops
    x block_size), max_clat_p99_ms, max_clat_p999_ms}]; block_size: fio's bs (e.g. 4k)."""
    by_name = {job["name"]: job for job in jobs}
    results = []
    for wanted in thresholds:
        name = wanted["name"]
        job = by_name.get(name)
        if job is None:
            results.append(result(f"fio {name}", subject, False, "a result", "absent",
                                  "fio reported no job of this name"))
            continue
        results.append(result(f"fio {name} error", subject, job["error"] == 0, 0, job["error"],
                              "fio's errno for the job: see its output" if job["error"] else ""))
        for direction in directions(wanted["rw"]):
            results += _direction_checks(f"fio {name} {direction}", subject, job[direction], wanted,
                                         size_bytes(block_size))
    return results


def _direction_checks(prefix, subject, measured, wanted, block_bytes):
    min_iops = float(wanted["min_iops"])
    min_bandwidth = (float(wanted["min_bandwidth_mib"]) * MIB if wanted.get("min_bandwidth_mib") is not None
                     else min_iops * block_bytes)
    results = [
        result(f"{prefix} IOPS", subject, measured["iops"] >= min_iops, f">= {min_iops:.0f}", f"{measured['iops']:.0f}",
               "" if measured["ios"] else "no I/O completed in this direction"),
        result(f"{prefix} bandwidth", subject, measured["bandwidth"] >= min_bandwidth,
               f">= {min_bandwidth / MIB:.1f} MiB/s", f"{measured['bandwidth'] / MIB:.1f} MiB/s"),
    ]
    for label, limit in (("p99", wanted["max_clat_p99_ms"]), ("p99.9", wanted["max_clat_p999_ms"])):
        observed = measured[label]
        results.append(result(f"{prefix} {label} completion latency", subject,
                              observed is not None and observed <= float(limit) * 1e6,
                              f"<= {float(limit):g} ms", "absent" if observed is None else f"{observed / 1e6:.3f} ms",
                              "fio reported no percentile: no I/O completed" if observed is None else ""))
    return results
