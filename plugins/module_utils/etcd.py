# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What etcd says of itself through talosctl: its members, each member's status, and quorum
(talos_etcd waits on them; talos_node_facts reads them beside the nodes' facts for verify)."""

from __future__ import annotations

import re

from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TalosError,
    parse_etcd_members,
    parse_table,
)


def parse_status(stdout):
    """{node: status} from `talosctl etcd status`."""
    return {row["NODE"]: {"member": row["MEMBER"], "leader": row["LEADER"], "raft_index": int(row["RAFT INDEX"]),
                          "raft_term": int(row["RAFT TERM"]), "db_size": row["DB SIZE"],
                          "learner": row.get("LEARNER") == "true", "errors": row.get("ERRORS", "")}
            for row in parse_table(stdout)}


def parse_node_errors(stderr):
    """'* 10.0.1.12: rpc error: ...' lines of a multi-node failure -> {node: message}."""
    return {match.group(1): match.group(2).strip()
            for match in re.finditer(r"^\s*\* ([^:\s]+): (.*)$", stderr or "", re.MULTILINE)}


def responds(node_status):
    """A member answers with quorum when it reports no errors and knows a leader (0 = none)."""
    return ("error" not in node_status and not node_status.get("errors")
            and bool(node_status.get("leader", "").strip("0")))


def summarize_quorum(members, status, asked):
    """Quorum from the member list, or, when no node could list it, from the nodes asked."""
    voters = [m for m in members if not m["learner"]]
    ids = {m["id"] for m in voters} if voters else {s.get("member") for s in status.values()}
    count = len(voters) or len(asked)
    healthy = [s for s in status.values() if s.get("member") in ids and responds(s)]
    leaders = {s["leader"] for s in healthy}
    needed = count // 2 + 1
    leader = leaders.pop() if len(leaders) == 1 else None
    return {"members": count, "responding": len(healthy), "needed": needed, "leader": leader,
            "has_quorum": len(healthy) >= needed and leader is not None}


def ask(talosctl, nodes):
    """talos_etcd's status result for nodes: the member list, each node's status (or its error),
    quorum. A node that does not answer is in the status with its error; nothing raises for it."""
    result = {"changed": False, "members": [], "status": {}}
    for node in nodes:  # the member list from the first node that can give it
        try:
            _rc, stdout, _stderr = talosctl.run(["etcd", "members"], nodes=[node], endpoints=[node], node_name=node)
        except TalosError:
            continue
        result["members"] = parse_etcd_members(stdout)
        break
    for node in nodes:  # each node through itself, so one dead endpoint does not hide the others
        rc, stdout, stderr = talosctl.run(["etcd", "status"], nodes=[node], endpoints=[node], check=False)
        parsed = parse_status(stdout)
        if rc == 0 and node in parsed:
            result["status"][node] = parsed[node]
        else:
            error = parse_node_errors(stderr).get(node) or (stderr.strip().splitlines() or ["no answer"])[-1]
            result["status"][node] = {"error": error}
    result["quorum"] = summarize_quorum(result["members"], result["status"], nodes)
    return result
