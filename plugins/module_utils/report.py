# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verification report for machines: JUnit XML (one testsuite per check family, one testcase
per check) for CI, and a Markdown table for a CI job summary or an artifact viewer.

Both count as report.json does (checks.counts): information results are neither passed nor
failed, and no check at all is one failure, so a CI sees the same numbers a person does.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ansible_collections.solanaops.talos.plugins.module_utils import checks

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
