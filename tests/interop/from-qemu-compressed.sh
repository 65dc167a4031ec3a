#!/bin/bash
# Compressed clusters written by `qemu-img convert -c -O qcow` read back
# through qcowctl, among plain clusters (incompressible data) and holes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((32 << 20))
run "$RANDIO" fill "$T/src.raw" "$SIZE" "$SEED" 40
qemu_convert_compressed -f raw -O qcow "$T/src.raw" "$T/img.qcow"
"$QEMU_IMG" compare -q -f qcow -F raw "$T/img.qcow" "$T/src.raw" ||
    die "qemu-img convert -c wrote a wrong image (QEMU bug, not qcowd)"
# There must be compressed clusters (qemu-img map shows no host offset for them).
[ "$(qemu_compressed_extents "$T/img.qcow")" -gt 0 ] ||
    die "qemu-img convert -c wrote no compressed cluster; the test data is wrong"
verify_from_qemu "$T/img.qcow" "$SIZE" 60
cmp "$T/got.raw" "$T/src.raw" >&2 || die "qcowctl convert -O raw differs from the source"
