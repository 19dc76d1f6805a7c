"""cluster_postconfig sets every validator's objects in two module runs, whatever the number of
validators: one apply of every object, one node_taints call; its templates hold every validator's
objects."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import checks

ROLE = Path(__file__).resolve().parents[3] / "roles/cluster_postconfig"
VALIDATORS = [
    {"name": f"solana-validator-{n}", "labels": {"solana.io/role": "validator"},
     "taints": {"solana.io/validator": "true:NoSchedule"},
     "volumes": [{"name": "ledger", "capacity": "15T"}, {"name": "accounts", "capacity": "6T"}]}
    for n in range(2)
]
SETTINGS = {"cluster_postconfig_storage_class_prefix": "local-nvme-", "cluster_postconfig_namespace": "solana",
            "cluster_postconfig_namespace_labels": {"solana.io/team": "validators"},
            "cluster_postconfig_priority_class_name": "solana-critical",
            "cluster_postconfig_priority_class_value": "1000000",
            "cluster_postconfig_priority_class_preemption_policy": "PreemptLowerPriority"}


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _render(template: str) -> list[dict]:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                                     undefined=jinja2.StrictUndefined)
    environment.filters.update({"to_json": json.dumps, "int": int,
                                "solanaops.talos.persistent_volume_name": checks.persistent_volume_name,
                                "solanaops.talos.parse_taints": checks.parse_taints})
    text = environment.get_template(template).render(__cluster_postconfig_validators=VALIDATORS, **SETTINGS)
    return yaml.safe_load(text)


def _objects(kind: str) -> list[dict]:
    return [o for o in _render("objects.yaml.j2") if o["kind"] == kind]


def test_two_module_runs_for_all_validators():
    tasks = list(_tasks(yaml.safe_load((ROLE / "tasks/main.yml").read_text())))
    writers = {"kubernetes.core.k8s", "kubernetes.core.k8s_taint", "solanaops.talos.node_taints"}
    writes = [task for task in tasks if writers & set(task)]
    assert [sorted(writers & set(task)) for task in writes] == [
        ["kubernetes.core.k8s"], ["solanaops.talos.node_taints"]]
    assert [task["name"] for task in writes if not task.get("run_once")] == []


def test_the_cluster_objects_once_then_every_validators_in_one_list():
    kinds = [o["kind"] for o in _render("objects.yaml.j2")]
    # two validators with the same two volumes: the StorageClasses once, the rest per validator
    assert kinds == ["Namespace", "PriorityClass"] + ["StorageClass"] * 2 + ["PersistentVolume"] * 4 + ["Node"] * 2
    assert [c["metadata"]["name"] for c in _objects("StorageClass")] == ["local-nvme-ledger", "local-nvme-accounts"]
    (priority_class,) = _objects("PriorityClass")
    assert priority_class["value"] == 1000000 and priority_class["preemptionPolicy"] == "PreemptLowerPriority"


def test_the_persistent_volumes_of_every_validator_in_one_list():
    volumes = _objects("PersistentVolume")
    described = [(pv["metadata"]["name"], pv["spec"]["capacity"]["storage"], pv["spec"]["local"]["path"])
                 for pv in volumes]
    assert described == [
        (checks.persistent_volume_name(v["name"], volume["name"]), volume["capacity"], f"/var/mnt/{volume['name']}")
        for v in VALIDATORS for volume in v["volumes"]]
    affinity = [pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                for pv in volumes]
    assert affinity == [[v["name"]] for v in VALIDATORS for _volume in v["volumes"]]
    assert {pv["spec"]["storageClassName"] for pv in volumes} == {"local-nvme-ledger", "local-nvme-accounts"}


def test_the_labels_of_every_validator_node_in_one_list():
    assert _objects("Node") == [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": v["name"], "labels": v["labels"]}}
        for v in VALIDATORS]


def test_the_taints_of_every_validator_node_in_one_list():
    assert _render("node-taints.yaml.j2") == [
        {"name": v["name"], "taints": [{"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}]}
        for v in VALIDATORS]
