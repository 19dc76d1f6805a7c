#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_verify_report
short_description: Write the verification report as JSON, JUnit XML and tables a person reads at a glance
version_added: 0.1.0
description:
  - Takes named check results (from the C(solanaops.talos.kubernetes_checks) filter and the
    Talos checks) and writes them to O(json_path) and, as a table with failures first, to
    O(summary_path); optionally as JUnit XML to O(junit_path) for CI and as a Markdown table to
    O(markdown_path) for a CI job summary or an artifact viewer.
  - The JUnit XML has one C(testsuite) per check family and one C(testcase) per check (class name
    the family, name C(<check> on <subject>)); a failed check carries a C(failure) with what was
    expected and observed, an information result is C(skipped) with what was observed.
  - JUnit, Markdown and JSON count alike, and every file is written atomically (a temporary file
    renamed into place), so a reader never sees half a report.
  - Never fails on failed checks itself; it returns every failure so the caller can fail
    listing all of them. No check at all counts as a failure (nothing was verified).
  - Results marked C(info) (checks that cannot fail by construction, such as a built-in object
    that always exists) are shown as information and counted neither as passed nor as failed.
  - The report is an output, not managed state, so the module never reports a change; in check
    mode it writes nothing and returns the summary lines and counts.
options:
  results:
    description:
      - Check results, each with C(name), C(subject), C(passed), C(expected), C(observed) and
        optionally C(detail), C(family) and C(info).
    type: list
    elements: dict
    required: true
  json_path:
    description: Where to write the JSON report.
    type: path
    required: true
  summary_path:
    description: Where to write the human-readable summary.
    type: path
    required: true
  junit_path:
    description:
      - Where to write the JUnit XML report (for CI test reporting). Not written when omitted.
    type: path
  markdown_path:
    description:
      - Where to write the Markdown summary (the counts, then a table with failures first, passes,
        then information). Not written when omitted.
    type: path
  title:
    description: First line of the summary.
    type: str
    default: Cluster verification
attributes:
  check_mode:
    support: full
    description: In check mode no file is written; the summary and counts are returned.
  diff_mode:
    support: none
    description: No diff is produced.
author:
  - SolanaOps platform team (@solanaops)
"""

EXAMPLES = r"""
- name: Write the verification report
  solanaops.talos.talos_verify_report:
    results: "{{ verify_results }}"
    json_path: /srv/talos/solana-cluster/verify/report.json
    summary_path: /srv/talos/solana-cluster/verify/summary.txt
    junit_path: /srv/talos/solana-cluster/verify/junit.xml
    markdown_path: /srv/talos/solana-cluster/verify/summary.md
  register: verify_report

- name: Show the summary, one line per check (reads in any callback)
  ansible.builtin.debug:
    msg: "{{ verify_report.summary_lines }}"
"""

RETURN = r"""
summary_lines:
  description: The summary written to O(summary_path), one line per item (the title, the table
    with failures first, the counts), so it reads as lines in any callback.
  returned: always
  type: list
  elements: str
  sample:
    - "Cluster verification (2026-12-01T14:00:00Z)"
    - ""
    - "      check       subject           expected  observed"
    - "----------------------------------------------------"
    - "ok    node Ready  solana-validator  True      True"
    - "1 passed, 0 failed"
passed_count:
  description: Number of checks that passed (information results not counted).
  returned: always
  type: int
  sample: 24
failed_count:
  description: Number of checks that failed (C(failed) itself would fail the task).
  returned: always
  type: int
  sample: 1
information_count:
  description: Number of information results (counted neither as passed nor as failed).
  returned: always
  type: int
  sample: 1
files:
  description: The files this report goes to, by kind (C(json), C(summary), C(junit),
    C(markdown); the optional ones only when given), whether or not they were written.
  returned: always
  type: dict
  sample:
    json: /srv/talos/solana-cluster/verify/report.json
    summary: /srv/talos/solana-cluster/verify/summary.txt
    junit: /srv/talos/solana-cluster/verify/junit.xml
    markdown: /srv/talos/solana-cluster/verify/summary.md
written:
  description: Whether the files were written (false in check mode).
  returned: always
  type: bool
  sample: true
failures:
  description: One line per failed check with what was expected and observed.
  returned: always
  type: list
  elements: str
  sample: ["capacity hugepages-2Mi on solana-validator: expected 100000Mi, observed 97656Mi"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils import files, report


def main():
    module = AnsibleModule(argument_spec=report.ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result, contents = report.build(module.params)
        if not module.check_mode:
            for path, content in contents.items():
                files.write_atomically(path, content, module.atomic_move)
    except (ValueError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result, written=not module.check_mode)


if __name__ == "__main__":
    main()
