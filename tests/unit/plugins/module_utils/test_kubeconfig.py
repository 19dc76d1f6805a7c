"""module_utils/kubeconfig.py: whether a kubeconfig is kept (talos_kubeconfig, the current_kubeconfig test)."""

from __future__ import annotations

import base64
import datetime

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import kubeconfig


def test_summarize_reads_server_ca_and_expiry(kubeconfig_text):
    server, ca, expires = kubeconfig.summarize(kubeconfig_text(days=10))
    assert server == "https://10.0.1.10:6443" and len(ca) == 16
    assert 9 <= (expires - datetime.datetime.now(datetime.UTC)).days <= 10
    assert kubeconfig.summarize(kubeconfig_text(ca=b"other"))[1] != ca


def test_with_server_rewrites_every_cluster(kubeconfig_text):
    rewritten = kubeconfig.with_server(kubeconfig_text(), "https://10.0.1.11:6443")
    assert kubeconfig.summarize(rewritten)[0] == "https://10.0.1.11:6443"


def test_not_a_kubeconfig_is_a_clear_error():
    with pytest.raises(kubeconfig.KubeconfigError, match="not a usable kubeconfig"):
        kubeconfig.summarize("apiVersion: v1\nkind: Config\n")


def test_not_a_mapping_is_a_clear_error():
    for text in ("- a\n", "abc\n"):
        with pytest.raises(kubeconfig.KubeconfigError, match="not a usable kubeconfig"):
            kubeconfig.summarize(text)


CA = b"-----BEGIN CERTIFICATE-----\ncluster CA\n-----END CERTIFICATE-----\n"
SERVER = "https://127.1.0.10:6443"


def _params(**overrides):
    return {"path": "/out/kubeconfig", "server": SERVER, "ca": base64.b64encode(CA).decode(), "min_valid_days": 30,
            **overrides}


def test_a_file_naming_the_known_ca_and_server_is_kept_without_a_fetch(kubeconfig_text):
    kept = kubeconfig.kept_without_fetch(_params(), kubeconfig_text(SERVER, 365, CA))
    assert kept["changed"] is False and kept["server"] == SERVER and kept["path"] == "/out/kubeconfig"
    assert 364 <= (datetime.datetime.fromisoformat(kept["expires"]) - datetime.datetime.now(datetime.UTC)).days


@pytest.mark.parametrize(("params", "written"), [
    ({}, {"server": "https://127.1.0.11:6443"}),  # a control plane's own address, not the endpoint
    ({}, {"ca": b"another cluster's CA"}),
    ({}, {"days": 20}),  # renewed 30 days before it expires
    ({"ca": None}, {}),  # the CA not known: compared with a fetch
    ({"server": None}, {}),  # the server Talos returns is known only from a fetch
    ({"ca": "not base64!"}, {}),
])
def test_anything_else_is_fetched(kubeconfig_text, params, written):
    text = kubeconfig_text(**{"server": SERVER, "days": 365, "ca": CA, **written})
    assert kubeconfig.kept_without_fetch(_params(**params), text) is None


def test_no_file_or_an_unusable_one_is_fetched():
    assert kubeconfig.kept_without_fetch(_params(), None) is None
    assert kubeconfig.kept_without_fetch(_params(), "apiVersion: v1\nkind: Config\n") is None
    assert kubeconfig.kept_without_fetch(_params(), "- a\n") is None
