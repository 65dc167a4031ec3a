#!/bin/bash
# qcowctl convert: qcow→qcow, qcow→qcow compressed (-c), raw→qcow, a backing
# chain flattened, plain→encrypted and back; each result compared with its
# source by qemu-img.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((16 << 20))
cd "$T" || die cd
run "$RANDIO" fill src.raw "$SIZE" "$SEED" 50
run "$QEMU_IMG" convert -q -f raw -O qcow src.raw src.qcow

run "$QCOWCTL" convert -O qcow src.qcow plain.qcow
assert_qemu_equal_raw plain.qcow src.raw

run "$QCOWCTL" convert -c -O qcow src.qcow comp.qcow
assert_qemu_equal_raw comp.qcow src.raw
[ "$(qemu_compressed_extents comp.qcow)" -gt 0 ] ||
    die "qcowctl convert -c wrote no compressed cluster (half the data is compressible)"
[ "$(fsize comp.qcow)" -lt "$(fsize plain.qcow)" ] || die "compressed output is not smaller"
expect_exit 0 "$QCOWCTL" check comp.qcow

run "$QCOWCTL" convert -f raw -O qcow src.raw fromraw.qcow
assert_qemu_equal_raw fromraw.qcow src.raw
run "$QCOWCTL" convert -O raw comp.qcow back.raw
cmp back.raw src.raw >&2 || die "compressed → raw differs"

# A chain (raw ← qcow overlay with writes) flattened into one image.
run "$QEMU_IMG" create -q -f qcow -b src.raw -F raw over.qcow
qemu_fill over.qcow "$SIZE" 512 60 "$((SEED + 1))"
qemu_to_raw over.qcow over.ref
run "$QCOWCTL" convert -O qcow over.qcow flat.qcow
assert_qemu_equal_raw flat.qcow over.ref
"$QEMU_IMG" info -f qcow flat.qcow >info.txt || die "qemu-img info flat.qcow"
grep -q "^backing file" info.txt && die "converted image still has a backing file"

# Plain → encrypted → plain.
printf 'convert-key\n' >key
run "$QCOWCTL" convert --target-key-file key -O qcow src.qcow enc.qcow
ENC=1 PASS=convert-key assert_qemu_equal_raw enc.qcow src.raw
run "$QCOWCTL" convert --key-file key -O raw enc.qcow dec.raw
cmp dec.raw src.raw >&2 || die "encrypted → raw differs"
