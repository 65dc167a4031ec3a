#!/bin/bash
# A qcow image made and filled by qemu-img/qemu-io (default 4 KiB clusters)
# reads the same through qcowctl convert and qcowctl read.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((64 << 20))
run "$QEMU_IMG" create -q -f qcow "$T/img.qcow" "$SIZE"
[ "$(qemu_cluster_size "$T/img.qcow")" = 4096 ] || die "expected qemu-img's default 4 KiB clusters"
qemu_fill "$T/img.qcow" "$SIZE" 4096 150 "$SEED"
verify_from_qemu "$T/img.qcow" "$SIZE" 40

# Overwrites of allocated clusters by QEMU, then read again.
qemu_fill "$T/img.qcow" "$SIZE" 4096 60 "$((SEED + 1))"
verify_from_qemu "$T/img.qcow" "$SIZE" 20
