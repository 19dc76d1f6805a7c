"""talos_numa_info: the argv it runs (talosctl read of the node tree, through the endpoint) and the
layout it returns, with a stand-in talosctl that answers from a 2-node tree in the kernel's format."""

from __future__ import annotations

import json
import shlex

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.modules import talos_numa_info

TREE = {"/sys/devices/system/node/online": "0-1", "/sys/devices/system/node/node0/cpulist": "0-15,32-47",
        "/sys/devices/system/node/node1/cpulist": "16-31,48-63"}


def talosctl(tmp_path, tree):
    """A talosctl that logs its argv and prints the file `read` asks for (exit 1 like talosctl otherwise)."""
    log = tmp_path / "argv.log"
    cases = "".join(f"  {shlex.quote(path)}) echo {shlex.quote(text)} ;;\n" for path, text in tree.items())
    script = tmp_path / "talosctl"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
if [ "$1" = version ]; then printf 'Client:\\n\\tTalos v1.13.9\\n'; exit 0; fi
case "$2" in
{cases}  *) echo "rpc error: code = Unknown desc = open $2: no such file or directory" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)
    return script, log


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit):
        talos_numa_info.main()
    return json.loads(capsys.readouterr().out)


def test_reads_online_then_each_cpulist_through_the_endpoint(tmp_path, capsys):
    script, log = talosctl(tmp_path, TREE)
    out = run(capsys, {"node": "10.0.1.20", "endpoint": "10.0.1.11", "talosctl_path": str(script)})
    assert (out["changed"], out["online"], out["cpulists"]) == (False, "0-1", {"0": "0-15,32-47", "1": "16-31,48-63"})
    assert out["talosctl_version"] == "v1.13.9"
    assert log.read_text().splitlines() == [
        f"read {path} --nodes 10.0.1.20 --endpoints 10.0.1.11" for path in TREE] + ["version --client --short"]


def test_a_missing_file_fails_naming_the_node(tmp_path, capsys):
    script, _log = talosctl(tmp_path, {k: v for k, v in TREE.items() if not k.endswith("node1/cpulist")})
    out = run(capsys, {"node": "10.0.1.20", "talosctl_path": str(script)})
    assert out["failed"]
    assert out["msg"].startswith("talosctl read failed on 10.0.1.20: rpc error")
    assert "node1/cpulist" in out["msg"]
