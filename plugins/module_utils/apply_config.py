# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`talosctl apply-config`: its command line and Talos' dry run, shared by the module that applies
a config (talos_apply_config) and the one that asks many nodes for drift (talos_config_drift)."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    CommandFailed,
    CredentialsMismatch,
    TalosError,
)


def apply_argv(params, *, insecure, dry_run):
    argv = ["apply-config", "--file", params["config_path"], "--mode", params["mode"]]
    if params["mode"] == "try" and params.get("try_timeout"):
        argv += ["--timeout", params["try_timeout"]]
    if insecure:
        argv.append("--insecure")
    if dry_run:
        argv.append("--dry-run")
    return argv


def parse_dry_run(stderr):
    """talosctl prints the node's dry-run summary on stderr: (changed, diff text)."""
    if "No changes." in stderr:
        return False, ""
    marker = "Config diff:"
    if marker in stderr:
        return True, stderr.split(marker, 1)[1].strip("\n")
    raise CommandFailed(f"unexpected dry-run output from talosctl: {stderr.strip()!r}")


def needs_reboot(stderr):
    """Whether the node's dry-run summary says it would reboot to take the configuration."""
    return "Applied configuration with a reboot" in stderr


class Applier:
    """Applies one config to one node. settings: config_path, mode, try_timeout, node, endpoint
    (defaults to the node), node_name (defaults to the node; names it in messages)."""

    def __init__(self, talosctl, settings):
        self.talosctl, self.settings = talosctl, settings
        self.name = settings.get("node_name") or settings["node"]
        self.node = [settings["node"]]
        self.endpoint = [settings.get("endpoint") or settings["node"]]

    def run(self, *, insecure, dry_run):
        # in maintenance mode there is no routing: the node is its own endpoint
        endpoints = self.node if insecure else self.endpoint
        return self.talosctl.run(apply_argv(self.settings, insecure=insecure, dry_run=dry_run),
                                 nodes=self.node, endpoints=endpoints, node_name=self.name)

    def dry_run(self):
        """(maintenance, changed, diff, reboot). A node the cluster's credentials cannot reach but
        its maintenance-mode API answers is in maintenance mode: all of its config is new."""
        try:
            _rc, _out, stderr = self.run(insecure=False, dry_run=True)
            return (False, *parse_dry_run(stderr), needs_reboot(stderr))
        except CredentialsMismatch as authenticated_error:
            try:
                self.run(insecure=True, dry_run=True)
            except TalosError:
                raise authenticated_error from None
            return True, True, "", True
