"""Unit tests for module_utils/talosctl.py: error classification, the runner's argv and env, failures."""

from __future__ import annotations

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import talosctl
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    AlreadyBootstrapped,
    CommandFailed,
    CredentialsMismatch,
    MaintenanceMode,
    NodeUnreachable,
    Talosctl,
    TalosctlNotFound,
    TalosError,
    UnknownToTheNode,
)


class FakeModule:
    """Just enough of AnsibleModule for the runner: params, get_bin_path, run_command, fail_json."""

    def __init__(self, params=None, bin_path=None, results=None):
        self.params = {"talosctl_path": None, "talosconfig": None, **(params or {})}
        self.bin_path = bin_path
        self.results = list(results or [(0, "", "")])
        self.calls = []
        self.bin_lookups = []
        self.failed = None

    def get_bin_path(self, name, required=False, opt_dirs=None):
        self.bin_lookups.append(name)
        return self.bin_path

    def run_command(self, args, environ_update=None, data=None, binary_data=False, **kwargs):
        self.calls.append({"args": args, "environ_update": environ_update, "data": data,
                           "binary_data": binary_data, **kwargs})
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "bin" / "talosctl"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("rpc error: code = AlreadyExists desc = etcd data directory is not empty", AlreadyBootstrapped),
        ("error: etcd data directory is not empty", AlreadyBootstrapped),
        ('rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake '
         'failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"',
         CredentialsMismatch),
        ("x509: certificate signed by unknown authority", CredentialsMismatch),
        ("remote error: tls: bad certificate", CredentialsMismatch),
        ("rpc error: code = PermissionDenied desc = not authorized", CredentialsMismatch),
        ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
         'dial tcp 10.0.1.11:50000: connect: connection refused"', NodeUnreachable),
        ("connection refused", NodeUnreachable),
        ("dial tcp 10.0.1.20:50000: connect: no route to host", NodeUnreachable),
        ("dial tcp 10.0.1.20:50000: i/o timeout", NodeUnreachable),
        ("rpc error: code = DeadlineExceeded desc = context deadline exceeded", NodeUnreachable),
        ("API is not implemented in maintenance mode", MaintenanceMode),
        ("rpc error: code = Unimplemented desc = API is not implemented in maintenance mode", MaintenanceMode),
        ('rpc error: code = InvalidArgument desc = error decoding document v1alpha1/KubeletConfig/ (line 20): '
         '"KubeletConfig" "v1alpha1": not registered', UnknownToTheNode),
        ("error decoding document v1alpha1/ResolverConfig/ (line 40): unknown keys found during decoding:\n"
         "hostDNS:\n    enabled: true", UnknownToTheNode),
        ("pulling image: schematic 0123 is not registered", CommandFailed),
        ("error generating config: unknown flag: --bogus", CommandFailed),
        ("", CommandFailed),
        (None, CommandFailed),
    ],
)
def test_classify(stderr, expected):
    assert talosctl.classify(stderr) is expected


@pytest.mark.parametrize(
    "error_class", [AlreadyBootstrapped, CredentialsMismatch, MaintenanceMode, NodeUnreachable],
)
def test_classified_errors_are_command_failures_with_hints(error_class):
    assert issubclass(error_class, CommandFailed)
    assert issubclass(error_class, TalosError)
    assert error_class.hint
    assert error_class.hint != CommandFailed.hint


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("Client:\n\tTalos v1.13.9\n", "v1.13.9"),
        ("Client:\n\tTalos v1.10.6\n", "v1.10.6"),
        ("Client:\n\tTalos v1.13.0-beta.1\n", "v1.13.0-beta.1"),
    ],
)
def test_parse_client_version(stdout, expected):
    assert talosctl.parse_client_version(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "garbage\n", "Client:\n\tTalos 1.13.9\n", "Talos v1.13\n"])
def test_parse_client_version_rejects_garbage(stdout):
    with pytest.raises(CommandFailed, match="cannot read the talosctl version"):
        talosctl.parse_client_version(stdout)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\nb\n\n  \n", "b"), ("  only  ", "only"), ("", ""), (None, ""), ("\n\n", "")],
)
def test_last_line(text, expected):
    assert talosctl.last_line(text) == expected


@pytest.mark.parametrize(
    ("kwargs", "tail"),
    [
        ({}, []),
        ({"nodes": ["10.0.1.11"]}, ["--nodes", "10.0.1.11"]),
        ({"nodes": ["10.0.1.11", "10.0.1.12"], "endpoints": ["10.0.1.11", "10.0.1.12", "10.0.1.13"]},
         ["--nodes", "10.0.1.11,10.0.1.12", "--endpoints", "10.0.1.11,10.0.1.12,10.0.1.13"]),
        ({"endpoints": ["10.0.1.11"]}, ["--endpoints", "10.0.1.11"]),
        ({"nodes": [], "endpoints": []}, []),
    ],
)
def test_run_argv_and_environment(binary, kwargs, tail):
    module = FakeModule({"talosctl_path": binary, "talosconfig": "/srv/talos/talosconfig"},
                        results=[(0, "ok\n", "")])
    runner = Talosctl(module)
    assert runner.run(["get", "members", "-o", "yaml"], **kwargs) == (0, "ok\n", "")
    (call,) = module.calls
    assert call["args"] == [binary, "get", "members", "-o", "yaml", *tail]
    assert call["environ_update"] == {"LC_ALL": "C", "TALOSCONFIG": "/srv/talos/talosconfig"}
    assert call["data"] is None
    assert call["binary_data"] is False


def test_run_without_talosconfig_sets_only_lc_all(binary):
    module = FakeModule({"talosctl_path": binary})
    Talosctl(module).run(["version", "--client"])
    assert module.calls[0]["environ_update"] == {"LC_ALL": "C"}


def test_run_passes_stdin_data_as_binary(binary):
    module = FakeModule({"talosctl_path": binary})
    Talosctl(module).run(["apply-config", "--file", "/dev/stdin"], data=b"version: v1alpha1\n")
    assert module.calls[0]["data"] == b"version: v1alpha1\n"
    assert module.calls[0]["binary_data"] is True


def test_talosctl_is_found_on_path(binary):
    module = FakeModule(bin_path=binary)
    runner = Talosctl(module)
    assert runner.path == binary
    assert module.bin_lookups == ["talosctl"]


@pytest.mark.parametrize(
    ("stderr", "error_class"),
    [
        ("rpc error: code = AlreadyExists desc = etcd data directory is not empty", AlreadyBootstrapped),
        ("some noise\nx509: certificate signed by unknown authority\n", CredentialsMismatch),
        ("dial tcp 10.0.1.20:50000: connect: connection refused\n", NodeUnreachable),
        ("API is not implemented in maintenance mode", MaintenanceMode),
        ("error: unknown command \"bootstrapp\"\n", CommandFailed),
    ],
)
def test_run_failure_raises_classified_error(binary, stderr, error_class):
    module = FakeModule({"talosctl_path": binary, "talosconfig": "/tc"}, results=[(1, "partial out\n", stderr)])
    runner = Talosctl(module)
    with pytest.raises(error_class) as info:
        runner.run(["bootstrap"], nodes=["10.0.1.11"], endpoints=["10.0.1.11"], node_name="cp-1")
    error = info.value
    assert error.__class__ is error_class  # exactly this class, not a subclass
    assert str(error) == f"talosctl bootstrap failed on cp-1: {talosctl.last_line(stderr)}"
    assert error.details == {
        "command": [binary, "bootstrap", "--nodes", "10.0.1.11", "--endpoints", "10.0.1.11"],
        "rc": 1, "stdout": "partial out\n", "stderr": stderr,
    }


def test_run_failure_without_stderr_uses_stdout_and_no_node_name(binary):
    module = FakeModule({"talosctl_path": binary}, results=[(2, "line one\nbad flag --x\n", "")])
    with pytest.raises(CommandFailed) as info:
        Talosctl(module).run(["gen", "config"])
    assert str(info.value) == "talosctl gen failed: bad flag --x"
    assert info.value.details["rc"] == 2


def test_run_without_check_returns_failure(binary):
    module = FakeModule({"talosctl_path": binary}, results=[(1, "", "connection refused")])
    assert Talosctl(module).run(["validate"], check=False) == (1, "", "connection refused")


def test_version_is_read_once(binary):
    module = FakeModule({"talosctl_path": binary}, results=[(0, "Client:\n\tTalos v1.13.9\n", "")])
    runner = Talosctl(module)
    assert runner.version == "v1.13.9"
    assert runner.version == "v1.13.9"
    assert [call["args"] for call in module.calls] == [[binary, "version", "--client", "--short"]]


@pytest.mark.parametrize("make_path", ["missing", "not_executable", "missing_directory"])
def test_talosctl_not_found_at_path(tmp_path, make_path):
    path = tmp_path / "talosctl"
    if make_path == "not_executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif make_path == "missing_directory":
        path = tmp_path / "nowhere" / "talosctl"
    module = FakeModule({"talosctl_path": str(path)}, bin_path="/usr/bin/talosctl")
    with pytest.raises(TalosctlNotFound) as info:
        Talosctl(module)
    assert str(info.value) == f"talosctl was not found at {path}"
    assert "solanaops.talos.talosctl role" in info.value.hint
    assert module.calls == []


def test_talosctl_not_found_on_path():
    module = FakeModule(bin_path=None)
    with pytest.raises(TalosctlNotFound, match="^talosctl was not found on PATH$"):
        Talosctl(module)


def test_fail_json_from_classified_error(binary):
    error = CredentialsMismatch("talosctl apply-config failed on cp-1: x509: certificate signed by unknown authority",
                                command=[binary, "apply-config", "--nodes", "10.0.1.11"], rc=1,
                                stdout="", stderr="x509: certificate signed by unknown authority")
    module = FakeModule()
    with pytest.raises(SystemExit):
        talosctl.fail_json_from(module, error, changed=False, dest="/srv/cp-1.yaml")
    assert module.failed == {
        "msg": "talosctl apply-config failed on cp-1: x509: certificate signed by unknown authority "
               f"({CredentialsMismatch.hint})",
        "error": "CredentialsMismatch",
        "command": f"{binary} apply-config --nodes 10.0.1.11",
        "rc": 1, "stdout": "", "stderr": "x509: certificate signed by unknown authority",
        "changed": False, "dest": "/srv/cp-1.yaml",
    }


@pytest.mark.parametrize(
    ("error", "msg", "name"),
    [
        (TalosError("boom"), "boom", "TalosError"),
        (CommandFailed("talosctl gen failed: x"), "talosctl gen failed: x", "CommandFailed"),
        (TalosError("secrets bundle /x does not exist", hint="generate it first"),
         "secrets bundle /x does not exist (generate it first)", "TalosError"),
        (NodeUnreachable("down", hint="custom hint"), "down (custom hint)", "NodeUnreachable"),
        (TalosctlNotFound("talosctl was not found on PATH"),
         f"talosctl was not found on PATH ({TalosctlNotFound.hint})", "TalosctlNotFound"),
    ],
)
def test_fail_json_from_message_and_error_name(error, msg, name):
    module = FakeModule()
    with pytest.raises(SystemExit):
        talosctl.fail_json_from(module, error)
    assert module.failed == {"msg": msg, "error": name}


def test_hint_given_to_one_error_does_not_change_the_class():
    assert NodeUnreachable("down", hint="custom hint").hint == "custom hint"
    assert NodeUnreachable("down").hint == NodeUnreachable.hint != "custom hint"
