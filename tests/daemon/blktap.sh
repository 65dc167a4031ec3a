#!/bin/bash
# blktap's Xen extension both ways, judged by a model of blktap's qcow
# driver (tests/tools/blktap-model, written from its documented behaviour)
# beside qemu-img:
#  - images blktap makes (its long L1 table, the checksum over all of it,
#    whole extents) are read, written through the ring, checked and
#    repaired by qcowd, and blktap then opens them with its checksum,
#    extents and sparse flag intact, and reads what was written;
#  - overlays blktap makes (it ignores the extension with a backing file)
#    are not called corrupt, and stay blktap's;
#  - images qcowctl create --xen-header makes, blktap opens;
#  - a repair never makes blktap trust what the image does not hold.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
require_qcowctl
require_tools blktap-model
MODEL=$TEST_TOOLS/blktap-model
SIZE=$((4 << 20))
cd "$T" || die "cd"

# model_says IMAGE KEY VALUE: blktap opens IMAGE and sees KEY as VALUE.
model_says() {
    "$MODEL" open "$1" >"$T/model.out" 2>"$T/model.err" ||
        die "blktap cannot open $1: $(cat "$T/model.err")"
    grep -qx "$2 $3" "$T/model.out" || die "blktap sees in $1: $(grep "^$2 " "$T/model.out"), expected $3"
}

# blktap_reads IMAGE SHADOW: blktap reads the whole image as SHADOW.
blktap_reads() {
    "$MODEL" read "$1" 0 "$SIZE" >"$T/model.raw" || die "blktap cannot read $1"
    cmp "$T/model.raw" "$2" >&2 || die "blktap reads $1 differently from what was written"
}

# ring_writes IMAGE SHADOW SEED: random I/O through a daemon's ring.
ring_writes() {
    ctl attach "$1" >/dev/null || die "attach $1"
    "$DAEMON_TOOLS/ringio" "$SOCK" "$(basename "$1")" random "$2" -s "$3" -n 400 -q 16 \
        -m 65536 >/dev/null || die "ring I/O on $1 failed"
    ctl detach "$(basename "$1")" >/dev/null || die "detach $1"
}

start_daemon

# A blktap image: made and written by blktap.
"$MODEL" create b.qcow "$SIZE" || die "model create"
head -c 8192 /dev/urandom >d1
"$MODEL" write b.qcow 12288 8192 <d1 || die "model write"
model_says b.qcow checksum ok
model_says b.qcow min-cluster-alloc 512
expect_exit 0 "$QCOWCTL" check b.qcow
expect_exit 0 "$QCOWCTL" info b.qcow
grep -q "L1 checksum: ok" "$T/.out" || die "info: checksum not ok on a blktap image"
"$QCOWCTL" read b.qcow 12288 8192 | cmp - d1 || die "qcowd reads blktap's data wrong"
cp b.qcow b0.qcow
expect_exit 0 "$QCOWCTL" check --repair b.qcow
cmp b.qcow b0.qcow || die "repair changed a clean blktap image"
# qcowd writes through the ring; blktap then trusts and reads it.
ring_writes b.qcow b.raw "$SEED"
expect_exit 0 "$QCOWCTL" check b.qcow
model_says b.qcow checksum ok
model_says b.qcow sparse 1
model_says b.qcow min-cluster-alloc 512
blktap_reads b.qcow b.raw
"$QEMU_IMG" compare -F raw b.qcow b.raw >/dev/null || die "qemu-img: b.qcow differs"

# Images qcowctl makes with the Xen header: blktap opens them and reads
# what qcowd wrote; with --xen-extent-alloc it finds its whole extents.
for opts in "--xen-header" "--xen-header --xen-extent-alloc"; do
    rm -f x.qcow
    # shellcheck disable=SC2086
    run "$QCOWCTL" create -q $opts x.qcow "$SIZE"
    model_says x.qcow checksum ok
    ring_writes x.qcow x.raw "$((SEED + 1))"
    model_says x.qcow checksum ok
    case $opts in
        *extent*) model_says x.qcow min-cluster-alloc 512 ;;
        *) model_says x.qcow min-cluster-alloc 1 ;;
    esac
    blktap_reads x.qcow x.raw
    expect_exit 0 "$QCOWCTL" check x.qcow
done

# Overlays: blktap ignores the extension when there is a backing file, and
# so does qcowd (it is not corruption that the checksum is stale).
head -c "$SIZE" /dev/urandom >base.raw
"$MODEL" create o.qcow 0 base.raw || die "model create overlay"
model_says o.qcow xen-header ignored
ring_writes o.qcow o.raw "$((SEED + 2))"
expect_exit 0 "$QCOWCTL" check o.qcow
expect_exit 0 "$QCOWCTL" info o.qcow
grep -q "L1 checksum: not used" "$T/.out" || die "info: the overlay's header is not shown as ignored"
model_says o.qcow xen-header ignored
blktap_reads o.qcow o.raw
run "$QCOWCTL" create -q --xen-header -b base.raw -F raw xo.qcow
model_says xo.qcow xen-header ignored

# QEMU writes into a new L1 span of a blktap image: no whole extent there,
# checksum stale (blktap stops trusting the header).  Repair must not make
# blktap trust extents that are not there.
"$MODEL" create q.qcow "$SIZE" || die "model create"
"$MODEL" write q.qcow 0 8192 <d1 || die "model write"
"$QEMU_IO" -c 'write -P 0x5a 3M 4K' q.qcow >/dev/null || die "qemu-io"
model_says q.qcow checksum bad
expect_exit 3 "$QCOWCTL" check q.qcow
expect_exit 0 "$QCOWCTL" check --repair q.qcow
grep -q "min_cluster_alloc set to 1" "$T/.out" || die "repair kept whole extents blktap cannot find"
model_says q.qcow checksum ok
model_says q.qcow min-cluster-alloc 1
"$QEMU_IMG" convert -O raw q.qcow q.raw || die "qemu-img convert"
blktap_reads q.qcow q.raw
