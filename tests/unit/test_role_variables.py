"""The inventory check knows the collection's variables from the argument specs of the roles
talos_cluster's vars list, and reports an unknown name with one of the collection's prefixes as
a typo: the list must be every role, and every role's variables must carry such a prefix."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


CLUSTER_VARS = yaml.safe_load((REPO / "roles/talos_cluster/vars/main.yml").read_text())


def test_the_inventory_check_reads_every_roles_argument_spec():
    assert sorted(CLUSTER_VARS["__talos_cluster_roles"]) == sorted(path.name for path in REPO.glob("roles/*"))


def test_every_role_variable_has_a_prefix_the_inventory_check_knows():
    pattern = re.compile(CLUSTER_VARS["__talos_cluster_variable_pattern"])
    specs = sorted(REPO.glob("roles/*/meta/argument_specs.yml"))
    assert len(specs) == len(list(REPO.glob("roles/*/meta")))
    variables = {name for spec in specs for entry in yaml.safe_load(spec.read_text())["argument_specs"].values()
                 for name in entry.get("options", {})}
    assert "talos_upgrade_drain" in variables and "storage_bench_runtime" in variables
    assert sorted(name for name in variables if not pattern.match(name)) == []


def test_the_inventory_check_types_every_per_node_option_but_the_power_on_command():
    """talos_cluster's preflight runs once for the play, so each node's talos_node_* values are
    typed by the inventory check from this list: an option added to the spec joins it."""
    options = yaml.safe_load((REPO / "roles/talos_cluster/meta/argument_specs.yml").read_text())[
        "argument_specs"]["preflight"]["options"]
    per_node = sorted(name for name in options if name.startswith("talos_node_"))
    # any text is a valid command, and it may hold a BMC password: not carried in the description
    assert sorted(CLUSTER_VARS["__talos_cluster_node_settings"]) == \
        [name for name in per_node if name != "talos_node_power_on_command"]
