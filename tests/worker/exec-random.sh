#!/bin/bash
# The asynchronous executor against qemu-img: random mixed I/O at several
# queue depths on plain, backed, compressed and encrypted images, O_DIRECT
# and buffered; the image must then equal its shadow in qemu-img's eyes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/worker/lib.sh"
require_qemu
X="$WORKER_TOOLS/exec_random"
seed=$QCOWD_TEST_SEED

run() { # image shadow args...
    local img=$1 shadow=$2; shift 2
    "$X" -s "$seed" "$@" "$img" "$shadow" >/dev/null || die "exec_random $* on $img"
}

"$QEMU_IMG" create -f qcow "$T/plain.qcow" 64M >/dev/null
run "$T/plain.qcow" "$T/plain.raw" -n 1500 -q 32 -d
compare_with_shadow "$T/plain.qcow" "$T/plain.raw"

make_filled_qemu_image "$T/base.qcow"
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow "$T/over.qcow" >/dev/null
run "$T/over.qcow" "$T/over.raw" -n 1500 -q 64 -m 65536
compare_with_shadow "$T/over.qcow" "$T/over.raw"

# The same with 4 L2 tables cached per layer: most plans (reads, writes,
# the fills from the backing file) wait for asynchronous table reads.
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow "$T/miss.qcow" >/dev/null
run "$T/miss.qcow" "$T/miss.raw" -n 1500 -q 64 -m 65536 -c 1 -d
compare_with_shadow "$T/miss.qcow" "$T/miss.raw"
head -c 32M /dev/urandom >"$T/full.raw"
"$QEMU_IMG" convert -f raw -O qcow "$T/full.raw" "$T/full.qcow"
run "$T/full.qcow" "$T/full.shadow" -n 1500 -q 32 -c 1 -d
compare_with_shadow "$T/full.qcow" "$T/full.shadow"

"$QEMU_IMG" convert -O raw "$T/base.qcow" "$T/base.raw"
"$QEMU_IMG" create -f qcow -b base.raw -F raw -o cluster_size=4096 "$T/over4k.qcow" >/dev/null 2>&1 ||
    "$QEMU_IMG" create -f qcow -b base.raw -F raw "$T/over4k.qcow" >/dev/null
run "$T/over4k.qcow" "$T/over4k.raw" -n 1500 -q 128 -m 1048576 -d
compare_with_shadow "$T/over4k.qcow" "$T/over4k.raw"

"$QEMU_IMG" convert -c -O qcow "$T/base.qcow" "$T/comp.qcow" 2>/dev/null || true
"$QEMU_IMG" compare "$T/base.qcow" "$T/comp.qcow" >/dev/null || die "qemu-img convert -c"
run "$T/comp.qcow" "$T/comp.raw" -n 1500 -q 16 -m 20000
compare_with_shadow "$T/comp.qcow" "$T/comp.raw"
"$QEMU_IMG" convert -c -O qcow "$T/base.qcow" "$T/comp2.qcow" 2>/dev/null || true
run "$T/comp2.qcow" "$T/comp2.raw" -n 1500 -q 16 -m 20000 -c 1
compare_with_shadow "$T/comp2.qcow" "$T/comp2.raw"

"$QEMU_IMG" create -f qcow --object secret,id=s0,data=sesame \
    -o encrypt.format=aes,encrypt.key-secret=s0 "$T/enc.qcow" 64M >/dev/null
run "$T/enc.qcow" "$T/enc.raw" -n 1000 -q 32 -k sesame -d
compare_with_shadow "$T/enc.qcow" "$T/enc.raw" sesame

cp "$T/base.raw" "$T/disk.raw"
run "$T/disk.raw" "$T/disk.shadow" -n 1500 -q 32 -d
cmp "$T/disk.raw" "$T/disk.shadow" || die "raw image differs from its shadow"
