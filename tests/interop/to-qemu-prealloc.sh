#!/bin/bash
# Preallocated images read as zeros in QEMU and take writes:
#   metadata: every L2 table is in the file, no data cluster is allocated;
#   full:     every cluster is allocated and backed by disk space, so writes
#             go in place and the file does not grow.
# And a fully preallocated raw image is zeros with all its space allocated.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

SIZE=$((8 << 20))           # 4 L2 tables of 512 entries of 4 KiB
mkzero "$T/zero" "$SIZE"
ondisk() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
for mode in off metadata full; do
    img=$T/p-$mode.qcow
    run "$QCOWCTL" create --preallocation "$mode" "$img" "$SIZE" >/dev/null
    assert_qemu_equal_raw "$img" "$T/zero"
    data=$("$QEMU_IMG" map -f qcow --output=json "$img" | grep -c '"data": true')
    case $mode in
        off)
            [ "$data" -eq 0 ] || die "preallocation=off: qemu-img map shows allocated data"
            size_off=$(fsize "$img") ;;
        metadata)
            [ "$data" -eq 0 ] || die "preallocation=metadata: qemu-img map shows allocated data"
            [ "$(fsize "$img")" -ge $((size_off + 4 * 4096)) ] ||
                die "preallocation=metadata: file is $(fsize "$img") bytes, no room for 4 L2 tables" ;;
        full)
            [ "$data" -ge 1 ] || die "preallocation=full: qemu-img map shows nothing allocated"
            [ "$(fsize "$img")" -ge "$SIZE" ] || die "preallocation=full: file is only $(fsize "$img") bytes"
            [ "$(ondisk "$img")" -ge "$SIZE" ] || die "preallocation=full: only $(ondisk "$img") bytes on disk" ;;
    esac
    before=$(fsize "$img")
    cp "$T/zero" "$T/shadow"
    qcowctl_random_writes "$img" "$T/shadow" "$SIZE" 4096 "$(nwrites 60)" "$((SEED + ${#mode}))"
    assert_qemu_equal_raw "$img" "$T/shadow"
    expect_exit 0 "$QCOWCTL" check "$img"
    if [ "$mode" = full ]; then
        [ "$(fsize "$img")" -eq "$before" ] || die "preallocation=full: writes grew the file ($before → $(fsize "$img"))"
    fi
done

run "$QCOWCTL" create -f raw --preallocation full "$T/r.raw" "$SIZE" >/dev/null
[ "$(fsize "$T/r.raw")" -eq "$SIZE" ] || die "raw full: size $(fsize "$T/r.raw")"
[ "$(ondisk "$T/r.raw")" -ge "$SIZE" ] || die "raw full: only $(ondisk "$T/r.raw") bytes on disk"
cmp "$T/r.raw" "$T/zero" >&2 || die "raw full: not zeros"
