# What the emulator's smoke scripts share, sourced once they are in their work directory: TAP-like
# `ok` lines, `fail` with the last output and the emulator's log, checks on ./out, and talosctl
# runs whose stdout and stderr go to ./out.
passed=0

fail() {
    echo "FAIL: $*" >&2
    echo "--- last output:" >&2
    tail -n 60 out >&2 || true
    echo "--- emulator log:" >&2
    tail -n 30 emulator.log >&2 || true
    exit 1
}

ok() {
    passed=$((passed + 1))
    echo "ok $passed - $*"
}

has() { grep -qF -- "$1" out || fail "$2: output lacks '$1'"; }
lacks() { if grep -qF -- "$1" out; then fail "$2: output has '$1'"; fi; }

# run_talosctl TALOSCTL DESCRIPTION EXPECT(0|fail) ARGS...: stdout+stderr into ./out
run_talosctl() {
    local talosctl=$1 what=$2 expect=$3
    shift 3
    local rc=0
    "$talosctl" "$@" >out 2>&1 || rc=$?
    if [[ "$expect" == 0 && $rc -ne 0 ]]; then fail "$what: talosctl $* exited $rc"; fi
    if [[ "$expect" == fail && $rc -eq 0 ]]; then fail "$what: talosctl $* should have failed"; fi
    return 0
}

# run DESCRIPTION EXPECT ARGS...: the script's own $TALOSCTL
run() { run_talosctl "$TALOSCTL" "$@"; }
