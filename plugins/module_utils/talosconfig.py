# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection sets in a talosconfig: a context's endpoints and default nodes."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.secret_files import SECRETS_INPUT_ARGSPEC
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TALOSCTL_ARGSPEC

try:
    import yaml
except ImportError:  # reported by talos_client_config through missing_required_lib
    yaml = None


# talos_client_config's options (its action plugin validates them too)
CLIENT_CONFIG_ARGSPEC = {
    **TALOSCTL_ARGSPEC,
    "path": {"type": "path", "required": True},
    **SECRETS_INPUT_ARGSPEC,
    "cluster_name": {"type": "str", "required": True},
    "cluster_endpoint": {"type": "str", "required": True},
    "endpoints": {"type": "list", "elements": "str", "required": True},
    "nodes": {"type": "list", "elements": "str", "default": []},
    "talos_version": {"type": "str"},
}


def context_settings(text, name):
    """The endpoints and default nodes of the talosconfig's context ``name``, as ``talosctl config
    endpoint`` and ``talosctl config node`` set them (empty lists when unset or absent)."""
    document = yaml.safe_load(text or "") or {}
    contexts = document.get("contexts") if isinstance(document, dict) else None
    context = (contexts.get(name) if isinstance(contexts, dict) else None) or {}
    if not isinstance(context, dict):
        return {"endpoint": [], "node": []}
    return {"endpoint": context.get("endpoints") or [], "node": context.get("nodes") or []}


def wanted_settings(endpoints, nodes=()):
    return {"endpoint": list(endpoints), "node": list(nodes)}


def unchanged_result(params, current):
    """talos_client_config's result when the talosconfig's text ``current`` needs no change, else
    None (its context names other endpoints or nodes, or there is no file)."""
    wanted = wanted_settings(params["endpoints"], params["nodes"])
    if current is None or context_settings(current, params["cluster_name"]) != wanted:
        return None
    return {"changed": False, "path": params["path"], "endpoints": params["endpoints"]}
