#!/bin/bash
# A qcow image on a block device (a loop device over a qemu-made image):
# its size is the device's (BLKGETSIZE64), so qcowctl info, read, convert
# and check work on it as qemu-img does, and qcowd serves it.  Skipped,
# saying so, where loop devices cannot be set up (not root, no
# /dev/loop-control, a container without them).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
require_qcowctl
command -v losetup >/dev/null || skip "losetup not found (util-linux)"

"$QEMU_IMG" create -q -f qcow "$T/img.qcow" 8M || die "qemu-img create"
"$QEMU_IO" -c 'write -P 0x11 0 64K' -c 'write -P 0x22 5M 12K' -c 'write -P 0x33 8188K 4K' \
    "$T/img.qcow" >/dev/null || die "qemu-io"
"$QEMU_IMG" convert -O raw "$T/img.qcow" "$T/want.raw" || die "qemu-img convert"
dev=$(losetup --show -f "$T/img.qcow" 2>"$T/losetup.err") ||
    skip "cannot set up a loop device here: $(cat "$T/losetup.err")"
trap 'rc=$?; stop_daemon >/dev/null 2>&1; losetup -d "$dev"; (exit $rc); cleanup' EXIT
[ -b "$dev" ] || die "$dev is not a block device"

expect_exit 0 "$QCOWCTL" --json info "$dev"
tr -d ' \n' <"$T/.out" | grep -q '"virtual-size":8388608,' || die "info $dev: $(cat "$T/.out")"
tr -d ' \n' <"$T/.out" | grep -q '"allocated-clusters":20,' || die "info $dev: $(cat "$T/.out")"
run "$QCOWCTL" convert -O raw "$dev" "$T/ours.raw"
cmp "$T/ours.raw" "$T/want.raw" || die "convert of $dev differs from qemu-img's of the file"
"$QCOWCTL" read "$dev" 5M 12K | cmp - <(dd if="$T/want.raw" bs=4K skip=1280 count=3 status=none) ||
    die "read of $dev"
expect_exit 0 "$QCOWCTL" check "$dev"

start_daemon
ctl attach --read-only "$dev" >/dev/null || die "attach $dev"
name=$(basename "$dev")
"$DAEMON_TOOLS/ringio" "$SOCK" "$name" read 0 8388608 | cmp - "$T/want.raw" ||
    die "$dev reads wrong through the ring"
ctl detach "$name" >/dev/null || die "detach"
