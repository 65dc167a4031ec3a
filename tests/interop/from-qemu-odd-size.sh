#!/bin/bash
# Virtual sizes that are not a multiple of the cluster size (64M+512 and
# 3000K): the last partial cluster reads right and nothing reads past it.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

for size in $(( (64 << 20) + 512 )) $((3000 << 10)); do
    img=$T/odd-$size.qcow
    run "$QEMU_IMG" create -q -f qcow "$img" "$size"
    qemu_fill "$img" "$size" 4096 80 "$((SEED + size))"
    # Make sure the very last sector has data.
    run "$QEMU_IO" -f qcow -c "write -P 0x5a $((size - 512)) 512" "$img" >/dev/null
    verify_from_qemu "$img" "$size" 20
    run "$QCOWCTL" read "$img" "$((size - 512))" 512 >"$T/last"
    head -c 512 /dev/zero | tr '\0' '\132' | cmp - "$T/last" >&2 || die "last sector of $img"
    # A read past the end is refused.
    expect_exit 1 "$QCOWCTL" read "$img" "$((size - 512))" 1024
done
