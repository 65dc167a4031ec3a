#!/bin/bash
# Growing the file and flushing without IOCB_CMD_FDSYNC do not hold up the
# image (issue 11).  1: a write that needs the file to grow waits for the
# growth (an ftruncate the fault shim holds back) while a read of an
# allocated cluster completes; released, the write completes.  2: with the
# kernel's asynchronous fdsync refused (QCOWD_TEST_NO_AIO_FDSYNC), a flush
# waits for its fdatasync (held) while a read completes.  Then the image
# holds the writes and checks clean.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

img=$T/grow.qcow
"$QEMU_IMG" create -f qcow "$img" 64M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 0 4k' "$img" >/dev/null || die "qemu-io write"
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
pattern 0x11 4096 >"$T/d11"

# held_phase NAME RULE PATTERN OPS...: with RULE holding a call, OPS go in
# at once and the last one (a read of 0) completes while the call is held;
# the rest complete once it is released.
held_phase() {
    local name=$1 rule=$2 logged=$3
    shift 3
    start_daemon_holding "$rule"
    ctl attach "$img" >/dev/null || die "$name: attach"
    "$DAEMON_TOOLS/ringio" "$SOCK" grow.qcow read 0 4096 | cmp -s - "$T/d11" ||
        die "$name: the first read of 0 is wrong"
    "$DAEMON_TOOLS/ringio" "$SOCK" grow.qcow order "$@" >"$T/order.out" 2>"$T/order.err" &
    local ops=$! last=$(($# - 1))
    wait_until fault_injected "$logged" || { release_holds; die "$name: nothing was held"; }
    # (The bound only ends a run that fails: a loop blocked in the held call.)
    if ! WAIT_LIMIT_S=60 wait_until grep -q "^order: $last" "$T/order.out"; then
        release_holds
        die "$name: a read did not complete while the call was held"
    fi
    kill -0 "$ops" 2>/dev/null || die "$name: ringio ended before the call was released"
    release_holds
    wait "$ops" || die "$name: the requests failed: $(cat "$T/order.err")"
    ctl detach grow.qcow >/dev/null || die "$name: detach"
    stop_daemon || die "$name: qcowd failed"
    exec 3>&-
    msg "$name: $(cat "$T/order.out")"
}

# A new table and cluster at 32 MiB: past the end of the file.
held_phase growth "ftruncate@grow.qcow:1:HOLD" "ftruncate #1 @grow.qcow -> HOLD" \
    w:4096@33554432 r:4096@0=11
[ "$(cat "$T/order.out")" = "order: 1 0" ] || die "growth: unexpected completions"

# A write, then a flush whose fdatasync runs on the helper thread (held).
export QCOWD_TEST_NO_AIO_FDSYNC=1
held_phase fdatasync "fdatasync@grow.qcow:1:HOLD" "fdatasync #1 @grow.qcow -> HOLD" \
    w:4096@4096 f r:4096@0=11
unset QCOWD_TEST_NO_AIO_FDSYNC
grep -q "^order: 2 " "$T/order.out" || die "fdatasync: unexpected completions"

"$QEMU_IO" -f qcow -c 'read -P 0x11 0 4k' -c 'read -P 0x5a 4k 4k' -c 'read -P 0x5a 32M 4k' \
    -c 'read -P 0 8k 4k' "$img" >"$T/qio.out" || die "the writes did not read back: $(cat "$T/qio.out")"
grep -q "Pattern verification failed" "$T/qio.out" && die "wrong bytes: $(cat "$T/qio.out")"
"$QCOWCTL" check "$img" >"$T/check.out" 2>&1 || die "qcowctl check: $(cat "$T/check.out")"
echo "ok: a held growth and a held fallback fdatasync did not hold up reads"
