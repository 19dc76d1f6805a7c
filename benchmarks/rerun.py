#!/usr/bin/env python3
"""Where a no-change re-run of site.yml spends its time, play by play.

For each size (3 control planes plus N validators, fresh emulated machines): site.yml once, then
RERUNS no-change re-runs with Ansible's JSON callback. Prints each re-run's wall time, changed
count, tasks and host results (one per task and host that ran it: each costs a worker process),
then, for the last re-run, every play's seconds, tasks and host results, with TASKS=1 every task's.
Nothing leaves 127.0.0.0/8.

Usage: benchmarks/rerun.py [WORKER_COUNT ...] [--reruns N]   (default: 1, 2 re-runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cluster import REPO, Machines, playbook, testbed


def json_run(root: Path, inventory: Path) -> tuple[float, dict]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "TESTBED_STATE": str(root / "machines"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    started = time.monotonic()
    done = subprocess.run(["ansible-playbook", "playbooks/site.yml", "-i", str(inventory / "hosts.yml"),
                           "-e", f"@{root / 'network.json'}"], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"site.yml failed (rc {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)


def _seconds(duration: dict) -> float:
    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return at(duration["end"]) - at(duration["start"])


def show_plays(report: dict, tasks: bool) -> None:
    for play in report["plays"]:
        timed = [t["task"]["duration"] for t in play["tasks"] if "end" in t["task"]["duration"]]
        # meta tasks answered without a worker have no end; a play of them only took no time
        seconds = _seconds({"start": timed[0]["start"], "end": timed[-1]["end"]}) if timed else 0.0
        results = sum(len(t["hosts"]) for t in play["tasks"])
        print(f"    {seconds:6.1f} s {len(play['tasks']):4d} tasks {results:5d} host results  {play['play']['name']}")
        for task in play["tasks"] if tasks else []:
            duration, name = task["task"]["duration"], task["task"]["name"]
            if "end" in duration:
                print(f"        {_seconds(duration):6.2f} s {len(task['hosts']):4d}  {name}")


def measure(workers: int, reruns: int, tasks: bool) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-rerun-{workers}-") as tmp:
        root = Path(tmp)
        inventory, machines_file = testbed(root, workers)
        machines = Machines(machines_file, root / "machines")
        try:
            first, _changed, _mib = playbook("site", root, inventory)
            print(f"3+{workers}: site.yml {first:.1f} s", flush=True)
            for n in range(1, reruns + 1):
                elapsed, report = json_run(root, inventory)
                changed = sum(stats["changed"] for stats in report["stats"].values())
                results = sum(len(t["hosts"]) for play in report["plays"] for t in play["tasks"])
                tasks_run = sum(len(play["tasks"]) for play in report["plays"])
                print(f"3+{workers}: no-change re-run {n}: {elapsed:.1f} s, changed={changed}, {tasks_run} tasks, "
                      f"{results} host results", flush=True)
            show_plays(report, tasks)
        finally:
            machines.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workers", type=int, nargs="*", default=[1], help="validator counts to measure")
    parser.add_argument("--reruns", type=int, default=2, help="no-change re-runs per size")
    args = parser.parse_args()
    for workers in args.workers:
        measure(workers, args.reruns, bool(os.environ.get("TASKS")))


if __name__ == "__main__":
    main()
