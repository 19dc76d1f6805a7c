"""meta/runtime.yml: the `talos` action group is exactly the modules that run talosctl, so
module_defaults for the group give each of them its talosctl options and nothing it refuses."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _documentation(module: Path) -> dict:
    tree = ast.parse(module.read_text())
    (text,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
               and [target.id for target in node.targets if isinstance(target, ast.Name)] == ["DOCUMENTATION"]]
    return yaml.safe_load(text)


def test_the_talos_action_group_is_the_modules_that_run_talosctl():
    talosctl_modules = sorted(
        path.stem for path in (REPO / "plugins/modules").glob("*.py")
        if "solanaops.talos.talosctl" in _documentation(path).get("extends_documentation_fragment", []))
    assert len(talosctl_modules) >= 10
    group = yaml.safe_load((REPO / "meta/runtime.yml").read_text())["action_groups"]["talos"]
    assert sorted(group) == talosctl_modules
