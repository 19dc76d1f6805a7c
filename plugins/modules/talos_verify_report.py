#!/usr/bin/python
# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_verify_report
short_description: Write the verification report as JSON and as a table a person reads at a glance
version_added: 0.1.0
description:
  - Takes named check results (from the C(solanaops.talos.kubernetes_checks) filter and the
    Talos checks) and writes them to O(json_path) and, as a table with failures first, to
    O(summary_path).
  - Never fails on failed checks itself; it returns every failure so the caller can fail
    listing all of them. No check at all counts as a failure (nothing was verified).
  - Results marked C(info) (checks that cannot fail by construction, such as a built-in object
    that always exists) are shown as information and counted neither as passed nor as failed.
  - The report is an output, not managed state, so the module never reports a change; in check
    mode it writes nothing and returns the summary.
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
"""

RETURN = r"""
summary:
  description: The table written to O(summary_path).
  returned: always
  type: str
  sample: "ok    node Ready  solana-validator  True  True"
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

import datetime
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.solanaops.talos.plugins.module_utils.checks import counts, summarize


def main():
    module = AnsibleModule(
        argument_spec={
            "results": {"type": "list", "elements": "dict", "required": True},
            "json_path": {"type": "path", "required": True},
            "summary_path": {"type": "path", "required": True},
            "title": {"type": "str", "default": "Cluster verification"},
        },
        supports_check_mode=True,
    )
    params = module.params
    results = params["results"]
    for index, check in enumerate(results):
        missing = {"name", "subject", "passed", "expected", "observed"} - set(check)
        if missing:
            module.fail_json(msg=f"results[{index}] lacks {', '.join(sorted(missing))}")
    passed, failed, failures = counts(results)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = f"{params['title']} ({now})\n\n{summarize([{'detail': '', **r} for r in results])}\n"
    report = {"title": params["title"], "generated_at": now, "passed": passed, "failed": failed,
              "information": sum(bool(r.get("info")) for r in results), "results": results}
    if not module.check_mode:
        for path, content in ((params["json_path"], json.dumps(report, indent=2, sort_keys=True) + "\n"),
                              (params["summary_path"], summary)):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(content)
    module.exit_json(changed=False, summary=summary, passed_count=passed, failed_count=failed,
                     failures=failures, written=not module.check_mode)


if __name__ == "__main__":
    main()
