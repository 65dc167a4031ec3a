#!/bin/bash
# A three-deep chain made by QEMU: raw base ← qcow mid ← qcow top, data at
# every level, qcowd must read each layer where QEMU does.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
run "$RANDIO" fill "$T/base.raw" "$SIZE" "$SEED" 40
run "$QEMU_IMG" create -q -f qcow -b base.raw -F raw "$T/mid.qcow"
qemu_fill "$T/mid.qcow" "$SIZE" 512 80 "$((SEED + 1))"
run "$QEMU_IMG" create -q -f qcow -b mid.qcow -F qcow "$T/top.qcow"
qemu_fill "$T/top.qcow" "$SIZE" 512 80 "$((SEED + 2))"
verify_from_qemu "$T/top.qcow" "$SIZE" 40
verify_from_qemu "$T/mid.qcow" "$SIZE" 10
