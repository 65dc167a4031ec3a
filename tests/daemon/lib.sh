# Helpers for the daemon tests (sourced after tests/lib/common.sh).
: "${QCOWD:=$top_builddir/daemon/qcowd}"
: "${QCOWD_WORKER:=$top_builddir/daemon/qcowd-worker}"
DAEMON_TOOLS=$top_builddir/tests/daemon
SOCK=$T/qcowd.sock
QCOWD_PID=

# start_daemon [qcowd options...]: a private qcowd on $SOCK, logging to $T/qcowd.log.
# Its state file is $DAEMON_STATE when the test sets it, else none (never
# the user's own).
start_daemon() {
    "$QCOWD" --socket "$SOCK" --worker "$QCOWD_WORKER" --state-file="${DAEMON_STATE:-}" "$@" \
        2>>"$T/qcowd.log" &
    QCOWD_PID=$!
    wait_until daemon_listening || die "qcowd did not create $SOCK"
}

daemon_listening() {
    [ -S "$SOCK" ] && return 0
    kill -0 "$QCOWD_PID" 2>/dev/null || { cat "$T/qcowd.log" >&2; die "qcowd exited"; }
    return 1
}

stop_daemon() {
    [ -n "$QCOWD_PID" ] || return 0
    kill -TERM "$QCOWD_PID" 2>/dev/null || true
    wait "$QCOWD_PID" 2>/dev/null
    local rc=$?
    QCOWD_PID=
    return $rc
}

# A failed test shows the end of the daemon's log: under CI the scratch
# directory is gone afterwards, and the reason is usually in there.
show_daemon_log() {
    [ "$1" -ne 0 ] && [ "$1" -ne 77 ] && [ -s "$T/qcowd.log" ] || return 0
    msg "last lines of $T/qcowd.log:"
    tail -n 80 "$T/qcowd.log" >&2
}

# The daemon goes down with the test, whatever happens.
trap 'rc=$?; stop_daemon >/dev/null 2>&1; [ $rc -ne 0 ] || check_sandbox_kills "$T/qcowd.log" || rc=1
      show_daemon_log $rc; (exit $rc); cleanup' EXIT

ctl() { "$QCOWCTL" --socket "$SOCK" "$@"; }

# NAME is served again by a worker other than OLD_PID, and that worker is
# ready: its state is one of STATES (default "running").  State and pid come
# from one query: from two, a stale "running" of the killed worker and the
# pid of a replacement still starting could pair up.
replaced() {
    local now
    now=$(ctl --json query "$1" | jq -r '.state + " " + (.pid | tostring)') || return 1
    [ "${now#* }" != "$2" ] && [[ " ${3:-running} " == *" ${now%% *} "* ]]
}

# The worker pid of an attached image.
worker_pid() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }

# A ring client's exit reaches qcowd a moment after the client is gone.  A
# test that kills qcowd and needs the ring recorded free in the state file
# (an adopted ring recorded held answers Busy) waits for ring_free first: a
# query saying "connected": false is answered after the state file has
# recorded the release (qcowd writes the file before a round's answers).
ring_free() { [ "$(ctl --json query "$1" | jq -r .connected)" = false ]; }
wait_ring_free() { wait_until ring_free "$1" || die "$1: qcowd still lists its ring connected"; }

fd_count() { ls "/proc/$1/fd" | wc -l; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
children() { pgrep -P "$1" | wc -l; }

# Workers report a detach done as soon as their image is closed; their
# process exits a few milliseconds later.  Wait (30 s at most: a loaded
# machine) for none left.
no_children_left() { wait_until no_children "$1"; }
no_children() { [ "$(children "$1")" -eq 0 ]; }
