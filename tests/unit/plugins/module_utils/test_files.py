"""Unit tests for module_utils/files.py: whole-file writes."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import files


def test_a_failed_move_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old\n")

    def refuse(tmp, _path):
        raise OSError(f"cannot move {tmp}")

    with pytest.raises(OSError, match="cannot move"):
        files.write_atomically(str(path), "new\n", refuse)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_replace_keeping_mode_keeps_the_file_mode_and_creates_with_the_umask(tmp_path):
    kept, created = tmp_path / "kept.md", tmp_path / "sub" / "created.md"
    kept.write_text("old\n")
    kept.chmod(0o640)
    files.write_atomically(str(kept), "new\n", files.replace_keeping_mode)
    files.write_atomically(str(created), "new\n", files.replace_keeping_mode)
    assert kept.read_text() == created.read_text() == "new\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    umask = os.umask(0o22)
    os.umask(umask)
    assert stat.S_IMODE(created.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["created.md", "kept.md", "sub"]
