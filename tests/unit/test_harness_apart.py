"""The unit tests stand on the collection alone: none imports a module of testbed/ or puts a
directory on the import path (how testbed/'s modules are reached), so they run where only the
collection and its Python requirements are."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tests/unit"
TESTBED = REPO / "testbed"
# what `import X` would find in testbed/ were it on the path, and the directory itself
TESTBED_MODULES = ({path.stem for path in TESTBED.glob("*.py")}
                   | {path.name for path in TESTBED.iterdir() if (path / "__init__.py").exists()} | {"testbed"})


def unit_test_sources() -> list[Path]:
    """Every Python file the unit test run loads: its modules and the conftest files above them."""
    conftests = [folder / "conftest.py" for folder in (REPO, REPO / "tests") if (folder / "conftest.py").exists()]
    return sorted(UNIT.rglob("*.py")) + conftests


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def touches_import_path(tree: ast.AST) -> bool:
    """`sys.path` named anywhere (insert, append, assignment)."""
    return any(isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
               and node.value.id == "sys" for node in ast.walk(tree))


def test_the_testbed_modules_are_known():
    assert {"gobuild", "machines", "controlplane", "pytest_helpers"} <= TESTBED_MODULES


def test_no_unit_test_imports_the_testbed():
    sources = unit_test_sources()
    assert len(sources) > 10
    offenders = {}
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        found = sorted(imported_roots(tree) & TESTBED_MODULES) + (["sys.path"] if touches_import_path(tree) else [])
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}
