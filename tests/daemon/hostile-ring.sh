#!/bin/bash
# A hostile client scribbles on the ring of one image (garbage requests,
# indices far ahead and behind, a trashed qcowd page): its worker survives
# (same pid) and stops or keeps serving that ring, never crashes; the daemon
# and another image are untouched; the abused image detaches cleanly.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon

"$QEMU_IMG" create -f qcow "$T/victim.qcow" 16M >/dev/null
"$QEMU_IMG" create -f qcow "$T/other.qcow" 16M >/dev/null
ctl attach "$T/victim.qcow" >/dev/null && ctl attach "$T/other.qcow" >/dev/null || die "attach"
head -c 65536 /dev/urandom > "$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow write 0 65536 < "$T/data" || die "write other"

# Garbage the worker must answer with errors, ring alive; then abuse that
# breaks the ring (indices out of range): it is shut down with a reason.
for round in soft soft soft hard; do
    pid=$(worker_pid victim.qcow)
    seed=$((QCOWD_TEST_SEED + RANDOM))
    "$DAEMON_TOOLS/ringabuse" "$SOCK" victim.qcow 300 "$seed" $([ $round = soft ] && echo soft) ||
        die "ringabuse could not run ($round, seed $seed)"
    sleep 0.2
    [ "$(worker_pid victim.qcow)" = "$pid" ] || die "the worker died under a hostile client (seed $seed)"
    kill -0 "$pid" || die "the worker is gone (seed $seed)"
    if [ $round = soft ]; then
        ! grep -q "ring shut down" "$T/qcowd.log" || die "soft abuse broke the ring (seed $seed)"
    fi
done
ctl --json stats victim.qcow | tr -d ' \n' | grep -q '"bad-requests":[1-9]' ||
    die "garbage requests were not counted as bad"
# The worker logs it when it comes to the abuse (a loaded machine: 30 s at most).
for _ in $(seq 1 600); do
    grep -q "ring shut down: .*out of range" "$T/qcowd.log" && break
    sleep 0.05
done
grep -q "ring shut down: .*out of range" "$T/qcowd.log" || die "no reason logged for the broken ring"
ctl --json stats victim.qcow >/dev/null || die "the victim's worker stopped answering"

"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow read 0 65536 | cmp - "$T/data" ||
    die "the other image was disturbed"
ctl detach victim.qcow >/dev/null || die "the abused image does not detach"
"$QCOWCTL" check "$T/victim.qcow" >/dev/null || die "the abused image is not clean"
ctl detach other.qcow >/dev/null
