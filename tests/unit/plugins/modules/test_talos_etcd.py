"""talos_etcd: parsing talosctl's etcd tables, the quorum arithmetic, and a snapshot kept only once proven."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.solanaops.talos.plugins.module_utils import etcd
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    CommandFailed,
    NodeUnreachable,
    parse_etcd_members,
)
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
    assert etcd.parse_status(STATUS) == {"127.0.1.11": {
        "member": "9d2f47d609371970", "leader": "9d2f47d609371970", "raft_index": 342, "raft_term": 5,
        "db_size": "381 kB", "learner": False, "errors": ""}}


def test_parse_node_errors():
    assert etcd.parse_node_errors(ERRORS) == {
        "127.0.1.12": "rpc error: code = Unavailable desc = connection refused",
        "127.0.1.13": "rpc error: code = FailedPrecondition desc = etcd is not running on this node"}


def _status(member, leader="aa", errors=""):
    return {"member": member, "leader": leader, "errors": errors}


MEMBER_LIST = [{"id": i, "hostname": i, "learner": False} for i in ("aa", "bb", "cc")]


def test_quorum_with_all_members():
    quorum = etcd.summarize_quorum(MEMBER_LIST, {"n1": _status("aa"), "n2": _status("bb"), "n3": _status("cc")},
                                   ["n1", "n2", "n3"])
    assert quorum == {"members": 3, "responding": 3, "needed": 2, "leader": "aa", "has_quorum": True}


def test_quorum_with_one_member_down():
    quorum = etcd.summarize_quorum(MEMBER_LIST, {"n1": {"error": "connection refused"}, "n2": _status("bb"),
                                                 "n3": _status("cc")}, ["n1", "n2", "n3"])
    assert quorum["responding"] == 2 and quorum["has_quorum"]


def test_quorum_lost_when_no_leader_and_no_member_list():
    # two of three off: nobody can list the members, the survivor has no leader
    status = {"n1": {"error": "refused"}, "n2": {"error": "refused"}, "n3": _status("cc", leader="0000000000000000")}
    quorum = etcd.summarize_quorum([], status, ["n1", "n2", "n3"])
    assert quorum == {"members": 3, "responding": 0, "needed": 2, "leader": None, "has_quorum": False}


def test_members_that_disagree_on_the_leader_have_no_quorum():
    status = {"n1": _status("aa", leader="aa"), "n2": _status("bb", leader="bb"), "n3": {"error": "refused"}}
    assert not etcd.summarize_quorum(MEMBER_LIST, status, ["n1", "n2", "n3"])["has_quorum"]


def test_learners_do_not_count_towards_quorum():
    members = MEMBER_LIST + [{"id": "dd", "hostname": "dd", "learner": True}]
    quorum = etcd.summarize_quorum(members, {"n1": _status("aa"), "n2": _status("bb")}, ["n1", "n2"])
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
    return {"status": status, "quorum": etcd.summarize_quorum(MEMBER_LIST, status, list(status))}


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


# talosctl etcd snapshot's last lines (cmd/talosctl/cmd/talos/etcd.go, v1.13.9)
SNAPSHOT_OUT = ("etcd snapshot saved to \"{path}\" (2101280 bytes)\n"
                "snapshot info: hash 1a2b3c4d, revision 1234, total keys 567, total size 2101248\n")


class Stop(Exception):
    pass


class SnapshotModule:
    """AnsibleModule for snapshot(): params, check mode, etcdutl on PATH or not, its restore."""

    def __init__(self, dest, restores=True, etcdutl="/usr/bin/etcdutl"):
        self.params = {"dest": str(dest), "etcdutl_path": None}
        self.check_mode, self.restores, self.etcdutl = False, restores, etcdutl
        self.restored = []

    def get_bin_path(self, name):
        return self.etcdutl

    def run_command(self, argv, **_kwargs):
        assert argv[:3] == [self.etcdutl, "snapshot", "restore"] and argv[4] == "--data-dir"
        self.restored.append(argv[3])
        if not self.restores:
            return 1, "", "Error: expected sha256 [...], got [...]\n"
        for name in ("snap", "wal"):
            (Path(argv[5]) / "member" / name).mkdir(parents=True)
        return 0, "", ""

    def fail_json(self, **result):
        self.failed = result
        raise Stop


class SnapshotTalosctl:
    """talosctl etcd snapshot: the nodes in ``down`` do not answer; the others write the file."""

    def __init__(self, down=()):
        self.down, self.asked = set(down), []

    def run(self, args, nodes, **_kwargs):
        self.asked.append(nodes[0])
        if nodes[0] in self.down:
            raise NodeUnreachable(f"talosctl etcd failed on {nodes[0]}: connection refused")
        assert args[:2] == ["etcd", "snapshot"]
        Path(args[2]).write_bytes(b"\0" * 2101280)
        return 0, SNAPSHOT_OUT.format(path=args[2]), ""


def test_a_snapshot_is_kept_only_once_restored_and_private(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    (tmp_path / ".etcd-snapshot-partial-99").write_text("left by a killed run")
    module, talosctl = SnapshotModule(tmp_path / "etcd.db"), SnapshotTalosctl(down={"127.0.1.11"})
    result = talos_etcd.snapshot(module, talosctl, ["127.0.1.11", "127.0.1.12"])
    assert talosctl.asked == ["127.0.1.11", "127.0.1.12"], "the next node when one does not answer"
    assert result["snapshot"] == {"node": "127.0.1.12", "size": 2101280, "revision": 1234, "total_keys": 567,
                                  "restored": ["snap", "wal"]}
    assert stat.S_IMODE((tmp_path / "etcd.db").stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["etcd.db"], "no partial, scratch or leftover"


def test_a_snapshot_etcdutl_cannot_restore_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    with pytest.raises(talos_etcd.NotRestorable, match="etcdutl could not restore the snapshot: Error: expected sha256"):
        talos_etcd.snapshot(SnapshotModule(tmp_path / "etcd.db", restores=False), SnapshotTalosctl(), ["127.0.1.11"])
    assert list(tmp_path.iterdir()) == []


def test_a_snapshot_without_etcdutl_is_refused_before_any_node_is_asked(tmp_path):
    module, talosctl = SnapshotModule(tmp_path / "etcd.db", etcdutl=None), SnapshotTalosctl()
    with pytest.raises(Stop):
        talos_etcd.snapshot(module, talosctl, ["127.0.1.11"])
    assert module.failed["msg"].startswith("etcdutl was not found on PATH: it proves the snapshot restorable")
    assert talosctl.asked == []


def test_parse_snapshot_info():
    assert talos_etcd.parse_snapshot_info(SNAPSHOT_OUT.format(path="x")) == {"revision": 1234, "total_keys": 567}
    with pytest.raises(CommandFailed):
        talos_etcd.parse_snapshot_info("etcd snapshot saved\n")


class LeaderTalosctl:
    """Three members; `etcd forfeit-leadership` on the leader hands it to the next member."""

    IDS = {"127.0.1.11": "9d2f47d609371970", "127.0.1.12": "e7548e9fe6760681", "127.0.1.13": "6ffb8dbf40c7fea6"}

    def __init__(self, leader):
        self.leader, self.forfeited = self.IDS[leader], []

    def run(self, args, nodes, check=True, **_kwargs):
        node = nodes[0]
        if args == ["etcd", "members"]:
            return 0, MEMBERS, ""
        if args == ["etcd", "forfeit-leadership"]:
            self.forfeited.append(node)
            if self.IDS[node] == self.leader:
                self.leader = next(i for i in self.IDS.values() if i != self.leader)
            return 0, "", ""
        assert args == ["etcd", "status"]
        columns = STATUS.splitlines()[1].split("   ")
        columns[0], columns[1], columns[4] = node, self.IDS[node], self.leader
        return 0, STATUS.splitlines()[0] + "\n" + "   ".join(columns) + "\n", ""


class ForfeitModule:
    def __init__(self, check_mode=False):
        self.params, self.check_mode = {"timeout": 5}, check_mode


NODES = ["127.0.1.11", "127.0.1.12", "127.0.1.13"]


def test_a_leader_hands_over_its_leadership_and_the_new_leader_is_reported():
    talosctl = LeaderTalosctl("127.0.1.11")
    result = talos_etcd.forfeit_leadership(ForfeitModule(), talosctl, NODES)
    assert talosctl.forfeited == ["127.0.1.11"] and result["changed"]
    assert result["leader"] == "e7548e9fe6760681" == result["quorum"]["leader"]


def test_a_member_that_does_not_lead_changes_nothing():
    talosctl = LeaderTalosctl("127.0.1.12")
    result = talos_etcd.forfeit_leadership(ForfeitModule(), talosctl, NODES)
    assert talosctl.forfeited == [] and not result["changed"] and result["leader"] == "e7548e9fe6760681"


def test_check_mode_says_the_leader_would_hand_over_without_doing_it():
    talosctl = LeaderTalosctl("127.0.1.11")
    assert talos_etcd.forfeit_leadership(ForfeitModule(check_mode=True), talosctl, NODES)["changed"]
    assert talosctl.forfeited == []
