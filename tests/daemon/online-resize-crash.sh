#!/bin/bash
# Online resize, killed at each step of the L1 move (issue 13's proof):
# while a client does verified random I/O through the ring, the worker
# growing an 8 MiB image to 64 MiB (its L1 table must move: 4 to 32
# entries) is held at a step (a fault point's hold, or the fault shim's
# HOLD of the header's write) and killed there with SIGKILL.  The worker
# qcowd starts in its place serves the image with the old size (killed
# before the header names the new table) or the new one (after), qemu-img
# opens it with that size meanwhile, a retried resize succeeds, every read
# of the client checks out, and after detach qemu-img reads the image as
# the client's shadow and check finds no corruption.
#
# Then a resize that fails in the worker (a fault at a step, not a kill)
# answers the class OperationFailed, which qcowctl exits 10 for, saying
# the size the image has; after a failure past the header's write, what
# the client writes (into a new L2 table) survives a kill of the worker.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim
RINGIO=$DAEMON_TOOLS/ringio
OLD=$((8 * 1024 * 1024))
NEW=$((64 * 1024 * 1024))

field() { ctl --json query "$1" | tr -d ' \n' | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n1; }
held() { grep -q "hold $1" "$T/faultpoints.log" 2>/dev/null; }
qemu_size() {
    "$QEMU_IMG" info -U --output=json "$1" | tr -d ' \n' | sed -n 's/.*"virtual-size":\([0-9]*\).*/\1/p'
}

end_daemon() {
    stop_daemon || die "$1: qcowd did not exit cleanly"
}

# After detach: qemu-img reads the image as SHADOW, check finds no
# corruption (leaks are allowed: a kill may leave the old table's place).
image_matches() {
    [ "$(qemu_size "$T/g.qcow")" = "$NEW" ] || die "$1: qemu-img sees $(qemu_size "$T/g.qcow") bytes"
    "$QEMU_IMG" compare -F raw "$T/g.qcow" "$2" >/dev/null || die "$1: the image differs from $2"
    "$QCOWCTL" check "$T/g.qcow" >"$T/check" 2>&1
    case $? in 0|4) ;; *) die "$1: qcowctl check: $(cat "$T/check")" ;; esac
}

# kill_case NAME SHIM_RULES FAULTPOINTS HELD SIZE_AFTER
kill_case() {
    "$QEMU_IMG" create -f qcow "$T/g.qcow" 8M >/dev/null
    start_daemon_holding_at "$2" "$3"
    ctl attach -n g "$T/g.qcow" >/dev/null || die "$1: attach"
    rm -f "$T/mark"
    "$RINGIO" "$SOCK" g random "$T/g.raw" -s "$SEED" -n 60 -q 8 -m 65536 \
        -G "$NEW" -M "$T/mark" >"$T/rio.out" 2>"$T/rio.err" &
    local rio_pid=$! resize_pid pid
    wait_until test -e "$T/mark" || die "$1: the client did not start: $(cat "$T/rio.err")"
    ctl resize g "$NEW" >"$T/resize.out" 2>"$T/resize.err" &
    resize_pid=$!
    wait_until $4 || die "$1: the worker was not held: $(cat "$T/resize.err")"
    pid=$(worker_pid g)
    kill -9 "$pid"
    wait "$resize_pid" && die "$1: a resize whose worker was killed succeeded"
    wait_until replaced g "$pid" || die "$1: the worker was not replaced"
    [ "$(field g size)" = "$5" ] || die "$1: the new worker serves $(field g size) bytes, not $5"
    [ "$(qemu_size "$T/g.qcow")" = "$5" ] || die "$1: qemu-img opens it with $(qemu_size "$T/g.qcow")"
    release_holds               # the next worker passes the step
    ctl resize g "$NEW" >/dev/null || die "$1: the retried resize failed"
    [ "$(field g size)" = "$NEW" ] || die "$1: after the retried resize: $(ctl --json query g)"
    wait "$rio_pid" || die "$1: the client failed: $(cat "$T/rio.err")"
    grep -q "capacity $OLD -> $NEW" "$T/rio.out" || die "$1: the client said: $(cat "$T/rio.out")"
    grep -q " 0 failures" "$T/rio.out" || die "$1: the client said: $(cat "$T/rio.out")"
    "$RINGIO" "$SOCK" g read 0 $NEW | cmp - "$T/g.raw" || die "$1: the ring reads other data"
    ctl detach g >/dev/null || die "$1: detach"
    end_daemon "$1"
    image_matches "$1" "$T/g.raw"
    msg "ok: $1"
}

kill_case "killed as it begins" "" "begin-resize@1:hold" "held begin-resize" $OLD
kill_case "killed with the new L1 written" "" "resize-l1-written@1:hold" \
    "held resize-l1-written" $OLD
kill_case "killed as the header is written" "pwrite@g.qcow#0:1:HOLD" "" \
    "fault_injected HOLD" $OLD
kill_case "killed with the header written" "" "resize-header-written@1:hold" \
    "held resize-header-written" $NEW
kill_case "killed with the L1 moved" "" "resize-l1-moved@1:hold" "held resize-l1-moved" $NEW
kill_case "killed while zeroing" "" "resize-zeroing@1:hold" "held resize-zeroing" $NEW

# ---- failures: OperationFailed, and the image as its header says ------------
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$(printf '%03o' "$1")"; }
"$QEMU_IMG" create -f qcow "$T/g.qcow" 8M >/dev/null
start_daemon_holding_at "" "resize-l1-written@1,resize-l1-written@2,resize-header-written@3"
ctl attach -n g "$T/g.qcow" >/dev/null || die "attach"
pattern 0x11 65536 >"$T/p11"
"$RINGIO" "$SOCK" g write 0 65536 <"$T/p11" || die "write"
expect_exit 10 ctl resize g "$NEW"
grep -q "fault injected at step resize-l1-written" "$T/.err" || die "resize said: $(cat "$T/.err")"
grep -q "the image keeps its size, $OLD bytes" "$T/.err" || die "resize said: $(cat "$T/.err")"
ctl --verbose resize g "$NEW" >/dev/null 2>"$T/v.err" && die "the resize did not fail again"
grep -q "error class OperationFailed" "$T/v.err" || die "no class OperationFailed: $(cat "$T/v.err")"
[ "$(field g size)" = $OLD ] || die "after a failed resize: $(ctl --json query g)"
# The header is written, its flush fails: the worker follows the header.
expect_exit 10 ctl resize g "$NEW"
grep -q "fault injected at step resize-header-written" "$T/.err" || die "resize said: $(cat "$T/.err")"
grep -q "its header says $NEW bytes already" "$T/.err" || die "resize said: $(cat "$T/.err")"
# A write that needs a new L2 table (guest 6 MiB: L1 entry 3), then a kill.
pattern 0x66 65536 >"$T/p66"
"$RINGIO" "$SOCK" g write $((6 * 1024 * 1024)) 65536 <"$T/p66" || die "write at 6 MiB"
"$RINGIO" "$SOCK" g flush || die "flush"
pid=$(worker_pid g)
kill -9 "$pid"
wait_until replaced g "$pid" || die "the worker was not replaced"
[ "$(field g size)" = "$NEW" ] || die "the new worker serves $(field g size) bytes"
"$RINGIO" "$SOCK" g read 0 65536 | cmp - "$T/p11" || die "the write at 0 is lost"
"$RINGIO" "$SOCK" g read $((6 * 1024 * 1024)) 65536 | cmp - "$T/p66" ||
    die "the write after the failed resize is lost"
ctl detach g >/dev/null || die "detach"
end_daemon "failures"
truncate -s $NEW "$T/expect.raw"
dd if="$T/p11" of="$T/expect.raw" conv=notrunc status=none
dd if="$T/p66" of="$T/expect.raw" bs=65536 seek=96 conv=notrunc status=none
image_matches "failures" "$T/expect.raw"
msg "ok: failures"
