"""Fixtures shared by the plugin tests."""

from __future__ import annotations

import base64
import datetime

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture
def kubeconfig_text():
    """kubeconfig_text(server, days, ca) -> an admin kubeconfig as Talos writes one: the server, the
    CA (bytes, base64 in the file) and a client certificate valid for ``days`` more days."""

    def make(server="https://10.0.1.10:6443", days=365, ca=b"CA"):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
                .sign(key, hashes.SHA256()))
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "admin@solana",
            "clusters": [{"name": "solana", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": _b64(cert.public_bytes(serialization.Encoding.PEM)),
                "client-key-data": _b64(b"not read")}}],
            "contexts": [{"name": "admin@solana", "context": {"cluster": "solana", "user": "admin"}}],
        })

    return make
