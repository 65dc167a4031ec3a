#!/bin/bash
# Overlays made by qemu-img over a raw and over a qcow backing file (512-byte
# clusters, QEMU's choice with a backing file), data in both layers, the
# overlay larger than its backing file (zeros past the backing file's end).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

BSIZE=$((12 << 20))
SIZE=$((16 << 20))
run "$RANDIO" fill "$T/base.raw" "$BSIZE" "$SEED" 50
run "$QEMU_IMG" convert -q -f raw -O qcow "$T/base.raw" "$T/base.qcow"

for fmt in raw qcow; do
    img=$T/over-$fmt.qcow
    run "$QEMU_IMG" create -q -f qcow -b "$T/base.$fmt" -F "$fmt" "$img" "$SIZE"
    [ "$(qemu_cluster_size "$img")" = 512 ] || die "expected 512-byte clusters in a qemu-img overlay"
    # Before any write: the backing file shows through, then zeros.
    verify_from_qemu "$img" "$SIZE" 10
    cmp -n "$BSIZE" "$T/got.raw" "$T/base.raw" >&2 || die "$fmt backing: not read through"
    qemu_fill "$img" "$SIZE" 512 150 "$((SEED + 1))"
    verify_from_qemu "$img" "$SIZE" 30
done
