# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_preflight: the checks read nothing and contact nothing,
so they run on the controller, in the worker process, without starting the module
(module_utils/preflight.py for both). Arguments the module would refuse run the module, which
reports them.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.preflight import (
    ARGUMENT_SPEC,
    REQUIRED_ONE_OF,
    run_checks,
)
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF)
        if params is None:
            return None
        result, warnings = run_checks(params)
        return {**result, "warnings": warnings} if warnings else result
