#!/bin/bash
# 512-byte and 64 KiB clusters (qemu-img cannot choose the cluster size of a
# qcow image, so qcowctl creates the empty image; QEMU writes all the L2
# tables and data; qcowd reads them back).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
for cl in 512 65536; do
    img=$T/c$cl.qcow
    run "$QCOWCTL" create --cluster-size "$cl" "$img" "$SIZE"
    [ "$(qemu_cluster_size "$img")" = "$cl" ] ||
        die "qcowctl create --cluster-size $cl: qemu-img sees cluster size $(qemu_cluster_size "$img")"
    qemu_fill "$img" "$SIZE" "$cl" 120 "$((SEED + cl))"
    verify_from_qemu "$img" "$SIZE" 30
done
