# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_client_config: a talosconfig whose context already names
the endpoints and default nodes (a re-run's case) is answered on the controller without starting
the module, where the module would run as this user (a ``local`` connection without become).
Writing one runs the module.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import secret_files, talosconfig
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(talosconfig.CLIENT_CONFIG_ARGSPEC, **secret_files.SECRETS_INPUT_CONSTRAINTS)
        return params and talosconfig.unchanged_result(params, secret_files.read_text(params["path"]))
