# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the controller's files (every output of the collection is the controller's): answered
in the worker process, where a module run would cost a quarter of a second to say the same."""

from __future__ import annotations

import os
import stat

from ansible_collections.solanaops.talos.plugins.module_utils import kubeconfig, talosconfig


def private_directory(path):
    """Whether path is a directory of this user that no one else may enter or list (mode 0700)."""
    try:
        status = os.stat(os.path.expanduser(path))
    except (OSError, TypeError, ValueError):
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and stat.S_IMODE(status.st_mode) == 0o700


def _private_text(path):
    """The file's text when it is this user's with mode 0600, else None."""
    try:
        status = os.stat(os.path.expanduser(path))
        if status.st_uid != os.geteuid() or stat.S_IMODE(status.st_mode) != 0o600:
            return None
        with open(os.path.expanduser(path)) as handle:
            return handle.read()
    except (OSError, TypeError, ValueError):
        return None


def current_talosconfig(path, cluster_name, endpoints, nodes=()):
    """Whether the talosconfig at path is this user's, mode 0600, and its context cluster_name
    names these endpoints and default nodes: what talos_client_config would leave as it is."""
    text = _private_text(path)
    return text is not None and (talosconfig.context_settings(text, cluster_name)
                                 == talosconfig.wanted_settings(endpoints, nodes))


def current_kubeconfig(path, server, ca, min_valid_days=30):
    """Whether the kubeconfig at path is this user's, mode 0600, names server and the CA ``ca``
    (base64, as a secrets bundle's certs.k8s.crt) and its client certificate stays valid for more
    than min_valid_days: what talos_kubeconfig would keep, when the cluster runs that CA."""
    text = _private_text(path)
    try:
        return text is not None and kubeconfig.keeps(kubeconfig.summarize(text), server,
                                                     kubeconfig.ca_fingerprint(ca), min_valid_days)
    except (kubeconfig.KubeconfigError, TypeError, ValueError):
        return False


class TestModule:
    def tests(self):
        return {"private_directory": private_directory, "current_talosconfig": current_talosconfig,
                "current_kubeconfig": current_kubeconfig}
