"""talos_schematic_files: every node's schematic file in one module run (the real AnsibleModule)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.module_utils import schematic
from ansible_collections.solanaops.talos.plugins.modules import talos_schematic_files

FACTORY = "127.0.1.5:5000"
VERSION = "v1.14.1"
EMPTY = schematic.installer([], [], FACTORY, VERSION)
TUNED = schematic.installer(["hugepagesz=2M", "hugepages=50000"], [], FACTORY, VERSION)


def run(capsys, nodes, **flags):
    with patch_module_args({"nodes": nodes, **flags}), pytest.raises(SystemExit):
        talos_schematic_files.main()
    return json.loads(capsys.readouterr().out)


def request(tmp_path, name, installer, address="10.0.1.20"):
    return {"name": name, "node": address, "path": str(tmp_path / f"{name}.schematic.yaml"), "installer": installer}


def test_writes_each_file_once_with_mode_0644(capsys, tmp_path):
    nodes = [request(tmp_path, "controlplane-1", EMPTY, "10.0.1.11"), request(tmp_path, "solana-validator", TUNED)]
    first = run(capsys, nodes)
    assert first["changed"] and first["written"] == ["controlplane-1", "solana-validator"], first
    assert first["replaced"] == {}, "a new file replaces no schematic"
    for node in nodes:
        path = node["path"]
        assert open(path).read() == schematic.file_text(node["installer"], node["name"])
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["controlplane-1.schematic.yaml", "solana-validator.schematic.yaml"]
    again = run(capsys, nodes)
    assert not again["changed"] and again["written"] == [] and again["replaced"] == {}, again


def test_a_hand_edited_file_is_written_again_and_its_mode_restored(capsys, tmp_path):
    node = request(tmp_path, "solana-validator", TUNED)
    run(capsys, [node])
    path = node["path"]
    with open(path, "a") as handle:
        handle.write("# edited by hand\n")
    os.chmod(path, 0o600)
    result = run(capsys, [node])
    # the header still names the same schematic: no upgrade to speak of
    assert result["written"] == ["solana-validator"] and result["replaced"] == {}, result
    assert open(path).read() == schematic.file_text(TUNED, "solana-validator")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_changed_schematic_is_reported_for_the_upgrade_and_check_mode_writes_nothing(capsys, tmp_path):
    node = request(tmp_path, "solana-validator", EMPTY)
    run(capsys, [node])
    before = open(node["path"]).read()
    changed = {**node, "installer": TUNED}
    checked = run(capsys, [changed], _ansible_check_mode=True, _ansible_diff=True)
    assert checked["changed"] and checked["written"] == ["solana-validator"], checked
    assert checked["replaced"] == {"solana-validator": {"node": "10.0.1.20", "from": EMPTY["id"], "to": TUNED["id"],
                                                        "image": TUNED["image"]}}
    assert checked["diff"] == [{"before_header": node["path"], "after_header": node["path"], "before": before,
                                "after": schematic.file_text(TUNED, "solana-validator")}]
    assert open(node["path"]).read() == before, "check mode wrote nothing"
    written = run(capsys, [changed])
    assert written["replaced"] == checked["replaced"] and "diff" not in written
    assert schematic.file_id(open(node["path"]).read()) == TUNED["id"]


def test_an_installer_without_its_schematic_is_refused_naming_the_node(capsys, tmp_path):
    result = run(capsys, [request(tmp_path, "solana-validator", {"id": TUNED["id"], "image": TUNED["image"]})])
    assert result["failed"], result
    assert result["msg"].startswith("nodes[solana-validator].installer is not an installer"), result
    assert os.listdir(tmp_path) == []


def test_a_path_that_cannot_be_read_fails_naming_it_after_the_nodes_written_before(capsys, tmp_path):
    written = request(tmp_path, "controlplane-1", EMPTY, "10.0.1.11")
    directory = request(tmp_path, "solana-validator", TUNED)
    os.mkdir(directory["path"])
    result = run(capsys, [written, directory])
    assert result["failed"] and result["msg"].startswith(f"reading {directory['path']}: "), result
    assert result["changed"] and result["written"] == ["controlplane-1"], result
    assert open(written["path"]).read() == schematic.file_text(EMPTY, "controlplane-1")
