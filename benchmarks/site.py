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
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbed"))
import gobuild  # noqa: E402
from machines import LOCAL_MACHINES, Machines  # noqa: E402

TALOSCTL = gobuild.binary_path("talosctl", gobuild.pinned_versions()["TALOSCTL_VERSION"])
# testbed/inventory's talos_cluster_image_factory_url: the testbed Image Factory
FACTORY = "http://127.0.1.5:5000"
STAGES = ["generate", "controlplane", "worker", "postconfig", "verify"]


def worker_address(n: int) -> str:
    return f"127.1.{1 + n // 250}.{1 + n % 250}"


def worker(validator: dict, n: int) -> dict:
    """Validator n: local-machines.yaml's validator with its own name, address and MAC. The MAC is
    set as a string: PyYAML (YAML 1.1) reads an unquoted 52:54:00:00:01:14 as a base-60 integer."""
    nics = [{**nic, "mac": f"52:54:01:{n // 65536:02x}:{n // 256 % 256:02x}:{n % 256:02x}"}
            for nic in validator["hardware"]["nics"]]
    return {**validator, "name": f"solana-validator-{n}", "address": worker_address(n),
            "hardware": {**validator["hardware"], "nics": nics}}


def testbed(root: Path, workers: int) -> tuple[Path, Path]:
    """An inventory and the matching machines: local-machines.yaml's, with N validators."""
    machines = yaml.safe_load(LOCAL_MACHINES.read_text())
    controlplane, validator = machines[0:3], machines[3]
    for i, machine in enumerate(controlplane, 1):
        machine["address"] = f"127.1.0.1{i}"
    nodes = controlplane + [worker(validator, n) for n in range(workers)]
    (root / "machines.yaml").write_text(yaml.safe_dump(nodes))
    inventory = root / "inventory"
    inventory.mkdir()
    (inventory / "group_vars").symlink_to(REPO / "testbed/inventory/group_vars")
    # extra vars outrank group_vars/all/cluster.yml
    (root / "network.json").write_text(json.dumps({
        "talos_cluster_vip": "127.1.0.10", "talos_cluster_subnet": "127.1.0.0/16",
        "talos_cluster_gateway": "127.1.0.1", "talos_cluster_nameservers": ["127.1.0.1"],
        "talos_cluster_ntp_servers": ["127.1.0.1"], "talos_cluster_output_dir": str(root / "out"),
        "talosctl_path": str(TALOSCTL)}))
    (inventory / "hosts.yml").write_text(json.dumps({"talos_cluster": {"children": {
        "talos_controlplane": {"hosts": {m["name"]: {"talos_node_ip": m["address"]} for m in controlplane}},
        "talos_solana_worker": {"hosts": {f"solana-validator-{n}": {"talos_node_ip": worker_address(n)}
                                          for n in range(workers)}}}}}))
    return inventory, root / "machines.yaml"


def playbook(name: str, root: Path, inventory: Path) -> tuple[float, int, float]:
    """Wall time, changed count and peak memory (MiB, the largest resident set of ansible-playbook
    or any process it ran) of one playbook."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["ansible-playbook", f"playbooks/{name}.yml", "-i", str(inventory / "hosts.yml"),
         "-e", f"@{root / 'network.json'}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "TESTBED_STATE": str(root / "machines")})
    stdout = process.stdout.read()
    # wait4, not wait: the rusage of this playbook alone (ru_maxrss is in KiB on Linux)
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"{name}.yml failed:\n{stdout[-4000:]}")
    return elapsed, sum(int(n) for n in re.findall(r"changed=(\d+)", stdout)), usage.ru_maxrss / 1024


def talosctl(*args: str, talosconfig: Path | None = None, retry_seconds: float = 0) -> None:
    """One talosctl call; retried for retry_seconds (a node still booting its installer answers
    with its maintenance certificate until it has)."""
    env = {**os.environ, **({"TALOSCONFIG": str(talosconfig)} if talosconfig else {})}
    deadline = time.monotonic() + retry_seconds
    while True:
        done = subprocess.run([str(TALOSCTL), *args], capture_output=True, text=True, env=env)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            sys.exit(f"talosctl {' '.join(args)} failed: {done.stderr.strip()}")
        time.sleep(0.5)


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
