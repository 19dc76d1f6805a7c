#!/usr/bin/env bash
# tests/side_by_side.sh "FOREGROUND TARGETS" "BESIDE TARGETS": two lanes of make targets at once,
# each lane's targets one after the other, stopping at its first failure.
#
# make test and make integration pair a lane that uses the testbed's machines (they listen on
# fixed loopback addresses, so one thing at a time, and spend much of their time waiting on
# reboots and health) with a lane of work that needs no machine (lint, unit, the tests that
# render configs), which uses the CPU the first leaves idle. The foreground lane's output is
# shown as it comes; the other's goes to a log, shown when both lanes are done, with a line per
# target on the console as it ends. Every target's time is printed, and printed again when the
# run is cut short (a CI time limit's SIGTERM), so a run that ran out of time says where it went.
#
# Both lanes run as jobs, so nothing in them can read the terminal: for a debugger, run the
# target alone (make integration-machines PYTEST_ARGS=--pdb).
set -u
cd "$(dirname "$0")/.."
foreground=$1 beside=$2
log=$(mktemp) times=$(mktemp)
started=$SECONDS
lanes=()

summary() {
  echo "==> the run's targets (seconds since its start):"
  sed 's/^/    /' "$times"
}

# Cut short: each lane is its own process group (set -m below) and gets SIGTERM, which pytest
# answers by tearing its fixtures down (tests/integration/conftest.py: the machines stopped, their
# addresses freed; SIGINT may be ignored by a job CI starts in the background); whatever of a lane
# still runs a minute later is killed.
stop() {
  local signal=$1 pid deadline=$((SECONDS + 60))
  trap '' TERM INT
  echo "==> cut short ($signal) after $((SECONDS - started)) s; stopping both lanes"
  for pid in "${lanes[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for pid in "${lanes[@]}"; do
    while kill -0 -- "-$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null
  done
  echo "==> the last lines of: $beside"
  tail -n 40 "$log"
  summary
  exit $((128 + $([ "$signal" = INT ] && echo 2 || echo 15)))
}
trap 'stop TERM' TERM
trap 'stop INT' INT
trap 'rm -f "$log" "$times"' EXIT

# note LINE: to the console (fd 3, whichever lane) and to the run's list of targets
note() {
  printf '%6d s  %s\n' "$((SECONDS - started))" "$1" >>"$times"
  echo "==> $1 ($((SECONDS - started)) s since the start)" >&3
}

# run_lane NAME TARGETS...: each target through make, one after the other, up to the first failure
run_lane() {
  local lane=$1 target begun rc
  shift
  set +m  # every command of the lane in the lane's process group, which stop() signals
  for target in "$@"; do
    begun=$SECONDS
    note "[$lane] $target started"
    "${MAKE:-make}" --no-print-directory "$target"
    rc=$?
    note "[$lane] $target exit $rc after $((SECONDS - begun)) s"
    [ "$rc" -eq 0 ] || return "$rc"
  done
}

exec 3>&1
# the shell waits in `wait`, which a signal interrupts at once (a foreground job would delay the trap)
set -m
# shellcheck disable=SC2086  # each lane is a space-separated list of targets
run_lane beside $beside </dev/null >"$log" 2>&1 &
beside_pid=$!
lanes+=("$beside_pid")
echo "==> beside this lane: $beside (its output follows when both lanes are done)"
# shellcheck disable=SC2086
run_lane foreground $foreground &
lanes+=("$!")
wait $!
foreground_rc=$?
if kill -0 "$beside_pid" 2>/dev/null; then
  echo "==> waiting for: $beside"
fi
wait "$beside_pid"
beside_rc=$?
echo "==> the output of: $beside"
cat "$log"
summary
echo "==> $foreground: exit $foreground_rc; $beside: exit $beside_rc"
[ "$foreground_rc" -eq 0 ] && [ "$beside_rc" -eq 0 ]
