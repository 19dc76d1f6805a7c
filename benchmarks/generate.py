#!/usr/bin/env python3
"""How long generate.yml takes for 3 control-plane nodes plus 1, 10 and 100 validator workers.

Prints a table: wall time of the playbook (first run and no-change re-run, each also per node),
how long the preflight took before its verdict (and its share of the first run),
and next to it the time of the bare talosctl calls the same work needs run back to back
(gen config + validate per node), so the collection's overhead is visible. Nothing contacts a
node: addresses are loopback and the configs are only rendered and validated.

Usage: benchmarks/generate.py [WORKER_COUNT ...]   (default: 1 10 100)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbed"))
import gobuild  # noqa: E402

TALOSCTL = gobuild.binary_path("talosctl", gobuild.pinned_versions()["TALOSCTL_VERSION"])


def inventory(root: Path, workers: int) -> Path:
    """The local inventory's settings with N validator workers on 127.1.x.y."""
    shutil.copytree(REPO / "testbed/inventory/group_vars", root / "group_vars")  # next to hosts.yml
    network = {"talos_cluster_vip": "127.1.0.10", "talos_cluster_subnet": "127.1.0.0/16",
               "talos_cluster_gateway": "127.1.0.1", "talos_cluster_nameservers": ["127.1.0.1"],
               "talos_cluster_ntp_servers": ["127.1.0.1"]}
    controlplanes = {f"controlplane-{i}": {"talos_node_ip": f"127.1.0.1{i}"} for i in (1, 2, 3)}
    workers_ = {f"solana-validator-{n}": {"talos_node_ip": f"127.1.{1 + n // 250}.{1 + n % 250}"}
                for n in range(workers)}
    # extra vars: they outrank the copied group_vars/all/cluster.yml
    (root / "network.json").write_text(json.dumps(network))
    (root / "hosts.yml").write_text(json.dumps({"talos_cluster": {"children": {
        "talos_controlplane": {"hosts": controlplanes}, "talos_solana_worker": {"hosts": workers_}}}}))
    return root


# the last task of the preflight: nothing is written before it ends
PREFLIGHT_END = "Check the whole inventory before anything is written"


def playbook(inventory_dir: Path, out: Path) -> tuple[float, float]:
    """Wall time of generate.yml, and how much of it passed before the preflight's verdict."""
    started = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "playbooks/generate.yml", "-i", str(inventory_dir / "hosts.yml"),
         "-e", f"@{inventory_dir / 'network.json'}",
         "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={TALOSCTL}"],
        cwd=REPO, check=True, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
             "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    wall = time.monotonic() - started
    report = json.loads(proc.stdout)
    # the preamble's play (ansible-core version, the cluster settings) first, then generate's
    plays = report["plays"]
    play_start = datetime.fromisoformat(plays[0]["play"]["duration"]["start"].replace("Z", "+00:00"))
    (verdict,) = [t for play in plays for t in play["tasks"] if t["task"]["name"].split(" : ")[-1] == PREFLIGHT_END]
    verdict_end = datetime.fromisoformat(verdict["task"]["duration"]["end"].replace("Z", "+00:00"))
    return wall, (verdict_end - play_start).total_seconds()


def bare_talosctl(out: Path, nodes: int) -> float:
    """The same number of gen config + validate calls, sequential, without Ansible."""
    scratch = out / "bare"
    scratch.mkdir()
    started = time.monotonic()
    for index in range(nodes):
        config = scratch / f"node-{index}.yaml"
        with open(config, "w") as handle:
            subprocess.run([str(TALOSCTL), "gen", "config", "bench", "https://127.1.0.10:6443",
                            "--with-secrets", str(out / "secrets.yaml"), "--output-types", "worker",
                            "--output", "-", "--with-docs=false", "--with-examples=false"],
                           check=True, stdout=handle, stderr=subprocess.DEVNULL)
        subprocess.run([str(TALOSCTL), "validate", "--config", str(config), "--mode", "metal", "--strict"],
                       check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [1, 10, 100]
    print(f"talosctl {TALOSCTL.parent.name}, {os.cpu_count()} CPUs, ansible forks from ansible.cfg")
    header = (f"{'nodes':>9} | {'first run':>10} | {'preflight':>9} | {'share':>5} | {'per node':>9} | "
              f"{'re-run':>8} | {'per node':>8} | {'bare talosctl':>13} | {'ratio':>5}")
    print(header)
    print("-" * len(header))
    for workers in counts:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            root = Path(tmp)
            inventory_dir = inventory(root / "inventory", workers)
            out = root / "out"
            first, preflight = playbook(inventory_dir, out)
            rerun, _preflight = playbook(inventory_dir, out)
            nodes = 3 + workers
            bare = bare_talosctl(out, nodes)
            print(f"{'3+' + str(workers):>9} | {first:>9.1f}s | {preflight:>8.1f}s | {preflight / first:>5.0%} | "
                  f"{first / nodes:>8.2f}s | {rerun:>7.1f}s | {rerun / nodes:>7.2f}s | {bare:>12.1f}s | "
                  f"{first / bare:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
