#!/usr/bin/env bash
# pytest exits 5 when it collects nothing; a test run that ran no test must not pass.
set -u
cd "$(dirname "$0")/.."
python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests in: $*" >&2
  exit 1
fi
exit "$rc"
