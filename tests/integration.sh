#!/usr/bin/env bash
# make integration: the integration tests as two pytest processes side by side. The tests of the
# testbed's machines (marked `testbed` by tests/integration/conftest.py: the machines listen on
# fixed loopback addresses, so one test at a time) run in the foreground, showing progress; the
# tests that need no machine (generate, the inventory mistakes, packaging, the Kubernetes
# modules on a control plane of their own) run beside them, in the time the first spend waiting
# on reboots and health; their output is shown when both are done. Extra arguments go to both.
# One process, one test after the other: ./tests/pytest.sh tests/integration
set -u
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# --durations: where the stage's time goes, the figure CI's limit depends on
./tests/pytest.sh tests/integration -m "not testbed" --durations=25 "$@" >"$log" 2>&1 &
others=$!
echo "==> the tests that need no machine run beside these (pid $others), their output follows them"
./tests/pytest.sh tests/integration -m testbed --durations=25 "$@"
testbed_rc=$?
if kill -0 "$others" 2>/dev/null; then
  echo "==> waiting for the tests that need no machine"
fi
wait "$others"
others_rc=$?
echo "==> the tests that need no machine:"
cat "$log"
echo "==> integration: testbed tests exit $testbed_rc, the others exit $others_rc"
[ "$testbed_rc" -eq 0 ] && [ "$others_rc" -eq 0 ]
