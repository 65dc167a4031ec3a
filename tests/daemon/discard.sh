#!/bin/bash
# Discard through the ring frees space and reads back as zeros: the ring
# advertises a discard unit of one cluster (alignment 0, no secure discard);
# whole clusters then read as zeros and the image takes less disk space
# (holes punched in their data), with and without a backing file, for
# compressed clusters too; a part of a cluster keeps its data.  Encrypted
# images offer no discard.  qemu-img agrees with what the client saw.  A
# discard of a whole 16 GiB disk, over more L2 tables than the cache holds,
# finishes (planned a span of tables at a time) and reads back as zeros.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
require_qcowctl
RINGIO=$DAEMON_TOOLS/ringio
M=$((1 << 20))
cd "$T" || die "cd"

disk_bytes() { echo $(( $(stat -c %b "$1") * 512 )); }
geometry_says() {
    "$RINGIO" "$SOCK" "$1" geometry >"$T/geo" || die "geometry of $1"
    grep -qx "$2 $3" "$T/geo" || die "$1: ring says $(grep "^$2 " "$T/geo"), expected $3"
}
ring() { "$RINGIO" "$SOCK" "$@"; }
zeros() { head -c "$1" /dev/zero; }

start_daemon

# A plain image: 4 MiB of data, then 3 MiB of it discarded.
run "$QCOWCTL" create -q p.qcow 16M
head -c $((4 * M)) /dev/urandom >data
ctl attach p.qcow >/dev/null || die "attach"
geometry_says p.qcow discard yes
geometry_says p.qcow discard-granularity 4096
geometry_says p.qcow discard-alignment 0
geometry_says p.qcow discard-secure no
ring p.qcow write $M $((4 * M)) <data || die "write"
ring p.qcow flush || die "flush"
before=$(disk_bytes p.qcow)
ring p.qcow discard $M $((3 * M)) || die "discard"
ring p.qcow read $M $((3 * M)) | cmp - <(zeros $((3 * M))) || die "discarded clusters do not read as zeros"
ring p.qcow read $((4 * M)) $M | cmp - <(tail -c $M data) || die "the rest changed"
# Part of a cluster: left as it was.
ring p.qcow discard $((4 * M + 512)) 1024 || die "discard of a part of a cluster"
ring p.qcow read $((4 * M)) $M | cmp - <(tail -c $M data) || die "a partial discard changed data"
ring p.qcow flush || die "flush"
after=$(disk_bytes p.qcow)
# (the file system may round its accounting by a block or two)
[ "$after" -le $((before - 3 * M + 65536)) ] ||
    die "disk usage went from $before to $after bytes, not 3 MiB less"
ctl detach p.qcow >/dev/null || die "detach"
{ zeros $((4 * M)); tail -c $M data; zeros $((11 * M)); } >p.want
"$QEMU_IMG" compare -F raw p.qcow p.want >/dev/null || die "qemu-img: p.qcow is not what the client saw"
expect_exit 0 "$QCOWCTL" check p.qcow

# Over a backing file: a discarded cluster reads as zeros, not as the
# backing file (written ones and never-written ones alike).
head -c $((8 * M)) /dev/urandom >base.raw
run "$QCOWCTL" create -q -b base.raw -F raw o.qcow
ctl attach o.qcow >/dev/null || die "attach"
geometry_says o.qcow discard-granularity 512
ring o.qcow write $M $((2 * M)) <data || die "write"
ring o.qcow flush || die "flush"
before=$(disk_bytes o.qcow)
ring o.qcow discard 0 $((2 * M)) || die "discard"
ring o.qcow read 0 $((2 * M)) | cmp - <(zeros $((2 * M))) || die "overlay: discarded range shows the backing file"
ring o.qcow flush || die "flush"
after=$(disk_bytes o.qcow)
[ "$after" -le $((before - M + 65536)) ] || die "overlay: disk usage went from $before to $after bytes"
ctl detach o.qcow >/dev/null || die "detach"
{ zeros $((2 * M)); head -c $((2 * M)) data | tail -c $M; tail -c $((5 * M)) base.raw; } >o.want
"$QEMU_IMG" compare -F raw o.qcow o.want >/dev/null || die "qemu-img: o.qcow is not what the client saw"
expect_exit 0 "$QCOWCTL" check o.qcow

# Compressed clusters become zero clusters of their own.
run "$QCOWCTL" convert -c -f raw -O qcow base.raw c.qcow
ctl attach c.qcow >/dev/null || die "attach"
ring c.qcow discard $M $M || die "discard"
ring c.qcow read 0 $((2 * M)) | cmp - <(head -c $M base.raw; zeros $M) || die "compressed: wrong data"
ctl detach c.qcow >/dev/null || die "detach"
{ head -c $M base.raw; zeros $M; tail -c $((6 * M)) base.raw; } >c.want
"$QEMU_IMG" compare -F raw c.qcow c.want >/dev/null || die "qemu-img: c.qcow is not what the client saw"
expect_exit 0 "$QCOWCTL" check c.qcow

# Raw images: any range.
cp base.raw r.raw
ctl attach -f raw r.raw >/dev/null || die "attach"
geometry_says r.raw discard yes
ring r.raw discard $M $((2 * M)) || die "discard"
ring r.raw read 0 $((4 * M)) | cmp - <(head -c $M base.raw; zeros $((2 * M)); head -c $((4 * M)) base.raw | tail -c $M) ||
    die "raw: wrong data"
ctl detach r.raw >/dev/null || die "detach"

# Encrypted: a hole would decrypt to garbage, so no discard is offered.
echo secret >pw
run "$QCOWCTL" create -q --encrypt --key-file pw e.qcow 4M
ctl attach --key-file pw e.qcow >/dev/null || die "attach"
geometry_says e.qcow discard no
if ring e.qcow discard 0 $M 2>/dev/null; then die "an encrypted image accepted a discard"; fi
ctl detach e.qcow >/dev/null || die "detach"

# 8192 L2 tables, twice what the worker caches: one plan for the whole disk
# would evict its own first tables for ever.
G=$((1 << 30))
run "$QCOWCTL" create -q --preallocation metadata big.qcow 16G
"$QEMU_IO" -f qcow -c "write -P 0x5a $((8 * G)) 64k" big.qcow >/dev/null || die "write big"
ctl attach big.qcow >/dev/null || die "attach big"
timeout 120 "$RINGIO" "$SOCK" big.qcow discard 0 $((16 * G)) ||
    die "the discard of the whole disk did not finish"
"$RINGIO" "$SOCK" big.qcow read $((8 * G)) 65536 | cmp - <(head -c 65536 /dev/zero) ||
    die "big: the discarded data reads back"
ctl detach big.qcow >/dev/null || die "detach big"
run "$QEMU_IO" -f qcow -c "read -P 0 $((8 * G)) 64k" -c "read -P 0 $((16 * G - 65536)) 64k" big.qcow
grep -q 'Pattern verification failed' "$T/.err" && die "qemu-io reads data after the discard"
run "$QCOWCTL" check big.qcow
