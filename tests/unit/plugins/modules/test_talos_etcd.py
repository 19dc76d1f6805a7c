"""talos_etcd: parsing talosctl's etcd tables and the quorum arithmetic."""

from __future__ import annotations

from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import parse_etcd_members
from ansible_collections.solanaops.talos.plugins.modules import talos_etcd

# as talosctl v1.13.9 prints them (captured from the testbed)
MEMBERS = """\
NODE         ID                 HOSTNAME         PEER URLS                 CLIENT URLS               LEARNER
127.0.1.11   6ffb8dbf40c7fea6   controlplane-3   https://127.0.1.13:2380   https://127.0.1.13:2379   false
127.0.1.11   9d2f47d609371970   controlplane-1   https://127.0.1.11:2380   https://127.0.1.11:2379   false
127.0.1.11   e7548e9fe6760681   controlplane-2   https://127.0.1.12:2380   https://127.0.1.12:2379   false
"""
STATUS = (
    "NODE         MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   "
    "RAFT APPLIED INDEX   LEARNER   PROTOCOL   STORAGE   ERRORS\n"
    "127.0.1.11   9d2f47d609371970   381 kB    352 kB (92.47%)   9d2f47d609371970   342          5           "
    "342                  false     3.6.14     3.6.0     \n"
)
ERRORS = """error getting status: 2 errors occurred:
\t* 127.0.1.12: rpc error: code = Unavailable desc = connection refused
\t* 127.0.1.13: rpc error: code = FailedPrecondition desc = etcd is not running on this node

"""


def test_parse_members():
    members = parse_etcd_members(MEMBERS)
    assert [m["hostname"] for m in members] == ["controlplane-3", "controlplane-1", "controlplane-2"]
    assert members[1] == {"id": "9d2f47d609371970", "hostname": "controlplane-1",
                          "peer_urls": ["https://127.0.1.11:2380"], "client_urls": ["https://127.0.1.11:2379"],
                          "learner": False}


def test_parse_status_keeps_spaced_cells_and_empty_errors():
    assert talos_etcd.parse_status(STATUS) == {"127.0.1.11": {
        "member": "9d2f47d609371970", "leader": "9d2f47d609371970", "raft_index": 342, "raft_term": 5,
        "db_size": "381 kB", "learner": False, "errors": ""}}


def test_parse_node_errors():
    assert talos_etcd.parse_node_errors(ERRORS) == {
        "127.0.1.12": "rpc error: code = Unavailable desc = connection refused",
        "127.0.1.13": "rpc error: code = FailedPrecondition desc = etcd is not running on this node"}


def _status(member, leader="aa", errors=""):
    return {"member": member, "leader": leader, "errors": errors}


MEMBER_LIST = [{"id": i, "hostname": i, "learner": False} for i in ("aa", "bb", "cc")]


def test_quorum_with_all_members():
    quorum = talos_etcd.summarize_quorum(MEMBER_LIST, {"n1": _status("aa"), "n2": _status("bb"), "n3": _status("cc")},
                                         ["n1", "n2", "n3"])
    assert quorum == {"members": 3, "responding": 3, "needed": 2, "leader": "aa", "has_quorum": True}


def test_quorum_with_one_member_down():
    quorum = talos_etcd.summarize_quorum(MEMBER_LIST, {"n1": {"error": "connection refused"}, "n2": _status("bb"),
                                                       "n3": _status("cc")}, ["n1", "n2", "n3"])
    assert quorum["responding"] == 2 and quorum["has_quorum"]


def test_quorum_lost_when_no_leader_and_no_member_list():
    # two of three off: nobody can list the members, the survivor has no leader
    status = {"n1": {"error": "refused"}, "n2": {"error": "refused"}, "n3": _status("cc", leader="0000000000000000")}
    quorum = talos_etcd.summarize_quorum([], status, ["n1", "n2", "n3"])
    assert quorum == {"members": 3, "responding": 0, "needed": 2, "leader": None, "has_quorum": False}


def test_members_that_disagree_on_the_leader_have_no_quorum():
    status = {"n1": _status("aa", leader="aa"), "n2": _status("bb", leader="bb"), "n3": {"error": "refused"}}
    assert not talos_etcd.summarize_quorum(MEMBER_LIST, status, ["n1", "n2", "n3"])["has_quorum"]


def test_learners_do_not_count_towards_quorum():
    members = MEMBER_LIST + [{"id": "dd", "hostname": "dd", "learner": True}]
    quorum = talos_etcd.summarize_quorum(members, {"n1": _status("aa"), "n2": _status("bb")}, ["n1", "n2"])
    assert quorum["members"] == 3 and quorum["needed"] == 2 and quorum["has_quorum"]


def test_waited_for():
    ok = {"quorum": {"has_quorum": True, "responding": 2, "members": 3}}
    nodes = ["n1", "n2", "n3"]
    assert talos_etcd.waited_for(ok, "none", nodes) and talos_etcd.waited_for(ok, "quorum", nodes)
    assert not talos_etcd.waited_for(ok, "all", nodes)
    # two members, both healthy, but the third control plane has not joined yet
    joining = {"quorum": {"has_quorum": True, "responding": 2, "members": 2}}
    assert not talos_etcd.waited_for(joining, "all", nodes)
    assert talos_etcd.waited_for({"quorum": {"has_quorum": True, "responding": 3, "members": 3}}, "all", nodes)


def _asked(status):
    return {"status": status, "quorum": talos_etcd.summarize_quorum(MEMBER_LIST, status, list(status))}


def test_stopped_counts_only_once_the_stopped_member_stops_answering():
    # Talos answered Shutdown but n1 still runs: 3 of 3 respond, nothing is proven yet
    still_up = _asked({"n1": _status("aa"), "n2": _status("bb"), "n3": _status("cc")})
    assert not talos_etcd.waited_for(still_up, "stopped", ["n1", "n2", "n3"], ["n1"])
    # n1 is down, but n3 does not answer either: not "members minus the stopped ones"
    one_short = _asked({"n1": {"error": "connection refused"}, "n2": _status("bb"), "n3": {"error": "refused"}})
    assert not talos_etcd.waited_for(one_short, "stopped", ["n1", "n2", "n3"], ["n1"])
    down = _asked({"n1": {"error": "connection refused"}, "n2": _status("bb"), "n3": _status("cc")})
    assert down["quorum"]["responding"] == 2 and down["quorum"]["members"] == 3
    assert talos_etcd.waited_for(down, "stopped", ["n1", "n2", "n3"], ["n1"])


def test_stopped_without_a_possible_majority_needs_only_the_stopped_members_silent():
    # two of three stopped: the survivor cannot answer with a leader; counted out once neither answers
    lost = _asked({"n1": {"error": "refused"}, "n2": {"error": "refused"}, "n3": _status("cc", leader="0")})
    assert talos_etcd.waited_for(lost, "stopped", ["n1", "n2", "n3"], ["n1", "n2"])
    half = _asked({"n1": {"error": "refused"}, "n2": _status("bb"), "n3": _status("cc")})
    assert not talos_etcd.waited_for(half, "stopped", ["n1", "n2", "n3"], ["n1", "n2"])
