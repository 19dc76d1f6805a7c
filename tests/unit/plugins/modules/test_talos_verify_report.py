"""talos_verify_report: counts, information results, no check at all, nothing written in check
mode, and the same counts in the JUnit XML and the Markdown summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.solanaops.talos.plugins.module_utils import checks
from ansible_collections.solanaops.talos.plugins.modules import talos_verify_report

RESULTS = [*checks.tagged([checks.result("node Ready", "cp1", True, "True", "True")], "nodes"),
           *checks.tagged([checks.result("capacity memory", "v", False, "516032Mi to 524288Mi", "258048Mi",
                                         "the firmware keeps more")], "validator"),
           *checks.tagged([checks.information("built-in PriorityClass", "system-cluster-critical", "present")],
                          "priority class")]
FILES = {"json_path": "report.json", "summary_path": "summary.txt", "junit_path": "junit.xml",
         "markdown_path": "summary.md"}


def run(tmp_path, capsys, results, check_mode=False, **paths):
    args = {"results": results, **{option: str(tmp_path / "verify" / name) for option, name in FILES.items()},
            **paths, "_ansible_check_mode": check_mode}
    with patch_module_args(args), pytest.raises(SystemExit):
        talos_verify_report.main()
    return json.loads(capsys.readouterr().out)


def junit(tmp_path):
    return ET.parse(tmp_path / "verify" / "junit.xml").getroot()


def totals(element):
    return {key: int(element.get(key)) for key in ("tests", "failures", "skipped", "errors")}


def markdown_rows(tmp_path):
    """The table's rows as lists of raw cells (a pipe escaped as \\| stays inside its cell)."""
    lines = (tmp_path / "verify" / "summary.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("| ")][2:]
    return [[cell.strip() for cell in line.strip("|").replace("\\|", "\0").split("|")] for line in table]


def test_writes_the_report_counting_information_apart(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS)
    assert (out["changed"], out["written"], out["passed_count"], out["failed_count"]) == (False, True, 1, 1)
    assert out["information_count"] == 1
    assert out["failures"] == ["capacity memory on v: expected 516032Mi to 524288Mi, observed 258048Mi"
                               " (the firmware keeps more)"]
    assert out["files"] == {kind: str(tmp_path / "verify" / name) for kind, name in
                            [("json", "report.json"), ("summary", "summary.txt"), ("junit", "junit.xml"),
                             ("markdown", "summary.md")]}
    report = json.loads((tmp_path / "verify" / "report.json").read_text())
    assert (report["passed"], report["failed"], report["information"]) == (1, 1, 1)
    lines = (tmp_path / "verify" / "summary.txt").read_text().splitlines()
    assert lines == out["summary_lines"]
    assert lines[-1] == "1 passed, 1 failed, 1 information"
    assert [line.split()[0] for line in lines[4:7]] == ["FAIL", "ok", "info"]
    # no temporary file is left beside the report
    assert sorted(p.name for p in (tmp_path / "verify").iterdir()) == sorted(FILES.values())


def test_junit_has_a_suite_per_family_and_counts_as_the_json_report(tmp_path, capsys):
    run(tmp_path, capsys, RESULTS)
    root = junit(tmp_path)
    assert root.tag == "testsuites"
    assert totals(root) == {"tests": 3, "failures": 1, "skipped": 1, "errors": 0}
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"nodes", "validator", "priority class"}
    assert totals(suites["validator"]) == {"tests": 1, "failures": 1, "skipped": 0, "errors": 0}
    (case,) = suites["validator"].findall("testcase")
    assert (case.get("classname"), case.get("name")) == ("validator", "capacity memory on v")
    failure = case.find("failure")
    assert failure.get("message") == "expected 516032Mi to 524288Mi, observed 258048Mi"
    assert failure.text.splitlines() == ["expected: 516032Mi to 524288Mi", "observed: 258048Mi",
                                         "detail: the firmware keeps more"]
    (passed,) = suites["nodes"].findall("testcase")
    assert list(passed) == [], "a passed check has neither failure nor skipped"
    (information,) = suites["priority class"].findall("testcase")
    assert information.find("skipped").get("message") == "information: present"


def test_junit_keeps_markup_and_quotes_in_values_and_survives_control_characters(tmp_path, capsys):
    observed = "<none> & \"quoted\" 'single' ]]> \x1b[0m\nsecond line"
    run(tmp_path, capsys, [{**checks.result("label <role>", "a&b", False, "x > y", observed), "family": "nodes"}])
    (case,) = junit(tmp_path).iter("testcase")
    assert case.get("name") == "label <role> on a&b"
    failure = case.find("failure")
    survived = observed.replace("\x1b", "\ufffd")  # XML 1.0 cannot carry ESC at all
    assert failure.get("message") == f"expected x > y, observed {survived}"
    assert f"observed: {survived}" in failure.text


def test_markdown_lists_counts_then_failures_passes_and_information(tmp_path, capsys):
    run(tmp_path, capsys, RESULTS)
    lines = (tmp_path / "verify" / "summary.md").read_text().splitlines()
    assert lines[0] == "# Cluster verification"
    assert lines[2].startswith("**1 passed, 1 failed, 1 information** (")
    assert markdown_rows(tmp_path) == [
        ["**FAIL**", "validator", "capacity memory", "v", "516032Mi to 524288Mi",
         "258048Mi (the firmware keeps more)"],
        ["ok", "nodes", "node Ready", "cp1", "True", "True"],
        ["info", "priority class", "built-in PriorityClass", "system-cluster-critical", "information", "present"]]


def test_markdown_escapes_what_would_break_the_table_or_render_as_markup(tmp_path, capsys):
    run(tmp_path, capsys, [checks.result("taint a|b", "v", False, "a|b=c:NoSchedule", "<none>\n*none*")])
    ((status, family, name, subject, expected, observed),) = markdown_rows(tmp_path)
    assert (name, expected) == ("taint a\0b", "a\0b=c:NoSchedule")
    assert observed == "\\<none\\><br>\\*none\\*"
    assert family == "checks", "an untagged result still has a family"


def test_check_mode_writes_nothing(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS, check_mode=True)
    assert (out["changed"], out["written"], out["failed_count"]) == (False, False, 1)
    assert out["summary_lines"][-1] == "1 passed, 1 failed, 1 information"
    assert not (tmp_path / "verify").exists()


def test_junit_and_markdown_are_optional(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS, junit_path=None, markdown_path=None)
    assert set(out["files"]) == {"json", "summary"}
    assert sorted(p.name for p in (tmp_path / "verify").iterdir()) == ["report.json", "summary.txt"]


def test_two_files_at_one_path_are_refused(tmp_path, capsys):
    out = run(tmp_path, capsys, RESULTS, markdown_path=str(tmp_path / "verify" / "summary.txt"))
    assert out["failed"] and "must differ" in out["msg"]
    assert not (tmp_path / "verify").exists()


def test_no_check_at_all_is_a_failure(tmp_path, capsys):
    out = run(tmp_path, capsys, [])
    assert (out["passed_count"], out["failed_count"], out["failures"]) == (0, 1, ["no check ran: nothing was verified"])
    assert totals(junit(tmp_path)) == {"tests": 1, "failures": 1, "skipped": 0, "errors": 0}
    only_information = run(tmp_path, capsys, RESULTS[2:])
    assert (only_information["passed_count"], only_information["failed_count"]) == (0, 1)
    assert totals(junit(tmp_path)) == {"tests": 2, "failures": 1, "skipped": 1, "errors": 0}
    assert markdown_rows(tmp_path)[0][:3] == ["**FAIL**", "report", "checks ran"]
