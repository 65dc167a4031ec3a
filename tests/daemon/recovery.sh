#!/bin/bash
# The paths around a worker's recovery lose nothing.  A write the client was
# told is done (not flushed yet: only the ring's journal knows where it went)
# survives:
#  - a replacement worker that dies before it reports ready (the next one
#    recovers from the same journal);
#  - a detach right after kill -9 of the worker (the detach waits for a
#    replacement to take over the journal and flush; no bogus error).
# And a worker for a renewed ring that cannot start marks its image failed
# with the reason intact (this once read freed memory); a worker stopped by
# someone else leaves a ring it shut down, so the image goes on on a fresh
# one.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
PLAN=$T/plan
: > "$PLAN"
export BADWORKER_REAL=$QCOWD_WORKER BADWORKER_PLAN=$PLAN BADWORKER_NAME=r.qcow
QCOWD_WORKER=$DAEMON_TOOLS/badworker
start_daemon

state() { ctl --json query r.qcow | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }
restarts() { ctl --json query r.qcow | tr -d ' \n' | sed -n 's/.*"restarts":\([0-9]*\).*/\1/p'; }
renewals() { ctl --json query r.qcow | tr -d ' \n' | sed -n 's/.*"ring-renewals":\([0-9]*\).*/\1/p'; }
plan_used() { [ ! -s "$PLAN" ]; }
# A crash may leak space (exit 4), never corrupt.
check_image() {
    local rc
    "$QCOWCTL" check "$T/r.qcow" >/dev/null; rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 4 ] || die "check found corruption $1 (exit $rc)"
}
# N bytes of data that differ from round to round.
data() { "$RANDIO" data "$((SEED + $1))" "$2"; }
"$QEMU_IMG" create -f qcow "$T/r.qcow" 16M >/dev/null

# 1. The first replacement dies before it says ready; the second one serves
# the same ring, the write is there, on disk after detach.
ctl attach "$T/r.qcow" >/dev/null || die "attach"
data 1 65536 > "$T/d1"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow write 1048576 65536 < "$T/d1" || die "write"
echo exit > "$PLAN"
kill -9 "$(worker_pid r.qcow)"
second_replacement_serves() { [ "$(state)" = running ] && [ "$(restarts)" = 2 ]; }
wait_until second_replacement_serves ||
    die "not recovered after the replacement died (state $(state), restarts $(restarts))"
plan_used || die "the replacement that dies was never started"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow read 1048576 65536 | cmp - "$T/d1" ||
    die "the acknowledged write is lost after a replacement died"
ctl detach r.qcow >/dev/null || die "detach after recovery"
"$QCOWCTL" read "$T/r.qcow" 1048576 65536 | cmp - "$T/d1" || die "the write is not in the image"
check_image "after recovery"

# 2. Detach at once after kill -9, several rounds: a new cluster each time,
# so the write's L2 entry is known only to the journal.
for round in 1 2 3 4 5 6; do
    ctl attach "$T/r.qcow" >/dev/null || die "attach (round $round)"
    off=$((round * 2097152))
    data "$((round + 10))" 65536 > "$T/d"
    "$DAEMON_TOOLS/ringio" "$SOCK" r.qcow write "$off" 65536 < "$T/d" || die "write (round $round)"
    kill -9 "$(worker_pid r.qcow)"
    ctl detach r.qcow > /dev/null 2>"$T/err" ||
        die "detach right after kill -9 failed (round $round): $(cat "$T/err")"
    "$QCOWCTL" read "$T/r.qcow" "$off" 65536 | cmp - "$T/d" ||
        die "an acknowledged write was lost by a detach right after kill -9 (round $round)"
done
"$QEMU_IO" -r -c "read -P 0 0 1M" "$T/r.qcow" | grep -q "read 1048576/1048576" ||
    die "qemu-io cannot read the image"
check_image "after the detach rounds"

# 3. The worker for a renewed ring cannot start: the image is failed, its
# reason readable, and it detaches.
ctl attach "$T/r.qcow" >/dev/null || die "attach (renewal)"
echo exit > "$PLAN"
"$DAEMON_TOOLS/ringabuse" "$SOCK" r.qcow 300 "$SEED" || die "ringabuse could not run"
wait_until plan_used || die "no new worker for a renewed ring"
failed() { [ "$(state)" = failed ]; }
wait_until failed || die "a renewal whose worker cannot start did not fail the image ($(state))"
ctl --json query r.qcow | grep -q '"error": *"[^"]*r.qcow: the worker did not start: it exited"' ||
    die "the failure's reason is wrong: $(ctl --json query r.qcow | grep error)"
ctl detach r.qcow >/dev/null || die "detach of the failed image"
ctl list >/dev/null || die "the daemon stopped answering"

# 4. SIGTERM from someone else: the worker flushes, shuts its ring down and
# exits; a new worker serves the image on a fresh ring, with the data.
ctl attach "$T/r.qcow" >/dev/null || die "attach (SIGTERM)"
data 40 65536 > "$T/d"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow write 8388608 65536 < "$T/d" || die "write (SIGTERM)"
pid=$(worker_pid r.qcow)
kill -TERM "$pid"
serves_fresh_ring() { [ "$(state)" = running ] && [ "$(renewals)" = 1 ]; }
wait_until serves_fresh_ring || die "no fresh ring after SIGTERM (state $(state), renewals $(renewals))"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow read 8388608 65536 | cmp - "$T/d" ||
    die "the image does not serve its data after its worker was stopped by someone else"
ctl detach r.qcow >/dev/null || die "detach after SIGTERM"
