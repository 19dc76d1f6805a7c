"""talos_apply_config: argv and the dry-run output talosctl prints on stderr."""

from __future__ import annotations

import base64

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import apply_config
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import CommandFailed
from ansible_collections.solanaops.talos.plugins.modules import talos_apply_config

PARAMS = {"config_path": "/out/cp-1.yaml", "mode": "auto", "try_timeout": None}


@pytest.mark.parametrize(
    ("overrides", "insecure", "dry_run", "argv"),
    [
        ({}, False, True, ["apply-config", "--file", "/out/cp-1.yaml", "--mode", "auto", "--dry-run"]),
        ({}, True, False, ["apply-config", "--file", "/out/cp-1.yaml", "--mode", "auto", "--insecure"]),
        ({"mode": "staged"}, False, False, ["apply-config", "--file", "/out/cp-1.yaml", "--mode", "staged"]),
        ({"mode": "try", "try_timeout": "2m"}, False, False,
         ["apply-config", "--file", "/out/cp-1.yaml", "--mode", "try", "--timeout", "2m"]),
        ({"try_timeout": "2m"}, False, False, ["apply-config", "--file", "/out/cp-1.yaml", "--mode", "auto"]),
    ],
)
def test_apply_argv(overrides, insecure, dry_run, argv):
    assert apply_config.apply_argv({**PARAMS, **overrides}, insecure=insecure, dry_run=dry_run) == argv


def test_dry_run_without_changes():
    stderr = ("Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n"
              "Config diff:\n\nNo changes.\n")
    assert apply_config.parse_dry_run(stderr) == (False, "")


def test_dry_run_with_a_diff():
    stderr = ("Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\n"
              "--- a\n+++ b\n@@ -1 +1 @@\n-    vm.swappiness: \"1\"\n+    vm.swappiness: \"10\"\n")
    changed, diff = apply_config.parse_dry_run(stderr)
    assert changed is True
    assert diff.startswith("--- a") and '+    vm.swappiness: "10"' in diff


def test_unexpected_dry_run_output_is_an_error():
    with pytest.raises(CommandFailed, match="unexpected dry-run output"):
        apply_config.parse_dry_run("something else entirely")


def test_mode_details_is_the_last_line():
    assert talos_apply_config.mode_details("\nApplied configuration without a reboot\n") == (
        "Applied configuration without a reboot")
    assert talos_apply_config.mode_details("") == ""


REBOOT_DRY_RUN = ("Dry run summary:\nApplied configuration with a reboot (skipped in dry-run).\nConfig diff:\n\n"
                  "--- a\n+++ b\n@@ -3,3 +3,5 @@\n     type: worker\n+    env:\n+        TZ: UTC\n")


def test_a_dry_run_tells_whether_the_node_would_reboot():
    assert apply_config.needs_reboot(REBOOT_DRY_RUN)
    assert not apply_config.needs_reboot(
        "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes.\n")
    assert not apply_config.needs_reboot(
        "Dry run summary:\nStaged configuration to be applied after the next reboot (skipped in dry-run).\n")


def test_a_refused_reboot_names_the_node_and_the_changed_lines():
    _changed, diff = apply_config.parse_dry_run(REBOOT_DRY_RUN)
    error = talos_apply_config.reboot_refused("validator-1", diff)
    assert str(error) == ("validator-1: Talos' dry run says this change needs a reboot; nothing was applied. "
                          "Changed: +env:; +TZ: UTC")
    assert "talos_solana_worker_apply_allow_reboot" in error.hint and "staged" in error.hint


def test_changed_lines_are_cut_short():
    diff = "--- a\n+++ b\n" + "".join(f"+line {i}\n" for i in range(9))
    assert talos_apply_config.changed_lines(diff, limit=2) == "+line 0; +line 1; ... (7 more)"


def _b64(text):
    return base64.b64encode(text.encode()).decode()


CA1 = "-----BEGIN CERTIFICATE-----\nMIIBONE\n-----END CERTIFICATE-----\n"
CA2 = "-----BEGIN CERTIFICATE-----\nMIIBTWO\n-----END CERTIFICATE-----\n"


def test_another_bundles_config_is_told_by_its_machine_ca(tmp_path):
    talosconfig = tmp_path / "talosconfig"
    talosconfig.write_text(f"context: solana\ncontexts:\n  solana:\n    ca: {_b64(CA1)}\n    endpoints: [10.0.1.11]\n")
    assert talos_apply_config.trusted_ca(str(talosconfig)) == _b64(CA1)
    assert talos_apply_config.trusted_ca(str(tmp_path / "missing")) is None
    (tmp_path / "broken").write_text("context: other\ncontexts: {}\n")
    assert talos_apply_config.trusted_ca(str(tmp_path / "broken")) is None
    config = f"version: v1alpha1\nmachine:\n  ca: {{crt: {_b64(CA1)}, key: S0VZ}}\n---\nkind: HostnameConfig\n"
    assert talos_apply_config.machine_ca(config) == _b64(CA1)
    assert talos_apply_config.machine_ca("kind: HostnameConfig\n") is None
    assert talos_apply_config.trusted_by(_b64(CA1), _b64(CA1))
    assert talos_apply_config.trusted_by(_b64(CA1.rstrip("\n")), _b64(CA1))  # another encoding of the same
    assert talos_apply_config.trusted_by(_b64(CA1), _b64(CA2 + CA1)), "a talosconfig may trust a bundle"
    assert not talos_apply_config.trusted_by(_b64(CA2), _b64(CA1))
    assert not talos_apply_config.trusted_by(None, _b64(CA1)) and not talos_apply_config.trusted_by("junk", _b64(CA1))
    error = talos_apply_config.identity_refused("controlplane-1")
    assert str(error).startswith("controlplane-1: this configuration's Talos API CA (machine.ca) is not the one "
                                 "the talosconfig trusts")
    assert "nothing was applied" in str(error) and "allow_identity_change" in error.hint


def test_a_kubernetes_version_change_is_told_from_the_image_lines_of_the_diff():
    def changed(old, new, indent="        "):
        return (f"-{indent}image: {old}\n" if old else "") + f"+{indent}image: {new}\n"

    diff = "".join([
        "--- a\n+++ b\n@@ -10,7 +10,7 @@\n kind: KubeletConfig\n",
        changed("ghcr.io/siderolabs/kubelet:v1.36.3", "ghcr.io/siderolabs/kubelet:v1.37.2", ""),
        changed("registry.k8s.io/kube-apiserver:v1.36.3", "registry.k8s.io/kube-apiserver:v1.37.2@sha256:" + "0" * 64),
        changed(None, '"registry.k8s.io/kube-scheduler:v1.37.2"'),
        # the same tag from another registry, and other images, are not a version change
        changed("registry.k8s.io/kube-proxy:v1.36.3", "127.0.0.1:5000/kube-proxy:v1.36.3"),
        changed("registry.k8s.io/coredns/coredns:v1.12.0", "registry.k8s.io/coredns/coredns:v1.13.0"),
        changed("factory.talos.dev/metal-installer/abc:v1.14.1", "factory.talos.dev/metal-installer/def:v1.14.1"),
    ])
    assert talos_apply_config.kubernetes_changes(diff) == [
        "kubelet v1.36.3 -> v1.37.2", "kube-apiserver v1.36.3 -> v1.37.2", "kube-scheduler (default) -> v1.37.2"]
    removed = "--- a\n+++ b\n-    image: registry.k8s.io/kube-controller-manager:v1.36.3\n"
    assert talos_apply_config.kubernetes_changes(removed) == ["kube-controller-manager v1.36.3 -> (default)"]
    sysctl = '--- a\n+++ b\n-    vm.swappiness: "1"\n+    vm.swappiness: "10"\n'
    assert talos_apply_config.kubernetes_changes(sysctl) == []


def test_only_the_named_images_may_change_in_a_kubelet_upgrade():
    kubelet = "-image: ghcr.io/siderolabs/kubelet:v1.36.3\n+image: ghcr.io/siderolabs/kubelet:v1.37.2\n"
    assert talos_apply_config.other_changes("--- a\n+++ b\n@@ -1 +1 @@\n kind: KubeletConfig\n" + kubelet,
                                            ["kubelet"]) == []
    apiserver = ("-    image: registry.k8s.io/kube-apiserver:v1.36.3\n"
                 "+    image: registry.k8s.io/kube-apiserver:v1.37.2\n")
    sysctl = '+    vm.swappiness: "10"\n'
    assert talos_apply_config.other_changes(kubelet + apiserver + sysctl, ["kubelet"]) == [
        *apiserver.splitlines(), sysctl.strip("\n")]
