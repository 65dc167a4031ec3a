#!/bin/bash
# Backing files are locked the way QEMU locks them: while qcowd serves an
# overlay, qemu-io may not write its backing file and qcowd will not attach
# that file read-write (Locked); readers are welcome.  And the other way:
# an overlay whose backing file another program holds for writing, or qcowd
# serves read-write, is refused.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon
mkzero "$T/base.raw" 4194304
"$QEMU_IMG" create -q -f qcow -b "$T/base.raw" -F raw "$T/over.qcow"
"$QEMU_IMG" create -q -f qcow -b "$T/base.raw" -F raw "$T/over2.qcow"

ctl attach "$T/over.qcow" >/dev/null || die "attach the overlay"
if "$QEMU_IO" -f raw -c 'write 0 512' "$T/base.raw" >"$T/q.out" 2>&1; then
    die "qemu-io wrote the backing file of an overlay qcowd serves"
fi
grep -qi "lock" "$T/q.out" || die "qemu-io failed, but not on the lock: $(cat "$T/q.out")"
expect_exit 5 ctl attach "$T/base.raw"
grep -q "base.raw" "$T/.err" || die "the refusal does not name the file: $(cat "$T/.err")"
# Readers share it: qemu-img -U, a read-only attach, a second overlay.
"$QEMU_IMG" info -U -f raw "$T/base.raw" >/dev/null || die "qemu-img info -U refused"
expect_exit 0 ctl attach --read-only "$T/base.raw"
expect_exit 0 ctl attach "$T/over2.qcow"
ctl detach base.raw >/dev/null && ctl detach over2.qcow >/dev/null && ctl detach over.qcow >/dev/null ||
    die "detach"
"$QEMU_IO" -f raw -c 'write -P 0x33 0 512' "$T/base.raw" >/dev/null 2>&1 ||
    die "the backing file stayed locked after its overlay was detached"

# qcowd serves the backing file read-write: an overlay on it is refused.
ctl attach "$T/base.raw" >/dev/null || die "attach base.raw"
expect_exit 5 ctl attach "$T/over.qcow"
grep -q "base.raw" "$T/.err" || die "the refusal does not name the backing file: $(cat "$T/.err")"
ctl detach base.raw >/dev/null || die "detach base.raw"

# QEMU writes the backing file: likewise.  (A qcow backing file here: the
# helper sees qemu-io's lock through qemu-img info, which QEMU lets share a
# raw file with a writer.)
"$QEMU_IMG" create -q -f qcow "$T/base.qcow" 4M
"$QEMU_IMG" create -q -f qcow -b "$T/base.qcow" -F qcow "$T/over3.qcow"
hold_with_qemu_io "$T/base.qcow" || die "qemu-io did not lock base.qcow within 30 s"
ctl attach "$T/over3.qcow" >"$T/a.out" 2>&1; rc=$?
release_qemu_io
[ $rc -eq 5 ] || die "attach of an overlay whose backing file qemu-io writes: exit $rc, $(cat "$T/a.out")"
ctl list | grep -q over3.qcow && die "a refused attach left an attachment"
stop_daemon || die "qcowd did not exit cleanly"
