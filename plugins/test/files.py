# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the controller's files (every output of the collection is the controller's): answered
in the worker process, where a module run would cost a quarter of a second to say the same."""

from __future__ import annotations

import os
import stat


def private_directory(path):
    """Whether path is a directory of this user that no one else may enter or list (mode 0700)."""
    try:
        status = os.stat(os.path.expanduser(path))
    except (OSError, TypeError, ValueError):
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) == 0o700


class TestModule:
    def tests(self):
        return {"private_directory": private_directory}
