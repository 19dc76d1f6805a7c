# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-file writes: a reader (talosctl, a CI step, a second operator) never sees half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomically(path, content, move, directory_mode=0o777):
    """Write content to a temporary file beside path (mkstemp: mode 0600), then move(temporary,
    path): a module's atomic_move, replace_keeping_mode or replace_private. A missing directory is
    created with directory_mode (less the umask); the temporary file never outlives a failure."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=directory_mode, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def replace_keeping_mode(tmp, path):
    """atomic_move's modes, for the same user on the same filesystem: the file's own, a new one
    0666 less the umask."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0o22)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def replace_private(tmp, path):
    """The file in place with mode 0600 from its first moment. atomic_move would open a new file
    to 0666 less the umask after its rename, so a secret would be readable until a later chmod.
    As atomic_move does, a file replaced as root keeps its owner."""
    os.chmod(tmp, 0o600)
    try:
        replaced = os.stat(path)
    except FileNotFoundError:
        replaced = None
    if replaced is not None and os.geteuid() == 0:
        os.chown(tmp, replaced.st_uid, replaced.st_gid)
    os.replace(tmp, path)
