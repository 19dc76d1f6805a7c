# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner for talosctl, shared by every module of the collection.

talosctl is always called with a list argv, ``LC_ALL=C`` and ``TALOSCONFIG`` in the
environment; failures become one of the exceptions below, which ``fail_json_from`` turns into
a module failure carrying the command, rc, stdout, stderr and the talosctl version.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

TALOSCTL_ARGSPEC = {
    "talosctl_path": {"type": "path"},
    "talosconfig": {"type": "path"},
}
# a module that asks many nodes runs their talosctl side by side (doc fragment talosctl.parallel)
PARALLEL_ARGSPEC = {"parallel": {"type": "int", "default": 8}}


class TalosError(Exception):
    """Base of the collection's errors; ``hint`` says what to do about it."""

    hint = ""

    def __init__(self, message, hint=None, **details):
        super().__init__(message)
        if hint:
            self.hint = hint
        self.details = details


class TalosctlNotFound(TalosError):
    hint = "install it with the solanaops.talos.talosctl role or set talosctl_path"


class CommandFailed(TalosError):
    """talosctl ran and exited non-zero."""


class NodeUnreachable(CommandFailed):
    hint = "check that the node is powered on and port 50000 is reachable from the controller"


class CredentialsMismatch(CommandFailed):
    hint = "the talosconfig does not belong to this cluster's secrets; regenerate it from the same secrets bundle"


class MaintenanceMode(CommandFailed):
    hint = "the node has no configuration yet; apply one with insecure=true first"


class AlreadyBootstrapped(CommandFailed):
    hint = "etcd is already bootstrapped on this cluster; nothing to do"


class UnknownToTheNode(CommandFailed):
    hint = ("the node's Talos release does not know a document or key of this configuration: a typo in a patch, "
            "or a configuration rendered for a newer release (talos_cluster_talos_version) than the node runs; "
            "upgrade the node first (playbooks/upgrade.yml), then apply")


# stderr patterns in the order they are tried; the first match decides the class
_CLASSIFIERS = (
    (AlreadyBootstrapped, re.compile(r"AlreadyExists|etcd data directory is not empty")),
    (CredentialsMismatch, re.compile(r"certificate signed by unknown authority|tls: bad certificate|"
                                     r"x509:|authentication handshake failed|PermissionDenied")),
    (MaintenanceMode, re.compile(r"maintenance mode|API is not implemented in maintenance")),
    # machinery's config decoder (v1.13.9: configloader's "not registered", "unknown keys found")
    (UnknownToTheNode, re.compile(r'": not registered|unknown keys found during decoding')),
    (NodeUnreachable, re.compile(r"connection refused|no route to host|i/o timeout|"
                                 r"context deadline exceeded|Unavailable|connection reset")),
)


def classify(stderr):
    """Return the exception class that best describes a talosctl failure."""
    for error_class, pattern in _CLASSIFIERS:
        if pattern.search(stderr or ""):
            return error_class
    return CommandFailed


class Talosctl:
    """Runs talosctl for one module invocation."""

    def __init__(self, module):
        self.module = module
        path = module.params.get("talosctl_path") or module.get_bin_path("talosctl")
        if not path or not os.access(path, os.X_OK):
            raise TalosctlNotFound(
                "talosctl was not found"
                + (f" at {path}" if module.params.get("talosctl_path") else " on PATH")
            )
        self.path = path
        self.talosconfig = module.params.get("talosconfig")
        self._version = None

    def run(self, args, *, nodes=None, endpoints=None, data=None, check=True, node_name=None):
        """Run ``talosctl ARGS``; return (rc, stdout, stderr) or raise a classified error."""
        argv = [self.path, *args]
        if nodes:
            argv += ["--nodes", ",".join(nodes)]
        if endpoints:
            argv += ["--endpoints", ",".join(endpoints)]
        environ = {"LC_ALL": "C"}
        if self.talosconfig:
            environ["TALOSCONFIG"] = self.talosconfig
        rc, stdout, stderr = self.module.run_command(
            argv, environ_update=environ, data=data, binary_data=data is not None
        )
        if check and rc != 0:
            raise failure(argv, rc, stdout, stderr, node_name)
        return rc, stdout, stderr

    def get(self, resource, **kwargs):
        """``talosctl get RESOURCE -o json``: the resources, each {node, metadata, spec}."""
        return parse_resources(self.run(["get", resource, "--output", "json"], **kwargs)[1])

    @property
    def version(self):
        """The client version, e.g. ``v1.13.9``."""
        if self._version is None:
            _rc, stdout, _stderr = self.run(list(CLIENT_VERSION_ARGS))
            self._version = parse_client_version(stdout)
        return self._version


def side_by_side(module):
    """The thread pool a module with PARALLEL_ARGSPEC runs its talosctl calls in; each call is its
    own process, so threads only wait."""
    if module.params["parallel"] < 1:
        module.fail_json(msg=f"parallel must be 1 or more, got {module.params['parallel']}")
    return ThreadPoolExecutor(max_workers=module.params["parallel"])


def failure(argv, rc, stdout, stderr, node_name=None):
    """The classified error for a talosctl run that exited non-zero (argv[1] is the command)."""
    where = f" on {node_name}" if node_name else ""
    return classify(stderr)(f"talosctl {argv[1]} failed{where}: {last_line(stderr) or last_line(stdout)}",
                            command=argv, rc=rc, stdout=stdout, stderr=stderr)


_TABLE_COLUMNS = re.compile(r"\s{2,}")


def parse_table(stdout):
    """talosctl's aligned tables (columns two or more spaces apart) -> list of {HEADER: value}."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return []
    header = _TABLE_COLUMNS.split(lines[0].strip())
    return [dict(zip(header, _TABLE_COLUMNS.split(line.strip()))) for line in lines[1:]]  # noqa: B905 (py3.8)


def parse_etcd_members(stdout):
    """`talosctl etcd members`: NODE ID HOSTNAME PEER URLS CLIENT URLS LEARNER."""
    return [{"id": row["ID"], "hostname": row["HOSTNAME"], "peer_urls": row["PEER URLS"].split(","),
             "client_urls": row["CLIENT URLS"].split(","), "learner": row.get("LEARNER") == "true"}
            for row in parse_table(stdout)]


def parse_resources(stdout):
    """``talosctl get -o json`` prints one JSON document per resource, one after another."""
    decoder, resources, position = json.JSONDecoder(), [], 0
    text = stdout.strip()
    while position < len(text):
        document, position = decoder.raw_decode(text, position)
        resources.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return resources


# asks talosctl its own version (read by parse_client_version); the action plugin of
# talos_machineconfig asks it too, on the controller
CLIENT_VERSION_ARGS = ("version", "--client", "--short")


def parse_client_version(stdout):
    """``talosctl version --client --short`` prints 'Client:' then 'Talos v1.13.9'."""
    match = re.search(r"Talos (v\d+\.\d+\.\d+\S*)", stdout)
    if not match:
        raise CommandFailed(f"cannot read the talosctl version from: {stdout.strip()!r}")
    return match.group(1)


def last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def failure_result(error):
    """The one place where a TalosError becomes a failure's fields: msg (with its hint), error (its
    class) and its details."""
    message = str(error)
    if error.hint:
        message = f"{message} ({error.hint})"
    details = {key: value for key, value in error.details.items() if key != "command"}
    if "command" in error.details:
        details["command"] = " ".join(error.details["command"])
    return {"failed": True, "msg": message, "error": type(error).__name__, **details}


def fail_json_from(module, error, **result):
    """A TalosError as the module's failure."""
    failure = failure_result(error)
    del failure["failed"]
    module.fail_json(**failure, **result)
