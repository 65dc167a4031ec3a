#!/bin/bash
# An image's lock lasts as long as some process has it open for writing.
# qcowd killed with SIGKILL while its worker still holds the image (stopped
# here with SIGSTOP, as if in the middle of a long final flush): qemu-io may
# not write the image until that worker has flushed and exited, and what
# the worker acknowledged is then in the image.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
"$QEMU_IMG" create -f qcow "$T/l.qcow" 8M >/dev/null
start_daemon

ctl attach "$T/l.qcow" >/dev/null || die "attach"
head -c 65536 /dev/zero | tr '\0' '\253' >"$T/ab"
"$DAEMON_TOOLS/ringio" "$SOCK" l.qcow write 1048576 65536 <"$T/ab" || die "ring write"
pid=$(worker_pid l.qcow)
[ -n "$pid" ] || die "no worker pid"
kill -STOP "$pid"
kill -KILL "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=

# A worker that exited is gone, or a zombie: either way its files are closed.
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
gone "$pid" && die "the worker exited while stopped"
if "$QEMU_IO" -c 'write -P 0x11 0 512' "$T/l.qcow" >"$T/q.out" 2>&1; then
    kill -CONT "$pid"
    die "qemu-io wrote the image while qcowd's worker still had it open"
fi
grep -qi "lock" "$T/q.out" || die "qemu-io failed, but not on the lock: $(cat "$T/q.out")"

kill -CONT "$pid"
wait_until gone "$pid" || die "the worker did not stop after its supervisor died"
"$QEMU_IO" -c 'read -P 0xab 1048576 65536' "$T/l.qcow" >"$T/r.out" 2>&1 ||
    die "the write the worker acknowledged is not in the image: $(cat "$T/r.out")"
grep -q "Pattern verification failed" "$T/r.out" &&
    die "the write the worker acknowledged is not in the image"
"$QEMU_IO" -c 'write -P 0x11 0 512' "$T/l.qcow" >/dev/null 2>&1 ||
    die "still locked after the worker exited"
exit 0
