#!/bin/bash
# Real NBD clients through a supervised export of an attached image: what
# qemu-img, qemu-io, nbdcopy and nbdinfo read and write over nbd+unix://
# must be byte-exact against the image read offline, the extents they see
# must be `qcowctl map`'s, and trim and write-zeroes must read back zeros.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
start_nbd_daemon

# A qcow image over a qcow backing file: data in both layers, holes between.
"$QEMU_IMG" create -f qcow "$T/base.qcow" 32M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 4M 1M' -c 'write -P 0x22 30M 64K' "$T/base.qcow" >/dev/null
"$QEMU_IMG" create -f qcow -b "$T/base.qcow" -F qcow "$T/d.qcow" 32M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x33 1M 12K' -c 'write -P 0x44 4608K 8K' \
    -c 'write -P 0x55 16M 2M' "$T/d.qcow" >/dev/null
"$QEMU_IMG" convert -O raw "$T/d.qcow" "$T/ref.raw"
qcowctl_map "$T/d.qcow" >"$T/map.offline"

ctl attach "$T/d.qcow" >/dev/null || die "attach"
ctl export add d.qcow --nbd "unix:$T/e.sock" >/dev/null || die "export add"
U=$(uri_of "$T/e.sock")

# Reading: qemu-img, nbdcopy, qemu-io.
"$QEMU_IMG" convert -f raw -O raw "$U" "$T/qemu.raw" || die "qemu-img convert from NBD"
assert_same "$T/ref.raw" "$T/qemu.raw" "qemu-img read over NBD differs from the image"
nbdcopy "$U" "$T/nbdcopy.raw" || die "nbdcopy from NBD"
assert_same "$T/ref.raw" "$T/nbdcopy.raw" "nbdcopy read over NBD differs from the image"
assert_qemu_identical "$T/ref.raw" "$U" -f raw -F raw
run "$QEMU_IO" -f raw -c 'read -P 0x11 4M 512K' -c 'read -P 0x44 4608K 8K' -c 'read -P 0x33 1M 12K' -c 'read -P 0 2M 4K' "$U"
grep -q 'Pattern verification failed' "$T/.err" && die "qemu-io read wrong bytes"

# Extents: what nbdinfo sees is the image's map (data in either layer, or a hole).
nbd_map "$U" >"$T/map.nbd"
diff "$T/map.offline" "$T/map.nbd" >&2 || die "NBD extents differ from qcowctl map"
grep -q ' 3$' "$T/map.nbd" && grep -q ' 0$' "$T/map.nbd" || die "the map has no holes or no data"

# Writing: qemu-io at odd places (sub-cluster, across clusters), then a whole
# image of seeded data with nbdcopy; each time the same into a shadow.
cp "$T/ref.raw" "$T/shadow.raw"
"$QEMU_IO" -f raw -c 'write -P 0x66 5632 3584' -c 'write -P 0x77 8M 132K' \
    -c 'write -z 4M 64K' "$U" >"$T/.out" 2>&1 || die "qemu-io write over NBD"
printf '\x66%.0s' $(seq 3584) | shadow_write "$T/shadow.raw" /dev/stdin 5632
head -c $((132 * 1024)) /dev/zero | tr '\0' '\167' | shadow_write "$T/shadow.raw" /dev/stdin $((8 << 20))
head -c $((64 * 1024)) /dev/zero | shadow_write "$T/shadow.raw" /dev/stdin $((4 << 20))
assert_qemu_identical "$T/shadow.raw" "$U" -f raw -F raw
"$RANDIO" data "$SEED" $((32 << 20)) >"$T/random.raw"
nbdcopy "$T/random.raw" "$U" || die "nbdcopy to NBD"
nbdcopy "$U" "$T/back.raw" || die "nbdcopy back"
assert_same "$T/random.raw" "$T/back.raw" "nbdcopy wrote or read back wrong bytes"
# Zeros over data, allocated by writing them (qcow has no other way).
run "$QEMU_IO" -f raw -c 'write -z 12M 1M' -c 'read -P 0 12M 1M' "$U"
grep -q 'Pattern verification failed' "$T/.err" && die "zeroed range does not read as zeros"
dd if=/dev/zero of="$T/random.raw" bs=1M seek=12 count=1 conv=notrunc status=none
ctl detach d.qcow >/dev/null || die "detach"
[ -S "$T/e.sock" ] && die "the export's socket outlived the detach"

# Offline, after the fact: qemu-img and qcowctl read what the clients wrote.
assert_qemu_identical "$T/d.qcow" "$T/random.raw" -F raw
"$QCOWCTL" convert -O raw "$T/d.qcow" "$T/final.raw" || die "qcowctl convert"
assert_same "$T/random.raw" "$T/final.raw" "qcowctl reads other bytes than the NBD clients wrote"
"$QCOWCTL" check "$T/d.qcow" >/dev/null || die "qcowctl check is not clean"

# Trim and fast zero on a raw image, whose discard punches holes.
"$QEMU_IMG" create -f raw "$T/r.raw" 8M >/dev/null
ctl attach "$T/r.raw" >/dev/null || die "attach raw"
ctl export add r.raw --nbd "unix:$T/r.sock" >/dev/null || die "export add raw"
R=$(uri_of "$T/r.sock")
run "$QEMU_IO" -f raw -c 'write -P 0x99 0 8M' -c 'discard 1M 1M' -c 'read -P 0 1M 1M' \
    -c 'read -P 0x99 0 1M' -c 'read -P 0x99 2M 6M' "$R"
grep -q 'Pattern verification failed' "$T/.err" && die "trim then read did not give zeros"
[ "$(nbdinfo --can fast-zero "$R"; echo $?)" = 0 ] || die "no fast zero on a raw export"
run "$QEMU_IO" -f raw -c 'write -z -u 4M 2M' -c 'read -P 0 4M 2M' -c 'read -P 0x99 6M 2M' "$R"
grep -q 'Pattern verification failed' "$T/.err" && die "write-zeroes with unmap did not give zeros"
ctl detach r.raw >/dev/null || die "detach raw"
[ "$(stat -c %b "$T/r.raw")" -lt $((8 * 2048)) ] || die "trim punched no hole in the raw file"

# A raw backing file that ends mid-sector: the sector holding its last
# bytes is data, not a hole, or a client that trusts the map (nbdcopy
# skips holes) loses those bytes.
head -c 1000 /dev/zero | tr '\0' '\252' >"$T/odd.raw"
"$QEMU_IMG" create -f qcow -b "$T/odd.raw" -F raw "$T/o.qcow" 1M >/dev/null
"$QEMU_IMG" convert -O raw "$T/o.qcow" "$T/o.ref"
ctl attach "$T/o.qcow" >/dev/null || die "attach o.qcow"
ctl export add o.qcow --nbd "unix:$T/o.sock" >/dev/null || die "export add o.qcow"
O=$(uri_of "$T/o.sock")
nbd_map "$O" | head -n 1 | grep -qx "0 1024 0" ||
    die "the sectors of the backing file's 1000 bytes are not data: $(nbd_map "$O")"
nbdcopy "$O" "$T/o.nbdcopy" || die "nbdcopy from o.qcow"
assert_same "$T/o.ref" "$T/o.nbdcopy" "nbdcopy read other bytes than the image holds"
ctl detach o.qcow >/dev/null || die "detach o.qcow"
