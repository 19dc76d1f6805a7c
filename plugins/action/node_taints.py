# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of solanaops.talos.node_taints: when the Nodes as just observed (``observed``)
already carry every taint, the answer is "no change" without starting the module, which would
import the Kubernetes client only to find the same (module_utils/node_taints.py decides for both).
Anything else runs the module, which reads each Node afresh.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.node_taints import ARGUMENT_SPEC, all_observed_tainted
from ansible_collections.solanaops.talos.plugins.plugin_utils.controller_answer import ControllerAnswer


class ActionModule(ControllerAnswer):
    def answer(self):
        params = self.validated(ARGUMENT_SPEC)
        if params is None or not all_observed_tainted(params["nodes"], params["observed"]):
            return None
        return {"changed": False, "changed_nodes": []}
