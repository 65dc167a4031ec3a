# Helpers for the tests of qcowctl's online commands (tests/cli/online-*.sh):
# a private qcowd on a socket in the scratch directory, stopped when the test
# ends, and jq-free looks at qcowctl's --json output.
#
# Environment: besides lib.sh's, QCOWD and QCOWD_WORKER (default: the build
# tree's daemon/qcowd and daemon/qcowd-worker under top_builddir).

. "$(dirname "$0")/lib.sh"

: "${QCOWD:=$top_builddir/daemon/qcowd}"
: "${QCOWD_WORKER:=$top_builddir/daemon/qcowd-worker}"
[ -x "$QCOWD" ] || { echo "$TEST_NAME: no qcowd at $QCOWD" >&2; exit 99; }
[ -x "$QCOWD_WORKER" ] || { echo "$TEST_NAME: no qcowd-worker at $QCOWD_WORKER" >&2; exit 99; }

# The tests name their socket; what the caller's environment says must not
# leak in.
unset QCOWD_SOCKET
SOCK=$T/s.sock
DAEMON_PID=

online_cleanup() {
    local rc=$? i
    trap - EXIT
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for i in $(seq 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    [ "$rc" != 0 ] || check_sandbox_kills "$T/qcowd.log" || rc=1
    if [ "$rc" != 0 ] && [ -s "$T/qcowd.log" ]; then
        echo "--- qcowd's log:" >&2
        tail -n 40 "$T/qcowd.log" >&2
    fi
    cd /
    finish_test "$rc"
}
trap online_cleanup EXIT

# start_daemon [QCOWD OPTIONS...]: a qcowd on $SOCK; waits for the socket.
start_daemon() {
    "$QCOWD" --socket "$SOCK" --worker "$QCOWD_WORKER" --no-state --log-level debug "$@" \
        2>>"$T/qcowd.log" &
    DAEMON_PID=$!
    wait_until daemon_listening || fail "qcowd did not create $SOCK within 30 s"
}

daemon_listening() {
    [ -S "$SOCK" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "qcowd exited at start"
    return 1
}

# wait_daemon_exit: wait (up to 30 s) for qcowd to exit; its status in $daemon_rc.
wait_daemon_exit() {
    wait_until daemon_gone || fail "qcowd did not exit within 30 s"
    daemon_rc=0
    wait "$DAEMON_PID" || daemon_rc=$?
    DAEMON_PID=
}

daemon_gone() { ! kill -0 "$DAEMON_PID" 2>/dev/null; }

# on ARGS...: qcowctl on our daemon (like qc: $T/out, $T/err, $rc).
on() { qc --socket "$SOCK" "$@"; }

# expect_on N ARGS...: qcowctl on our daemon must exit N.
expect_on() {
    local want=$1
    shift
    expect_rc "$want" --socket "$SOCK" "$@"
}

# make_image FILE SIZE [BACKING]: a qcow image made by qemu-img (by qcowctl
# create when there is no qemu-img: QEMU does not judge here).
make_image() {
    if [ -n "$QEMU_IMG" ] && [ -x "$QEMU_IMG" ]; then
        if [ $# -ge 3 ]; then
            "$QEMU_IMG" create -q -f qcow -b "$3" -F qcow "$1" "$2" || fail "qemu-img create $1"
        else
            "$QEMU_IMG" create -q -f qcow "$1" "$2" || fail "qemu-img create $1"
        fi
    elif [ $# -ge 3 ]; then
        "$QCOWCTL" create -q -b "$3" -F qcow "$1" "$2" || fail "qcowctl create $1"
    else
        "$QCOWCTL" create -q "$1" "$2" || fail "qcowctl create $1"
    fi
}

# json_valid FILE: the file is one JSON document (python3 checks it when
# there is one; otherwise a rough look at its ends, and the test is skipped).
json_valid() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; json.load(sys.stdin)' <"$1" ||
            { cat "$1" >&2; fail "$1 is not valid JSON"; }
    else
        not_judged "python3 not found: JSON only roughly checked"
        grep -q '^[[{]' "$1" && tail -n 1 "$1" | grep -q '^[]}]$' ||
            { cat "$1" >&2; fail "$1 does not look like JSON"; }
    fi
}

# json_lines_valid FILE: every line is one JSON object.
json_lines_valid() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys
for line in sys.stdin:
    assert isinstance(json.loads(line), dict)' <"$1" || { cat "$1" >&2; fail "$1: not JSON lines"; }
    else
        not_judged "python3 not found: JSON lines only roughly checked"
        grep -qv '^{.*}$' "$1" && { cat "$1" >&2; fail "$1: not JSON lines"; }
        return 0
    fi
}

# jfield INDENT KEY [FILE]: the value of the member KEY at INDENT spaces of
# qcowctl's pretty JSON (2: a top-level object's members; 4: the members of
# the objects of a top-level array), without the trailing comma; strings
# keep their quotes.  The first match.
jfield() {
    local pad
    pad=$(printf '%*s' "$1" '')
    sed -n "s/^$pad\"$2\": \(.*\)\$/\1/p" "${3:-$T/out}" | sed 's/,$//' | head -n 1
}

# expect_field INDENT KEY VALUE [FILE]
expect_field() {
    local got
    got=$(jfield "$1" "$2" "${4:-$T/out}")
    [ "$got" = "$3" ] || { cat "${4:-$T/out}" >&2; fail "\"$2\" is '$got', expected '$3'"; }
}

# is_number TEXT
is_number() { [[ $1 =~ ^[0-9]+$ ]]; }
