"""roles/storage_bench/files/run.sh, the benchmark container's script, run by a real sh on
temporary volumes: a volume holding data is refused unless allowed, fio runs the job file the role
renders, and only the benchmark's own test file is removed, whatever happens."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import fio

RUN_SH = Path(__file__).resolve().parents[3] / "roles/storage_bench/files/run.sh"
TEST_FILE = "solanaops-storage-bench.fio"
JOBS = [{"name": "ledger", "rw": "randread", "volume": "ledger"},
        {"name": "accounts", "rw": "randwrite", "volume": "accounts"}]
# small and short, psync and buffered I/O (see tests/unit/plugins/module_utils/test_fio.py)
SETTINGS = {"ioengine": "psync", "direct": False, "block_size": "4k", "iodepth": 1, "numjobs": 1,
            "size": "1M", "runtime": 1, "test_file": TEST_FILE}


@pytest.fixture
def volumes(tmp_path):
    if shutil.which("fio") is None:
        pytest.fail("fio is not installed: run `make setup` (it installs Debian's fio package)")
    root = tmp_path / "bench"
    for job in JOBS:
        (root / job["volume"]).mkdir(parents=True)
    (tmp_path / "jobs.fio").write_text(fio.job_file(JOBS, {**SETTINGS, "volumes_dir": str(root)}))
    return root


def run(volumes: Path, allow_data: bool) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "STORAGE_BENCH_VOLUMES": str(volumes), "STORAGE_BENCH_TEST_FILE": TEST_FILE,
           "STORAGE_BENCH_JOB_FILE": str(volumes.parent / "jobs.fio"),
           "STORAGE_BENCH_ALLOW_DATA": "true" if allow_data else "false",
           "STORAGE_BENCH_FIO_INSTALL": "false"}
    return subprocess.run(["sh", str(RUN_SH)], env=env, capture_output=True, text=True, timeout=120, check=False)


def files(volumes: Path) -> list[str]:
    return sorted(path.relative_to(volumes).as_posix() for path in volumes.glob("*/*"))


def test_a_volume_holding_data_is_refused_and_left_as_it_was(volumes):
    (volumes / "accounts" / "accounts.db").write_text("live data")
    (volumes / "ledger" / TEST_FILE).write_text("left by an interrupted run")
    done = run(volumes, allow_data=False)
    assert done.returncode == 3
    assert done.stdout.startswith(f"storage-bench: refused: {volumes}/accounts holds data (accounts.db ...)")
    assert "storage_bench_allow_data: true" in done.stdout
    # the data stays; the stale test file, the benchmark's own, goes
    assert files(volumes) == ["accounts/accounts.db"]
    assert (volumes / "accounts" / "accounts.db").read_text() == "live data"


def test_empty_volumes_are_benchmarked_and_the_test_files_removed(volumes):
    (volumes / "ledger" / "lost+found").mkdir()  # what mkfs leaves is not data
    done = run(volumes, allow_data=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(job["name"] for job in fio.job_results(fio.parse_output(done.stdout))) == ["accounts", "ledger"]
    assert files(volumes) == ["ledger/lost+found"]


def test_allowed_data_is_benchmarked_beside_and_kept(volumes):
    (volumes / "accounts" / "accounts.db").write_text("live data")
    done = run(volumes, allow_data=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fio.parse_output(done.stdout)["jobs"]
    assert files(volumes) == ["accounts/accounts.db"]


def test_an_image_without_fio_whose_install_fails_says_so(volumes, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("ls", "grep", "head", "tr", "rm", "sh"):
        (bare / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bare), "STORAGE_BENCH_VOLUMES": str(volumes), "STORAGE_BENCH_TEST_FILE": TEST_FILE,
           "STORAGE_BENCH_JOB_FILE": str(volumes.parent / "jobs.fio"), "STORAGE_BENCH_ALLOW_DATA": "false",
           "STORAGE_BENCH_FIO_INSTALL": "exit 1"}
    done = subprocess.run([shutil.which("sh"), str(RUN_SH)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 4
    assert done.stdout.strip() == "storage-bench: fio is not in the image and installing it failed"
