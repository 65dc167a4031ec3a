#!/bin/bash
# Adoption's refusals, each ending in a fresh attach (doc/restart.md):
# - a worker that nobody adopts within --orphan-wait finishes, flushes and
#   exits (its lock goes), and the next qcowd, finding it gone, attaches
#   the image afresh;
# - a peer at the rendezvous that hands a descriptor of another file is
#   refused (and told to stop), and one that is not the recorded worker
#   pid is refused too: logged, and the image attached afresh.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
RDV=$STATE.rendezvous/x
"$QEMU_IMG" create -f raw "$T/x.raw" 8M >/dev/null
"$QEMU_IMG" create -f raw "$T/other.raw" 8M >/dev/null
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
fresh() {
    local q
    q=$(ctl --json query x) || return 1
    [ "$(jq -r .state <<<"$q")" = running ] && [ "$(jq -r .adopted <<<"$q")" = null ]
}

start_daemon --orphan-wait=1
ctl attach --name x -f raw "$T/x.raw" >/dev/null || die "attach x"
head -c 65536 /dev/urandom >"$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" x write 0 65536 <"$T/data" || die "write x"
worker=$(worker_pid x)
kill -9 "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=
rm -f "$SOCK"
wait_until gone "$worker" || die "the orphaned worker did not stop after its window"
grep -q "x: no supervisor adopted this worker within 1 s: stopping" "$T/qcowd.log" ||
    die "the end of the window was not logged"
"$QEMU_IMG" info -f raw "$T/x.raw" >/dev/null || die "the image is still locked"
"$QEMU_IMG" convert -f raw -O raw "$T/x.raw" "$T/x.now" && cmp -n 65536 "$T/data" "$T/x.now" ||
    die "the acknowledged write is not in the image"

start_daemon
wait_until fresh || die "x did not come back afresh: $(ctl --json query x)"
grep -q "x: attached again from the state file" "$T/qcowd.log" || die "no fresh attach"
grep -q "cannot adopt" "$T/qcowd.log" && die "tried to adopt a worker that is gone"

# Detached by the stop; the state file still names x, its worker and its
# rendezvous, where a peer of our uid now listens.
stop_daemon || die "qcowd exited non-zero at SIGTERM"
fake_state() { jq --argjson pid "$1" '.attachments[0]["worker-pid"] = $pid' "$STATE" >"$T/s.new" &&
               cat "$T/s.new" >"$STATE"; }

"$DAEMON_TOOLS/fakepeer" "$RDV" "$T/other.raw" 2>"$T/fake.err" &
fake=$!
wait_until test -S "$RDV" || die "fakepeer did not listen"
fake_state "$fake" || die "cannot edit the state file"
start_daemon
wait_until fresh || die "x did not come back afresh: $(ctl --json query x)"
grep -q "x: refused to adopt its worker: worker pid $fake handed a descriptor of another file" \
    "$T/qcowd.log" || die "the wrong file was not refused"
wait "$fake" || die "fakepeer: $(cat "$T/fake.err")"
stop_daemon || die "qcowd exited non-zero at SIGTERM"

# The recorded worker is alive, and another process listens.
sleep 60 &
other=$!
"$DAEMON_TOOLS/fakepeer" "$RDV" "$T/x.raw" 2>"$T/fake.err" &
fake=$!
wait_until test -S "$RDV" || die "fakepeer did not listen"
fake_state "$other" || die "cannot edit the state file"
start_daemon
refused() {
    grep -q "x: cannot adopt its worker: $RDV: the listener is pid $fake of uid [0-9]*, not the recorded worker pid $other" \
        "$T/qcowd.log"
}
wait_until refused || die "the wrong pid was not refused"
kill "$other"                   # qcowd waits for the recorded worker to be gone
wait "$other" 2>/dev/null
wait_until fresh || die "x did not come back afresh: $(ctl --json query x)"
kill "$fake" 2>/dev/null || true
wait "$fake" 2>/dev/null

"$DAEMON_TOOLS/ringio" "$SOCK" x read 0 65536 | cmp - "$T/data" || die "x differs"
ctl detach x >/dev/null || die "detach x"
exit 0
