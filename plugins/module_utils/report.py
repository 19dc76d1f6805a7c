# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verification report for machines: JUnit XML (one testsuite per check family, one testcase
per check) for CI, and a Markdown table for a CI job summary or an artifact viewer.

Both count as report.json does (checks.counts): information results are neither passed nor
failed, and no check at all is one failure, so a CI sees the same numbers a person does.
"""

from __future__ import annotations

import datetime
import json
import re
import xml.etree.ElementTree as ET

from ansible_collections.solanaops.talos.plugins.module_utils import checks

# talos_verify_report's options (its action plugin validates them too)
ARGUMENT_SPEC = {
    "results": {"type": "list", "elements": "dict", "required": True},
    "json_path": {"type": "path", "required": True},
    "summary_path": {"type": "path", "required": True},
    "junit_path": {"type": "path"},
    "markdown_path": {"type": "path"},
    "title": {"type": "str", "default": "Cluster verification"},
}
REQUIRED_FIELDS = {"name", "subject", "passed", "expected", "observed"}
# results without a family (a caller of the module that does not tag them) still get a suite
UNTAGGED_FAMILY = "checks"
# XML 1.0 has no representation for these, escaped or not: a parser refuses the whole document
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# what Markdown would read as table structure, emphasis, code, links or HTML
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _family(result):
    return result.get("family") or UNTAGGED_FAMILY


def _with_verdict(results):
    """The results and, when none counts, the failure checks.counts adds for it (nothing was
    verified), so the JUnit and Markdown counts are report.json's."""
    if any(not r.get("info") for r in results):
        return list(results)
    (nothing_verified,) = checks.counts(results)[2]
    return [*results, *checks.tagged([checks.result("checks ran", "report", False, "at least one check", "none",
                                                    nothing_verified)], "report")]


def _xml(value):
    return _XML_INVALID.sub("\ufffd", str(value))


def _suite_counts(element, results):
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(checks.status(r) == "FAIL" for r in results)))
    element.set("skipped", str(sum(checks.status(r) == "info" for r in results)))
    element.set("errors", "0")


def junit(results, title, generated_at):
    """JUnit XML: a failure carries expected and observed (and why), information is skipped."""
    results = _with_verdict(results)
    families = {}
    for r in results:
        families.setdefault(_family(r), []).append(r)
    root = ET.Element("testsuites", name=_xml(title), timestamp=generated_at)
    _suite_counts(root, results)
    for family, members in families.items():
        suite = ET.SubElement(root, "testsuite", name=_xml(family), timestamp=generated_at)
        _suite_counts(suite, members)
        for r in members:
            case = ET.SubElement(suite, "testcase", classname=_xml(family),
                                 name=_xml(f"{r['name']} on {r['subject']}"))
            if checks.status(r) == "FAIL":
                verdict = f"expected {r['expected']}, observed {r['observed']}"
                failure = ET.SubElement(case, "failure", type="check failed", message=_xml(verdict))
                failure.text = _xml("\n".join([f"expected: {r['expected']}", f"observed: {r['observed']}"]
                                              + ([f"detail: {r['detail']}"] if r.get("detail") else [])))
            elif checks.status(r) == "info":
                ET.SubElement(case, "skipped", message=_xml(f"information: {r['observed']}"))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _cell(value):
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value)).replace("\r\n", "<br>").replace("\n", "<br>")


def markdown(results, title, generated_at):
    """A Markdown table, counts first, failures first; a failure's detail follows its observed value."""
    lines = [f"# {_cell(title)}", "", f"**{checks.counts_line(results)}** ({generated_at})", "",
             "| result | family | check | subject | expected | observed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in checks.ordered(_with_verdict(results)):
        observed = f"{r['observed']}" + (f" ({r['detail']})" if r.get("detail") and not r["passed"] else "")
        cells = [f"**{checks.status(r)}**" if checks.status(r) == "FAIL" else checks.status(r), _cell(_family(r)),
                 _cell(r["name"]), _cell(r["subject"]), _cell(r["expected"]), _cell(observed)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build(params):
    """talos_verify_report's result (without C(written)) and {path: its content} of every file
    asked for; ValueError for a check that lacks a field or two files at one path."""
    for index, check in enumerate(params["results"]):
        missing = REQUIRED_FIELDS - set(check)
        if missing:
            raise ValueError(f"results[{index}] lacks {', '.join(sorted(missing))}")
    results = [{"detail": "", **r} for r in params["results"]]
    passed, failed, failures = checks.counts(results)
    information = sum(bool(r.get("info")) for r in results)
    title = params["title"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary_lines = [f"{title} ({now})", "", *checks.summarize(results).splitlines()]
    document = {"title": title, "generated_at": now, "passed": passed, "failed": failed,
                "information": information, "results": results}
    rendered = {
        "json": lambda: json.dumps(document, indent=2, sort_keys=True) + "\n",
        "summary": lambda: "\n".join(summary_lines) + "\n",
        "junit": lambda: junit(results, title, now),
        "markdown": lambda: markdown(results, title, now),
    }
    files = {kind: params[f"{kind}_path"] for kind in rendered if params[f"{kind}_path"]}
    if len(set(files.values())) < len(files):
        raise ValueError(f"json_path, summary_path, junit_path and markdown_path must differ: {files}")
    result = {"changed": False, "summary_lines": summary_lines, "passed_count": passed, "failed_count": failed,
              "information_count": information, "failures": failures, "files": files}
    return result, {path: rendered[kind]() for kind, path in files.items()}
