#!/bin/bash
# kill -9 of a worker in the middle of random I/O: the client finishes
# without an error (the supervisor restarts the worker on the same ring and
# what was posted and not answered runs again), the image then matches the
# client's shadow in qemu-img's eyes, and the daemon counts the restart.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon

for cache in none writeback; do
    rm -f "$T/k.qcow"
    "$QEMU_IMG" create -f qcow "$T/k.qcow" 64M >/dev/null
    ctl attach --cache "$cache" "$T/k.qcow" >/dev/null || die "attach"
    pid=$(worker_pid k.qcow)
    "$DAEMON_TOOLS/ringio" "$SOCK" k.qcow random "$T/k.raw" -s "$QCOWD_TEST_SEED" \
        -n 3000 -q 32 -K 1000 -w "$pid" >/dev/null || die "the client saw errors ($cache)"
    ctl --json query k.qcow | tr -d ' \n' | grep -q '"restarts":1' || die "restart not counted"
    [ "$(worker_pid k.qcow)" != "$pid" ] || die "the worker was not replaced"
    ctl detach k.qcow >/dev/null || die "detach"
    "$QEMU_IMG" compare -F raw "$T/k.qcow" "$T/k.raw" >/dev/null ||
        die "image differs from the shadow after the worker was killed ($cache)"
    "$QCOWCTL" check "$T/k.qcow" >/dev/null; rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 4 ] || die "check found corruption (exit $rc)"
done

# A worker that keeps dying marks its image failed, and the daemon goes on;
# a ring client waiting for responses learns it (ESHUTDOWN) instead of
# waiting for ever.
"$QEMU_IMG" create -f qcow "$T/f.qcow" 8M >/dev/null
ctl attach "$T/f.qcow" >/dev/null
"$DAEMON_TOOLS/ringio" "$SOCK" f.qcow load -q 8 -t 600 >/dev/null 2>"$T/load.err" &
load=$!
load_connected() { grep -q "f.qcow: ring connected" "$T/qcowd.log"; }
wait_until load_connected || die "the load did not connect"
state() { ctl --json query f.qcow | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }
# The restart (a new pid) or the verdict.
restarted_or_failed() {
    [ "$(state)" = failed ] || { [ "$(state)" = running ] && [ "$(worker_pid f.qcow)" != "$pid" ]; }
}
for _ in $(seq 1 10); do
    [ "$(state)" = failed ] && break
    pid=$(worker_pid f.qcow)
    kill -9 "$pid" 2>/dev/null || true
    wait_until restarted_or_failed || true
done
ctl --json query f.qcow | tr -d ' \n' | grep -q '"state":"failed"' || die "not marked failed"
load_ended() { ! kill -0 "$load" 2>/dev/null; }
wait_until load_ended || die "a ring client of the failed image still waits"
wait "$load" && die "the load on a failed image succeeded"
grep -q "shutdown" "$T/load.err" || die "the load did not learn the ring was shut down: $(cat "$T/load.err")"
ctl --json query f.qcow | grep -q "died 5 times" || die "no reason given"
ctl detach f.qcow >/dev/null || die "cannot detach a failed image"
ctl list >/dev/null || die "the daemon stopped answering"
