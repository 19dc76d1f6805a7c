"""Every operator mistake of tests/integration/inventory_mistakes.yml is refused by
playbooks/generate.yml before anything is written, naming the variable to change.

Each entry is applied to a private copy of the testbed's inventory (host_vars files, extra group
memberships in hosts.yml, extra vars as one JSON -e, a --limit); generate contacts no node.
"""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL_INVENTORY

CATALOGUE_FILE = Path(__file__).with_name("inventory_mistakes.yml")
MINIMUM_ENTRIES = 60
FIELDS = {"id", "why", "vars", "host_vars", "group", "limit", "names", "host", "gap"}


def load_catalogue(path: Path) -> list[dict]:
    """The catalogue, checked for shape: fails loudly rather than testing less than it claims."""
    entries = yaml.safe_load(path.read_text())
    if not isinstance(entries, list) or len(entries) < MINIMUM_ENTRIES:
        raise ValueError(f"{path}: needs at least {MINIMUM_ENTRIES} entries, has "
                         f"{len(entries) if isinstance(entries, list) else 0}")
    duplicates = [name for name, count in collections.Counter(e.get("id") for e in entries).items() if count > 1]
    if duplicates:
        raise ValueError(f"{path}: duplicate ids {duplicates}")
    for entry in entries:
        unknown = set(entry) - FIELDS
        names = entry.get("names")
        if (unknown or not entry.get("id") or not entry.get("why")
                or not isinstance(names, list) or not 1 <= len(names) <= 2):
            raise ValueError(f"{path}: entry {entry.get('id')!r} needs id, why and one or two names "
                             f"(unknown fields: {sorted(unknown)})")
    return entries


CATALOGUE = load_catalogue(CATALOGUE_FILE)


def bad_inventory(tmp_path: Path, host_vars: dict | None = None, group: dict | None = None) -> Path:
    """A private copy of the testbed's inventory with per-host overrides and extra group memberships."""
    inventory = tmp_path / "inventory"
    shutil.copytree(LOCAL_INVENTORY, inventory)
    for host, values in (host_vars or {}).items():
        path = inventory / "host_vars" / f"{host}.yml"
        path.parent.mkdir(exist_ok=True)
        merged = {**(yaml.safe_load(path.read_text()) or {}), **values} if path.exists() else dict(values)
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
    if group:
        hosts_file = inventory / "hosts.yml"
        hosts = yaml.safe_load(hosts_file.read_text())
        children = hosts["talos_cluster"].setdefault("children", {})
        for host, groups in group.items():
            for name in groups:
                members = children.get(name) or {}
                members["hosts"] = members.get("hosts") or {}
                members["hosts"].setdefault(host, None)
                children[name] = members
        hosts_file.write_text(yaml.safe_dump(hosts, sort_keys=False))
    return inventory


def generate(playbook, talosctl: Path, tmp_path: Path, entry: dict):
    """generate.yml on the entry's inventory copy; returns (run, output folder, failure text)."""
    inventory = bad_inventory(tmp_path, entry.get("host_vars"), entry.get("group"))
    out = tmp_path / "out"
    args = ["-i", str(inventory), "-e", f"talos_cluster_output_dir={out}", "-e", f"talosctl_path={talosctl}"]
    if entry.get("vars"):
        args += ["-e", json.dumps(entry["vars"])]
    if entry.get("limit"):
        args += ["--limit", entry["limit"]]
    run = playbook("playbooks/generate.yml", *args)
    try:
        text = "\n".join(run.failure_messages())
    except (ValueError, KeyError):  # no JSON report: ansible-playbook stopped before the play
        text = run.stderr[-3000:]
    return run, out, text


def written_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir()) if out.exists() else []


def test_the_valid_local_inventory_generates(playbook, talosctl, tmp_path):
    """The harness itself: the unmodified copy generates every file."""
    run, out, text = generate(playbook, talosctl, tmp_path, {"id": "valid", "names": []})
    assert run.rc == 0, text
    files = written_files(out)
    assert {"secrets.yaml", "talosconfig", "solana-validator.yaml", "controlplane-1.yaml"} <= set(files), files


def test_the_harness_applies_host_vars_and_groups(tmp_path):
    inventory = bad_inventory(tmp_path, {"solana-validator": {"talos_node_ip": "127.0.1.99"}},
                              {"controlplane-3": ["talos_solana_worker"], "solana-validator": ["extra_group"]})
    assert yaml.safe_load((inventory / "host_vars/solana-validator.yml").read_text()) == {
        "talos_node_ip": "127.0.1.99"}
    children = yaml.safe_load((inventory / "hosts.yml").read_text())["talos_cluster"]["children"]
    assert "controlplane-3" in children["talos_solana_worker"]["hosts"]
    assert "solana-validator" in children["talos_solana_worker"]["hosts"]
    assert "controlplane-3" in children["talos_controlplane"]["hosts"]
    assert list(children["extra_group"]["hosts"]) == ["solana-validator"]


# an entry with `gap` is a known hole, stated with its reason: it must still fail, so closing
# the hole without removing `gap` is noticed (strict)
@pytest.mark.parametrize("entry", [
    pytest.param(entry, marks=pytest.mark.xfail(strict=True, reason=entry["gap"])) if entry.get("gap") else entry
    for entry in CATALOGUE], ids=[entry["id"] for entry in CATALOGUE])
def test_the_mistake_is_refused_before_anything_is_written(playbook, talosctl, tmp_path, entry):
    run, out, text = generate(playbook, talosctl, tmp_path, entry)
    problems = []
    if run.rc == 0:
        problems.append("not refused (rc 0)")
    files = written_files(out)
    if files:
        problems.append(f"wrote {files}")
    expected = [*entry["names"], *([entry["host"]] if entry.get("host") else [])]
    missing = [name for name in expected if name not in text]
    if missing:
        problems.append(f"did not name {missing}")
    assert not problems, f"{'; '.join(problems)}\n{entry['id']}: {entry['why']}\n--- failure messages:\n{text}"
