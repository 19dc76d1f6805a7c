"""The inventory check knows the collection's variables from every role's argument spec (a
fileglob of roles/*/meta/argument_specs.yml), and reports an unknown name with one of the
collection's prefixes as a typo: every role's variables must carry one of those prefixes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_role_variable_has_a_prefix_the_inventory_check_knows():
    pattern = re.compile(yaml.safe_load((REPO / "roles/talos_cluster/vars/main.yml").read_text())
                         ["__talos_cluster_variable_pattern"])
    specs = sorted(REPO.glob("roles/*/meta/argument_specs.yml"))
    assert len(specs) == len(list(REPO.glob("roles/*/meta")))
    variables = {name for spec in specs for entry in yaml.safe_load(spec.read_text())["argument_specs"].values()
                 for name in entry.get("options", {})}
    assert "talos_upgrade_drain" in variables and "storage_bench_runtime" in variables
    assert sorted(name for name in variables if not pattern.match(name)) == []
