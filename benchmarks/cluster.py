"""A throwaway testbed cluster for the benchmarks: an inventory and emulated machines for 3
control planes and N validators on 127.1.x.x, timed playbooks, bare talosctl calls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbed"))
import gobuild  # noqa: E402
from machines import LOCAL_MACHINES, Machines  # noqa: E402, F401  (Machines: re-exported for the benchmarks)

TALOSCTL = gobuild.binary_path("talosctl", gobuild.pinned_versions()["TALOSCTL_VERSION"])
# testbed/inventory's talos_cluster_image_factory_url: the testbed Image Factory
FACTORY = "http://127.0.1.5:5000"


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
    # through JSON: the validators share worker()'s nested values, which safe_dump would write as
    # YAML anchors, and the emulator reads each machine on its own (an alias to another: refused)
    (root / "machines.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(nodes))))
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


def playbook(name: str, root: Path, inventory: Path, *extra: str) -> tuple[float, int, float]:
    """Wall time, changed count and peak memory (MiB, the largest resident set of ansible-playbook
    or any process it ran) of one playbook."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["ansible-playbook", f"playbooks/{name}.yml", "-i", str(inventory / "hosts.yml"),
         "-e", f"@{root / 'network.json'}", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "TESTBED_STATE": str(root / "machines")})
    stdout = process.stdout.read()
    # wait4, not wait: the rusage of this playbook alone (ru_maxrss is in KiB on Linux)
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        # from the first failure on: the recap alone names no cause
        first = min((i for i in (stdout.find("fatal:"), stdout.find("FAILED!")) if i >= 0), default=len(stdout) - 4000)
        sys.exit(f"{name}.yml failed:\n{stdout[max(first, 0):][:6000]}")
    return elapsed, sum(int(n) for n in re.findall(r"changed=(\d+)", stdout)), usage.ru_maxrss / 1024


def talosctl(*args: str, talosconfig: Path | None = None, retry_seconds: float = 0, binary: Path = TALOSCTL) -> None:
    """One talosctl call; retried for retry_seconds (a node still booting its installer answers
    with its maintenance certificate until it has)."""
    env = {**os.environ, **({"TALOSCONFIG": str(talosconfig)} if talosconfig else {})}
    deadline = time.monotonic() + retry_seconds
    while True:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            sys.exit(f"talosctl {' '.join(args)} failed: {done.stderr.strip()}")
        time.sleep(0.5)


