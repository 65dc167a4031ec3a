#!/bin/bash
# A slow L2 table read does not hold up the image (issue 11): while the
# read of one table is held back (the fault shim keeps it until released),
# a read of a cluster whose table is cached completes with its bytes; once
# released, the read that waited for the table completes with its bytes
# too.  Holds both a synchronous pread and an asynchronous read of the
# table, whichever the worker uses.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

img=$T/slow.qcow
"$QEMU_IMG" create -f qcow "$img" 64M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 0 4k' -c 'write -P 0x22 32M 4k' "$img" >/dev/null ||
    die "qemu-io write"

be64() { # file offset: the big-endian 64-bit number there
    od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n' | { read -r h; echo $((16#$h)); }
}
# 4 KiB clusters, 512 entries a table: guest 32 MiB is in L1 entry 16.
l1=$(be64 "$img" 40)
slow_l2=$(be64 "$img" $((l1 + 16 * 8)))
[ "$slow_l2" -gt 0 ] || die "no L2 table for 32 MiB (L1 at $l1)"

start_daemon_holding "pread@#$slow_l2:1:HOLD,aio-read@#$slow_l2:1:HOLD"
ctl attach "$img" >/dev/null || die "attach"
rio() { "$DAEMON_TOOLS/ringio" "$SOCK" slow.qcow "$@"; }
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
pattern 0x11 4096 >"$T/d11"

rio read 0 4096 | cmp -s - "$T/d11" || die "the first read of 0 is wrong"
# One client, both reads in flight: the one that needs the uncached table
# first, then the one whose table is cached.  ringio prints each index as
# it completes and checks the bytes of each.
"$DAEMON_TOOLS/ringio" "$SOCK" slow.qcow order r:4096@33554432=22 r:4096@0=11 \
    >"$T/order.out" 2>"$T/order.err" &
both=$!
wait_until fault_injected "#$slow_l2 -> HOLD" || die "the L2 table read was not held"
# (The bound only ends a run that fails: a worker blocked in the held read.)
if ! WAIT_LIMIT_S=60 wait_until grep -q '^order: 1' "$T/order.out"; then
    release_holds
    die "a read of a cached cluster did not complete while an L2 read was held"
fi
kill -0 "$both" 2>/dev/null || die "ringio ended before the held table was released"

release_holds
wait "$both" || die "the reads failed: $(cat "$T/order.err")"
[ "$(cat "$T/order.out")" = "order: 1 0" ] || die "unexpected completions: $(cat "$T/order.out")"
ctl detach slow.qcow >/dev/null || die "detach"
stop_daemon
exec 3>&-
echo "ok: a held L2 read did not hold up a read of a cached cluster"
