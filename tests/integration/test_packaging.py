"""The collection artifact and what installs it: the tarball holds only what users run, even built
from a tree where lint and tests ran; its requirements are the run-time ones; the execution
environment example is a valid ansible-builder definition; a project sync installs the checkout;
the changelog fragments render. Nothing here reaches beyond this machine (no Galaxy, no PyPI)."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements
from conftest import LOCAL_INVENTORY
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
VERSION = GALAXY["version"]
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{VERSION}.tar.gz"

# What a user runs, and the metadata ansible-galaxy and ansible-builder read.
ALLOWED_TOP_LEVEL = {
    "plugins", "roles", "playbooks", "meta", "changelogs", "docs",
    "README.md", "COPYING", "CHANGELOG.md", "requirements.txt", "MANIFEST.json", "FILES.json",
}
REQUIRED_TOP_LEVEL = ALLOWED_TOP_LEVEL - {"docs"}
# The harness, local state and caches: never in the artifact, at any depth (nor anything hidden).
EXCLUDED_NAMES = {"tests", "testbed", "extensions", "benchmarks", "inventory", "out", "__pycache__"}
# The development setup at the root of the checkout.
EXCLUDED_TOP_LEVEL = {
    "Makefile", "ansible.cfg", "pyproject.toml", "requirements-dev.txt", "execution-environment.yml", "collections",
    "docs",
}
# Well above today's ~130 KB; a tarball past this has picked up something it should not.
MAX_TARBALL_BYTES = 1024 * 1024


def run(*argv: str | Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
                               **(env or {})}, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout}{done.stderr}"
    return done


def checkout_files() -> list[str]:
    """The files a clone of this checkout holds (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def copy_checkout(destination: Path) -> Path:
    for name in checkout_files():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, destination / name)
    return destination


def dirty(tree: Path) -> None:
    """What a tree holds after `make setup`, lint, tests and a demo run (secrets in out/ and beside the
    testbed inventory)."""
    junk = [
        ".pytest_cache/v/cache/lastfailed", ".ruff_cache/0.17.6/cache", ".ansible/collections/x",
        ".venv/bin/python", "out/solana-local/secrets.yaml", "testbed/inventory/state/solana-local/secrets.yaml",
        "tests/output/junit.xml",
        "tests/unit/.pytest_cache/v/cache/nodeids", "plugins/modules/__pycache__/talos_secrets.cpython-311.pyc",
        "plugins/filter/.ruff_cache/cache", "roles/talosctl/.ansible/facts", "playbooks/site.retry",
        "benchmarks/results.json", f"{GALAXY['namespace']}-{GALAXY['name']}-0.0.1.tar.gz",
    ]
    for name in junk:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("junk\n")
    (tree / ".collections/ansible_collections/solanaops").mkdir(parents=True, exist_ok=True)
    (tree / ".collections/ansible_collections/solanaops/talos").symlink_to("../../..")


@pytest.fixture(scope="module")
def no_config(tmp_path_factory) -> dict:
    """Environment for ansible commands that must not read the checkout's ansible.cfg."""
    empty = tmp_path_factory.mktemp("config") / "ansible.cfg"
    empty.write_text("")
    return {"ANSIBLE_CONFIG": str(empty)}


@pytest.fixture(scope="module")
def dirty_tree(tmp_path_factory) -> Path:
    tree = copy_checkout(tmp_path_factory.mktemp("checkout") / "talos")
    dirty(tree)
    return tree


@pytest.fixture(scope="module")
def tarball(dirty_tree, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    run(BIN / "ansible-galaxy", "collection", "build", "--output-path", output, dirty_tree, cwd=dirty_tree)
    return output / TARBALL_NAME


@pytest.fixture(scope="module")
def members(tarball) -> list[str]:
    with tarfile.open(tarball) as archive:
        return [member.name for member in archive.getmembers()]


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory, no_config) -> Path:
    """The tarball installed as a user would, without its dependencies (Galaxy is not reachable)."""
    root = tmp_path_factory.mktemp("installed")
    run(BIN / "ansible-galaxy", "collection", "install", "--no-deps", "-p", root, tarball, cwd=root,
        env=no_config)
    return root


def test_tarball_holds_only_what_users_run(tarball, members):
    size = tarball.stat().st_size
    top_level = {name.split("/", 1)[0] for name in members}
    print(f"{tarball.name}: {size} bytes, {len(members)} entries; top level: {sorted(top_level)}")

    assert top_level <= ALLOWED_TOP_LEVEL, sorted(top_level - ALLOWED_TOP_LEVEL)
    assert REQUIRED_TOP_LEVEL <= top_level, sorted(REQUIRED_TOP_LEVEL - top_level)
    leaked = [name for name in members
              if any(part in EXCLUDED_NAMES or part.startswith(".") for part in name.split("/"))
              or name.split("/", 1)[0] in EXCLUDED_TOP_LEVEL or name.endswith((".pyc", ".retry", ".tar.gz"))]
    assert not leaked, leaked
    assert size < MAX_TARBALL_BYTES


def test_tarball_holds_every_file_users_run(members):
    """build_ignore drops nothing a user runs: every plugin, role, playbook and meta file ships."""
    shipped = {name for name in checkout_files() if name.split("/", 1)[0] in {"plugins", "roles", "playbooks", "meta"}}
    assert shipped, "no source files found"
    assert sorted(shipped - set(members)) == []


def test_manifest_declares_kubernetes_core_with_a_range_the_tested_one_meets(tarball):
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    dependencies = manifest["collection_info"]["dependencies"]
    assert set(dependencies) == {"kubernetes.core"}

    # the kubernetes.core the tests run with: the one the pinned `ansible` package bundles
    import ansible_collections.kubernetes.core as bundled

    tested = json.loads((Path(bundled.__path__[0]) / "MANIFEST.json").read_text())["collection_info"]["version"]
    assert meets_requirements(tested, dependencies["kubernetes.core"]), (tested, dependencies)

    project_sync = yaml.safe_load((REPO / "collections/requirements.yml").read_text())["collections"]
    assert {"name": "kubernetes.core", "version": dependencies["kubernetes.core"]} in project_sync


def requirements(path: Path) -> dict[str, Requirement]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[requirement.name.lower()] = requirement
    return found


def test_runtime_requirements_are_the_run_time_ones_and_the_dev_pins_meet_them():
    runtime = requirements(REPO / "requirements.txt")
    assert set(runtime) == {"kubernetes", "pyyaml"}, "development tools belong in requirements-dev.txt"

    dev_file = REPO / "requirements-dev.txt"
    assert "-r requirements.txt" in dev_file.read_text().splitlines()
    pins = requirements(dev_file)
    for name, requirement in runtime.items():
        pinned = [spec.version for spec in pins[name].specifier if spec.operator == "=="]
        assert pinned and requirement.specifier.contains(pinned[0]), (name, str(requirement), str(pins[name]))
    assert {"ansible-builder", "antsibull-changelog"} <= set(pins)


def test_makefile_keys_the_virtualenv_by_both_requirements_files():
    makefile = (REPO / "Makefile").read_text()
    venv_line = next(line for line in makefile.splitlines() if line.startswith("VENV "))
    assert "requirements.txt" in venv_line and "requirements-dev.txt" in venv_line, venv_line


def test_ansible_builder_reads_the_python_requirements_from_the_installed_collection(installed):
    """ansible-builder's own introspection, as the EE build runs it, of the installed tarball."""
    from ansible_builder._target_scripts.introspect import process_collection

    declared, system = process_collection(str(installed / "ansible_collections/solanaops/talos"))
    assert declared == ["kubernetes>=24.2.0", "PyYAML>=5.1"] and system == []

    # what the build installs for it: PyYAML comes with ansible-core, so ansible-builder drops it
    done = run(BIN / "ansible-builder", "introspect", installed, cwd=installed)
    python = yaml.safe_load(done.stdout.split("\n", 1)[1])["python"]
    assert python == ["kubernetes>=24.2.0  # from collection solanaops.talos"], done.stdout


def test_execution_environment_example_is_a_valid_definition(tarball, tmp_path):
    """`ansible-builder create` (no container engine needed) on the example, beside the built tarball."""
    shutil.copy(tarball, tmp_path)
    shutil.copy(REPO / "execution-environment.yml", tmp_path)
    context = tmp_path / "context"
    run(BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", context,
        "--output-filename", "Containerfile", cwd=tmp_path)

    assert (context / "_build/collections" / TARBALL_NAME).is_file(), "the built tarball was not copied in"
    galaxy = yaml.safe_load((context / "_build/requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": f"collections/{TARBALL_NAME}", "type": "file"}]

    containerfile = (context / "Containerfile").read_text()
    pinned = re.search(r"^TALOSCTL_VERSION=(\S+)$", (REPO / "testbed/versions.env").read_text(), re.M).group(1)
    assert f"ARG TALOSCTL_VERSION={pinned}\n" in containerfile
    assert "ARG TALOSCTL_SHA256\n" in containerfile
    assert "sha256sum --check" in containerfile
    assert "ansible-galaxy collection install" in containerfile


def test_project_sync_installs_the_checkout_and_kubernetes_core_offline(tmp_path, no_config):
    """What AWX's project sync runs on a fresh clone, with kubernetes.core already present
    (--offline: no Galaxy here) so that only the checkout itself is installed."""
    clone = copy_checkout(tmp_path / "clone")
    dirty(clone)
    collections = tmp_path / "collections"
    import ansible_collections.kubernetes.core as bundled

    shutil.copytree(bundled.__path__[0], collections / "ansible_collections/kubernetes/core")
    run(BIN / "ansible-galaxy", "collection", "install", "--offline", "-r", "collections/requirements.yml",
        "-p", collections, cwd=clone, env={**no_config, "ANSIBLE_COLLECTIONS_PATH": str(collections)})

    installed = collections / "ansible_collections/solanaops/talos"
    manifest = json.loads((installed / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == VERSION
    assert sorted(path.name for path in installed.iterdir()) == sorted(REQUIRED_TOP_LEVEL)


def changelog_tree(tmp_path: Path) -> Path:
    """The checkout laid out as ansible_collections/<namespace>/<name>, as antsibull-changelog expects."""
    return copy_checkout(tmp_path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"])


def test_changelog_fragments_lint_clean(tmp_path):
    tree = changelog_tree(tmp_path)
    done = run(BIN / "antsibull-changelog", "lint", cwd=tree)
    assert done.stdout.strip() == ""


@pytest.fixture
def released(tmp_path, no_config) -> tuple[Path, dict]:
    """`antsibull-changelog release` for galaxy.yml's version, in a copy: the tree and the release."""
    tree = changelog_tree(tmp_path)
    run(BIN / "antsibull-changelog", "release", "--version", VERSION, "--date", "2026-01-01", cwd=tree,
        env={**no_config, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)})
    release = yaml.safe_load((tree / "changelogs/changelog.yaml").read_text())["releases"][VERSION]
    return tree, release


def test_changelog_release_renders_every_fragment_and_filter(released):
    tree, release = released
    fragments = sorted(path.name for path in (REPO / "changelogs/fragments").glob("*.yml"))
    assert fragments and sorted(release["fragments"]) == fragments
    assert list((tree / "changelogs/fragments").glob("*.yml")) == []
    assert f"## v{VERSION}" in (tree / "CHANGELOG.md").read_text().replace("\\", "")

    # every filter of every filter plugin file, so a new file cannot go unlisted
    filters = set()
    for path in (REPO / "plugins/filter").glob("*.py"):
        plugin = importlib.import_module(f"ansible_collections.solanaops.talos.plugins.filter.{path.stem}")
        filters |= set(plugin.FilterModule().filters())
    assert {plugin["name"] for plugin in release["plugins"]["filter"]} == filters


def test_changelog_release_lists_every_module_as_new(released):
    release = released[1]
    modules = {path.stem for path in (REPO / "plugins/modules").glob("*.py")}
    assert {module["name"] for module in release["modules"]} == modules


def test_site_from_the_installed_tarball_keeps_its_state_through_a_reinstall(
        tarball, installed, emulator, talosctl, tmp_path, no_config):
    """A user's setup: the collection installed from the tarball, site.yml run by its FQCN from a
    directory outside the checkout with an inventory outside it. The state lands beside the
    inventory, so `install --force` of the next build leaves the cluster's identity alone."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    inventory = shutil.copytree(LOCAL_INVENTORY, tmp_path / "inventory",
                                ignore=shutil.ignore_patterns("state"))
    env = {**no_config, "ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "TESTBED_STATE": str(emulator.state)}

    def site() -> dict:
        done = subprocess.run([str(BIN / "ansible-playbook"), "solanaops.talos.site", "-i", str(inventory),
                               "-e", f"talosctl_path={talosctl}"], cwd=workdir, capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}, check=False)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return json.loads(done.stdout[done.stdout.index("{"):])["stats"]

    site()
    secrets = inventory / "state" / "solana-local" / "secrets.yaml"
    identity = secrets.read_bytes()
    assert list((installed / "ansible_collections").rglob("secrets.yaml")) == [], "nothing written into the collection"
    run(BIN / "ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", installed, tarball,
        cwd=workdir, env=no_config)
    assert secrets.read_bytes() == identity, "the reinstall left the cluster's identity alone"
    again = site()
    assert sum(host["changed"] for host in again.values()) == 0, again
