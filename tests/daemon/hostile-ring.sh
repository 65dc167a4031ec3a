#!/bin/bash
# A hostile client scribbles on the ring of one image (garbage requests,
# indices far ahead and behind, a trashed qcowd page): its worker survives
# (same pid) and keeps serving, or shuts the ring down and is replaced by a
# worker on a fresh ring; it never crashes; the daemon and another image are
# untouched; the image's data survives and it detaches cleanly.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
start_daemon

run "$QCOWCTL" create -q "$T/victim.qcow" 16M
run "$QCOWCTL" create -q "$T/other.qcow" 16M
ctl attach "$T/victim.qcow" >/dev/null && ctl attach "$T/other.qcow" >/dev/null || die "attach"
head -c 65536 /dev/urandom > "$T/data"
# Someone listening to events sees the ring break and come back.
"$QCOWCTL" --verbose --socket "$SOCK" --json events >"$T/events" 2>"$T/events.err" &
events_pid=$!
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"
"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow write 0 65536 < "$T/data" || die "write other"

query_victim() { ctl --json query victim.qcow | tr -d ' \n'; }
field() { query_victim | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# Until the victim serves again (a renewal takes a moment).
running() { query_victim | grep -q '"state":"running"'; }
wait_running() { wait_until running || die "the victim does not come back to running"; }

# Garbage the worker must answer with errors, ring alive.  Some rounds also
# trash the qcowd page: when the client lets go, qcowd gives the image a
# fresh ring, so the next client is not refused.
for round in 1 2 3; do
    seed=$((QCOWD_TEST_SEED + RANDOM))
    "$DAEMON_TOOLS/ringabuse" "$SOCK" victim.qcow 300 "$seed" soft ||
        die "ringabuse could not run (soft round $round, seed $seed)"
    wait_running
    [ "$(field restarts)" = 0 ] || die "the worker crashed under a hostile client (seed $seed)"
    ! grep -q "ring shut down" "$T/qcowd.log" || die "soft abuse broke the ring (seed $seed)"
done
grep -q "victim.qcow: ring: bad request" "$T/qcowd.log" || die "garbage requests were not reported"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow write 0 65536 < "$T/data" ||
    die "a client after the hostile one cannot use the ring"

# Abuse that breaks the ring (indices out of range): the worker shuts it
# down with a reason, flushes, and qcowd serves the image on a fresh ring
# (the worker did not crash: no restart), so the next client works.
renewals=$(field ring-renewals)
seed=$((QCOWD_TEST_SEED + RANDOM))
"$DAEMON_TOOLS/ringabuse" "$SOCK" victim.qcow 300 "$seed" || die "ringabuse could not run (seed $seed)"
renewed() { [ "$(field ring-renewals)" = $((renewals + 1)) ]; }
wait_until renewed || die "the broken ring was not renewed (seed $seed)"
wait_running
[ "$(field restarts)" = 0 ] || die "the worker crashed under a hostile client (seed $seed)"
grep -q "ring shut down: .*out of range" "$T/qcowd.log" || die "no reason logged for the broken ring"
grep -q "victim.qcow: the client broke the ring (.*): renewing it" "$T/qcowd.log" ||
    die "the renewal was not logged"
kill -INT "$events_pid"
wait "$events_pid" || die "qcowctl events did not end cleanly"
grep -q '"ring-broken"' "$T/events" || die "no ring-broken event"
grep -q '"ring-renewed"' "$T/events" || die "no ring-renewed event"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow read 0 65536 | cmp - "$T/data" ||
    die "data written before the abuse is not there on the fresh ring"
head -c 4096 /dev/urandom > "$T/more"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow write 65536 4096 < "$T/more" &&
    "$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow read 65536 4096 | cmp - "$T/more" ||
    die "the fresh ring does not serve I/O"

"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow read 0 65536 | cmp - "$T/data" ||
    die "the other image was disturbed"
ctl detach victim.qcow >/dev/null || die "the abused image does not detach"
"$QCOWCTL" check "$T/victim.qcow" >/dev/null || die "the abused image is not clean"
"$QCOWCTL" read "$T/victim.qcow" 0 65536 | cmp - "$T/data" || die "the victim's data did not survive"
ctl detach other.qcow >/dev/null
