#!/bin/bash
# A worker whose reopen fails cleanly: when the device wants O_DIRECT
# alignment above 512 bytes the worker closes the image and opens it again
# through the page cache; if that second open fails, it must report the
# reason and exit 1, not close the image a second time (a double free).
# The shim makes the alignment probe fail with EINVAL (what a 4 KiB-sector
# device answers) and the second open of the image by its path (the reopen;
# the O_DIRECT descriptor between them is opened through /proc/self/fd)
# fail.  A worker that never meets the fault serves until it is stopped:
# the timeout turns that into a failure instead of a hang.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/worker/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim

"$QEMU_IMG" create -f qcow "$T/victim.qcow" 16M >/dev/null
with_faults 'pread@O_DIRECT:1:EINVAL,open@victim.qcow:2:EACCES' \
    timeout 60 "$QCOWD_WORKER" --cache=none "$T/victim.qcow" >/dev/null 2>"$T/worker.err"
rc=$?
cat "$T/worker.err" >&2
fault_injected 'pread #1 @O_DIRECT -> EINVAL' || die "the alignment probe was not failed"
fault_injected 'open #2 @victim.qcow -> EACCES' || die "the reopen was not failed"
grep -q 'using the page cache' "$T/worker.err" || die "the worker did not take the reopen path"
is_crash "$rc" && die "the worker crashed (exit $rc) after its reopen failed"
[ "$rc" -eq 1 ] || die "the worker exited $rc, expected 1"
grep -q "victim.qcow: cannot open: Permission denied" "$T/worker.err" ||
    die "the worker did not say why it failed"
