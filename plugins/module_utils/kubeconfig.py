# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When an admin kubeconfig is current: it names the cluster's server and CA, and its client
certificate stays valid long enough (Talos issues a new one on every fetch, so a fetch is never
the same file)."""

from __future__ import annotations

import base64
import datetime
import hashlib

from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TALOSCTL_ARGSPEC, TalosError

try:
    import yaml
    from cryptography import x509
except ImportError:  # pragma: no cover - both ship with ansible-core's controller requirements
    yaml = x509 = None


# talos_kubeconfig's options (its action plugin validates them too)
KUBECONFIG_ARGSPEC = {
    **TALOSCTL_ARGSPEC,
    "node": {"type": "str", "required": True},
    "path": {"type": "path", "required": True},
    "server": {"type": "str"},
    "ca": {"type": "str"},
    "min_valid_days": {"type": "int", "default": 30},
}


class KubeconfigError(TalosError):
    hint = "fetch it again, or remove the file so it is rewritten"


def ca_fingerprint(ca_data):
    """A short fingerprint of a base64 CA (a kubeconfig's certificate-authority-data, a secrets
    bundle's certs.k8s.crt)."""
    return hashlib.sha256(base64.b64decode(ca_data)).hexdigest()[:16]


def summarize(text):
    """(server, CA fingerprint, client certificate expiry) of a kubeconfig's current context."""
    try:
        config = yaml.safe_load(text) or {}
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        ca = ca_fingerprint(cluster["certificate-authority-data"])
        cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    except (yaml.YAMLError, AttributeError, KeyError, StopIteration, TypeError, ValueError) as error:
        raise KubeconfigError(f"not a usable kubeconfig: {error}") from None
    return cluster["server"], ca, cert.not_valid_after_utc


def renew_before(min_valid_days):
    """A client certificate expiring before this is renewed."""
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=min_valid_days)


def keeps(summary, server, ca, min_valid_days):
    """Whether a kubeconfig so summarized stays: the same server and CA, its certificate valid
    for more than min_valid_days."""
    return summary[:2] == (server, ca) and summary[2] is not None and summary[2] > renew_before(min_valid_days)


def kept_without_fetch(params, current):
    """talos_kubeconfig's result when the cluster's CA is known (``ca``, with ``server``) and the
    kubeconfig's text ``current`` names both and stays valid: nothing to fetch. Else None."""
    if not (params["ca"] and params["server"] and current):
        return None
    try:
        summary = summarize(current)
        kept = keeps(summary, params["server"], ca_fingerprint(params["ca"]), params["min_valid_days"])
    except (KubeconfigError, ValueError):  # an unusable file, a CA that is not base64: fetch
        return None
    if not kept:
        return None
    return {"changed": False, "path": params["path"], "server": summary[0], "expires": summary[2].isoformat()}


def with_server(text, server):
    """The kubeconfig with every cluster's server replaced."""
    config = yaml.safe_load(text)
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
