#!/bin/bash
# Partial-cluster writes into overlays made by qcowctl over a raw and over a
# qcow backing file, with 512-byte and 4 KiB clusters.  qcowd copies the
# rest of each newly allocated cluster from the backing file, so the overlay
# must equal backing+writes; the backing file (15 MiB + 512, not a cluster
# multiple) is shorter than the overlay (20 MiB): zeros past its end.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

BSIZE=$(( (15 << 20) + 512 ))
SIZE=$((20 << 20))
cd "$T" || die cd
run "$RANDIO" fill base.raw "$BSIZE" "$SEED" 60
run "$QEMU_IMG" convert -q -f raw -O qcow base.raw base.qcow
cp base.raw base.copy || die cp

for bfmt in raw qcow; do
    for cl in 512 4096; do
        img=over-$bfmt-$cl.qcow
        run "$QCOWCTL" create -b "base.$bfmt" -F "$bfmt" --cluster-size "$cl" "$img" "$SIZE"
        [ "$(qemu_cluster_size "$img")" = "$cl" ] || die "$img: cluster size $(qemu_cluster_size "$img")"
        cp base.raw shadow || die cp
        truncate -s "$SIZE" shadow
        assert_qemu_equal_raw "$img" shadow
        qcowctl_random_writes "$img" shadow "$SIZE" "$cl" "$(nwrites 100)" "$((SEED + cl))"
        assert_qemu_equal_raw "$img" shadow
        expect_exit 0 "$QCOWCTL" check "$img"
        cmp base.raw base.copy >&2 || die "the raw backing file was modified"
    done
done
"$QEMU_IMG" compare -q -f qcow -F raw base.qcow base.raw || die "the qcow backing file was modified"
