#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_etcd
short_description: Inspect the etcd cluster of Talos control planes, or take a snapshot
version_added: 0.1.0
description:
  - O(state=status) asks every node in O(nodes) for its member status and one reachable node for
    the member list, and sums up quorum - how many members answer, whether they agree on a leader,
    and whether that is a majority of the members.
  - O(state=snapshot) streams a consistent snapshot of one member's database (the first node of
    O(nodes) that answers) to the controller; C(talosctl etcd snapshot) checks its SHA-256 trailer
    and reads its revision and key count. It holds every Kubernetes secret of the cluster, so it
    is written with mode 0600 under a temporary name beside O(dest), then restored into a scratch
    data directory with C(etcdutl snapshot restore) (which verifies the trailer again and rebuilds
    a member's data), and renamed to O(dest) only once restored. Without etcdutl it fails (an
    unproven backup is not a backup).
  - O(state=forfeit_leadership) makes the first node of O(nodes) hand its etcd leadership to
    another member (C(talosctl etcd forfeit-leadership)) when it leads, then waits, asking every
    node of O(nodes), until another member leads with every member responding, for at most
    O(timeout) seconds; before a control plane that leads goes down, so no election waits on it.
  - O(state=snapshot) writes O(dest); O(state=forfeit_leadership) changes the leader when the
    node leads; O(state=status) changes nothing.
options:
  nodes:
    description: Control-plane nodes to ask. For O(state=snapshot) the first reachable one is used.
    type: list
    elements: str
    required: true
  state:
    description: What to do.
    type: str
    choices: [status, snapshot, forfeit_leadership]
    default: status
  dest:
    description: Path of the snapshot file, for O(state=snapshot).
    type: path
  etcdutl_path:
    description:
      - Path of etcdutl (a release of the cluster's etcd minor), for O(state=snapshot); found on
        PATH when omitted.
    type: path
  require_quorum:
    description: With O(state=status), fail (after gathering everything) when etcd has no quorum.
    type: bool
    default: false
  wait_for:
    description:
      - With O(state=status), ask again until etcd has C(quorum), or until C(all) nodes asked are
        members and respond, for at most O(timeout) seconds; C(none) asks once.
      - C(stopped) waits until etcd counts the members on O(stopped) out - none of them responds -
        and, when the other members can hold a majority, every other member responds (members
        minus the stopped ones). A Talos shutdown does not remove the member from etcd, so the
        member list keeps it.
    type: str
    choices: [none, quorum, all, stopped]
    default: none
  stopped:
    description:
      - Nodes of O(nodes) that were shut down; required with O(wait_for=stopped).
    type: list
    elements: str
  timeout:
    description: Seconds O(wait_for), or the wait for another leader with O(state=forfeit_leadership), may take.
    type: int
    default: 60
extends_documentation_fragment:
  - solanaops.talos.talosctl
attributes:
  check_mode:
    support: full
    description: Status reads the same; a snapshot is not taken.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Wait until etcd answers without the member of a node that was shut down
  solanaops.talos.talos_etcd:
    nodes: [10.0.1.11, 10.0.1.12, 10.0.1.13]
    wait_for: stopped
    stopped: [10.0.1.11]
    timeout: 90
    talosconfig: /srv/talos/solana-cluster/talosconfig

- name: Require etcd quorum
  solanaops.talos.talos_etcd:
    nodes: [10.0.1.11, 10.0.1.12, 10.0.1.13]
    require_quorum: true
    talosconfig: /srv/talos/solana-cluster/talosconfig

- name: Snapshot etcd before an upgrade
  solanaops.talos.talos_etcd:
    nodes: [10.0.1.11]
    state: snapshot
    dest: /srv/backup/etcd.snapshot
    etcdutl_path: /usr/local/bin/etcdutl
    talosconfig: /srv/talos/solana-cluster/talosconfig
"""

RETURN = r"""
members:
  description: The etcd members, as one reachable node lists them.
  returned: state=status
  type: list
  elements: dict
  sample:
    - {"id": "9d2f47d609371970", "hostname": "controlplane-1", "peer_urls": ["https://10.0.1.11:2380"],
       "learner": false}
status:
  description: Per node asked, its member status, or the error it answered with.
  returned: state=status
  type: dict
  sample: {"10.0.1.11": {"member": "9d2f47d609371970", "leader": "9d2f47d609371970", "raft_index": 342, "errors": ""}}
quorum:
  description: >-
    C(members) (count), C(responding) (members answering with a status and no errors), C(needed)
    (majority), C(leader) (when the responding members agree) and C(has_quorum). When no node can
    list the members (etcd answers that only with quorum), C(members) counts the nodes asked.
  returned: state=status
  type: dict
  sample: {"members": 3, "responding": 2, "needed": 2, "leader": "9d2f47d609371970", "has_quorum": true}
waited:
  description: Seconds O(state=status) took, waits included.
  returned: state=status
  type: float
  sample: 2.1
dest:
  description: The snapshot written.
  returned: state=snapshot
  type: str
snapshot:
  description: >-
    The snapshot taken - C(node) it came from, C(size) in bytes, C(revision) and C(total_keys) as
    talosctl read them, and C(restored) (the member directory's entries etcdutl rebuilt).
  returned: state=snapshot and not check mode
  type: dict
  sample: {"node": "10.0.1.11", "size": 2101280, "revision": 1234, "total_keys": 567, "restored": ["snap", "wal"]}
leader:
  description: The member that leads afterwards (its ID), with O(state=forfeit_leadership).
  returned: state=forfeit_leadership and not check mode
  type: str
talosctl_version:
  description: Version of the talosctl that ran.
  returned: success
  type: str
"""

import os
import re
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.etcd import (
    ask,
    responds,
)
from ansible_collections.solanaops.talos.plugins.module_utils.talosctl import (
    TALOSCTL_ARGSPEC,
    CommandFailed,
    NodeUnreachable,
    Talosctl,
    TalosError,
    fail_json_from,
    last_line,
)

_SNAPSHOT_INFO = re.compile(r"snapshot info: hash [0-9a-f]+, revision (\d+), total keys (\d+), total size (\d+)")


class NotRestorable(TalosError):
    hint = "the snapshot was not kept; take another (the member may be unhealthy) before changing anything"


def counted_out(result, stopped):
    """No member on a stopped node responds and, when the others can hold a majority, all of them do."""
    quorum = result["quorum"]
    if any(responds(result["status"].get(node, {})) for node in stopped):
        return False
    remaining = quorum["members"] - len(stopped)
    return remaining < quorum["needed"] or quorum["responding"] == remaining


def waited_for(result, wait_for, nodes, stopped=()):
    """``all``: every node asked is a voting member and answers (a member still joining is not)."""
    if wait_for == "stopped":
        return counted_out(result, stopped)
    quorum = result["quorum"]
    return {"none": True, "quorum": quorum["has_quorum"],
            "all": quorum["has_quorum"] and quorum["responding"] == quorum["members"] == len(nodes)}[wait_for]


def ask_until(talosctl, nodes, done, timeout):
    """Ask once a second until ``done(answer)`` holds or ``timeout`` seconds passed: the last
    answer, with the seconds it took as ``waited``."""
    started = time.monotonic()
    result = ask(talosctl, nodes)
    while not done(result) and time.monotonic() < started + timeout:
        time.sleep(1)
        result = ask(talosctl, nodes)
    result["waited"] = round(time.monotonic() - started, 1)
    return result


def status(module, talosctl, nodes):
    params = module.params
    stopped = params["stopped"] or []
    if set(stopped) - set(nodes):
        module.fail_json(msg=f"stopped ({', '.join(stopped)}) must be among nodes ({', '.join(nodes)}): "
                             "each node is asked for its own member")
    result = ask_until(talosctl, nodes, lambda answer: waited_for(answer, params["wait_for"], nodes, stopped),
                       params["timeout"])
    quorum = result["quorum"]
    errors = "; ".join(f"{node}: {s['error']}" for node, s in result["status"].items() if "error" in s)
    summary = (f"{quorum['responding']} of {quorum['members']} members respond, {quorum['needed']} needed"
               + (f" ({errors})" if errors else ""))
    if params["require_quorum"] and not quorum["has_quorum"]:
        module.fail_json(msg=f"etcd has lost quorum: {summary}", **result)
    if not waited_for(result, params["wait_for"], nodes, stopped):
        goal = (f"count {', '.join(stopped)} out" if params["wait_for"] == "stopped"
                else f"reach {params['wait_for']}")
        module.fail_json(msg=f"etcd did not {goal} within {params['timeout']}s: {summary}", **result)
    return result


def parse_snapshot_info(stdout):
    """talosctl prints 'snapshot info: hash 1a2b3c4d, revision 1234, total keys 567, total size 2101248'."""
    match = _SNAPSHOT_INFO.search(stdout)
    if not match:
        raise CommandFailed(f"talosctl did not report the snapshot's status: {stdout.strip()[-300:]!r}")
    return {"revision": int(match.group(1)), "total_keys": int(match.group(2))}


# what a snapshot leaves beside its dest until it is proven: the partial file and the restore's
# scratch directory, both holding every secret of the cluster (a killed run leaves them behind)
PARTIAL_PREFIX = ".etcd-snapshot-partial-"
SCRATCH_PREFIX = ".etcd-snapshot-restore-"


def remove_leftovers(directory):
    """Remove what an earlier, killed snapshot left in ``directory``."""
    for name in os.listdir(directory):
        if name.startswith((PARTIAL_PREFIX, SCRATCH_PREFIX)):
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def restore(module, etcdutl, path):
    """Restore the snapshot into a scratch data directory beside it (as private as the snapshot);
    return the member directory's entries."""
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=os.path.dirname(path))
    try:
        data_dir = os.path.join(scratch, "data")
        rc, stdout, stderr = module.run_command([etcdutl, "snapshot", "restore", path, "--data-dir", data_dir],
                                                environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise NotRestorable(f"etcdutl could not restore the snapshot: {last_line(stderr) or last_line(stdout)}",
                                rc=rc, stderr=stderr)
        return sorted(os.listdir(os.path.join(data_dir, "member")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def take_snapshot(talosctl, node, partial):
    """Stream the node's snapshot into ``partial`` (mode 0600 from the start); what talosctl read of it."""
    old_umask = os.umask(0o077)
    try:
        _rc, stdout, stderr = talosctl.run(["etcd", "snapshot", partial],
                                           nodes=[node], endpoints=[node], node_name=node)
    finally:
        os.umask(old_umask)
    # talosctl refused an empty or truncated file already (its size is checked against the hash trailer)
    return {"node": node, "size": os.path.getsize(partial), **parse_snapshot_info(stdout + stderr)}


def snapshot(module, talosctl, nodes):
    dest = module.params["dest"]
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg=f"dest {dest}: directory {directory} does not exist; create it first")
    etcdutl = module.params["etcdutl_path"] or module.get_bin_path("etcdutl")
    if not etcdutl or not os.access(etcdutl, os.X_OK):
        where = f" at {etcdutl}" if module.params["etcdutl_path"] else " on PATH"
        module.fail_json(msg=f"etcdutl was not found{where}: it proves the snapshot restorable; "
                             "install etcdutl of the cluster's etcd minor or set etcdutl_path")
    result = {"changed": True, "dest": dest}
    if module.check_mode:
        return result
    # talosctl writes <path>.part and renames it to <path>, which must not exist yet
    remove_leftovers(directory)
    partial = os.path.join(directory, f"{PARTIAL_PREFIX}{os.getpid()}")
    errors = []
    try:
        for node in nodes:
            try:
                result["snapshot"] = take_snapshot(talosctl, node, partial)
            except NodeUnreachable as error:
                errors.append(str(error))
                continue
            result["snapshot"]["restored"] = restore(module, etcdutl, partial)
            os.replace(partial, dest)
            return result
    finally:
        for leftover in (partial, partial + ".part"):
            if os.path.exists(leftover):
                os.remove(leftover)
    raise NodeUnreachable("no node could take the snapshot: " + "; ".join(errors))


def forfeit_leadership(module, talosctl, nodes):
    node = nodes[0]
    result = ask(talosctl, nodes)
    own = result["status"].get(node, {}).get("member")
    if not own or result["quorum"]["leader"] != own:
        return {**result, "changed": False, "leader": result["quorum"]["leader"]}
    if module.check_mode:
        return {**result, "changed": True}
    talosctl.run(["etcd", "forfeit-leadership"], nodes=[node], endpoints=[node], node_name=node)

    def handed_over(answer):
        return answer["quorum"]["leader"] not in (None, own) and waited_for(answer, "all", nodes)

    result = {**ask_until(talosctl, nodes, handed_over, module.params["timeout"]), "changed": True}
    if not handed_over(result):
        module.fail_json(msg=f"{node} forfeited its etcd leadership but no other member leads with every member "
                             f"responding within {module.params['timeout']}s", **result)
    return {**result, "leader": result["quorum"]["leader"]}


def main():
    module = AnsibleModule(
        argument_spec={
            **TALOSCTL_ARGSPEC,
            "nodes": {"type": "list", "elements": "str", "required": True},
            "state": {"type": "str", "choices": ["status", "snapshot", "forfeit_leadership"], "default": "status"},
            "dest": {"type": "path"},
            "etcdutl_path": {"type": "path"},
            "require_quorum": {"type": "bool", "default": False},
            "wait_for": {"type": "str", "choices": ["none", "quorum", "all", "stopped"], "default": "none"},
            "stopped": {"type": "list", "elements": "str"},
            "timeout": {"type": "int", "default": 60},
        },
        required_if=[("state", "snapshot", ["dest"]), ("wait_for", "stopped", ["stopped"])],
        supports_check_mode=True,
    )
    try:
        talosctl = Talosctl(module)
        act = {"status": status, "snapshot": snapshot, "forfeit_leadership": forfeit_leadership}[module.params["state"]]
        result = act(module, talosctl, module.params["nodes"])
        result["talosctl_version"] = talosctl.version
    except TalosError as error:
        fail_json_from(module, error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
