#!/bin/bash
# A real qcowd-worker serving a ring, driven by libqcowring: random mixed I/O
# (512 B to 1 MiB, queue depths 1 to 128) against a shadow, then qemu-img
# must agree with the shadow.  The waiting strategies vary between runs: the
# client's default spin, a client that sleeps at once (-S 0), a worker that
# busy-polls (-p).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/worker/lib.sh"
require_qemu
R="$WORKER_TOOLS/ring_random"
seed=$QCOWD_TEST_SEED

run() { # image shadow args...
    local img=$1 shadow=$2; shift 2
    "$R" -s "$seed" "$@" "$QCOWD_WORKER" "$img" "$shadow" >/dev/null 2>"$T/worker.log" ||
        { cat "$T/worker.log" >&2; die "ring_random $* on $img"; }
}

declare -A waiting=([1]="" [8]="-S 0" [128]="-p 50")
for qd in 1 8 128; do
    "$QEMU_IMG" create -f qcow "$T/q$qd.qcow" 64M >/dev/null
    # shellcheck disable=SC2086 # the options are words
    run "$T/q$qd.qcow" "$T/q$qd.raw" -n 800 -q "$qd" -m 1048576 ${waiting[$qd]}
    compare_with_shadow "$T/q$qd.qcow" "$T/q$qd.raw"
done

"$QEMU_IMG" create -f qcow "$T/wb.qcow" 64M >/dev/null
run "$T/wb.qcow" "$T/wb.raw" -n 800 -q 32 -w -p 20 -S 0
compare_with_shadow "$T/wb.qcow" "$T/wb.raw"

make_filled_qemu_image "$T/base.qcow"
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow "$T/over.qcow" >/dev/null
run "$T/over.qcow" "$T/over.raw" -n 800 -q 32 -m 131072
compare_with_shadow "$T/over.qcow" "$T/over.raw"

"$QEMU_IMG" convert -c -O qcow "$T/base.qcow" "$T/comp.qcow" 2>/dev/null || true
run "$T/comp.qcow" "$T/comp.raw" -n 800 -q 16 -m 65536
compare_with_shadow "$T/comp.qcow" "$T/comp.raw"

"$QEMU_IMG" create -f qcow --object secret,id=s0,data=sesame \
    -o encrypt.format=aes,encrypt.key-secret=s0 "$T/enc.qcow" 64M >/dev/null
run "$T/enc.qcow" "$T/enc.raw" -n 600 -q 32 -k sesame
compare_with_shadow "$T/enc.qcow" "$T/enc.raw" sesame
