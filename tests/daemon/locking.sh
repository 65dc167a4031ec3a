#!/bin/bash
# Locks against the real QEMU tools, both directions.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon
"$QEMU_IMG" create -f qcow "$T/l.qcow" 8M >/dev/null

# qcowd serves it read-write: qemu-io may not write it, nor open it plainly.
ctl attach "$T/l.qcow" >/dev/null || die "attach"
if "$QEMU_IO" -c 'write 0 512' "$T/l.qcow" >"$T/q.out" 2>&1; then
    die "qemu-io wrote an image qcowd serves"
fi
grep -qi "lock" "$T/q.out" || die "qemu-io failed, but not on the lock: $(cat "$T/q.out")"
# Sharing readers (-U) are still allowed to look.
"$QEMU_IMG" info -U "$T/l.qcow" >/dev/null || die "qemu-img info -U refused"
ctl detach l.qcow >/dev/null

# After detach the lock is gone.
"$QEMU_IO" -c 'write -P 0x5a 0 512' "$T/l.qcow" >/dev/null || die "still locked after detach"

# Read-only attach: QEMU may read but not write.
ctl attach --read-only "$T/l.qcow" >/dev/null || die "read-only attach"
"$QEMU_IO" -r -U -c 'read -P 0x5a 0 512' "$T/l.qcow" >/dev/null || die "qemu-io cannot read"
if "$QEMU_IO" -c 'write 0 512' "$T/l.qcow" >/dev/null 2>&1; then
    die "qemu-io wrote an image qcowd serves read-only"
fi
ctl detach l.qcow >/dev/null

# The other direction: QEMU holds it for writing, qcowd refuses (Locked).
hold_with_qemu_io "$T/l.qcow" || die "qemu-io did not lock the image within 30 s"
ctl attach "$T/l.qcow" > "$T/a.out" 2>&1; rc=$?
release_qemu_io
[ $rc -eq 5 ] || die "attach of an image qemu-io holds: exit $rc, $(cat "$T/a.out")"
grep -qi "qemu\|lock\|holds" "$T/a.out" || die "the refusal does not say why"
