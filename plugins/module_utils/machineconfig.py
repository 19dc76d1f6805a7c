# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""talos_machineconfig's options, talosctl argv and render record, in one place for the module
(which renders and writes the records) and its action plugin (which compares with a record on
the controller, without starting the module)."""

from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.solanaops.talos.plugins.module_utils import secret_files
from ansible_collections.solanaops.talos.plugins.module_utils.kubelet_feature_gates import KUBELET
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TALOSCTL_ARGSPEC

ARGUMENT_SPEC = {
    **TALOSCTL_ARGSPEC,
    "dest": {"type": "path", "required": True},
    **secret_files.SECRETS_INPUT_ARGSPEC,
    "cluster_name": {"type": "str", "required": True},
    "cluster_endpoint": {"type": "str", "required": True},
    "machine_type": {"type": "str", "required": True, "choices": ["controlplane", "worker"]},
    "talos_version": {"type": "str"},
    "kubernetes_version": {"type": "str"},
    "install_disk": {"type": "str"},
    "install_image": {"type": "str"},
    "patches": {"type": "list", "elements": "raw", "default": []},
    "node_name": {"type": "str"},
    "validate": {"type": "bool", "default": False},
    "record": {"type": "path"},
    "record_only": {"type": "bool", "default": False},
}

# what a record's inputs hash covers besides the render's own argv; a new layout or new rules
# make every recorded node render (and validate) again
RECORD_FORMAT = 1

# optional module option -> talosctl flag
_FLAGS = {
    "talos_version": "--talos-version",
    "kubernetes_version": "--kubernetes-version",
    "install_disk": "--install-disk",
    "install_image": "--install-image",
}


def gen_config_argv(params, secrets_path, patch_arguments):
    argv = [
        "gen", "config", params["cluster_name"], params["cluster_endpoint"],
        "--with-secrets", secrets_path,
        "--output-types", params["machine_type"], "--output", "-",
        "--with-docs=false", "--with-examples=false",
    ]
    for option, flag in _FLAGS.items():
        if params[option]:
            argv += [flag, params[option]]
    for argument in patch_arguments:
        argv += ["--config-patch", argument]
    return argv


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def is_private(path):
    return os.stat(path).st_mode & 0o777 == 0o600


def secrets_text(params):
    """The secrets bundle's content, None when it cannot be read."""
    if params["secrets_content"]:
        return params["secrets_content"]
    return secret_files.read_text(params["secrets_path"])


def inputs_sha256(params, secrets, talosctl_version):
    """One hash of everything the render reads: talosctl's argv (the options and fixed flags; the
    bundle and patches stand in by placeholders), the bundle, each patch (a @path patch by its
    content), the talosctl version and, when it validates, the kubelet feature-gate table the
    validation judges by. None when a patch file cannot be read."""
    patches = []
    for patch in params["patches"]:
        if isinstance(patch, str) and patch.startswith("@"):
            content = secret_files.read_text(patch[1:])
            if content is None:
                return None
            patch = {"file": patch[1:], "content": content}
        patches.append(patch)
    material = {"format": RECORD_FORMAT, "argv": gen_config_argv(params, "<secrets>", ["<patch>"] * len(patches)),
                "validate": params["validate"] and KUBELET}
    # rstrip: the file lookup that reads a vault-encrypted bundle drops its trailing newline
    material.update(patches=patches, secrets=sha256((secrets or "").rstrip()), talosctl=talosctl_version)
    return sha256(json.dumps(material, sort_keys=True, default=str))


def read_record(path):
    try:
        record = json.loads(secret_files.read_text(path) or "null")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def up_to_date(dest, record, inputs):
    """dest is what the recorded render wrote, private, from these very inputs."""
    current = secret_files.read_text(dest)
    return (inputs is not None and record is not None and current is not None
            and record.get("inputs") == inputs and record.get("output") == sha256(current) and is_private(dest))


def compare_with_record(params, talosctl_version):
    """The module's answer when ``params["record"]`` is set, before any render:
    (inputs hash, result keys: up_to_date, and sha256 when up to date)."""
    inputs = inputs_sha256(params, secrets_text(params), talosctl_version)
    record = read_record(params["record"])
    result = {"up_to_date": up_to_date(params["dest"], record, inputs)}
    if result["up_to_date"]:
        result["sha256"] = record["output"]
    return inputs, result


def record_text(inputs, output_sha256):
    """The record a successful render leaves beside its output."""
    return json.dumps({"inputs": inputs, "output": output_sha256}) + "\n"
