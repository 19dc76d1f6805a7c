# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection sets in a talosconfig: a context's endpoints and default nodes."""

from __future__ import annotations

try:
    import yaml
except ImportError:  # reported by talos_client_config through missing_required_lib
    yaml = None


def context_settings(text, name):
    """The endpoints and default nodes of the talosconfig's context ``name``, as ``talosctl config
    endpoint`` and ``talosctl config node`` set them (empty lists when unset or absent)."""
    document = yaml.safe_load(text or "") or {}
    context = (document.get("contexts") or {}).get(name) or {}
    return {"endpoint": context.get("endpoints") or [], "node": context.get("nodes") or []}


def wanted_settings(endpoints, nodes=()):
    return {"endpoint": list(endpoints), "node": list(nodes)}
