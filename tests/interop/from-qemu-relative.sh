#!/bin/bash
# A relative backing name resolves against the overlay's directory, not the
# current one: image and backing file in a subdirectory, qcowctl run from
# elsewhere (with a relative and an absolute path to the image).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((8 << 20))
mkdir -p "$T/images/sub" "$T/elsewhere" || die mkdir
run "$RANDIO" fill "$T/images/sub/base.raw" "$SIZE" "$SEED" 60
(cd "$T/images/sub" && "$QEMU_IMG" create -q -f qcow -b base.raw -F raw over.qcow) ||
    die "qemu-img create with a relative backing name failed"
# A decoy with the same name in the cwd must not be used.
run "$RANDIO" fill "$T/elsewhere/base.raw" "$SIZE" "$((SEED + 5))" 60
(cd "$T/images/sub" && qemu_fill over.qcow "$SIZE" 512 60 "$((SEED + 1))")
qemu_to_raw "$T/images/sub/over.qcow" "$T/ref.raw"

cd "$T/elsewhere" || die cd
run "$QCOWCTL" convert -O raw ../images/sub/over.qcow "$T/got1.raw"
cmp "$T/got1.raw" "$T/ref.raw" >&2 || die "relative backing name resolved against the cwd (relative image path)"
run "$QCOWCTL" convert -O raw "$T/images/sub/over.qcow" "$T/got2.raw"
cmp "$T/got2.raw" "$T/ref.raw" >&2 || die "relative backing name resolved wrongly (absolute image path)"
run "$QCOWCTL" read ../images/sub/over.qcow 4096 65536 >"$T/r"
extract "$T/ref.raw" 4096 65536 | cmp - "$T/r" >&2 || die "qcowctl read through a relative backing name"
# A missing relative backing file is reported by its name.
mv "$T/images/sub/base.raw" "$T/images/sub/base.moved"
expect_exit 1 "$QCOWCTL" read ../images/sub/over.qcow 0 512
grep -q 'base\.raw' "$T/.err" || die "missing backing file not named: $(cat "$T/.err")"
