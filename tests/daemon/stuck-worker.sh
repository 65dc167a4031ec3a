#!/bin/bash
# A worker that stops reading its channel (stopped here with SIGSTOP, as
# one stuck in the kernel or compromised would be) must not stop qcowd.
# x and y share a limit group; each change of y's limits is also sent to
# x's worker, which reads none of them.  Once x's channel is full, qcowd
# kills that worker (as one that does not answer) instead of waiting on it:
# every change is answered, other clients are answered all along, and x
# comes back with a new worker that has the group's last limits.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
CHANGES=2000
start_daemon
for n in x y; do
    mkzero "$T/$n.raw" 1048576
    ctl attach -n $n -f raw --limit-group g --iops 100000 "$T/$n.raw" >/dev/null ||
        die "attach $n"
done
stuck=$(worker_pid x)
kill -STOP "$stuck"
for ((i = 1; i <= CHANGES; i++)); do
    printf '{"execute":"limit","arguments":{"name":"y","io-limits":{"iops-total":%d}},"id":%d}\n' \
        $((200000 + i)) "$i"
done >"$T/changes"
timeout 120 "$DAEMON_TOOLS/ctlraw" "$SOCK" $CHANGES <"$T/changes" >"$T/answers" ||
    die "the limit changes were not all answered: $(tail -n 3 "$T/answers")"
[ "$(grep -c '"return"' "$T/answers")" = $CHANGES ] ||
    die "not every change succeeded: $(grep -v '"return"' "$T/answers" | head -n 3)"
timeout 10 "$QCOWCTL" --socket "$SOCK" list >/dev/null || die "qcowd does not answer"
grep -q "x: the worker (pid $stuck) does not read its channel (it is full): killing it" \
    "$T/qcowd.log" || die "the stuck worker was not killed"
wait_until replaced x "$stuck" || die "x was not served again: $(ctl --json query x)"
want=$((200000 + CHANGES))
limits_now() {
    [ "$(ctl --json stats x | jq '.throttle["io-limits"]["iops-total"]')" = "$want" ]
}
wait_until limits_now || die "x's new worker has other limits: $(ctl --json stats x)"
for n in x y; do ctl detach $n >/dev/null || die "detach $n"; done
exit 0
