# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_taints' options and which taints a Node ends up with: shared by the module and its
action plugin, which answers on the controller when the Nodes as just observed need nothing."""

from __future__ import annotations

_TAINT = {
    "key": {"type": "str", "required": True, "no_log": False},
    "value": {"type": "str", "default": ""},
    "effect": {"type": "str", "required": True, "choices": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
}

ARGUMENT_SPEC = {
    "kubeconfig": {"type": "path", "required": True},
    "field_manager": {"type": "str", "default": "solanaops-talos"},
    "nodes": {"type": "list", "elements": "dict", "required": True, "options": {
        "name": {"type": "str", "required": True},
        "taints": {"type": "list", "elements": "dict", "required": True, "options": _TAINT}}},
    "observed": {"type": "list", "elements": "dict", "default": []},
}


def _identity(taint):
    return taint["key"], taint["effect"]


def _value(taint):
    return taint.get("value") or ""


def merged_taints(existing, wanted):
    """The taints a Node must have: its own, each replaced by the wanted one of the same key and
    effect, then the wanted ones it lacks. None when it has them all already."""
    wanted_by_identity = {_identity(taint): taint for taint in wanted}
    kept = [taint for taint in existing
            if _identity(taint) not in wanted_by_identity
            or _value(taint) == _value(wanted_by_identity[_identity(taint)])]
    present = {_identity(taint) for taint in kept}
    missing = [{"key": taint["key"], "effect": taint["effect"], **({"value": taint["value"]} if _value(taint) else {})}
               for identity, taint in wanted_by_identity.items() if identity not in present]
    return kept + missing if missing else None


def taints_of(node):
    """A Node object's taints, as the API server returns it."""
    return (node.get("spec") or {}).get("taints") or []


def all_observed_tainted(nodes, observed):
    """Whether every Node of ``nodes`` is among the ``observed`` objects with every taint it must
    have: then there is nothing to read or patch. Objects of another kind are ignored; one without
    a kind is taken for a Node."""
    seen = {(obj.get("metadata") or {}).get("name"): obj for obj in observed if obj.get("kind", "Node") == "Node"}
    return all(node["name"] in seen and merged_taints(taints_of(seen[node["name"]]), node["taints"] or []) is None
               for node in nodes)
