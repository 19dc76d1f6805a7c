# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.talos_kubeconfig: given the cluster's CA and server, a
kubeconfig that names both and stays valid (a settled re-run's case) is answered on the controller
without starting the module, where the module would run as this user (a ``local`` connection
without become). A fetch runs the module.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import kubeconfig
from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import read_text
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(kubeconfig.KUBECONFIG_ARGSPEC)
        return params and kubeconfig.kept_without_fetch(params, read_text(params["path"]))
