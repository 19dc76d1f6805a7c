#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback for the tests: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler (all built from their Go modules by gobuild.py) and
kwok standing in for kubelets of the Nodes the tests register.

Usage (run with the project's virtualenv python; state lives in DIR):
    controlplane.py up DIR [--address 127.0.0.1] [--port 6443]
    controlplane.py down DIR
    controlplane.py node DIR DESCRIPTION.yaml      register (or replace) a Node
    controlplane.py status DIR

`up` writes DIR/admin.kubeconfig (O=system:masters) and returns once every component is
ready (/readyz, /healthz), never after a fixed sleep; if a component dies, it stops the
others and fails with that component's log tail. `down` stops every process it started.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gobuild  # noqa: E402

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/12"
START_TIMEOUT = 120  # seconds; the API server's first start with a cold page cache is the slowest


# --- PKI ---------------------------------------------------------------------------------------

def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _certificate(subject, issuer, issuer_key, public_key, *, ca=False, server_names=(), client=False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server_names:
        names = []
        for name in server_names:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                names.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not ca:
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name, organization=None):
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_pki(pki: Path, address: str) -> None:
    """Cluster CA, serving and client certificates, service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("testbed-ca")
    ca = _certificate(ca_name, ca_name, ca_key, ca_key.public_key(), ca=True)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(pki / "ca.key", ca_key)
    server_names = (address, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                    "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1")
    leaves = {
        "apiserver": (_name("kube-apiserver"), server_names, False),
        "etcd": (_name("etcd"), ("127.0.0.1", "localhost"), True),
        "apiserver-etcd-client": (_name("kube-apiserver-etcd-client"), (), True),
        "admin": (_name("admin", "system:masters"), (), True),
    }
    for name, (subject, names, client) in leaves.items():
        key = _key()
        cert = _certificate(subject, ca_name, ca_key, key.public_key(), server_names=names, client=client)
        (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{name}.key", key)
    sa_key = _key()
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def write_kubeconfig(path: Path, pki: Path, server: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
        "clusters": [{"name": "testbed", "cluster": {"server": server,
                                                     "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(pki / "admin.crt"),
                                             "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


# --- processes ---------------------------------------------------------------------------------

def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


class Component:
    def __init__(self, state: Path, name: str, argv: list[str]):
        self.state, self.name, self.argv = state, name, argv
        self.log = state / "logs" / f"{name}.log"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            # a session of its own, so `down` can stop the component and anything it spawned
            process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.state / "pids").mkdir(exist_ok=True)
        (self.state / "pids" / self.name).write_text(str(process.pid))
        self.process = process

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


def _https_ok(url: str, pki: Path | None) -> bool:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt")) if pki else ssl._create_unverified_context()
    if pki:
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_ready(components: list[Component], checks: dict[str, callable], deadline: float) -> None:
    """Poll each component's readiness; fail fast with the log tail of one that died."""
    pending = dict(checks)
    while pending:
        for component in components:
            if component.process.poll() is not None:
                raise RuntimeError(f"{component.name} exited with {component.process.returncode}:\n"
                                   f"{component.tail()}")
        for name, check in list(pending.items()):
            if check():
                print(f"  {name} ready", flush=True)
                del pending[name]
        if pending and time.monotonic() > deadline:
            stuck = ", ".join(pending)
            raise RuntimeError(f"not ready after {START_TIMEOUT}s: {stuck}\n" + "\n".join(
                f"--- {c.name} ---\n{c.tail()}" for c in components if c.name in pending))
        time.sleep(0.2)


def up(state: Path, address: str, port: int) -> None:
    if (state / "pids").exists() and any((state / "pids").iterdir()):
        sys.exit(f"{state} already has a running control plane; run `down` first")
    pins = gobuild.pinned_versions()
    etcd = gobuild.build("etcd", pins["ETCD_VERSION"])
    kube = gobuild.build("kube", pins["KUBERNETES_VERSION"])
    kwok = gobuild.build("kwok", pins["KWOK_VERSION"])
    state.mkdir(parents=True, exist_ok=True)
    pki = state / "pki"
    make_pki(pki, address)
    server = f"https://{address}:{port}"
    kubeconfig = state / "admin.kubeconfig"
    write_kubeconfig(kubeconfig, pki, server)
    etcd_client, etcd_peer = free_port("127.0.0.1"), free_port("127.0.0.1")
    manager_port, scheduler_port, kwok_port = (free_port("127.0.0.1") for _ in range(3))
    components = [
        Component(state, "etcd", [
            str(etcd), "--name", "testbed", "--data-dir", str(state / "etcd"),
            "--listen-client-urls", f"https://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"https://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"testbed=http://127.0.0.1:{etcd_peer}",
            "--cert-file", str(pki / "etcd.crt"), "--key-file", str(pki / "etcd.key"),
            "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth",
            "--unsafe-no-fsync", "--listen-metrics-urls", "",
        ]),
        Component(state, "kube-apiserver", [
            str(kube), "kube-apiserver",
            "--etcd-servers", f"https://127.0.0.1:{etcd_client}", "--etcd-cafile", str(pki / "ca.crt"),
            "--etcd-certfile", str(pki / "apiserver-etcd-client.crt"),
            "--etcd-keyfile", str(pki / "apiserver-etcd-client.key"),
            "--bind-address", address, "--advertise-address", address, "--secure-port", str(port),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"), "--cert-dir", str(state / "apiserver-certs"),
            "--service-cluster-ip-range", SERVICE_CIDR, "--authorization-mode", "Node,RBAC",
            # as Talos runs it: a node may not change its taints nor set restricted labels
            "--enable-admission-plugins", "NodeRestriction",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--allow-privileged=true",
        ]),
        Component(state, "kube-controller-manager", [
            str(kube), "kube-controller-manager", "--kubeconfig", str(kubeconfig),
            "--bind-address", "127.0.0.1", "--secure-port", str(manager_port), "--leader-elect=false",
            "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
            "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
            "--use-service-account-credentials=false",
        ]),
        Component(state, "kube-scheduler", [
            str(kube), "kube-scheduler", "--kubeconfig", str(kubeconfig),
            "--bind-address", "127.0.0.1", "--secure-port", str(scheduler_port), "--leader-elect=false",
        ]),
        Component(state, "kwok", [
            str(kwok), "--kubeconfig", str(kubeconfig), "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", f"{KWOK_ANNOTATION}=fake",
            "--node-lease-duration-seconds", "40", "--cidr", "10.244.0.0/16",
            "--node-ip", address, "--config", str(HERE / "kwok" / "stages.yaml"),
            "--server-address", f"127.0.0.1:{kwok_port}",
        ]),
    ]
    (state / "endpoints.json").write_text(json.dumps({"server": server, "kubeconfig": str(kubeconfig)}))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        # etcd first: the API server exits if it cannot reach storage in time
        components[0].start()
        wait_ready(components[:1], {"etcd": lambda: _tcp_open("127.0.0.1", etcd_client)}, deadline)
        components[1].start()
        wait_ready(components[:2], {"kube-apiserver": lambda: _https_ok(f"{server}/readyz", pki)}, deadline)
        for component in components[2:]:
            component.start()
        wait_ready(components, {
            "kube-controller-manager": lambda: _https_ok(f"https://127.0.0.1:{manager_port}/healthz", None),
            "kube-scheduler": lambda: _https_ok(f"https://127.0.0.1:{scheduler_port}/readyz", None),
            "kwok": lambda: _http_ok(f"http://127.0.0.1:{kwok_port}/healthz"),
        }, deadline)
    except RuntimeError as error:
        down(state)
        sys.exit(f"the testbed control plane did not start: {error}")
    print(f"control plane ready at {server}; kubeconfig {kubeconfig}", flush=True)


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def down(state: Path) -> None:
    pids = state / "pids"
    if not pids.exists():
        return
    for pidfile in sorted(pids.iterdir(), reverse=True):
        pid = int(pidfile.read_text())
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            stop = time.monotonic() + wait
            while time.monotonic() < stop and _alive(pid):
                time.sleep(0.05)
            if not _alive(pid):
                break
        pidfile.unlink()
    print(f"stopped the control plane in {state}", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone once reaped
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


# --- nodes -------------------------------------------------------------------------------------

def node_manifest(description: dict) -> dict:
    """The Node a kubelet registers, from a description: name, taints [{key, value, effect}] (its
    registerWithTaints), internal_ip, capacity, allocatable (= capacity when omitted),
    kubelet_version (the kubelet reports its own in nodeInfo). Only the kubelet's own labels:
    the description's labels come after, as Talos applies machine.nodeLabels."""
    capacity = {key: str(value) for key, value in description["capacity"].items()}
    allocatable = {key: str(value) for key, value in (description.get("allocatable") or capacity).items()}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": description["name"],
            "labels": {"kubernetes.io/hostname": description["name"], "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64"},
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": description.get("taints") or []},
        "status": {
            "capacity": capacity, "allocatable": allocatable,
            "addresses": [{"type": "InternalIP", "address": description["internal_ip"]},
                          {"type": "Hostname", "address": description["name"]}],
            # every field a kubelet reports (the API client requires them all)
            "nodeInfo": {"kubeletVersion": description.get("kubelet_version", ""), "kubeProxyVersion": "",
                         "architecture": "amd64", "operatingSystem": "linux", "osImage": "Talos (emulated)",
                         "kernelVersion": "emulated", "containerRuntimeVersion": "emulated",
                         "machineID": description["name"], "systemUUID": description["name"],
                         "bootID": description["name"]},
        },
    }


def _node_api(state: Path, name: str):
    """A client acting as the node's kubelet: CN=system:node:<name>, O=system:nodes, from the CA."""
    from kubernetes import client

    pki = state / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    key = _key()
    cert = _certificate(_name(f"system:node:{name}", "system:nodes"), ca.subject, ca_key, key.public_key(),
                        client=True)
    crt_path, key_path = pki / f"node-{name}.crt", pki / f"node-{name}.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    configuration = client.Configuration()
    configuration.host = json.loads((state / "endpoints.json").read_text())["server"]
    configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file = (
        str(pki / "ca.crt"), str(crt_path), str(key_path))
    return client.CoreV1Api(client.ApiClient(configuration))


def register_node(state: Path, description: dict) -> None:
    """The kubelet creates its Node with its own identity; then the description's labels are
    applied as Talos' NodeApplyController does: with admin on a control plane
    (``control_plane: true``), with the kubelet's identity on a worker, where NodeRestriction
    refuses restricted labels."""
    from kubernetes import client, config  # the project's virtualenv has it

    admin = client.CoreV1Api(config.new_client_from_config(str(state / "admin.kubeconfig")))
    node = _node_api(state, description["name"])
    manifest = node_manifest(description)
    try:
        admin.delete_node(manifest["metadata"]["name"])  # the test replaces the machine
    except client.ApiException as error:
        if error.status != 404:
            raise
    node.create_node(manifest)
    if description.get("labels"):
        applier = admin if description.get("control_plane") else node
        applier.patch_node(manifest["metadata"]["name"], {"metadata": {"labels": description["labels"]}})
    print(f"registered node {manifest['metadata']['name']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "node", "status"])
    parser.add_argument("state", type=Path, help="directory holding the control plane's state")
    parser.add_argument("description", nargs="?", type=Path, help="node description (YAML), for `node`")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    args = parser.parse_args()
    state = args.state.resolve()
    if args.action == "up":
        up(state, args.address, args.port)
    elif args.action == "down":
        down(state)
    elif args.action == "node":
        if not args.description:
            parser.error("node needs a DESCRIPTION file")
        register_node(state, yaml.safe_load(args.description.read_text()))
    else:
        running = sorted(p.name for p in (state / "pids").iterdir()) if (state / "pids").exists() else []
        print(json.dumps({"running": running, **json.loads((state / "endpoints.json").read_text())}
                         if running else {"running": []}))


if __name__ == "__main__":
    main()
