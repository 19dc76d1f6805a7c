"""The private_directory test (plugins/test/files.py): only a directory of this user with mode 0700
passes, so secrets.yml's module run that makes it so is skipped only when nothing would change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.test import files
from ansible_collections.solanaops.talos.plugins.test.files import private_directory


def test_a_private_directory_passes(tmp_path):
    path = tmp_path / "out"
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    assert private_directory(str(path))


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o500])
def test_a_directory_others_may_enter_or_this_user_cannot_write_fails(tmp_path, mode):
    path = tmp_path / "out"
    path.mkdir()
    path.chmod(mode)
    assert not private_directory(str(path))


def test_a_missing_path_or_a_file_fails(tmp_path):
    assert not private_directory(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    (tmp_path / "file").chmod(0o700)
    assert not private_directory(str(tmp_path / "file"))


def test_a_directory_of_another_user_fails(tmp_path, monkeypatch):
    path = tmp_path / "out"
    path.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)
    assert not private_directory(str(path))


def test_home_is_expanded(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir(mode=0o700)
    (tmp_path / "out").chmod(0o700)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert private_directory("~/out")


def test_every_test_is_documented():
    for name in files.TestModule().tests():
        docs = yaml.safe_load((Path(files.__file__).parent / f"{name}.yml").read_text())
        assert docs["DOCUMENTATION"]["name"] == name and "_value" in docs["RETURN"]
