#!/bin/bash
# Images with the Xen/blktap extension header (L1 at 4096, blktap's long L1
# table), with and without whole-extent allocation and the sparse flag:
# after qcowctl writes, QEMU (which ignores the extension) reads them right
# and qcowctl check is clean.  (tests/daemon/blktap.sh judges them with a
# model of blktap itself.)
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((2 << 20))
be32() { od -An -tx1 -j "$2" -N 4 "$1" | tr -d ' \n'; }
be64() { od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n'; }

n=0
for opts in "--xen-header" "--xen-header --xen-extent-alloc" "--xen-header --xen-extent-alloc --no-sparse"; do
    n=$((n + 1))
    img=$T/xen$n.qcow
    # shellcheck disable=SC2086
    run "$QCOWCTL" create $opts "$img" "$SIZE"
    [ "$(be32 "$img" 48)" = 58454efb ] || die "$opts: no XEN magic at 48 (got $(be32 "$img" 48))"
    [ "$(be64 "$img" 40)" = 0000000000001000 ] || die "$opts: L1 offset $(be64 "$img" 40), expected 4096"
    mkzero "$T/shadow" "$SIZE"
    assert_qemu_equal_raw "$img" "$T/shadow"
    qcowctl_random_writes "$img" "$T/shadow" "$SIZE" 4096 "$(nwrites 80)" "$((SEED + n))"
    assert_qemu_equal_raw "$img" "$T/shadow"
    expect_exit 0 "$QCOWCTL" check "$img"
    [ "$(be32 "$img" 48)" = 58454efb ] || die "$opts: the XEN magic was lost by the writes"
    case "$opts" in
        *extent-alloc*)
            # Each L2 table comes with its 512 clusters (2 MiB) behind it.
            [ "$(fsize "$img")" -ge $((2 << 20)) ] ||
                die "$opts: file is $(fsize "$img") bytes; extents were not preallocated"
            ;;
    esac
    case "$opts" in
        *no-sparse*)
            alloc=$(( $(stat -c %b "$img") * $(stat -c %B "$img") ))
            [ "$alloc" -ge $(( $(fsize "$img") * 9 / 10 )) ] ||
                die "$opts: only $alloc of $(fsize "$img") bytes allocated on disk; not sparse means written"
            ;;
    esac
done
