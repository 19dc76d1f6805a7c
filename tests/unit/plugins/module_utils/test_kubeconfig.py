"""module_utils/kubeconfig.py: whether a kubeconfig is kept (talos_kubeconfig, the current_kubeconfig test)."""

from __future__ import annotations

import base64
import datetime

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import kubeconfig
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _kubeconfig(server="https://10.0.1.10:6443", days=365, ca=b"CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))

    def encode(data):
        return base64.b64encode(data).decode()

    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@solana",
        "clusters": [{"name": "solana", "cluster": {"server": server, "certificate-authority-data": encode(ca)}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": encode(cert.public_bytes(
            serialization.Encoding.PEM)), "client-key-data": encode(b"not read")}}],
        "contexts": [{"name": "admin@solana", "context": {"cluster": "solana", "user": "admin"}}],
    })


def test_summarize_reads_server_ca_and_expiry():
    server, ca, expires = kubeconfig.summarize(_kubeconfig(days=10))
    assert server == "https://10.0.1.10:6443" and len(ca) == 16
    assert 9 <= (expires - datetime.datetime.now(datetime.UTC)).days <= 10
    assert kubeconfig.summarize(_kubeconfig(ca=b"other"))[1] != ca


def test_with_server_rewrites_every_cluster():
    rewritten = kubeconfig.with_server(_kubeconfig(), "https://10.0.1.11:6443")
    assert kubeconfig.summarize(rewritten)[0] == "https://10.0.1.11:6443"


def test_not_a_kubeconfig_is_a_clear_error():
    with pytest.raises(kubeconfig.KubeconfigError, match="not a usable kubeconfig"):
        kubeconfig.summarize("apiVersion: v1\nkind: Config\n")
