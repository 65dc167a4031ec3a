#!/bin/bash
# qcowctl convert: byte-exact copies to raw and qcow, zero ranges skipped,
# compression, chains flattened, odd sizes.
. "$(dirname "$0")/lib.sh"

# Source: random data, a run of zeros written explicitly, text, holes.
expect_rc 0 create -q src.qcow 8M
head -c 300000 /dev/urandom >rand
expect_rc 0 write -q src.qcow 0 <rand
expect_rc 0 write -q --pattern 0 src.qcow 1M 1M
head -c 500000 <(yes hello) >text
expect_rc 0 write -q src.qcow 5000000 <text
"$QCOWCTL" read src.qcow 0 8M >src.bin

# To raw: the same bytes, holes left as holes.
expect_rc 0 convert -O raw src.qcow dst.raw
[ "$(file_size dst.raw)" = 8388608 ] || fail "raw target size"
cmp src.bin dst.raw || fail "raw copy differs"
[ "$(du -k dst.raw | cut -f1)" -lt 4096 ] || fail "zeros were written to the raw target"
# -O raw is the default.
expect_rc 0 convert src.qcow dst2.raw
cmp src.bin dst2.raw || fail "default target differs"

# To qcow: same bytes, zero clusters not allocated.
for cs in 512 4K 64K; do
    expect_rc 0 convert -O qcow --cluster-size $cs src.qcow dst-$cs.qcow
    "$QCOWCTL" read dst-$cs.qcow 0 8M | cmp - src.bin || fail "qcow copy ($cs clusters) differs"
    expect_rc 0 check dst-$cs.qcow
done
expect_rc 0 --json info dst-4K.qcow
# 300000 bytes at 0 and 500000 at 5000000: 74 + 123 clusters (the explicit
# zeros: none).
out_has '"allocated-clusters": 197'

# Compressed.
expect_rc 0 convert -c -O qcow src.qcow dst-c.qcow
"$QCOWCTL" read dst-c.qcow 0 8M | cmp - src.bin || fail "compressed copy differs"
expect_rc 0 check dst-c.qcow
expect_rc 0 --json info dst-c.qcow
grep -q '"compressed-clusters": [1-9]' "$T/out" || fail "nothing was compressed"
[ "$(file_size dst-c.qcow)" -lt "$(file_size dst-4K.qcow)" ] || fail "compression saved nothing"

# A chain is flattened.
expect_rc 0 create -q -b src.qcow over.qcow
expect_rc 0 write -q --pattern 0x77 over.qcow 4M 100000
"$QCOWCTL" read over.qcow 0 8M >over.bin
expect_rc 0 convert -O qcow over.qcow flat.qcow
"$QCOWCTL" read flat.qcow 0 8M | cmp - over.bin || fail "flattened copy differs"
expect_rc 0 --json info flat.qcow
if grep -q '"backing-filename"' "$T/out"; then fail "the copy kept a backing file"; fi

# Raw source of an odd size.
head -c 1000001 /dev/urandom >odd.raw
expect_rc 0 convert -f raw -O qcow odd.raw odd.qcow
"$QCOWCTL" read odd.qcow 0 1000001 | cmp - odd.raw || fail "odd-size copy differs"
expect_rc 0 convert -O raw odd.qcow odd2.raw
cmp odd.raw <(head -c 1000001 odd2.raw) || fail "odd-size round trip differs"

# Refusals.
expect_rc 1 convert src.qcow src.qcow
err_has "src.qcow: is the source image"
"$QCOWCTL" read src.qcow 0 8M | cmp - src.bin || fail "converting onto the source damaged it"
expect_rc 1 convert -O qcow over.qcow src.qcow
err_has "in its backing chain"
printf 'secret\n' >key
expect_rc 1 convert -c -O qcow --target-key-file key src.qcow x.qcow
err_has "compression is not possible on an encrypted image"
[ ! -e x.qcow ] || fail "refused convert left a file"
expect_rc 2 convert --target-key-file key -O raw src.qcow x.raw
expect_rc 2 convert --cluster-size 4K src.qcow x.raw

# Against qemu-img, when there.
if have_qemu; then
    "$QEMU_IMG" convert -O raw src.qcow qemu.raw
    cmp qemu.raw dst.raw || fail "differs from qemu-img convert"
    "$QEMU_IMG" compare -q src.qcow dst-c.qcow || fail "qemu-img compare: compressed copy"
    "$QEMU_IMG" compare -q over.qcow flat.qcow || fail "qemu-img compare: flattened copy"
    "$QEMU_IMG" create -q -f qcow q.qcow 4M
    "$QEMU_IO" -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 3M 4K' q.qcow >/dev/null
    expect_rc 0 convert -O raw q.qcow q.raw
    "$QEMU_IMG" convert -O raw q.qcow q2.raw
    cmp q.raw q2.raw || fail "qemu image: differs from qemu-img convert"
    "$QEMU_IMG" convert -c -O qcow q.qcow qc.qcow || true
    expect_rc 0 convert -O raw qc.qcow qc.raw
    cmp q.raw qc.raw || fail "qemu compressed image: differs"
fi
exit 0
