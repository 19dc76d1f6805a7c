# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Handling of files that carry cluster secrets: redaction, private temp dirs, 0600 writes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile

from ansible_collections.solanaops.talos.plugins.module_utils import files
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TALOSCTL_ARGSPEC, TalosError

try:
    import yaml
except ImportError:  # reported by the modules through missing_required_lib
    yaml = None

# talos_secrets' options (its action plugin validates them too)
SECRETS_BUNDLE_ARGSPEC = {
    **TALOSCTL_ARGSPEC,
    "path": {"type": "path", "required": True},
    "talos_version": {"type": "str"},
}
VAULT_HEADER = b"$ANSIBLE_VAULT"
REDACTED = "<redacted>"
# keys whose values are private keys, tokens or encryption secrets in machine configs,
# secrets bundles and talosconfigs (compared case-insensitively)
# (v1.14's documents add KubeServiceAccountConfig's privateKey and DiscoveryIdentityConfig's
# clusterSecret; registry auth, WireGuard, Hetzner VIP and SideroLink documents hold the others;
# a key whose value is a mapping, such as a registry's auth section, is searched inside)
SECRET_KEYS = frozenset({
    "key", "token", "secret", "secretboxencryptionsecret", "aescbcencryptionsecret",
    "bootstraptoken", "privatekey", "clustersecret", "password", "auth", "identitytoken",
    "presharedkey", "apitoken", "uniquetoken",
})


def _is_scalar(value):
    return value is not None and not isinstance(value, (dict, list, bool))


def _is_taint(node):
    """A taint or toleration ({key, value, effect}, e.g. the kubelet's registerWithTaints): its
    ``key`` names the taint, it is not key material."""
    return "effect" in node


def _walk(node, on_secret):
    if isinstance(node, dict):
        return {k: (on_secret(str(v)) if str(k).lower() in SECRET_KEYS and _is_scalar(v) and v != ""
                    and not _is_taint(node) else _walk(v, on_secret)) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(item, on_secret) for item in node]
    return node


def redact(text):
    """The YAML documents in ``text`` with every secret value replaced by <redacted>."""
    documents = [_walk(doc, lambda _v: REDACTED) for doc in yaml.safe_load_all(text or "") if doc]
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in documents)


_DIFF_SECRET_LINE = re.compile(
    r"^([-+ ](\s*(?:-\s+)?)(?:" + "|".join(sorted(SECRET_KEYS)) + r"):\s*)(\S.*)$", re.IGNORECASE)


def _starts_multiline(value):
    """A YAML value that goes on below its key: a block scalar or an unclosed quote (talosctl
    writes PEM blocks both ways)."""
    value = value.rstrip()
    if re.fullmatch(r"[|>][-+0-9]*", value):
        return True
    return value[0] in "'\"" and (len(value) == 1 or not value.endswith(value[0]))


# a line of a PEM block or of a long base64 value: a hunk of Talos' dry-run diff (3 lines of
# context) can start inside a multi-line secret, below its key
_SECRET_LOOKING = re.compile(r"^'?-----(BEGIN|END) [A-Z0-9 ]+-----'?$|^[A-Za-z0-9+/]{40,}={0,2}'?$")


def redact_diff(text):
    """A unified diff of YAML documents with the values of secret keys replaced, a value that
    spans lines (a PEM block) included: the lines below its key, indented deeper."""
    kept, secret_column = [], None
    for line in (text or "").split("\n"):
        body = line[1:] if line[:1] in ("-", "+", " ") else line
        if secret_column is not None and (not body.strip() or len(body) - len(body.lstrip()) > secret_column):
            continue
        secret_column = None
        match = _DIFF_SECRET_LINE.match(line)
        if match:
            kept.append(match.group(1) + REDACTED)
            if _starts_multiline(match.group(3)):
                secret_column = len(match.group(2))
        elif _SECRET_LOOKING.match(body.strip()):
            kept.append(line[:len(line) - len(body.lstrip())] + REDACTED)
        else:
            kept.append(line)
    return "\n".join(kept)


def secret_values(text):
    """Every secret value in the YAML documents of ``text`` and each long line of one that spans
    lines (a PEM block's body, which output can show a line at a time), to feed
    module.no_log_values."""
    found = set()

    def collect(value):
        found.add(value)
        found.update(line.strip() for line in value.splitlines()[1:]
                     if len(line.strip()) > 20 and not line.strip().startswith("-----"))
        return value

    for doc in yaml.safe_load_all(text or ""):
        _walk(doc, collect)
    return found


@contextlib.contextmanager
def private_dir():
    """A temporary directory only the current user can read, removed afterwards."""
    path = tempfile.mkdtemp(prefix="solanaops-talos-")
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# the secrets bundle a module renders from: its path, or its text decrypted from ansible-vault by
# the caller; secrets_bundle_path gives talosctl a path either way
SECRETS_INPUT_ARGSPEC = {
    "secrets_path": {"type": "path"},
    "secrets_content": {"type": "str", "no_log": True},
}
SECRETS_INPUT_CONSTRAINTS = {"mutually_exclusive": [("secrets_path", "secrets_content")],
                             "required_one_of": [("secrets_path", "secrets_content")]}


def secrets_bundle_path(params, workdir):
    """Path of the secrets bundle for talosctl: ``secrets_path``, or ``secrets_content``
    (decrypted from ansible-vault by the caller) written into the private ``workdir``."""
    if params.get("secrets_content") is not None:
        path = os.path.join(workdir, "secrets.yaml")
        with open(path, "w") as handle:
            handle.write(params["secrets_content"])
        return path
    if not os.path.exists(params["secrets_path"]):
        raise TalosError(f"secrets bundle {params['secrets_path']} does not exist",
                         hint="generate it with solanaops.talos.talos_secrets first")
    return params["secrets_path"]


def write_private(path, content):
    """Atomically write ``content`` to ``path``, mode 0600 from the start, its directory created 0700."""
    files.write_atomically(path, content, files.replace_private, directory_mode=0o700)


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def existing_bundle(path):
    """talos_secrets' result for a bundle that exists, which is never overwritten, and its
    warnings; None when there is no bundle at path."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        encrypted = handle.read(len(VAULT_HEADER)) == VAULT_HEADER
    warnings = [f"{path} is readable by group or others; it holds the cluster's keys: chmod 0600"
                ] if os.stat(path).st_mode & 0o077 else []
    return {"changed": False, "path": path, "encrypted": encrypted}, warnings
