#!/bin/bash
# Leaks a crash leaves can be reclaimed: the worker is killed (SIGKILL)
# in the middle of allocating writes, three times; afterwards check
# --repair gives every leaked byte back (holes punched in the middle, the
# tail cut), so check is clean, and compact rewrites the image with its
# clusters in order; the data is the client's all along.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
require_qcowctl
cd "$T" || die "cd"
disk_bytes() { echo $(( $(stat -c %b "$1") * 512 )); }

start_daemon
"$QEMU_IMG" create -q -f qcow k.qcow 64M || die "qemu-img create"
ctl attach k.qcow >/dev/null || die "attach"
for round in 1 2 3; do
    pid=$(worker_pid k.qcow)
    "$DAEMON_TOOLS/ringio" "$SOCK" k.qcow random k.raw -s $((SEED + round)) -n 600 -q 32 \
        -K 300 -w "$pid" >/dev/null || die "the client saw errors (round $round)"
    [ "$(worker_pid k.qcow)" != "$pid" ] || die "the worker was not replaced (round $round)"
done
ctl detach k.qcow >/dev/null || die "detach"
"$QEMU_IMG" compare -F raw k.qcow k.raw >/dev/null || die "the image is not what the client wrote"

# What the crashes left: leaks at most, never corruption.
"$QCOWCTL" check k.qcow >check.out; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 4 ] || { cat check.out >&2; die "check after the crashes: exit $rc"; }
before=$(disk_bytes k.qcow)
expect_exit 0 "$QCOWCTL" check --repair k.qcow
expect_exit 0 "$QCOWCTL" --json check k.qcow
grep -q '"leaks": 0' "$T/.out" || die "leaks left after check --repair"
[ "$(disk_bytes k.qcow)" -le "$before" ] || die "repair made the image take more space"
"$QEMU_IMG" compare -F raw k.qcow k.raw >/dev/null || die "repair changed the data"

# compact: the same data, no leaks, each L2 table's clusters in guest order.
expect_exit 0 "$QCOWCTL" compact k.qcow
expect_exit 0 "$QCOWCTL" check k.qcow
"$QEMU_IMG" compare -F raw k.qcow k.raw >/dev/null || die "compact changed the data"
"$QCOWCTL" --json map k.qcow | tr -d ' \n' | grep -o '"offset":[0-9]*' | cut -d: -f2 >offsets
sort -n -c offsets || die "after compact the clusters are not in guest order"
[ -s offsets ] || die "no data after compact"
[ "$(fsize k.qcow)" -le $(( (64 << 20) + (1 << 20) )) ] || die "compact left a file of $(fsize k.qcow) bytes"
