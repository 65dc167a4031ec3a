# Sourced by tests/lib/common.sh and tests/cli/lib.sh.
# A worker killed by its seccomp filter is replaced, and recovery can hide
# that from the test's own checks: every daemon test fails on one unless it
# sets SANDBOX_KILL_EXPECTED=1 (worker-sandbox.sh provokes one on purpose).
# Prints why and returns 1 when LOG shows an unexpected kill.
check_sandbox_kills() {
    [ "${SANDBOX_KILL_EXPECTED:-0}" = 1 ] && return 0
    [ -f "$1" ] && grep -q "killed by its seccomp filter" "$1" || return 0
    echo "$TEST_NAME: a worker was killed by its seccomp filter (dmesg shows the call):" >&2
    grep "killed by its seccomp filter" "$1" | head -n 3 >&2
    return 1
}
