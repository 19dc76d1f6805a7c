"""node_taints: which taints a Node ends up with, the conditional JSON patch it sends, and what
it does when the Node changed between its read and its write (an API stand-in; the module runs
against the real API server in tests/integration/test_kubernetes.py)."""

from __future__ import annotations

import json
import types

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.module_utils.node_taints import all_observed_tainted
from ansible_collections.solanaops.talos.plugins.modules import node_taints
from kubernetes.client.exceptions import ApiException

OURS = {"key": "solana.io/validator", "value": "true", "effect": "NoSchedule"}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": "2026-12-03T01:00:00Z"}


@pytest.mark.parametrize(("existing", "wanted", "merged"), [
    pytest.param([], [OURS], [OURS], id="added"),
    pytest.param([OURS], [OURS], None, id="already-there"),
    # the node lifecycle controller's taint stays, in its place
    pytest.param([NOT_READY], [OURS], [NOT_READY, OURS], id="others-kept"),
    pytest.param([{**OURS, "value": "false"}, NOT_READY], [OURS], [NOT_READY, OURS], id="value-replaced"),
    # another effect is another taint
    pytest.param([{**OURS, "effect": "NoExecute"}], [OURS], [{**OURS, "effect": "NoExecute"}, OURS],
                 id="other-effect-kept"),
    pytest.param([{"key": "dedicated", "effect": "NoSchedule"}],
                 [{"key": "dedicated", "value": "", "effect": "NoSchedule"}], None, id="empty-value-is-no-value"),
    pytest.param([OURS], [], None, id="nothing-wanted"),
])
def test_merged_taints(existing, wanted, merged):
    assert node_taints.merged_taints(existing, wanted) == merged


WANTED = [{"name": "solana-validator", "taints": [OURS]}]


def observed_node(name, taints):
    return {"kind": "Node", "metadata": {"name": name}, "spec": {"taints": taints}}


@pytest.mark.parametrize(("observed", "tainted"), [
    pytest.param([observed_node("solana-validator", [NOT_READY, OURS])], True, id="there"),
    pytest.param([observed_node("solana-validator", [NOT_READY])], False, id="missing"),
    pytest.param([observed_node("solana-validator", [{**OURS, "value": "false"}])], False, id="other-value"),
    pytest.param([], False, id="not-observed"),
    # the apply's other objects: a Namespace of the Node's name is not the Node
    pytest.param([{**observed_node("solana-validator", [OURS]), "kind": "Namespace"}], False, id="other-kind"),
    pytest.param([{"kind": "Node", "metadata": {"name": "solana-validator"}}], False, id="no-spec"),
    # an object without a kind is taken for a Node
    pytest.param([{"metadata": {"name": "solana-validator"}, "spec": {"taints": [OURS]}}], True, id="list-item"),
])
def test_all_observed_tainted(observed, tainted):
    assert all_observed_tainted(WANTED, observed) is tainted


class FakeApi:
    """Nodes by name; each patch first fails with `refusals` (status) while `racer` changes the Node."""

    def __init__(self, nodes, refusals=(), racer=True):
        self.nodes, self.refusals, self.racer, self.patches = nodes, list(refusals), racer, []

    def read_node(self, name, _preload_content=True):
        if name not in self.nodes:
            raise ApiException(status=404, reason="Not Found")
        return types.SimpleNamespace(data=json.dumps(self.nodes[name]).encode())

    def patch_node(self, name, body, field_manager=None, _content_type=None):
        self.patches.append((name, body, field_manager, _content_type))
        if name not in self.nodes:
            raise ApiException(status=404, reason="Not Found")
        node = self.nodes[name]
        if self.refusals:
            if self.racer:  # another client wrote the Node in between
                node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)
            raise ApiException(status=self.refusals.pop(0), reason="Unprocessable Entity")
        version = node["metadata"]["resourceVersion"]
        assert body[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": version}
        node["spec"]["taints"] = body[1]["value"]
        node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)


def node(name, taints):
    return {"metadata": {"name": name, "resourceVersion": "7"}, "spec": {"taints": taints}}


def run(monkeypatch, capsys, api, names=("solana-validator",), check_mode=False, taints=(OURS,), observed=()):
    monkeypatch.setattr(node_taints.config, "new_client_from_config", lambda config_file: None)
    monkeypatch.setattr(node_taints, "CoreV1Api", lambda _client: api)
    args = {"kubeconfig": "/tmp/kubeconfig", "_ansible_check_mode": check_mode, "_ansible_diff": True,
            "field_manager": "solanaops-talos", "nodes": [{"name": name, "taints": list(taints)} for name in names],
            "observed": list(observed)}
    with patch_module_args(args), pytest.raises(SystemExit):
        node_taints.main()
    return json.loads(capsys.readouterr().out)


def test_one_conditional_patch_per_node_that_changes(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [NOT_READY]), "done": node("done", [OURS])})
    result = run(monkeypatch, capsys, api, names=("solana-validator", "done"))
    assert result["changed"] and result["changed_nodes"] == ["solana-validator"]
    assert api.patches == [("solana-validator", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/spec/taints", "value": [NOT_READY, OURS]}], "solanaops-talos",
        "application/json-patch+json")]
    assert [(d["before_header"], json.loads(d["before"]), json.loads(d["after"])) for d in result["diff"]] == [
        ("Node solana-validator taints", [NOT_READY], [NOT_READY, OURS])]


class Unread(FakeApi):
    def read_node(self, name, _preload_content=True):
        raise AssertionError(f"read {name}")


def test_nodes_observed_with_their_taints_are_neither_read_nor_patched(monkeypatch, capsys):
    api = Unread({})
    result = run(monkeypatch, capsys, api, observed=[observed_node("solana-validator", [NOT_READY, OURS])])
    assert result["changed"] is False and result["changed_nodes"] == [] and api.patches == []


def test_a_node_observed_without_its_taint_is_read_again_and_patched(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])})
    result = run(monkeypatch, capsys, api, observed=[observed_node("solana-validator", [NOT_READY])])
    assert result["changed_nodes"] == ["solana-validator"]
    assert api.nodes["solana-validator"]["spec"]["taints"] == [OURS]


def test_check_mode_reads_and_patches_nothing_but_shows_the_change(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])})
    result = run(monkeypatch, capsys, api, check_mode=True)
    assert result["changed"] and api.patches == []
    assert json.loads(result["diff"][0]["after"]) == [OURS]


def test_a_taint_without_a_value_is_written_without_one(monkeypatch, capsys):
    dedicated = {"key": "dedicated", "value": "", "effect": "NoSchedule"}
    api = FakeApi({"solana-validator": node("solana-validator", [])})
    run(monkeypatch, capsys, api, taints=(dedicated,))
    assert api.nodes["solana-validator"]["spec"]["taints"] == [{"key": "dedicated", "effect": "NoSchedule"}]


def test_a_node_changed_in_between_is_read_again(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])}, refusals=[422, 409])
    result = run(monkeypatch, capsys, api)
    assert result["changed"] and len(api.patches) == 3
    assert api.nodes["solana-validator"]["spec"]["taints"] == [OURS]


def test_a_refusal_without_a_change_in_between_fails_at_once(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])}, refusals=[422] * 5, racer=False)
    result = run(monkeypatch, capsys, api)
    assert result["failed"] and len(api.patches) == 1
    assert result["msg"].startswith("tainting Node solana-validator: 422")


def test_gives_up_after_five_lost_races(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])}, refusals=[409] * 5)
    result = run(monkeypatch, capsys, api)
    assert result["failed"] and len(api.patches) == 5 and "each of 5 attempts" in result["msg"]


def test_a_node_not_registered_is_named_and_the_others_still_tainted(monkeypatch, capsys):
    api = FakeApi({"solana-validator": node("solana-validator", [])})
    result = run(monkeypatch, capsys, api, names=("solana-validator-9", "solana-validator"))
    assert result["failed"] and result["msg"].startswith("Node solana-validator-9 is not registered in Kubernetes")
    assert result["changed"] and result["changed_nodes"] == ["solana-validator"]
    assert api.nodes["solana-validator"]["spec"]["taints"] == [OURS]


def test_an_api_server_out_of_reach_fails_at_once_naming_the_kubeconfig(monkeypatch, capsys):
    from urllib3.exceptions import MaxRetryError

    class Unreachable(FakeApi):
        def read_node(self, name, _preload_content=True):
            self.patches.append(name)
            raise MaxRetryError(None, "/api/v1/nodes", "Connection refused")

    api = Unreachable({})
    result = run(monkeypatch, capsys, api, names=("a", "b"))
    assert result["failed"] and api.patches == ["a"]
    assert result["msg"].startswith("reaching the API server with /tmp/kubeconfig: ")
