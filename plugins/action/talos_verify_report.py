# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_verify_report: the report is built and written on the
controller, without starting the module, where the module would run as this user (a ``local``
connection without become): the same files, written the same way (module_utils/report.py).
Arguments the module would refuse, and a file that cannot be written, run the module, which
reports them.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import files, report
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(report.ARGUMENT_SPEC)
        if params is None:
            return None
        # a refused report (ValueError) or a file not written raises: the base runs the module, which reports it
        result, contents = report.build(params)
        if not self._task.check_mode:
            for path, content in contents.items():
                files.write_atomically(path, content, files.replace_keeping_mode)
        return {**result, "written": not self._task.check_mode}
