# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubelet feature gates, judged as the kubelet judges them.

A kubelet refuses to start on a gate it does not know (a gate removed after graduating, or a
misspelling: "unrecognized feature gate") and on a locked gate set against its default
(component-base/featuregate/feature_gate.go, SetFromMap). What each version knows is the
generated table in kubelet_feature_gates.py.
"""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.kubelet_feature_gates import KUBELET


def kubelet_refusals(kubernetes_version, gates):
    """What a kubelet of ``kubernetes_version`` refuses among ``gates`` (name -> bool), or
    None when this collection has no table for that minor version."""
    minor = ".".join(str(kubernetes_version).lstrip("v").split(".")[:2])
    known = KUBELET.get(minor)
    if known is None:
        return None
    refusals = []
    for name, value in sorted(gates.items()):
        if name not in known:
            refusals.append(f"feature gate {name} is unknown to the kubelet of Kubernetes {minor} (removed "
                            "after graduating, or misspelled): it refuses to start "
                            f"(\"unrecognized feature gate: {name}\"). Remove it")
        elif known[name][1] and known[name][0] != value:
            refusals.append(f"feature gate {name} is locked to {str(known[name][0]).lower()} in Kubernetes {minor}: "
                            f"the kubelet refuses to start with it set to {str(value).lower()}. Remove it")
    return refusals
