#!/bin/bash
# A qcow header whose size is not a multiple of 512: qemu-img shows, reads
# and converts it rounded down to whole sectors (1000001 -> 999936), and so
# do qcowctl info, convert and read, and the ring's capacity.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
require_qcowctl
img=$T/odd.qcow
want=999936

"$QEMU_IMG" create -q -f qcow "$img" 1M || die "qemu-img create"
"$QEMU_IO" -c 'write -P 0x61 0 1M' "$img" >/dev/null || die "qemu-io"
# size = 1000001 (0xf4241) at offset 24
printf '\x00\x00\x00\x00\x00\x0f\x42\x41' | dd of="$img" bs=1 seek=24 conv=notrunc status=none
"$QEMU_IMG" info --output=json "$img" | tr -d ' \n' | grep -q "\"virtual-size\":$want," ||
    die "qemu-img does not show $want: the premise of this test is wrong"

expect_exit 0 "$QCOWCTL" --json info "$img"
tr -d ' \n' <"$T/.out" | grep -q "\"virtual-size\":$want," || die "info: $(cat "$T/.out")"
expect_exit 0 "$QCOWCTL" info "$img"
grep -q "^virtual size: .*($want bytes)" "$T/.out" || die "info: $(cat "$T/.out")"

run "$QCOWCTL" convert -O raw "$img" "$T/ours.raw"
"$QEMU_IMG" convert -O raw "$img" "$T/qemu.raw" || die "qemu-img convert"
[ "$(fsize "$T/ours.raw")" -eq "$want" ] || die "convert wrote $(fsize "$T/ours.raw") bytes, not $want"
cmp "$T/ours.raw" "$T/qemu.raw" || die "convert differs from qemu-img convert"
expect_exit 1 "$QCOWCTL" read "$img" "$want" 512
"$QCOWCTL" read "$img" $((want - 512)) 512 | cmp - <(tail -c 512 "$T/qemu.raw") || die "last sector"

start_daemon
ctl attach "$img" >/dev/null || die "attach"
ctl --json query odd.qcow | tr -d ' \n' >"$T/query"
grep -q "\"size\":$want," "$T/query" || die "query: $(cat "$T/query")"
grep -q "\"capacity-sectors\":$((want / 512))" "$T/query" || die "query: $(cat "$T/query")"
"$DAEMON_TOOLS/ringio" "$SOCK" odd.qcow read $((want - 512)) 512 | cmp - <(tail -c 512 "$T/qemu.raw") ||
    die "the last sector through the ring"
ctl detach odd.qcow >/dev/null || die "detach"
