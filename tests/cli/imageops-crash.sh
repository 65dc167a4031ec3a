#!/bin/bash
# resize, commit and rebase stopped at each of their steps, as a crash
# stops them (the test build of qcowctl kills itself there: QCOWD_FAULTPOINT
# STEP:crash), or failing there: the image opens with the old size or the
# new one, reads what it read before (plus zeros past the old end), and
# check finds no corruption (leaked space at most); the operation then
# runs to its end.
. "$(dirname "$0")/lib.sh"
[ -n "$QEMU_IMG" ] && [ -n "$QEMU_IO" ] || { echo "$TEST_NAME: SKIP: no qemu-img/qemu-io" >&2; exit 77; }
: "${TEST_TOOLS:=$top_builddir/tests/tools}"
HOOKED=$TEST_TOOLS/qcowctl-hooks
[ -x "$HOOKED" ] || fail "$HOOKED not built"
M=$((1 << 20))
LOG=$T/faults.log

virtual_size() { "$QEMU_IMG" info --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }

# hooked RULE ARGS...: the test build of qcowctl with the fault points.
hooked() {
    rc=0
    QCOWD_FAULTPOINT="$1" QCOWD_FAULTPOINT_LOG="$LOG" "$HOOKED" "${@:2}" >"$T/out" 2>"$T/err" ||
        rc=$?
}

# stopped_at STEP: the last run died at STEP, as asked.
stopped_at() {
    [ "$rc" = 137 ] || { cat "$T/err" >&2; fail "$1: exit status $rc, expected 137 (killed)"; }
    grep -q "^crash $1 " "$LOG" || fail "$1: the fault point was not reached"
}

# whole IMAGE: no corruption; leaks are allowed (exit 4) and given back.
whole() {
    qc check "$1"
    [ "$rc" = 0 ] || [ "$rc" = 4 ] || { cat "$T/out" >&2; fail "$1: check exited $rc"; }
    expect_rc 0 check --repair "$1"
    expect_rc 0 check "$1"
}

# reads_as IMAGE RAW: the guest reads RAW cut or padded with zeros to the
# image's size.
reads_as() {
    cp "$2" "$T/want.raw"
    truncate -s "$(virtual_size "$1")" "$T/want.raw"
    "$QEMU_IMG" compare -q -f raw "$T/want.raw" "$1" || fail "$1 does not read as $2"
}

# ---- resize: every step of a grow that moves the L1 table -------------------
"$QEMU_IMG" create -f qcow orig.qcow 6M >/dev/null
"$QEMU_IO" -c "write -P 0x61 0 1M" -c "write -P 0x62 5M 1M" orig.qcow >/dev/null
"$QEMU_IMG" convert -O raw orig.qcow orig.raw
for step in resize-l1-written resize-header-written resize-l1-moved resize-zeroing; do
    cp orig.qcow g.qcow
    hooked "$step:crash" resize g.qcow 300M
    stopped_at "$step"
    size=$(virtual_size g.qcow)
    [ "$size" = $((6 * M)) ] || [ "$size" = $((300 * M)) ] || fail "$step: size $size"
    reads_as g.qcow orig.raw
    whole g.qcow
    expect_rc 0 resize g.qcow 300M
    reads_as g.qcow orig.raw
    expect_rc 0 check g.qcow
done
# Where the steps lie: before the header, the old size; after, the new.
cp orig.qcow g.qcow
hooked "resize-l1-written:crash" resize g.qcow 300M
[ "$(virtual_size g.qcow)" = $((6 * M)) ] || fail "the header changed before the new L1 was written"
cp orig.qcow g.qcow
hooked "resize-l1-moved:crash" resize g.qcow 300M
[ "$(virtual_size g.qcow)" = $((300 * M)) ] || fail "the new size was not written at resize-l1-moved"
# A failure (not a crash) at a step: a clear error, the image whole.
for step in begin-resize resize-l1-written resize-header-written; do
    cp orig.qcow g.qcow
    hooked "$step" resize g.qcow 300M
    [ "$rc" = 1 ] || fail "$step: a failed resize exited $rc"
    grep -q "fault injected at step $step" "$T/err" || fail "$step: $(cat "$T/err")"
    reads_as g.qcow orig.raw
    whole g.qcow
done

# An overlay over a longer backing file: its new end reads as zeros once
# the resize is done; stopped before, the old size.
"$QEMU_IMG" create -f qcow long.qcow 8M >/dev/null
"$QEMU_IO" -c "write -P 0x66 0 8M" long.qcow >/dev/null
"$QEMU_IMG" create -f qcow -b long.qcow -F qcow short0.qcow 3M >/dev/null
"$QEMU_IMG" convert -O raw short0.qcow short.raw
cp short0.qcow s.qcow
hooked "resize-l1-written:crash" resize s.qcow 8M
stopped_at resize-l1-written
reads_as s.qcow short.raw
whole s.qcow
expect_rc 0 resize s.qcow 8M
reads_as s.qcow short.raw

# ---- shrink ----------------------------------------------------------------
cp orig.qcow k.qcow
hooked "resize-header-written:crash" resize --shrink k.qcow 2M
stopped_at resize-header-written
reads_as k.qcow orig.raw
whole k.qcow

# ---- commit ----------------------------------------------------------------
"$QEMU_IMG" create -f qcow base0.qcow 4M >/dev/null
"$QEMU_IO" -c "write -P 0x11 0 4M" base0.qcow >/dev/null
cp base0.qcow base.qcow
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow top0.qcow 8M >/dev/null
for step in begin-commit resize-l1-written resize-header-written commit-copied; do
    cp base0.qcow base.qcow
    cp top0.qcow top.qcow
    "$QEMU_IO" -c "write -P 0x21 1M 1M" -c "write -P 0x22 6M 1M" top.qcow >/dev/null
    "$QEMU_IMG" convert -O raw top.qcow top.raw
    "$QEMU_IMG" convert -O raw base.qcow base.raw
    hooked "$step:crash" commit top.qcow
    stopped_at "$step"
    reads_as top.qcow top.raw
    whole base.qcow
    whole top.qcow
    expect_rc 0 commit top.qcow
    reads_as top.qcow top.raw
    reads_as base.qcow top.raw
done

# ---- rebase ----------------------------------------------------------------
"$QEMU_IMG" create -f qcow -b base0.qcow -F qcow mid0.qcow >/dev/null
"$QEMU_IO" -c "write -P 0x31 2M 1M" mid0.qcow >/dev/null
part=$(printf 'n%.0s' {1..200})
mkdir -p "$part"
for step in rebase-copied rebase-name-written rebase-header-written; do
    cp base0.qcow base.qcow
    cp mid0.qcow mid.qcow
    cp base0.qcow "$part/base.qcow"
    "$QEMU_IMG" create -f qcow -b mid.qcow -F qcow o.qcow >/dev/null
    "$QEMU_IO" -c "write -P 0x41 3M 512k" o.qcow >/dev/null
    "$QEMU_IMG" convert -O raw o.qcow o.raw
    # Onto the base under a long name (put apart at the end of the file).
    hooked "$step:crash" rebase -b "$part/base.qcow" o.qcow
    stopped_at "$step"
    reads_as o.qcow o.raw
    whole o.qcow
    expect_rc 0 rebase -b "$part/base.qcow" o.qcow
    reads_as o.qcow o.raw
    expect_rc 0 check o.qcow
done
exit 0
