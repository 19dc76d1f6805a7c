"""cluster_postconfig applies every validator's objects in one call per kind, not one call per
validator: its k8s tasks run once, and its templates hold every validator's objects."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import checks

ROLE = Path(__file__).resolve().parents[3] / "roles/cluster_postconfig"
VALIDATORS = [
    {"name": f"solana-validator-{n}", "labels": {"solana.io/role": "validator"},
     "volumes": [{"name": "ledger", "capacity": "15T"}, {"name": "accounts", "capacity": "6T"}]}
    for n in range(2)
]


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _render(template: str) -> list[dict]:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                                     undefined=jinja2.StrictUndefined)
    environment.filters.update({"to_json": json.dumps,
                                "solanaops.talos.persistent_volume_name": checks.persistent_volume_name})
    text = environment.get_template(template).render(__cluster_postconfig_validators=VALIDATORS,
                                                     cluster_postconfig_storage_class_prefix="local-nvme-")
    return yaml.safe_load(text)


def test_every_apply_runs_once_for_all_validators():
    tasks = list(_tasks(yaml.safe_load((ROLE / "tasks/main.yml").read_text())))
    applies = [task for task in tasks if "kubernetes.core.k8s" in task]
    assert len(applies) >= 5
    assert [task["name"] for task in applies if not task.get("run_once")] == []


def test_the_persistent_volumes_of_every_validator_in_one_list():
    volumes = _render("persistent-volumes.yaml.j2")
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
    assert _render("node-labels.yaml.j2") == [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": v["name"], "labels": v["labels"]}}
        for v in VALIDATORS]
