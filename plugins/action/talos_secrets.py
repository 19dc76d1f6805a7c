# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_secrets: a bundle that exists, which the module never
overwrites, is answered on the controller (whether it is vault-encrypted, a warning when others
may read it) without starting the module, where the module would run as this user (a ``local``
connection without become). Creating a bundle runs the module.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import (
    SECRETS_BUNDLE_ARGSPEC,
    existing_bundle,
)
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(SECRETS_BUNDLE_ARGSPEC)
        # an unreadable bundle raises: the base runs the module, which says why
        existing = params and existing_bundle(params["path"])
        if not existing:
            return None
        result, warnings = existing
        return {**result, "warnings": warnings} if warnings else result
