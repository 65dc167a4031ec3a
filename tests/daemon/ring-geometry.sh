#!/bin/bash
# The ring's geometry is an attach option.  A small ring (one page: 32
# requests; 16 data pages) serves random I/O correctly, keeps its geometry
# when a killed worker is replaced on the same ring, and shows it in query;
# an image attached without the options gets the documented defaults; values
# out of range are InvalidParameter (exit 2).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon
RINGIO=$DAEMON_TOOLS/ringio

ring_field() { ctl --json query "$1" | tr -d ' \n' | sed -n "s/.*\"ring\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"; }

"$QEMU_IMG" create -f qcow "$T/s.qcow" 16M >/dev/null
"$QEMU_IMG" create -f qcow "$T/d.qcow" 16M >/dev/null
ctl attach --ring-page-order 0 --data-pages 16 "$T/s.qcow" >/dev/null || die "attach a small ring"
[ "$(ring_field s.qcow ring-page-order)" = 0 ] && [ "$(ring_field s.qcow data-pages)" = 16 ] ||
    die "query shows $(ctl --json query s.qcow)"
ctl attach "$T/d.qcow" >/dev/null || die "attach with the defaults"
[ "$(ring_field d.qcow ring-page-order)" = 2 ] && [ "$(ring_field d.qcow data-pages)" = 8192 ] ||
    die "the defaults are not order 2 and 8192 pages: $(ctl --json query d.qcow)"

# The worker dies a third of the way through: the new one adopts a ring of
# the same geometry, and the client never notices.
pid=$(worker_pid s.qcow)
"$RINGIO" "$SOCK" s.qcow random "$T/s.raw" -s "$SEED" -n 1500 -q 32 -m 65536 -K 500 -w "$pid" \
    >/dev/null || die "random I/O through a one-page ring with a worker killed"
[ "$(worker_pid s.qcow)" != "$pid" ] || die "the worker was not replaced"
[ "$(ring_field s.qcow ring-page-order)" = 0 ] && [ "$(ring_field s.qcow data-pages)" = 16 ] ||
    die "the replaced worker lost the geometry: $(ctl --json query s.qcow)"
"$RINGIO" "$SOCK" s.qcow random "$T/s2.raw" -s "$((SEED + 1))" -n 300 -q 8 >/dev/null ||
    die "random I/O after the restart"
ctl detach s.qcow >/dev/null || die "detach"
"$QEMU_IMG" compare -F raw "$T/s.qcow" "$T/s2.raw" >/dev/null ||
    die "the image differs from the client's shadow"

expect_exit 2 ctl attach --ring-page-order 9 -n x "$T/s.qcow"
grep -q "ring-page-order" "$T/.err" || die "no word on ring-page-order: $(cat "$T/.err")"
expect_exit 2 ctl attach --data-pages 15 -n x "$T/s.qcow"
expect_exit 2 ctl attach --data-pages 1048577 -n x "$T/s.qcow"
ctl attach --data-pages 1048576 -n big "$T/s.qcow" >/dev/null || die "the largest data area"
ctl detach big >/dev/null || die "detach big"
stop_daemon || die "qcowd did not exit cleanly"
