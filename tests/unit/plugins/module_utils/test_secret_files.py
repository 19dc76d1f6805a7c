"""Unit tests for module_utils/secret_files.py: redaction and collection of secret values."""

from __future__ import annotations

import os
import stat

import pytest
import yaml
from ansible_collections.solanaops.talos.plugins.module_utils import files, secret_files
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import TalosError

MACHINE_CONFIG = """\
version: v1alpha1
machine:
  type: worker
  token: wt9x1q.abcdefghij123456
  ca:
    crt: LS0tLS1CRUdJTiBDRVJU
    key: LS0tLS1CRUdJTiBFRDI1NTE5
  kubelet:
    extraMounts:
      - destination: /var/mnt/ledger
        type: bind
        options: [bind, rshared]
      - destination: /var/lib/other
        Secret: list-nested-secret
cluster:
  clusterName: solana-cluster
  secretboxEncryptionSecret: c2VjcmV0Ym94LXNlY3JldA==
  token: ""
  aescbcEncryptionSecret: null
  serviceAccount:
    key: ""
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: cp-1
auto: "off"
"""

SECRETS = {
    "wt9x1q.abcdefghij123456",
    "LS0tLS1CRUdJTiBFRDI1NTE5",
    "list-nested-secret",
    "c2VjcmV0Ym94LXNlY3JldA==",
}

SECRETS_BUNDLE = """\
cluster:
  id: cluster-id-public
  secret: cluster-secret-value
secrets:
  bootstraptoken: bootstrap.token
  secretboxencryptionsecret: sbx-bundle-secret
trustdinfo:
  token: trustd.token
certs:
  os:
    crt: os-crt
    key: os-key
"""


def test_redact_machine_config():
    redacted = secret_files.redact(MACHINE_CONFIG)
    for value in SECRETS:
        assert value not in redacted
    first, second = yaml.safe_load_all(redacted)
    assert first["machine"]["token"] == "<redacted>"
    assert first["machine"]["ca"] == {"crt": "LS0tLS1CRUdJTiBDRVJU", "key": "<redacted>"}
    assert first["machine"]["kubelet"]["extraMounts"] == [
        {"destination": "/var/mnt/ledger", "type": "bind", "options": ["bind", "rshared"]},
        {"destination": "/var/lib/other", "Secret": "<redacted>"},
    ]
    assert first["cluster"] == {
        "clusterName": "solana-cluster",
        "secretboxEncryptionSecret": "<redacted>",
        # empty or null secrets have nothing to hide and stay as they are
        "token": "",
        "aescbcEncryptionSecret": None,
        "serviceAccount": {"key": ""},
    }
    assert first["version"] == "v1alpha1"
    assert second == {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "cp-1", "auto": "off"}


def test_redact_keeps_key_order_and_document_separator():
    redacted = secret_files.redact(MACHINE_CONFIG)
    assert redacted.count("---\n") == 1
    assert list(yaml.safe_load_all(redacted))[0]["machine"] == {
        "type": "worker", "token": "<redacted>", "ca": {"crt": "LS0tLS1CRUdJTiBDRVJU", "key": "<redacted>"},
        "kubelet": {"extraMounts": [
            {"destination": "/var/mnt/ledger", "type": "bind", "options": ["bind", "rshared"]},
            {"destination": "/var/lib/other", "Secret": "<redacted>"},
        ]},
    }
    assert list(list(yaml.safe_load_all(redacted))[0]) == ["version", "machine", "cluster"]


@pytest.mark.parametrize("text", ["", None, "---\n", "# comment only\n"])
def test_redact_empty(text):
    assert secret_files.redact(text) == ""


def test_secret_values_machine_config():
    assert secret_files.secret_values(MACHINE_CONFIG) == SECRETS


def test_secret_values_and_redact_secrets_bundle():
    expected = {"cluster-secret-value", "bootstrap.token", "sbx-bundle-secret", "trustd.token", "os-key"}
    assert secret_files.secret_values(SECRETS_BUNDLE) == expected
    redacted = yaml.safe_load(secret_files.redact(SECRETS_BUNDLE))
    assert redacted["cluster"] == {"id": "cluster-id-public", "secret": "<redacted>"}
    assert redacted["secrets"] == {"bootstraptoken": "<redacted>", "secretboxencryptionsecret": "<redacted>"}
    assert redacted["certs"]["os"] == {"crt": "os-crt", "key": "<redacted>"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", set()),
        (None, set()),
        ("token: ''\nkey: null\nsecret: []\n", set()),
        ("contexts:\n  c:\n    ca: ca-crt\n    crt: crt\n    key: client-key\n", {"client-key"}),
        ("- BootstrapToken: abc\n- KEY: def\n- keys: not-a-secret-key\n", {"abc", "def"}),
        # a numeric secret is still a secret
        ("token: 12345\n", {"12345"}),
        # a taint's key names the taint (the kubelet's registerWithTaints): not key material
        ("registerWithTaints:\n  - {key: solana.io/validator, value: 'true', effect: NoSchedule}\nkey: k\n", {"k"}),
    ],
)
def test_secret_values(text, expected):
    assert secret_files.secret_values(text) == expected


def test_private_dir_is_0700_and_removed():
    with secret_files.private_dir() as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        with open(os.path.join(path, "secrets.yaml"), "w") as handle:
            handle.write("x")
    assert not os.path.exists(path)


def test_secrets_bundle_path_writes_content(tmp_path):
    path = secret_files.secrets_bundle_path({"secrets_content": SECRETS_BUNDLE, "secrets_path": None}, str(tmp_path))
    assert path == str(tmp_path / "secrets.yaml")
    assert (tmp_path / "secrets.yaml").read_text() == SECRETS_BUNDLE


def test_secrets_bundle_path_uses_existing_path(tmp_path):
    bundle = tmp_path / "secrets.yaml"
    bundle.write_text(SECRETS_BUNDLE)
    params = {"secrets_content": None, "secrets_path": str(bundle)}
    assert secret_files.secrets_bundle_path(params, str(tmp_path / "work")) == str(bundle)


def test_secrets_bundle_path_missing(tmp_path):
    params = {"secrets_content": None, "secrets_path": str(tmp_path / "nope.yaml")}
    with pytest.raises(TalosError, match="nope.yaml does not exist") as info:
        secret_files.secrets_bundle_path(params, str(tmp_path))
    assert "talos_secrets" in info.value.hint


def test_write_private_and_read_text(tmp_path):
    dest = tmp_path / "out" / "cp-1.yaml"
    assert secret_files.read_text(str(dest)) is None
    secret_files.write_private(str(dest), "machine: {}\n")
    assert secret_files.read_text(str(dest)) == "machine: {}\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
    assert [p.name for p in dest.parent.iterdir()] == ["cp-1.yaml"]


@pytest.mark.parametrize("existing_mode", [None, 0o644])
def test_write_private_never_shows_the_secret_to_others(tmp_path, monkeypatch, existing_mode):
    """A secret is 0600 from the moment it is at its path: no rename-then-chmod window (a module's
    atomic_move opens a new file to 0666 less the umask after its rename)."""
    dest = tmp_path / "kubeconfig"
    if existing_mode is not None:
        dest.write_text("old\n")
        dest.chmod(existing_mode)
    secret, seen = "token: s3cret\n", []

    def watching(call):
        def watched(*args, **kwargs):
            done = call(*args, **kwargs)
            if dest.exists() and dest.read_text() == secret:
                seen.append(stat.S_IMODE(dest.stat().st_mode))
            return done
        return watched

    for name in ("rename", "replace", "chmod"):
        monkeypatch.setattr(os, name, watching(getattr(os, name)))
    secret_files.write_private(str(dest), secret)
    assert dest.read_text() == secret
    assert seen and set(seen) == {0o600}, seen

    # the watch sees what atomic_move did: a rename, then the new file opened to 0666 less the umask
    def rename_then_chmod(tmp, path):
        os.rename(tmp, path)
        os.chmod(path, 0o644)
        os.chmod(path, 0o600)

    seen.clear()
    files.write_atomically(str(dest), secret, rename_then_chmod)
    assert 0o644 in seen, seen


def test_write_private_keeps_the_owner_of_a_file_it_replaces_as_root(tmp_path, monkeypatch):
    dest = tmp_path / "kubeconfig"
    dest.write_text("old\n")
    owned = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: owned.append((uid, gid)))
    secret_files.write_private(str(dest), "new\n")
    assert owned == [(dest.stat().st_uid, dest.stat().st_gid)]
    assert dest.read_text() == "new\n" and stat.S_IMODE(dest.stat().st_mode) == 0o600


DIFF = """\
--- before
+++ after
@@ -1,12 +1,12 @@
 machine:
-    token: old.token
+    token: new.token
     ca:
         crt: LS0tLS1CRUdJTiBDRVJU
-        key: OLDCAKEY
+        key: NEWCAKEY
 cluster:
-    secretboxEncryptionSecret: oldsbx
+    secretboxEncryptionSecret: newsbx
     Token: unchanged.context
       - key: listed-key
         election-timeout: "6000"
"""


def test_redact_diff_hides_secret_values_on_added_removed_and_context_lines():
    redacted = secret_files.redact_diff(DIFF)
    for value in ("old.token", "new.token", "OLDCAKEY", "NEWCAKEY", "oldsbx", "newsbx", "unchanged.context",
                  "listed-key"):
        assert value not in redacted
    lines = redacted.splitlines()
    assert len(lines) == len(DIFF.splitlines()), "one line out for every line in"
    for line in ("-    token: <redacted>", "+    token: <redacted>", "-        key: <redacted>",
                 "+        key: <redacted>", "+    secretboxEncryptionSecret: <redacted>",
                 "     Token: <redacted>", "       - key: <redacted>"):
        assert line in lines, line
    # what is not a secret stays readable
    for line in ("--- before", "@@ -1,12 +1,12 @@", "         crt: LS0tLS1CRUdJTiBDRVJU",
                 '         election-timeout: "6000"'):
        assert line in lines, line


PEM_DIFF = """\
+kind: KubeServiceAccountConfig
+issuer:
+  privateKey: '-----BEGIN RSA PRIVATE KEY-----
+
+    MIIJJwIBAAKCAgEAvusRSAKRL9
+
+    -----END RSA PRIVATE KEY-----
+
+    '
+  issuerURL: https://10.0.1.10:6443
+kind: KubeAPIServerCAConfig
+issuingCA:
+  key: |
+    -----BEGIN EC PRIVATE KEY-----
+    MHcCAQEEIBLOCKSCALAR
+  cert: LS0tCERT
 clusterSecret: EMU6zTqh
"""


def test_redact_diff_hides_a_secret_spanning_lines():
    """Talos v1.14's documents hold PEM blocks (KubeServiceAccountConfig privateKey,
    KubeAPIServerCAConfig key): the value's continuation lines go with its key line."""
    redacted = secret_files.redact_diff(PEM_DIFF)
    assert "PRIVATE" not in redacted and "MII" not in redacted and "MHc" not in redacted
    assert "EMU6" not in redacted
    assert redacted.splitlines() == [
        "+kind: KubeServiceAccountConfig", "+issuer:", "+  privateKey: <redacted>",
        "+  issuerURL: https://10.0.1.10:6443", "+kind: KubeAPIServerCAConfig", "+issuingCA:",
        "+  key: <redacted>", "+  cert: LS0tCERT", " clusterSecret: <redacted>"]


def test_redact_diff_hides_a_secret_whose_hunk_starts_below_its_key():
    """Talos' diff keeps 3 lines of context: changing issuerURL shows the end of the private key
    above it without its key line."""
    hunk = ("@@ -120,7 +120,7 @@\n     IVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n"
            "     GhDoY4C9XMzfF9WrA0KdQ3h2FT2NbnX2pm+3dW5N566pO80ThQETb/ak0A==\n"
            "     -----END RSA PRIVATE KEY-----\n-    issuerURL: https://10.0.1.10:6443\n"
            "+    issuerURL: https://10.0.1.20:6443\n")
    redacted = secret_files.redact_diff(hunk)
    assert "IVBOR" not in redacted and "GhDoY" not in redacted and "END RSA" not in redacted
    assert redacted.splitlines() == ["@@ -120,7 +120,7 @@", "     <redacted>", "     <redacted>", "     <redacted>",
                                     "-    issuerURL: https://10.0.1.10:6443", "+    issuerURL: https://10.0.1.20:6443"]


def test_secret_values_name_the_lines_of_a_multi_line_secret():
    text = "kind: KubeServiceAccountConfig\nissuer:\n  privateKey: |\n    -----BEGIN RSA PRIVATE KEY-----\n" \
           "    MIIJJwIBAAKCAgEAvusRSAKRL9ClsVbahc04Egy1\n    short\n    -----END RSA PRIVATE KEY-----\n"
    values = secret_files.secret_values(text)
    assert "MIIJJwIBAAKCAgEAvusRSAKRL9ClsVbahc04Egy1" in values
    # the whole value, and of its lines only the long ones that are not the PEM armor every key shares
    body = "MIIJJwIBAAKCAgEAvusRSAKRL9ClsVbahc04Egy1"
    assert values == {f"-----BEGIN RSA PRIVATE KEY-----\n{body}\nshort\n-----END RSA PRIVATE KEY-----\n", body}


def test_registry_and_link_credentials_are_secrets():
    text = ("machine:\n  registries:\n    config:\n      ghcr.io:\n        auth: {username: u, password: PW1, "
            "auth: QUFB, identityToken: IDT}\n---\nkind: WireguardConfig\npeers: [{presharedKey: PSK}]\n")
    assert secret_files.secret_values(text) == {"PW1", "QUFB", "IDT", "PSK"}
    diff = "+        auth:\n+          password: PW1\n+          auth: QUFB\n"
    assert secret_files.redact_diff(diff).splitlines() == [
        "+        auth:", "+          password: <redacted>", "+          auth: <redacted>"]


def test_redact_v1_14_documents():
    text = ("kind: KubeServiceAccountConfig\nissuer: {privateKey: PEMBODY, issuerURL: u}\n---\n"
            "kind: DiscoveryIdentityConfig\nclusterID: ID\nclusterSecret: SECRETVALUE\n")
    assert secret_files.secret_values(text) == {"PEMBODY", "SECRETVALUE"}  # one-line values: nothing more
    assert "PEMBODY" not in secret_files.redact(text) and "SECRETVALUE" not in secret_files.redact(text)


def test_redact_diff_of_nothing_is_nothing():
    assert secret_files.redact_diff("") == ""
    assert secret_files.redact_diff(None) == ""
