# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_machineconfig: a node found up to date with its render
record (and any O(record_only) comparison) is answered on the controller, in the worker process,
without building and starting the module; everything else runs the module as usual.

The answer reads O(dest), O(record), the secrets bundle and C(@path) patches on the controller,
and runs C(talosctl version --client) there: the same files and talosctl the module would read,
only when the task runs on the controller as the same user (a ``local`` connection without
become). Any other connection, become, an unreadable file or a talosctl not found runs the module.
The talosctl version is asked once per binary and run: the answer is kept in the run's own
temporary directory on the controller, keyed by the binary's path, inode, size and mtime.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from ansible import constants as C
from ansible_collections.solanaops.talos.plugins.module_utils.machineconfig import (
    ARGUMENT_SPEC,
    compare_with_record,
)
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import SECRETS_INPUT_CONSTRAINTS
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    CLIENT_VERSION_ARGS,
    TalosError,
    parse_client_version,
)
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        """The module's own result when it would only compare with the record (up to date, or
        record_only), computed here; None when the module has to run."""
        params = self.validated(ARGUMENT_SPEC, **SECRETS_INPUT_CONSTRAINTS)
        # argument errors, and a bundle that is missing (check mode's first run, or an error),
        # are the module's to report
        if params is None or not params["record"]:
            return None
        if params["secrets_path"] and not os.path.exists(params["secrets_path"]):
            return None
        version = self._talosctl_version(params)
        if version is None:
            return None
        try:
            _inputs, compared = compare_with_record(params, version)
        except OSError:
            return None
        if not (compared["up_to_date"] or params["record_only"]):
            return None
        return {"changed": False, "dest": params["dest"], "talosctl_version": version, **compared}

    def _talosctl_version(self, params):
        """What the module's Talosctl(...).version would say, None when that is not certain here."""
        path = params["talosctl_path"]
        if not path:
            # the same PATH as the module's: a task with an environment of its own is not answered here
            path = shutil.which("talosctl")
        if not path or not os.access(path, os.X_OK):
            return None
        # one talosctl per run for every node: the forks of this run share its local temporary directory
        try:
            remembered = self._remembered_version_path(path)
        except OSError:  # the binary went away since os.access
            return None
        try:
            with open(remembered, encoding="utf-8") as handle:
                return handle.read() or None
        except OSError:  # not asked yet in this run
            pass
        try:
            completed = subprocess.run([path, *CLIENT_VERSION_ARGS], capture_output=True, text=True,
                                       env={**os.environ, "LC_ALL": "C"}, check=False, timeout=60)
            version = parse_client_version(completed.stdout) if completed.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, TalosError):
            return None
        if version:
            self._remember(remembered, version)
        return version

    @staticmethod
    def _remembered_version_path(path):
        stat = os.stat(path)
        identity = f"{os.path.realpath(path)}\0{stat.st_dev}\0{stat.st_ino}\0{stat.st_size}\0{stat.st_mtime_ns}"
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        return os.path.join(C.DEFAULT_LOCAL_TMP, f"talosctl-version-{digest}")

    @staticmethod
    def _remember(remembered, version):
        """Written whole (a fork reading it sees all of it or nothing); not kept is only slower."""
        partial = f"{remembered}.{os.getpid()}"
        try:
            with open(partial, "w", encoding="utf-8") as handle:
                handle.write(version)
            os.replace(partial, remembered)
        except OSError:
            pass
