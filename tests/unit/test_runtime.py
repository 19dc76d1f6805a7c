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


GROUP_DEFAULTS = "group/solanaops.talos.talos"
TALOSCTL_OPTIONS = {"talosctl_path", "talosconfig"}
BLOCK_KEYS = ("block", "rescue", "always")
INCLUDES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks")


def _talos_group() -> set[str]:
    group = yaml.safe_load((REPO / "meta/runtime.yml").read_text())["action_groups"]["talos"]
    return {f"solanaops.talos.{name}" for name in group}


def _tasks(tasks: list, covered: bool = False):
    """Every task with whether a block around it gives the talos group its talosctl options."""
    for task in tasks or []:
        here = covered or TALOSCTL_OPTIONS <= set((task.get("module_defaults") or {}).get(GROUP_DEFAULTS) or {})
        yield task, here
        for key in BLOCK_KEYS:
            yield from _tasks(task.get(key), here)


def _role_files(role: Path) -> dict[str, list]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted((role / "tasks").glob("*.yml"))}


def test_no_role_task_passes_the_talosctl_options_itself():
    """talosctl_path and talosconfig come from module_defaults (a block per entry point), never from
    the task; a task that needs other credentials gets them from its block's defaults (verify's
    verify_talosconfig)."""
    talos_group = _talos_group()
    calls = []
    for role in sorted((REPO / "roles").iterdir()):
        for name, tasks in _role_files(role).items():
            for task, _covered in _tasks(tasks):
                for action in talos_group & set(task):
                    calls.append(f"{role.name}/{name}: {task['name']}")
                    passed = sorted(TALOSCTL_OPTIONS & set(task[action] or {}))
                    assert not passed, (f"{role.name}/tasks/{name}: {task['name']!r} passes {passed}:"
                                        f" leave them to the block's module_defaults for {GROUP_DEFAULTS}")
    assert len(calls) >= 25


def test_every_talosctl_call_of_a_role_entry_point_is_under_the_groups_module_defaults():
    """A user may include any entry point (meta/argument_specs.yml) from a play of their own: each
    call of a talos module it reaches, through its own include_tasks too, must get the talosctl
    options from a block of the role, not from the calling play."""
    talos_group = _talos_group()
    reached = set()

    def check(role: Path, files: dict, name: str, covered: bool, via: str):
        for task, here in _tasks(files[name], covered):
            where = f"{role.name}/tasks/{name} (entry point {via}): {task.get('name')!r}"
            if talos_group & set(task):
                reached.add((role.name, name))
                assert here, f"{where} runs talosctl outside a block with module_defaults for {GROUP_DEFAULTS}"
            for include in INCLUDES:
                if include in task:
                    check(role, files, task[include], here, via)

    for role in sorted((REPO / "roles").iterdir()):
        files = _role_files(role)
        specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
        for entry_point in specs:
            check(role, files, f"{entry_point}.yml", False, entry_point)
    calling = {(role.name, name) for role in (REPO / "roles").iterdir() for name, tasks in _role_files(role).items()
               if any(talos_group & set(task) for task, _covered in _tasks(tasks))}
    assert calling and calling <= reached, f"task files no entry point reaches: {sorted(calling - reached)}"
