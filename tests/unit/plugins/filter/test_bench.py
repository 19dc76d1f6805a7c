"""The storage benchmark's filter file stays cheap to import: Ansible imports it before talos.py
for every talos filter a process uses (the collection's filter files in name order)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# pyproject.toml's pythonpath: the collection is importable from the checkout's .collections
COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"


def test_importing_the_bench_filters_imports_none_of_their_helpers():
    helpers = ("checks", "fio", "numa", "real_nodes")
    probe = (
        "import sys\n"
        "from ansible_collections.solanaops.talos.plugins.filter import bench\n"
        "names = bench.FilterModule().filters()\n"
        f"print(sorted(h for h in {helpers!r} "
        "if 'ansible_collections.solanaops.talos.plugins.module_utils.' + h in sys.modules))\n"
        "print(bench.FilterModule().filters()['not_run']('c', 's', 'r')['observed'])\n"
    )
    # a fresh interpreter, which imports nothing before the probe
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False,
                         env={"PYTHONPATH": str(COLLECTIONS)})
    assert run.returncode == 0, run.stderr
    imported, status = run.stdout.splitlines()
    assert imported == "[]", run.stdout
    # the filters still work, importing their helper when called
    assert status == "not run: r", run.stdout
