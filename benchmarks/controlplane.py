#!/usr/bin/env python3
"""How long the testbed control plane takes to start, and postconfig + verify to run on it.

Prints a table. "warm" starts use the cached binaries; with --cold the etcd, kube and kwok
binaries are first built from scratch into a temporary cache (fresh Go build cache, shared
module cache), which takes minutes on 2 cores. Everything listens on 127.0.0.1 only.

Usage: benchmarks/controlplane.py [--starts N] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbed"))
import gobuild  # noqa: E402

CONTROLPLANE = REPO / "testbed" / "controlplane.py"
KUBELET_VERSION = gobuild.pinned_versions()["KUBERNETES_VERSION"]
# the testbed inventory's nodes as their kubelets report them (the validator's figures are
# tests/integration/test_kubernetes.py's, worked out there): verify passes on them
NODES = [
    {"name": f"controlplane-{i}", "internal_ip": f"127.0.1.1{i}", "kubelet_version": KUBELET_VERSION,
     "labels": {"node-role.kubernetes.io/control-plane": ""}, "control_plane": True,
     "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}
    for i in (1, 2, 3)
] + [{
    "name": "solana-validator", "internal_ip": "127.0.1.20", "kubelet_version": KUBELET_VERSION,
    "labels": {"solana.io/role": "validator"},
    "taints": [{"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}],
    "capacity": {"cpu": "64", "memory": "528416768Ki", "pods": "110", "hugepages-2Mi": "100000Mi",
                 "hugepages-1Gi": "0"},
    "allocatable": {"cpu": "60", "memory": "358907904Ki", "pods": "110", "hugepages-2Mi": "100000Mi",
                    "hugepages-1Gi": "0"},
}]


def timed(argv: list[str], env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=REPO)
    return time.monotonic() - started


def post_mirror_pods(kubeconfig: str) -> None:
    """Each control plane's component pods, as its kubelet posts them for Talos' static pods, at
    the API server's own version: verify checks them (without them it fails, as it should)."""
    from kubernetes import client, config

    api = config.new_client_from_config(kubeconfig)
    version = client.VersionApi(api).get_code().git_version
    for node in (n["name"] for n in NODES if n["name"].startswith("controlplane-")):
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            client.CoreV1Api(api).create_namespaced_pod("kube-system", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{component}-{node}", "labels": {"k8s-app": component, "tier": "control-plane"}},
                "spec": {"nodeName": node, "containers": [{"name": component,
                                                           "image": f"registry.k8s.io/{component}:{version}"}]}})


def controlplane(*args: str, env: dict | None = None) -> float:
    return timed([sys.executable, str(CONTROLPLANE), *args], env)


def cold_build() -> dict[str, float]:
    """Build etcd, kube and kwok into a throwaway cache; return seconds per tool."""
    pins = gobuild.pinned_versions()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        env = {"XDG_CACHE_HOME": tmp, "GOCACHE": f"{tmp}/go-build"}
        for name in ("etcd", "kube", "kwok"):
            version = pins[gobuild.TOOLS[name].version_key]
            figures[f"cold build {name} {version}"] = timed(
                [sys.executable, str(REPO / "testbed" / "gobuild.py"), "build", name, version], env)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    if args.cold:
        rows += cold_build().items()
    starts, stops = [], []
    for _ in range(args.starts):
        with tempfile.TemporaryDirectory(prefix="bench-cp-") as state:
            starts.append(controlplane("up", state, "--port", "16443"))
            stops.append(controlplane("down", state))
    rows += [(f"start (warm binaries), median of {args.starts}", statistics.median(starts)),
             ("stop", statistics.median(stops))]
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as state:
        controlplane("up", state, "--port", "16443")
        try:
            for node in NODES:
                path = Path(state) / f"{node['name']}.json"
                path.write_text(json.dumps(node))
                controlplane("node", state, str(path))
            post_mirror_pods(f"{state}/admin.kubeconfig")
            extra = ["-i", "testbed/inventory", "-e", f"talos_cluster_kubeconfig={state}/admin.kubeconfig",
                     "-e", f"talos_cluster_output_dir={state}/out",
                     # no Talos machines here: the Kubernetes half of verify only
                     "-e", "verify_talos=false"]
            env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
            rows.append(("postconfig, first run", timed(["ansible-playbook", "playbooks/postconfig.yml", *extra], env)))
            rows.append(("postconfig, no-change re-run",
                         timed(["ansible-playbook", "playbooks/postconfig.yml", *extra], env)))
            rows.append(("verify, Kubernetes half", timed(["ansible-playbook", "playbooks/verify.yml", *extra], env)))
        finally:
            controlplane("down", state)
    width = max(len(label) for label, _ in rows)
    print(f"{'step':<{width}} | seconds")
    print("-" * (width + 10))
    for label, seconds in rows:
        print(f"{label:<{width}} | {seconds:7.1f}")


if __name__ == "__main__":
    main()
