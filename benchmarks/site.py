#!/usr/bin/env python3
"""How long site.yml takes on the testbed for 3 control planes plus 1, 20 and 100 validator
workers, phase by phase, next to the bare talosctl calls the same deployment needs.

For each size: fresh emulated machines (real etcd and Kubernetes behind them), then each stage
of site.yml timed on its own (generate, controlplane, worker, postconfig, verify), then a
no-change re-run of site.yml (its changed count is printed too). Then fresh machines again
and the bare talosctl calls back to back: gen secrets, per node gen config + validate, each
schematic registered with the testbed Image Factory, per node apply-config, bootstrap, health,
kubeconfig. Nothing leaves 127.0.0.0/8.

Columns: each stage's seconds, their sum (site.yml), the no-change re-run's seconds and changed
count, the bare calls' seconds, the ratio of site.yml to them, and the peak memory (MiB) of
ansible-playbook (with what it ran) over the stages and the re-run.

Usage: benchmarks/site.py [WORKER_COUNT ...]   (default: 1 20 100)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from cluster import FACTORY, Machines, playbook, talosctl, testbed, worker_address

STAGES = ["generate", "controlplane", "worker", "postconfig", "verify"]


def bare(root: Path, workers: int) -> float:
    """The deployment as bare talosctl calls, back to back, with the configs site.yml rendered."""
    out, scratch = root / "out", root / "bare"
    scratch.mkdir()
    controlplanes = [f"127.1.0.1{i}" for i in (1, 2, 3)]
    nodes = [(f"controlplane-{i}", ip, "controlplane") for i, ip in enumerate(controlplanes, 1)]
    nodes += [(f"solana-validator-{n}", worker_address(n), "worker") for n in range(workers)]
    started = time.monotonic()
    talosctl("gen", "secrets", "-o", str(scratch / "secrets.yaml"))
    for name, _ip, kind in nodes:
        talosctl("gen", "config", "solana", "https://127.1.0.10:6443", "--with-secrets", str(scratch / "secrets.yaml"),
                 "--output-types", kind, "-o", str(scratch / f"{name}.yaml"), "--force")
        talosctl("validate", "--config", str(out / f"{name}.yaml"), "--mode", "metal", "--strict")
    for name, _ip, _kind in nodes:
        # the testbed factory builds an installer only for a schematic it knows (as register.yml does)
        request = urllib.request.Request(f"{FACTORY}/schematics", data=(out / f"{name}.schematic.yaml").read_bytes(),
                                         headers={"Content-Type": "application/yaml"}, method="POST")
        urllib.request.urlopen(request, timeout=30).close()
    for name, ip, _kind in nodes:
        talosctl("apply-config", "--insecure", "-n", ip, "-e", ip, "-f", str(out / f"{name}.yaml"))
    config = out / "talosconfig"
    talosctl("bootstrap", "-n", controlplanes[0], "-e", controlplanes[0], talosconfig=config, retry_seconds=300)
    talosctl("health", "-n", controlplanes[0], "-e", controlplanes[0], "--control-plane-nodes", ",".join(controlplanes),
             "--worker-nodes", ",".join(ip for _n, ip, kind in nodes if kind == "worker"), "--wait-timeout", "10m",
             talosconfig=config)
    talosctl("kubeconfig", str(scratch / "kubeconfig"), "--merge=false", "--force", "-n", controlplanes[0],
             "-e", controlplanes[0], talosconfig=config)
    return time.monotonic() - started


def measure(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-site-{workers}-") as tmp:
        root = Path(tmp)
        inventory, machines_file = testbed(root, workers)
        machines = Machines(machines_file, root / "machines")
        try:
            stages, peak_mib = {}, 0.0
            for stage in STAGES:
                stages[stage], _changed, mib = playbook(stage, root, inventory)
                peak_mib = max(peak_mib, mib)
                print(f"  3+{workers} {stage}: {stages[stage]:.1f} s, {mib:.0f} MiB", flush=True)
            rerun, rerun_changed, mib = playbook("site", root, inventory)
            peak_mib = max(peak_mib, mib)
            print(f"  3+{workers} no-change re-run: {rerun:.1f} s, changed={rerun_changed}, {mib:.0f} MiB", flush=True)
        finally:
            machines.stop()
        machines = Machines(machines_file, root / "bare-machines")
        try:
            bare_seconds = bare(root, workers)
        finally:
            machines.stop()
    return {"workers": workers, "stages": stages, "rerun": rerun, "rerun_changed": rerun_changed, "bare": bare_seconds,
            "peak_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workers", type=int, nargs="*", default=[1, 20, 100], help="validator counts to measure")
    sizes = parser.parse_args().workers
    print(f"site.yml on the testbed, {os.cpu_count()} CPUs; seconds", flush=True)
    header = f"{'nodes':>7} " + " ".join(f"{s:>12}" for s in STAGES) + f" {'site.yml':>9} {'re-run':>7} " \
             f"{'changed':>7} {'bare':>6} {'ratio':>6} {'peak MiB':>8}"
    rows = []
    for workers in sizes:
        r = measure(workers)
        total = sum(r["stages"].values())
        stages = " ".join(f"{r['stages'][s]:12.1f}" for s in STAGES)
        rows.append(f"{'3+' + str(workers):>7} {stages} {total:9.1f} {r['rerun']:7.1f} {r['rerun_changed']:7d} "
                    f"{r['bare']:6.1f} {total / r['bare']:6.1f} {r['peak_mib']:8.0f}")
        print(f"measured 3+{workers}", flush=True)
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
