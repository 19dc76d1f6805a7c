"""talos_verify_report: counts, information results, no check at all, and nothing written in check mode."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.module_utils import checks
from ansible_collections.solanaops.talos.plugins.modules import talos_verify_report

RESULTS = [checks.result("node Ready", "cp1", True, "True", "True"),
           checks.result("capacity memory", "v", False, "516032Mi to 524288Mi", "258048Mi"),
           checks.information("built-in PriorityClass", "system-cluster-critical", "present")]


def run(tmp_path, capsys, results, check_mode=False):
    args = {"results": results, "json_path": str(tmp_path / "verify" / "report.json"),
            "summary_path": str(tmp_path / "verify" / "summary.txt"), "_ansible_check_mode": check_mode}
    with patch_module_args(args), pytest.raises(SystemExit):
        talos_verify_report.main()
    return json.loads(capsys.readouterr().out)


def test_writes_the_report_counting_information_apart(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS)
    assert (out["changed"], out["written"], out["passed_count"], out["failed_count"]) == (False, True, 1, 1)
    assert out["failures"] == ["capacity memory on v: expected 516032Mi to 524288Mi, observed 258048Mi"]
    report = json.loads((tmp_path / "verify" / "report.json").read_text())
    assert (report["passed"], report["failed"], report["information"]) == (1, 1, 1)
    lines = (tmp_path / "verify" / "summary.txt").read_text().splitlines()
    assert lines[-1] == "1 passed, 1 failed, 1 information"
    assert [line.split()[0] for line in lines[4:7]] == ["FAIL", "ok", "info"]


def test_check_mode_writes_nothing(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS, check_mode=True)
    assert (out["changed"], out["written"], out["failed_count"]) == (False, False, 1)
    assert out["summary"].splitlines()[-1] == "1 passed, 1 failed, 1 information"
    assert not (tmp_path / "verify").exists()


def test_no_check_at_all_is_a_failure(tmp_path, capsys):
    out = run(tmp_path, capsys, [])
    assert (out["passed_count"], out["failed_count"], out["failures"]) == (0, 1, ["no check ran: nothing was verified"])
    only_information = run(tmp_path, capsys, RESULTS[2:])
    assert (only_information["passed_count"], only_information["failed_count"]) == (0, 1)
