#!/bin/bash
# A failing disk under a running worker (the fault shim in the workers): a
# failed read and two failed writes (one refused by io_submit, one whose
# completion says EIO) each come back to the client as an error, and each
# failed request is logged (and shown in stats) with its own reason: which
# file, which offset, what failed.  The writes must not be blamed on the
# read's L2 table.  Nothing but the failed writes' bytes changes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

img=$T/victim.qcow
"$QEMU_IMG" create -f qcow "$img" 16M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 0 64k' -c 'write -P 0x22 8M 4k' "$img" >/dev/null ||
    die "qemu-io write"
cp "$img" "$T/before.qcow"

# In the worker, on its O_DIRECT descriptor: the first read that completes
# is of the first L2 table it loads (tables are read asynchronously); the
# write at 8 MiB submits the read of its table (the second io_submit), then
# its data (the third, refused); the next write's completes with EIO.
LD_PRELOAD="$FAULT_SHIM" QCOWD_FAULT_PROGRAM=qcowd-worker QCOWD_FAULT_LOG="$FAULT_LOG" \
    QCOWD_FAULT='aio-read@O_DIRECT:1:EIO,io_submit@O_DIRECT:3:EIO,aio-write@O_DIRECT:1:EIO' \
    ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" start_daemon
ctl attach "$img" >/dev/null || die "attach"
rio() { "$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow "$@"; }
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }

rio read 0 4096 >/dev/null 2>"$T/rio.err" && die "a read whose L2 table fails succeeded"
fault_injected 'aio-read #1 @O_DIRECT -> EIO' || die "the L2 read was not failed"
pattern 0x33 4096 >"$T/d33"
rio write 8388608 4096 <"$T/d33" 2>"$T/rio.err" && die "a write io_submit refused succeeded"
fault_injected 'io_submit #3 @O_DIRECT -> EIO' || die "io_submit was not failed"
grep -q 'Input/output error' "$T/rio.err" || die "the client was not told EIO: $(cat "$T/rio.err")"
pattern 0x55 4096 >"$T/d55"
rio write 8388608 4096 <"$T/d55" 2>"$T/rio.err" && die "a failed data write succeeded"
fault_injected 'aio-write #1 @O_DIRECT -> EIO' || die "the data write was not failed"
grep -q 'Input/output error' "$T/rio.err" || die "the client was not told EIO: $(cat "$T/rio.err")"

grep -q "victim.qcow: read of 4096 bytes at 0 failed: .*victim.qcow: cannot read the L2 table" \
    "$T/qcowd.log" || die "the failed read was not logged with its reason"
grep "victim.qcow: write of 4096 bytes at 8388608 failed" "$T/qcowd.log" >"$T/wlog" ||
    die "the failed writes were not logged"
[ "$(grep -c "victim.qcow: write of 4096 bytes at 8388608 failed: .*victim.qcow: write of 4096 bytes at offset [0-9]* failed: Input/output error" "$T/wlog")" -eq 2 ] ||
    die "the failed writes were logged with a wrong reason: $(cat "$T/wlog")"
ctl --json stats victim.qcow | tr -d '\n' |
    grep -q '"last-error": *"write of 4096 bytes at 8388608 failed: [^"]*offset' ||
    die "stats do not show the last failed request"
ctl stats victim.qcow | grep -q '  last error: write of 4096 bytes at 8388608 failed' ||
    die "qcowctl stats does not show the last failed request"

# The disk works again: so does the image.
rio read 0 4096 | cmp - <(pattern 0x11 4096) || die "reads do not work again"
pattern 0x44 4096 >"$T/d44"
rio write 12582912 4096 <"$T/d44" && rio flush || die "writes do not work again"
ctl detach victim.qcow >/dev/null || die "detach"
stop_daemon

# A failed write leaves its bytes unknown (old or new); everything else
# reads as before, plus the later write.
qemu_to_raw "$T/before.qcow" "$T/before.raw"
qemu_to_raw "$img" "$T/after.raw"
extract "$T/after.raw" 8388608 4096 >"$T/failed"
cmp -s "$T/failed" <(pattern 0x22 4096) || cmp -s "$T/failed" "$T/d33" ||
    cmp -s "$T/failed" "$T/d55" || die "the failed writes left bytes that are neither old nor new"
shadow_write "$T/before.raw" "$T/failed" 8388608
shadow_write "$T/before.raw" "$T/d44" 12582912
cmp "$T/before.raw" "$T/after.raw" || die "the image does not hold what it should"
run "$QCOWCTL" check "$img"
