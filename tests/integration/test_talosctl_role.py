"""The talosctl role, against a copy of the real binary served over loopback HTTP."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

PLAYBOOK = Path(__file__).parent / "playbooks" / "install_talosctl.yml"
VERSION = "v1.14.1"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (keep pytest output clean)
        pass


@pytest.fixture(scope="module")
def release(talosctl, tmp_path_factory):
    """A copy of the real talosctl served on 127.0.0.1 only: (url, sha256)."""
    root = tmp_path_factory.mktemp("release")
    asset = root / "talosctl-linux-amd64"
    shutil.copyfile(talosctl, asset)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{asset.name}"
        yield url, hashlib.sha256(asset.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def install(playbook, release, tmp_path):
    """Run the role; keyword arguments override the extra vars (None drops one)."""
    url, sha256 = release

    def run(*args: str, install_dir: Path = tmp_path / "bin", **overrides):
        extra = {
            "talosctl_url": url,
            "talosctl_sha256": sha256,
            "talosctl_version": VERSION,
            "talosctl_install_dir": str(install_dir),
            **overrides,
        }
        extra = {key: value for key, value in extra.items() if value is not None}
        # never reach beyond loopback, whatever the environment's proxy settings
        env = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
        return playbook(PLAYBOOK, "-e", json.dumps(extra), *args, env=env)

    return run


def test_installs_then_is_idempotent(install, tmp_path):
    binary = tmp_path / "bin" / "talosctl"

    first = install()
    assert first.rc == 0, first.stdout + first.stderr
    assert first.changed > 0
    assert binary.is_file()
    assert os.access(binary, os.X_OK)

    second = install()
    assert second.unchanged, second.stdout + second.stderr


@pytest.mark.parametrize("existing_dir", [False, True], ids=["fresh-dir", "empty-dir"])
def test_check_mode_reports_change_and_installs_nothing(install, tmp_path, existing_dir):
    install_dir = tmp_path / "bin"
    if existing_dir:
        install_dir.mkdir()

    run = install("--check", install_dir=install_dir)
    assert run.rc == 0, run.stdout + run.stderr
    assert run.changed > 0
    assert not (install_dir / "talosctl").exists()
    assert install_dir.exists() == existing_dir


def test_wrong_sha256_fails_and_installs_nothing(install, tmp_path):
    install_dir = tmp_path / "fresh"
    run = install(install_dir=install_dir, talosctl_sha256="0" * 64)
    assert run.rc != 0
    assert any("checksum" in message for message in run.failure_messages()), run.failure_messages()
    assert not (install_dir / "talosctl").exists()


def test_missing_sha256_fails_naming_the_variable(install, tmp_path):
    run = install(talosctl_sha256=None)
    assert run.rc != 0
    messages = run.failure_messages()
    assert any("talosctl_sha256" in message and "sha256sum.txt" in message for message in messages), messages
    assert not (tmp_path / "bin").exists()


def test_version_mismatch_fails_naming_both_versions(install):
    run = install(talosctl_version="v1.13.8")
    assert run.rc != 0
    messages = run.failure_messages()
    assert any("v1.13.8" in message and VERSION in message for message in messages), messages


def test_replaces_a_stale_binary_but_not_in_check_mode(install, release, tmp_path):
    binary = tmp_path / "bin" / "talosctl"
    binary.parent.mkdir()
    stale = "#!/bin/sh\necho Client:\necho Talos v1.13.8\n"
    binary.write_text(stale)
    binary.chmod(0o755)

    check = install("--check")
    assert check.rc == 0, check.stdout + check.stderr
    assert check.changed > 0
    assert binary.read_text() == stale

    run = install()
    assert run.rc == 0, run.stdout + run.stderr
    assert run.changed > 0
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == release[1]
