#!/bin/bash
# A pause (here a live snapshot's) waits for the worker's executor to go
# idle.  The last thing to finish can be a growth of the file ahead of need
# that no request waits for: the pause must then complete when it does.
# (It did not: only a request's completion looked again, so the worker sat
# in "pausing" until qcowd killed it for not answering.)  The fault shim
# holds that growth's ftruncate while every request has completed and the
# snapshot starts; released, the snapshot must succeed.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

img=$T/grow.qcow
"$QEMU_IMG" create -f qcow "$img" 64M >/dev/null
# ftruncate #1 makes room for the first allocations (the write waits for
# it); #2 keeps the file ahead of them, with no request waiting: held.
start_daemon_holding "ftruncate@grow.qcow:2:HOLD"
ctl attach "$img" >/dev/null || die "attach"

head -c $((6 << 20)) /dev/urandom >"$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" grow.qcow write 0 $((6 << 20)) <"$T/data" ||
    { release_holds; die "the writes failed (did one wait for the held growth?)"; }
fault_injected "ftruncate #2 @grow.qcow -> HOLD" ||
    { release_holds; die "no growth ahead of need was held: $(cat "$FAULT_LOG" 2>/dev/null)"; }

ctl snapshot grow.qcow "$T/snap.qcow" >"$T/snap.out" 2>&1 &
snap=$!
wait_until grep -q "grow.qcow: pausing for a snapshot" "$T/qcowd.log" ||
    { release_holds; die "the snapshot did not start pausing"; }
kill -0 "$snap" 2>/dev/null || { release_holds; die "the snapshot ended while the growth was held"; }
release_holds
wait "$snap" || die "the snapshot failed after the growth ended: $(cat "$T/snap.out")"
grep -q "does not answer" "$T/qcowd.log" && die "the worker was killed as unresponsive"

"$DAEMON_TOOLS/ringio" "$SOCK" grow.qcow read 0 $((6 << 20)) | cmp -s - "$T/data" ||
    die "the data does not read back through the snapshot"
ctl detach grow.qcow >/dev/null || die "detach"
stop_daemon || die "qcowd failed"
exec 3>&-
head -c $((58 << 20)) /dev/zero >>"$T/data"
"$QEMU_IMG" compare -f qcow -F raw "$T/snap.qcow" "$T/data" >"$T/cmp.out" 2>&1 ||
    die "qemu-img compare: $(cat "$T/cmp.out")"
echo "ok: a pause waited for a growth no request waited for, and completed"
