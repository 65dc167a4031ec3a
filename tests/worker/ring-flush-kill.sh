#!/bin/bash
# Nothing acknowledged after a flush is lost: random writes through the ring,
# a flush completes, the worker is killed with SIGKILL at once; the image
# must then hold every write (qemu-img compare, and byte for byte).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/worker/lib.sh"
require_qemu
R="$WORKER_TOOLS/ring_random"

for mode in "" -w; do
    rm -f "$T/k.qcow"
    "$QEMU_IMG" create -f qcow "$T/k.qcow" 64M >/dev/null
    "$R" -s "$QCOWD_TEST_SEED" -n 1000 -q 32 -K $mode "$QCOWD_WORKER" "$T/k.qcow" "$T/k.raw" \
        >/dev/null 2>"$T/worker.log" || { cat "$T/worker.log" >&2; die "ring_random -K $mode"; }
    compare_with_shadow "$T/k.qcow" "$T/k.raw"
    # And byte for byte, as another QEMU reader sees it.
    "$QEMU_IMG" convert -O raw "$T/k.qcow" "$T/k.qemu.raw" || die "qemu-img convert"
    cmp "$T/k.qemu.raw" "$T/k.raw" || die "flushed data lost after SIGKILL ($mode)"
done
