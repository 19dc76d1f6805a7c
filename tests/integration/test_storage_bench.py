"""The storage benchmark and the NUMA placement proof on the testbed, which cannot run them: kwok
runs no containers, so both say "needs real nodes" instead of reporting made-up figures. What they
parse and judge is tested on real fio output and this machine's /proc and /sys in tests/unit."""

from __future__ import annotations

import json


def test_on_kwok_nodes_the_benchmark_and_the_placement_proof_need_real_nodes(deployed):
    bench = deployed("storage_bench")
    assert bench.rc != 0
    (message,) = bench.failure_messages()
    assert message.startswith("solana-validator: needs real nodes: fio did not run, nothing was measured: "
                              "solana-validator: not run: kwok-managed (kwok.x-k8s.io/node=fake)"), message
    report = json.loads((deployed.out / "storage-bench-report.json").read_text())
    assert (report["passed"], report["failed"], report["information"]) == (0, 1, 1)
    assert [(r["name"], r["subject"], r["info"]) for r in report["results"]] == [("fio", "solana-validator", True)]
    measurements = json.loads((deployed.out / "storage-bench.json").read_text())
    assert measurements["measured"] == {"solana-validator": []}  # nothing measured
    assert [job["name"] for job in measurements["jobs"]] == ["ledger", "accounts"]
    # stopped before anything was created: no Job, no ConfigMap of the benchmark
    from kubernetes import client

    api = deployed.api_client()
    selector = "app.kubernetes.io/name=storage-bench"
    assert client.BatchV1Api(api).list_namespaced_job("solana", label_selector=selector).items == []
    assert client.CoreV1Api(api).list_namespaced_config_map("solana", label_selector=selector).items == []

    numa = deployed("numa_test")
    assert numa.rc == 0, numa.failure_messages()
    placement = json.loads((deployed.out / "numa-test" / "report.json").read_text())
    assert [(r["name"], r["passed"], r.get("info", False)) for r in placement["results"]] == [
        ("pod scheduled on its validator", True, False), ("numa placement", True, True)]
    assert placement["results"][1]["observed"].startswith("not run: kwok-managed (kwok.x-k8s.io/node=fake)")
    assert placement["results"][1]["observed"].endswith("needs real nodes")
