#!/bin/bash
# A host short of kernel AIO slots.  QCOWD_AIO_LEDGER stands in for
# fs.aio-max-nr and fs.aio-nr (a budget of 14 slots here, so the host's own
# sysctl is not touched): each idle image holds 4; a busy one grows only as
# far as the budget lets it, serves correctly at that smaller depth, says so
# in its stats and gives the slots back once idle; an attach that finds
# fewer than 4 free fails with LimitReached naming aio-max-nr and the
# figures, and succeeds again once slots are free.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
RINGIO=$DAEMON_TOOLS/ringio

export QCOWD_AIO_LEDGER=$T/aio-ledger
echo "14 0" >"$QCOWD_AIO_LEDGER"
ledger_used() { cut -d' ' -f2 <"$QCOWD_AIO_LEDGER"; }
ledger_is() { [ "$(ledger_used)" -eq "$1" ]; }
# A field of the "aio" object in an image's stats.
aio() { ctl --json stats "$1" | tr -d ' \n' | sed -n "s/.*\"aio\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"; }
depth_is() { [ "$(aio "$1" depth)" = "$2" ]; }

start_daemon
for n in a b c d e; do
    "$QEMU_IMG" create -f qcow "$T/$n.qcow" 16M >/dev/null
done
for n in a b c; do
    ctl attach "$T/$n.qcow" >/dev/null || die "attach $n.qcow with slots free"
done
ledger_is 12 || die "three idle images hold $(ledger_used) slots, expected 12"
ctl version | grep -q "kernel AIO slots: 12 of 14 in use" ||
    die "version does not report the budget: $(ctl version)"

# Busy at queue depth 32 with 2 slots free: a runs at depth 6, correctly.
"$RINGIO" "$SOCK" a.qcow random "$T/a.raw" -s "$SEED" -n 1500 -q 32 >/dev/null ||
    die "random I/O at a reduced depth failed"
peak=$(aio a.qcow peak-depth) limited=$(aio a.qcow limited)
[ "$peak" = 6 ] || die "a busy image grew to depth $peak, the budget allowed 6"
[ "${limited:-0}" -gt 0 ] || die "stats do not count the growth the budget refused"
ctl stats a.qcow | grep -q "limited by the host's budget $limited time" ||
    die "qcowctl stats does not show the limited depth"

# Idle again: back to 4, the 2 slots returned.
wait_until depth_is a.qcow 4 || die "an idle image kept depth $(aio a.qcow depth)"
wait_until ledger_is 12 || die "the ledger still counts $(ledger_used) slots"

# 2 slots free, an image needs 4: LimitReached (exit 9), saying which limit.
expect_exit 9 ctl attach "$T/d.qcow"
grep -q "aio-max-nr" "$T/.err" && grep -q "12 of 14" "$T/.err" ||
    die "the refusal does not name aio-max-nr and its figures: $(cat "$T/.err")"
ledger_is 12 || die "a refused attach left $(ledger_used) slots counted"

# Slots freed, two attaches race for 4: one wins, the other hears why.
ctl detach c.qcow >/dev/null || die "detach c.qcow"
wait_until ledger_is 8 || die "a detached image left its slots counted ($(ledger_used))"
ctl attach "$T/d.qcow" >"$T/d.out" 2>&1 & d=$!
ctl attach "$T/e.qcow" >"$T/e.out" 2>&1 & e=$!
wait "$d"; rd=$?
wait "$e"; re=$?
[ $((rd + re)) -eq 9 ] || die "racing attaches exited $rd and $re, expected 0 and 9"
grep -q "aio-max-nr" "$T/d.out" "$T/e.out" || die "the losing attach does not name aio-max-nr"
ledger_is 12 || die "after the race the ledger says $(ledger_used), expected 12"

# The images still serve; everything detached leaves nothing counted.
printf 'still serving' | head -c 512 >"$T/blk"
head -c $((512 - 13)) /dev/zero >>"$T/blk"
"$RINGIO" "$SOCK" b.qcow write 0 512 <"$T/blk" || die "b.qcow stopped serving"
"$RINGIO" "$SOCK" b.qcow read 0 512 >"$T/back" && cmp -s "$T/blk" "$T/back" ||
    die "b.qcow read back the wrong bytes"
stop_daemon || die "qcowd did not exit cleanly"
ledger_is 0 || die "the ledger still counts $(ledger_used) slots after every image went"
"$QEMU_IMG" compare -F raw "$T/a.qcow" "$T/a.raw" >/dev/null ||
    die "a.qcow differs from its shadow after I/O at a reduced depth"
msg "budget 14: depth 6 instead of 576 while busy ($limited refusals), LimitReached past it"
