#!/bin/bash
# A failed flush is sticky (the fault shim fails the worker's first
# fdatasync): the kernel may have dropped what it could not write, so no
# later flush may publish L2/L1 entries that point at it.  Later flushes and
# writes fail although the disk works again; reads go on; query says why and
# an image-io-error event is sent once; a worker restarted after kill -9
# keeps refusing; detach reports the failure; the image on disk is what the
# last good flush left (a cluster allocated after it is not published).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

img=$T/victim.qcow
"$QEMU_IMG" create -f qcow "$img" 16M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 0 64k' "$img" >/dev/null || die "qemu-io write"
cp "$img" "$T/before.qcow"

LD_PRELOAD="$FAULT_SHIM" QCOWD_FAULT_PROGRAM=qcowd-worker QCOWD_FAULT_LOG="$FAULT_LOG" \
    QCOWD_FAULT='aio-fdsync@victim.qcow:1:EIO' \
    ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" start_daemon
"$QCOWCTL" --verbose --socket "$SOCK" --json events >"$T/events" 2>"$T/events.err" &
events_pid=$!
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"
ctl attach "$img" >/dev/null || die "attach"
rio() { "$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow "$@"; }
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
query() { ctl --json query victim.qcow | tr -d '\n'; }
io_error_reported() {
    query | grep -q '"io-error": *"[^"]*victim.qcow: fdatasync failed: Input/output error'
}

# A new cluster (and L2 table) at 12 MiB, then the flush that fails.
pattern 0x44 4096 >"$T/d44"
rio write 12582912 4096 <"$T/d44" || die "write"
rio flush 2>"$T/rio.err" && die "a failed flush succeeded"
fault_injected 'aio-fdsync #1 @victim.qcow -> EIO' || die "the flush was not failed"
grep -q 'Input/output error' "$T/rio.err" || die "the client was not told EIO: $(cat "$T/rio.err")"
wait_until io_error_reported || die "query does not report the failed flush: $(query)"
ctl stats victim.qcow | grep -q '  io error: .*fdatasync failed' ||
    die "qcowctl stats does not show the failed flush"

# Sticky: the disk works again, and still nothing may be published.
rio flush 2>/dev/null && die "a flush after a failed one succeeded"
rio write 4096 4096 <"$T/d44" 2>/dev/null && die "a write after a failed flush succeeded"
rio read 0 65536 | cmp - <(pattern 0x11 65536) || die "reads fail after a failed flush"
rio read 12582912 4096 | cmp - "$T/d44" || die "the worker's own write no longer reads back"
grep -q "flush of 0 bytes at 0 failed: refused: an earlier flush of the image failed" \
    "$T/qcowd.log" || die "a refused flush is not logged with its reason"
fault_injected 'aio-fdsync #2' && die "a flush reached the disk after a failed one"

# A replacement worker inherits the failure from the metadata log.
kill -9 "$(worker_pid victim.qcow)"
restarted() { query | grep -q '"restarts": *1' && query | grep -q '"state": *"running"'; }
wait_until restarted || die "the worker was not restarted: $(query)"
rio flush 2>/dev/null && die "a restarted worker flushed after a failed flush"
rio read 12582912 4096 | cmp - "$T/d44" || die "the replacement lost the adopted write"
io_error_reported || die "query lost the failure after a restart"
grep -q '"image-io-error"' "$T/events" || die "no image-io-error event"
[ "$(grep -c '"image-io-error"' "$T/events")" -eq 1 ] || die "image-io-error was sent twice"
kill -INT "$events_pid"
wait "$events_pid"

ctl detach victim.qcow >/dev/null 2>"$T/detach.err" && die "detach hid the failed flush"
grep -q "final flush failed" "$T/detach.err" || die "detach: $(cat "$T/detach.err")"
stop_daemon
"$QCOWCTL" check "$img" >"$T/check" 2>&1
rc=$?
# 0 clean, 4 leaks only (what was allocated after the last good flush).
[ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || die "qcowctl check exit $rc: $(cat "$T/check")"
assert_qemu_identical "$T/before.qcow" "$img"
