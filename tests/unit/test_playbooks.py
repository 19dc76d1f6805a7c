"""playbooks/: every entry playbook starts with the one preamble (ansible-core version, the cluster
settings), and no play loads the settings again."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
PREAMBLE = "preamble.yml"


def _plays(name: str) -> list[dict]:
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def _first_play(name: str) -> str:
    """The playbook whose play runs first when NAME runs, following import_playbook."""
    first = _plays(name)[0]
    imported = first.get("ansible.builtin.import_playbook")
    return _first_play(imported) if imported else name


def _tasks(tasks: list):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _entry_playbooks() -> list[str]:
    return sorted(path.name for path in PLAYBOOKS.glob("*.yml") if path.name != PREAMBLE)


def test_every_entry_playbook_runs_the_preamble_first():
    entry_playbooks = _entry_playbooks()
    assert len(entry_playbooks) >= 8
    for name in entry_playbooks:
        assert _first_play(name) == PREAMBLE, f"playbooks/{name} does not start with import_playbook: {PREAMBLE}"


def test_the_preamble_checks_the_version_and_loads_the_settings_for_every_tag():
    (play,) = _plays(PREAMBLE)
    assert "always" in play["tags"]
    tasks = list(_tasks(play["tasks"]))
    assert any("ansible_version" in str(task.get("ansible.builtin.assert", {}).get("that")) for task in tasks)
    settings = {"name": "solanaops.talos.talos_cluster", "tasks_from": "facts"}
    assert any(task.get("ansible.builtin.include_role") == settings for task in tasks)


def test_no_entry_playbook_loads_the_cluster_settings_itself():
    for name in _entry_playbooks():
        for play in _plays(name):
            for task in _tasks(play.get("tasks")):
                include = task.get("ansible.builtin.include_role") or {}
                assert include.get("tasks_from") != "facts", (
                    f"playbooks/{name}: {task['name']!r} loads the cluster settings again; {PREAMBLE} does it once")


def test_a_role_included_once_for_the_play_stops_every_host_when_its_arguments_fail():
    """A run_once include_role runs only for the first host, and so does the argument-spec
    check Ansible puts before the role's tasks: without any_errors_fatal its failure would fail
    that host alone and the others would go on to the next play."""
    checked = []
    for name in _entry_playbooks():
        for play in _plays(name):
            for task in _tasks(play.get("tasks")):
                include = task.get("ansible.builtin.include_role") or {}
                if include and task.get("run_once") and include.get("rolespec_validate", True):
                    checked.append((name, task["name"]))
                    assert play.get("any_errors_fatal"), (
                        f"playbooks/{name}: {task['name']!r} validates its role's arguments once for the play, "
                        f"whose play {play['name']!r} lacks any_errors_fatal")
    assert {("verify.yml", "Verify and report"), ("postconfig.yml", "Apply the Kubernetes objects")} <= set(checked)
