"""The current_kubeconfig test (plugins/test/files.py): settled.yml leaves the kubeconfig's fetch
out only for a file talos_kubeconfig would keep, private to this user."""

from __future__ import annotations

import base64
import datetime
import os

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.test.files import current_kubeconfig
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVER = "https://127.1.0.10:6443"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\ncluster CA\n-----END CERTIFICATE-----\n").decode()


def _write(path, days=365, ca=CA, server=SERVER, mode=0o600):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@solana",
        "clusters": [{"name": "solana", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            "client-key-data": base64.b64encode(b"not read").decode()}}],
        "contexts": [{"name": "admin@solana", "context": {"cluster": "solana", "user": "admin"}}],
    }))
    path.chmod(mode)
    return str(path)


def test_the_cluster_server_and_ca_with_a_long_valid_certificate_pass(tmp_path):
    assert current_kubeconfig(_write(tmp_path / "kubeconfig"), SERVER, CA)


@pytest.mark.parametrize("written", [
    {"server": "https://127.1.0.11:6443"},  # a control plane's own address, not the endpoint
    {"ca": base64.b64encode(b"another cluster's CA").decode()},
    {"days": 20},  # renewed 30 days before it expires, as the module does
    {"mode": 0o644},  # others may read its key
])
def test_another_server_or_ca_a_short_certificate_or_an_open_file_fail(tmp_path, written):
    assert not current_kubeconfig(_write(tmp_path / "kubeconfig", **written), SERVER, CA)


def test_the_renewal_margin_is_the_modules(tmp_path):
    path = _write(tmp_path / "kubeconfig", days=20)
    assert current_kubeconfig(path, SERVER, CA, min_valid_days=10)
    assert not current_kubeconfig(path, SERVER, CA, min_valid_days=30)


def test_a_file_of_another_user_fails(tmp_path, monkeypatch):
    path = _write(tmp_path / "kubeconfig")
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)
    assert not current_kubeconfig(path, SERVER, CA)


def test_a_missing_or_unusable_file_or_ca_fails(tmp_path):
    assert not current_kubeconfig(str(tmp_path / "missing"), SERVER, CA)
    (tmp_path / "garbage").write_text("apiVersion: v1\nkind: Config\n")
    (tmp_path / "garbage").chmod(0o600)
    assert not current_kubeconfig(str(tmp_path / "garbage"), SERVER, CA)
    assert not current_kubeconfig(_write(tmp_path / "kubeconfig"), SERVER, "not base64!")
    assert not current_kubeconfig(_write(tmp_path / "kubeconfig"), SERVER, None)
