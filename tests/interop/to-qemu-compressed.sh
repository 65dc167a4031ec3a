#!/bin/bash
# Writes into compressed clusters: the source is made by qemu-img convert -c,
# qcowctl writes into it (decompress, merge, write to a new cluster), QEMU
# must see source+writes.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
run "$RANDIO" fill "$T/src.raw" "$SIZE" "$SEED" 70
qemu_convert_compressed -f raw -O qcow "$T/src.raw" "$T/img.qcow"
"$QEMU_IMG" compare -q -f qcow -F raw "$T/img.qcow" "$T/src.raw" ||
    die "qemu-img convert -c wrote a wrong image (QEMU bug, not qcowd)"
before=$(qemu_compressed_extents "$T/img.qcow")
[ "$before" -gt 0 ] || die "no compressed clusters in the source; test data is wrong"

cp "$T/src.raw" "$T/shadow" || die cp
qcowctl_random_writes "$T/img.qcow" "$T/shadow" "$SIZE" 4096 "$(nwrites 150)" "$SEED"
assert_qemu_equal_raw "$T/img.qcow" "$T/shadow"
# Rewriting a compressed cluster leaves its old stream unreferenced inside
# the file: leaks (exit 4) are expected, corruption (3) is not.
"$QCOWCTL" check "$T/img.qcow" >"$T/check.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || { cat "$T/check.out" >&2; die "qcowctl check: exit $rc, expected 0 or 4 (leaks only)"; }
after=$(qemu_compressed_extents "$T/img.qcow")
msg "compressed extents: $before before, $after after the writes"
