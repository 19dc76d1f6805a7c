#!/usr/bin/env python3
"""How long upgrade.yml takes to bring a Talos v1.13 cluster to the default release on the
testbed (3 control planes plus N validators), next to the same talosctl calls run bare; then
how long upgrade_kubernetes.yml takes to move a cluster of the default release one Kubernetes
minor up (KUBERNETES_VERSION to KUBERNETES_UPGRADE_VERSION), next to its bare calls.

For each size: fresh emulated machines deployed on v1.13.9 (generate and site with the v1.13
contract and talosctl v1.13.9, not timed), then upgrade.yml timed. Then fresh machines deployed
the same way again and the talosctl calls that change something, back to back: the etcd
snapshot, then per control plane `upgrade --wait` (the etcd leader last is not sought: one
order is as fast as another) and per validator `upgrade --no-reboot` then `reboot --wait`.
What upgrade.yml adds is its plan, the etcd and Node gates between nodes, the leadership
handover, the snapshot's restore check and the report.

For Kubernetes: fresh machines deployed with the defaults (not timed), upgrade_kubernetes.yml
timed (it renders the configs, plans, snapshots, runs talosctl upgrade-k8s, then verify.yml);
then fresh machines again and the bare calls: the etcd snapshot and `talosctl upgrade-k8s`.
Nothing leaves 127.0.0.0/8.

Usage: benchmarks/upgrade.py [WORKER_COUNT ...]   (default: 1)
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from cluster import REPO, TALOSCTL, Machines, gobuild, playbook, talosctl, testbed, worker_address

PINS = gobuild.pinned_versions()
PREVIOUS = gobuild.binary_path("talosctl", PINS["TALOSCTL_PREVIOUS_VERSION"])
TARGET = PINS["TALOSCTL_VERSION"]
KUBERNETES, KUBERNETES_TARGET = PINS["KUBERNETES_VERSION"].lstrip("v"), PINS["KUBERNETES_UPGRADE_VERSION"].lstrip("v")
V113 = ["-e", f"@{REPO / 'tests/integration/vars/contract-v1.13.yml'}", "-e", f"talosctl_path={PREVIOUS}"]
ETCDUTL = ["-e", f"talos_upgrade_etcdutl_path={gobuild.binary_path('etcdutl', PINS['ETCD_VERSION'])}"]


def deploy_v113(root: Path, inventory: Path, out: Path) -> None:
    for name in ("generate", "site"):
        playbook(name, root, inventory, *V113, "-e", f"talos_cluster_output_dir={out}")


def installer(out: Path, node: str) -> str:
    """The node's installer on the target release: its schematic's, from the file generate wrote."""
    text = (out / f"{node}.schematic.yaml").read_text()
    image = re.search(r"^# installer\s+(\S+)$", text, re.M).group(1)
    return image.rsplit(":", 1)[0] + ":" + TARGET


def bare(root: Path, out: Path, workers: int) -> float:
    config = out / "talosconfig"
    controlplanes = [f"127.1.0.1{i}" for i in (1, 2, 3)]
    started = time.monotonic()
    talosctl("etcd", "snapshot", str(root / "bare.snapshot"), "-n", controlplanes[0], "-e", controlplanes[0],
             talosconfig=config)
    for i, ip in enumerate(controlplanes, 1):
        other = controlplanes[i % 3]
        talosctl("upgrade", "--image", installer(out, f"controlplane-{i}"), "--wait", "-n", ip, "-e", other,
                 talosconfig=config)
    for n in range(workers):
        ip, image = worker_address(n), installer(out, f"solana-validator-{n}")
        talosctl("upgrade", "--image", image, "--no-reboot", "-n", ip, "-e", controlplanes[0], talosconfig=config)
        talosctl("reboot", "--wait", "-n", ip, "-e", controlplanes[0], talosconfig=config)
    return time.monotonic() - started


def measure(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-upgrade-{workers}-") as tmp:
        root = Path(tmp)
        inventory, machines_file = testbed(root, workers)
        machines = Machines(machines_file, root / "machines")
        try:
            deploy_v113(root, inventory, root / "out")
            seconds, changed, mib = playbook("upgrade", root, inventory, *ETCDUTL)
            print(f"  3+{workers} upgrade.yml: {seconds:.1f} s, changed={changed}, {mib:.0f} MiB", flush=True)
        finally:
            machines.stop()
        machines = Machines(machines_file, root / "bare-machines")
        try:
            deploy_v113(root, inventory, root / "bare-out")
            bare_seconds = bare(root, root / "bare-out", workers)
            print(f"  3+{workers} bare talosctl: {bare_seconds:.1f} s", flush=True)
        finally:
            machines.stop()
    return {"workers": workers, "upgrade": seconds, "bare": bare_seconds, "peak_mib": mib}


def measure_kubernetes(workers: int) -> dict:
    to_target = ["-e", f"talos_cluster_kubernetes_version={KUBERNETES_TARGET}"]
    with tempfile.TemporaryDirectory(prefix=f"bench-upgrade-k8s-{workers}-") as tmp:
        root = Path(tmp)
        inventory, machines_file = testbed(root, workers)
        machines = Machines(machines_file, root / "machines")
        try:
            for name in ("generate", "site"):
                playbook(name, root, inventory)
            seconds, changed, mib = playbook("upgrade_kubernetes", root, inventory, *ETCDUTL, *to_target)
            print(f"  3+{workers} upgrade_kubernetes.yml: {seconds:.1f} s, changed={changed}, {mib:.0f} MiB",
                  flush=True)
        finally:
            machines.stop()
        machines = Machines(machines_file, root / "bare-machines")
        try:
            out = root / "bare-out"
            for name in ("generate", "site"):
                playbook(name, root, inventory, "-e", f"talos_cluster_output_dir={out}")
            config, controlplane = out / "talosconfig", "127.1.0.11"
            started = time.monotonic()
            talosctl("etcd", "snapshot", str(root / "bare.snapshot"), "-n", controlplane, "-e", controlplane,
                     talosconfig=config)
            talosctl("upgrade-k8s", "--from", KUBERNETES, "--to", KUBERNETES_TARGET, "-n", controlplane,
                     "-e", controlplane, talosconfig=config)
            bare_seconds = time.monotonic() - started
            print(f"  3+{workers} bare talosctl: {bare_seconds:.1f} s", flush=True)
        finally:
            machines.stop()
    return {"workers": workers, "upgrade": seconds, "bare": bare_seconds, "peak_mib": mib}


def table(title: str, rows: list[dict]) -> None:
    print(f"{'nodes':>7} {title:>22} {'bare':>6} {'ratio':>6} {'peak MiB':>8}")
    for r in rows:
        print(f"{'3+' + str(r['workers']):>7} {r['upgrade']:22.1f} {r['bare']:6.1f} {r['upgrade'] / r['bare']:6.1f} "
              f"{r['peak_mib']:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workers", type=int, nargs="*", default=[1], help="validator counts to measure")
    sizes = parser.parse_args().workers
    print(f"upgrade.yml v1.13.9 -> {TARGET} on the testbed (talosctl {TALOSCTL.parent.name}), "
          f"{os.cpu_count()} CPUs; seconds", flush=True)
    rows = [measure(workers) for workers in sizes]
    print(f"then upgrade_kubernetes.yml {KUBERNETES} -> {KUBERNETES_TARGET}", flush=True)
    kubernetes_rows = [measure_kubernetes(workers) for workers in sizes]
    table("upgrade.yml", rows)
    table("upgrade_kubernetes.yml", kubernetes_rows)


if __name__ == "__main__":
    main()
