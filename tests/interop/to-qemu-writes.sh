#!/bin/bash
# Seeded random writes through qcowctl (byte-granular and aligned, across
# clusters, to the very end) into a qcowctl-made image, the same writes into
# a raw shadow with dd: qemu-img must find the two identical, and qcowctl
# check must find the image clean.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
require_qemu
require_qcowctl
require_tools randio

for spec in 4096:$((32 << 20)):250 65536:$((16 << 20)):100; do
    IFS=: read -r cl size n <<<"$spec"
    img=$T/w$cl.qcow
    if [ "$cl" = 4096 ]; then
        run "$QCOWCTL" create "$img" "$size"      # the default cluster size
    else
        run "$QCOWCTL" create --cluster-size "$cl" "$img" "$size"
    fi
    [ "$(qemu_cluster_size "$img")" = "$cl" ] || die "$img: cluster size $(qemu_cluster_size "$img"), expected $cl"
    mkzero "$T/shadow" "$size"
    qcowctl_random_writes "$img" "$T/shadow" "$size" "$cl" "$(nwrites "$n")" "$((SEED + cl))"
    assert_qemu_equal_raw "$img" "$T/shadow"
    expect_exit 0 "$QCOWCTL" check "$img"
    [ "$(fsize "$T/shadow")" -eq "$size" ] || die "shadow grew: a write went past the end"
done
