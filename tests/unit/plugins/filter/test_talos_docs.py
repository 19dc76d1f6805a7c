"""Each filter of plugins/filter/talos.py is documented on its own (plugins/filter/<name>.yml, what
`ansible-doc -t filter solanaops.talos.<name>` shows), and the documentation matches the function:
its arguments in order, their defaults, the version it was added in."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.filter import talos

FILTER_DIR = Path(talos.__file__).resolve().parent
GALAXY = yaml.safe_load((FILTER_DIR.parents[1] / "galaxy.yml").read_text())
FILTERS = talos.FilterModule().filters()


def documentation(name: str) -> dict:
    path = FILTER_DIR / f"{name}.yml"
    assert path.is_file(), f"filter {name} has no documentation of its own ({path.name})"
    return yaml.safe_load(path.read_text())


def test_the_plugin_file_has_no_shared_documentation():
    """A DOCUMENTATION block in talos.py would be shown for every filter instead of its own."""
    assert not hasattr(talos, "DOCUMENTATION")


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filter_documented_on_its_own(name):
    docs = documentation(name)
    doc = docs["DOCUMENTATION"]
    assert doc["name"] == name
    assert doc["short_description"] and doc["description"]
    # nothing is released yet: every filter is new in galaxy.yml's version
    assert str(doc["version_added"]) == GALAXY["version"]
    assert "_value" in docs["RETURN"]
    assert f"solanaops.talos.{name}" in docs["EXAMPLES"]


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filter_documentation_matches_the_function(name):
    doc = documentation(name)["DOCUMENTATION"]
    parameters = list(inspect.signature(FILTERS[name]).parameters.values())
    positional = [part.strip() for part in doc["positional"].split(",")]
    assert positional == ["_input"] + [parameter.name for parameter in parameters[1:]]
    assert set(doc["options"]) == set(positional)
    for parameter in parameters[1:]:
        option = doc["options"][parameter.name]
        if parameter.default is inspect.Parameter.empty:
            assert option.get("required") is True, parameter.name
        else:
            assert option.get("default") == parameter.default, parameter.name
