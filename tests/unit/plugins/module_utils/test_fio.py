"""The storage benchmark's fio side, on fio's real output: Debian's fio (installed by `make setup`)
runs the job file the playbook would render against a temporary file for about a second per job,
then its JSON report is parsed and judged with thresholds it passes and thresholds it fails."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible_collections.solanaops.talos.plugins.filter import bench
from ansible_collections.solanaops.talos.plugins.module_utils import fio

JOBS = [{"name": "ledger", "rw": "randread", "volume": "ledger"},
        {"name": "accounts", "rw": "randwrite", "volume": "accounts"}]
# small and short; psync rather than the playbook's io_uring, which container seccomp profiles
# often refuse: the JSON report has the same shape for every engine. Buffered I/O, since the
# temporary directory may be a tmpfs, which refuses O_DIRECT.
SETTINGS = {"ioengine": "psync", "direct": False, "block_size": "4k", "iodepth": 1, "numjobs": 2,
            "size": "4M", "runtime": 1, "test_file": "solanaops-storage-bench.test"}
EASY = {"min_iops": 1, "max_clat_p99_ms": 60000, "max_clat_p999_ms": 60000}
IMPOSSIBLE = {"min_iops": 10 ** 12, "min_bandwidth_mib": 10 ** 9, "max_clat_p99_ms": 0.000001,
              "max_clat_p999_ms": 0.000001}


@pytest.fixture(scope="module")
def fio_output(tmp_path_factory):
    """fio's stdout and stderr together, as a container log holds them."""
    if shutil.which("fio") is None:
        pytest.fail("fio is not installed: run `make setup` (it installs Debian's fio package)")
    directory = tmp_path_factory.mktemp("fio")
    for job in JOBS:
        (directory / job["volume"]).mkdir()
    job_file = directory / "jobs.fio"
    job_file.write_text(fio.job_file(JOBS, {**SETTINGS, "volumes_dir": str(directory)}))
    done = subprocess.run(["fio", "--output-format=json", str(job_file)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # fio wrote where the job file says: one test file in each volume
    assert sorted(path.relative_to(directory).as_posix() for path in directory.glob("*/*")) == [
        "accounts/solanaops-storage-bench.test", "ledger/solanaops-storage-bench.test"]
    return "fio: a note on stderr before the report\n" + done.stdout + done.stderr


def test_the_real_report_is_read_per_job_and_direction(fio_output):
    jobs = {job["name"]: job for job in bench.fio_results(fio_output)}
    assert sorted(jobs) == ["accounts", "ledger"]
    assert (jobs["ledger"]["rw"], jobs["accounts"]["rw"]) == ("randread", "randwrite")
    ledger, accounts = jobs["ledger"]["read"], jobs["accounts"]["write"]
    for measured in (ledger, accounts):
        assert measured["ios"] > 0 and measured["iops"] > 0
        # 4 KiB per I/O: bandwidth and IOPS agree within fio's rounding
        assert measured["bandwidth"] == pytest.approx(measured["iops"] * 4096, rel=0.05)
        assert 0 < measured["p99"] <= measured["p99.9"]
    # the other direction of each job did nothing and has no percentile
    assert jobs["ledger"]["write"]["ios"] == 0 and jobs["ledger"]["write"]["p99"] is None


def test_thresholds_it_meets_pass_every_check(fio_output):
    results = bench.fio_checks(bench.fio_results(fio_output), [{**job, **EASY} for job in JOBS], "this machine", "4k")
    assert [(r["name"], r["passed"]) for r in results] == [
        ("fio ledger error", True), ("fio ledger read IOPS", True), ("fio ledger read bandwidth", True),
        ("fio ledger read p99 completion latency", True), ("fio ledger read p99.9 completion latency", True),
        ("fio accounts error", True), ("fio accounts write IOPS", True), ("fio accounts write bandwidth", True),
        ("fio accounts write p99 completion latency", True), ("fio accounts write p99.9 completion latency", True)]
    assert {(r["family"], r["subject"]) for r in results} == {("storage bench", "this machine")}


def test_thresholds_it_cannot_meet_fail_each_measure(fio_output):
    results = bench.fio_checks(bench.fio_results(fio_output), [{**job, **IMPOSSIBLE} for job in JOBS],
                               "this machine", "4k")
    failed = [r["name"] for r in results if not r["passed"]]
    assert failed == [r["name"] for r in results if not r["name"].endswith(" error")]
    assert len(failed) == 8
    iops = next(r for r in results if r["name"] == "fio ledger read IOPS")
    assert iops["expected"] == ">= 1000000000000" and iops["observed"].isdigit()
    latency = next(r for r in results if r["name"] == "fio accounts write p99 completion latency")
    assert latency["expected"] == "<= 1e-06 ms" and latency["observed"].endswith(" ms")


def test_bandwidth_floor_defaults_to_the_iops_floor_times_the_block_size(fio_output):
    jobs = bench.fio_results(fio_output)
    (bandwidth,) = [r for r in bench.fio_checks(jobs, [{**JOBS[0], **EASY, "min_iops": 256}], "m", "4k")
                    if r["name"] == "fio ledger read bandwidth"]
    assert bandwidth["expected"] == ">= 1.0 MiB/s"


def test_a_job_fio_did_not_report_fails_as_absent(fio_output):
    results = bench.fio_checks(bench.fio_results(fio_output), [{"name": "snapshots", "rw": "randread", **EASY}],
                               "m", "4k")
    assert [(r["name"], r["passed"], r["observed"]) for r in results] == [("fio snapshots", False, "absent")]


def test_output_without_a_report_names_its_last_line():
    with pytest.raises(fio.FioOutputError, match="its last line: fio: pid=7, err=2/file:filesetup.c"):
        fio.parse_output("starting\nfio: pid=7, err=2/file:filesetup.c\n")
    with pytest.raises(fio.FioOutputError, match="it was empty"):
        fio.parse_output("")


@pytest.mark.parametrize(("text", "size"), [("4k", 4096), ("4K", 4096), ("1m", 1048576), ("4096", 4096),
                                            ("2KiB", 2048)])
def test_fio_sizes_count_in_powers_of_1024(text, size):
    assert fio.size_bytes(text) == size


def test_job_file_refuses_a_section_name_and_a_pattern_it_cannot_judge():
    with pytest.raises(ValueError, match="job name 'led ger'"):
        fio.job_file([{"name": "led ger", "rw": "randread", "volume": "ledger"}], SETTINGS)
    with pytest.raises(ValueError, match="rw 'trim'"):
        fio.job_file([{"name": "ledger", "rw": "trim", "volume": "ledger"}], SETTINGS)
