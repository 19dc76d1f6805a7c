"""talos_kubeconfig with the cluster's CA known: a current file is kept without running talosctl;
any other is compared with a fetch."""

from __future__ import annotations

import base64

from ansible_collections.solanaops.talos.plugins.modules import talos_kubeconfig

CA = b"-----BEGIN CERTIFICATE-----\ncluster CA\n-----END CERTIFICATE-----\n"
SERVER = "https://127.1.0.10:6443"


def _fetching(kubeconfig_text, calls):
    def talos(argv):
        calls.append(argv[1])
        if argv[1] == "version":
            return 0, "Client:\nTalos v1.14.1\n", ""
        return 0, kubeconfig_text("https://127.1.0.11:6443", 365, CA), ""
    return talos


def test_a_current_file_with_the_known_ca_runs_no_talosctl(run_module, tmp_path, kubeconfig_text):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(SERVER, 365, CA))
    calls = []
    result = run_module(talos_kubeconfig, _fetching(kubeconfig_text, calls),
                        {"node": "127.1.0.11", "path": str(path), "server": SERVER,
                         "ca": base64.b64encode(CA).decode()})
    assert not result["failed"] and result["changed"] is False and result["server"] == SERVER, result
    assert calls == []


def test_another_known_ca_fetches_and_replaces_the_file(run_module, tmp_path, kubeconfig_text):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(SERVER, 365, b"the old CA"))
    calls = []
    result = run_module(talos_kubeconfig, _fetching(kubeconfig_text, calls),
                        {"node": "127.1.0.11", "path": str(path), "server": SERVER,
                         "ca": base64.b64encode(CA).decode()})
    assert not result["failed"] and result["changed"] is True, result
    assert "kubeconfig" in calls
    assert talos_kubeconfig.summarize(path.read_text())[0] == SERVER
