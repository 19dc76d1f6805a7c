# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of a rendered machine configuration: talosctl validate, then the kubelet feature
gates talosctl does not check. Shared by talos_config_validate and talos_machineconfig."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils import contract, feature_gates
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import CommandFailed, TalosError

try:
    import yaml
except ImportError:  # reported by the modules through missing_required_lib
    yaml = None


def validate_argv(params):
    argv = ["validate", "--config", params["path"], "--mode", params["mode"]]
    if params["strict"]:
        argv.append("--strict")
    return argv


def kubelet_feature_gates(documents):
    """The feature gates a rendered config gives the kubelet: its config's featureGates, then the
    --feature-gates flag (applied after the config file, as the kubelet does)."""
    kubelet = contract.rendered_kubelet(documents)
    gates = {str(name): str(value).lower() == "true"
             for name, value in (kubelet["extraConfig"].get("featureGates") or {}).items()}
    flag = kubelet["extraArgs"].get("feature-gates") or ""
    # v1.14's extraArgs may give a flag as a list of values
    for pair in (",".join(map(str, flag)) if isinstance(flag, list) else str(flag)).split(","):
        name, _sep, value = pair.strip().partition("=")
        if name:
            gates[name.strip()] = value.strip().lower() == "true"
    return gates


def validate(module, talosctl, params, node):
    """talosctl's verdict on params['path'] (mode, strict), then the kubelet feature gates for
    params['kubernetes_version'] when given. Returns what talosctl printed; raises TalosError."""
    rc, stdout, stderr = talosctl.run(validate_argv(params), check=False)
    if rc != 0:
        # talosctl lists every problem on stderr; show them all, not just the last line
        raise CommandFailed(f"{node}: the machine configuration is not valid: {stderr.strip()}",
                            rc=rc, stdout=stdout, stderr=stderr)
    if params["kubernetes_version"]:
        with open(params["path"], encoding="utf-8") as handle:
            gates = kubelet_feature_gates(list(yaml.safe_load_all(handle)))
        refusals = feature_gates.kubelet_refusals(params["kubernetes_version"], gates)
        if refusals is None and gates:
            module.warn(f"{node}: no table of the kubelet's feature gates for Kubernetes "
                        f"{params['kubernetes_version']}; {', '.join(sorted(gates))} not checked")
        if refusals:
            raise TalosError(f"{node}: the kubelet would not start: {'; '.join(refusals)}")
    return (stdout + stderr).strip()
