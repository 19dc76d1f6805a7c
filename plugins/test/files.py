# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the controller's files (every output of the collection is the controller's): answered
in the worker process, where a module run would cost a quarter of a second to say the same."""

from __future__ import annotations

import os
import stat

from ansible_collections.solanaops.talos.plugins.module_utils import talosconfig


def private_directory(path):
    """Whether path is a directory of this user that no one else may enter or list (mode 0700)."""
    try:
        status = os.stat(os.path.expanduser(path))
    except (OSError, TypeError, ValueError):
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) == 0o700


def current_talosconfig(path, cluster_name, endpoints, nodes=()):
    """Whether the talosconfig at path is this user's, mode 0600, and its context cluster_name
    names these endpoints and default nodes: what talos_client_config would leave as it is."""
    path = os.path.expanduser(path)
    try:
        status = os.stat(path)
        with open(path) as handle:
            text = handle.read()
    except (OSError, TypeError, ValueError):
        return False
    return (status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) == 0o600
            and talosconfig.context_settings(text, cluster_name) == talosconfig.wanted_settings(endpoints, nodes))


class TestModule:
    def tests(self):
        return {"private_directory": private_directory, "current_talosconfig": current_talosconfig}
