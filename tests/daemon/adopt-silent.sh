#!/bin/bash
# Recorded workers that hang (doc/restart.md): three peers that listen at
# the rendezvous of x, y and z as their recorded workers, take qcowd's
# connection and never answer.  qcowd meets all of them before it waits for
# any answer, so that they cost one wait together, not one each: every
# peer is met before the first "did not answer" is logged (the peers append
# to qcowd's log, in order).  Each is refused and told to stop, and its
# image attached afresh.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
names="x y z"
fresh() {
    local q
    q=$(ctl --json query "$1") || return 1
    [ "$(jq -r .state <<<"$q")" = running ] && [ "$(jq -r .adopted <<<"$q")" = null ]
}

start_daemon
for n in $names; do
    "$QEMU_IMG" create -f raw "$T/$n.raw" 1M >/dev/null
    ctl attach --name $n -f raw "$T/$n.raw" >/dev/null || die "attach $n"
done
# Detached by the stop; the state file still names each image's worker and
# rendezvous, where a peer of our uid that hangs now listens.
stop_daemon || die "qcowd exited non-zero at SIGTERM"
for n in $names; do
    "$DAEMON_TOOLS/fakepeer" --silent "$T/qcowd.log" "$STATE.rendezvous/$n" 2>"$T/$n.err" &
    eval "peer_$n=\$!"
    wait_until test -S "$STATE.rendezvous/$n" || die "fakepeer did not listen at $n"
    eval "pid=\$peer_$n"
    jq --arg n $n --argjson pid "$pid" \
        '(.attachments[] | select(.name == $n))["worker-pid"] = $pid' "$STATE" >"$T/s.new" &&
        cat "$T/s.new" >"$STATE" || die "cannot edit the state file"
done

start_daemon
for n in $names; do
    wait_until fresh $n || die "$n did not come back afresh: $(ctl --json query $n)"
    eval "pid=\$peer_$n"
    grep -q "$n: cannot adopt its worker: worker pid $pid: it did not answer within 5 s" \
        "$T/qcowd.log" || die "$n: the silent worker was not refused"
    eval "wait \$peer_$n" || die "fakepeer at $n: $(cat "$T/$n.err")"
done
first_refusal=$(grep -n "it did not answer within 5 s" "$T/qcowd.log" | head -n 1 | cut -d: -f1)
last_meeting=$(grep -n "^fakepeer .*: met$" "$T/qcowd.log" | tail -n 1 | cut -d: -f1)
[ "$(grep -c "^fakepeer .*: met$" "$T/qcowd.log")" = 3 ] || die "not every peer was met"
[ "$last_meeting" -lt "$first_refusal" ] ||
    die "qcowd waited for one worker before it met the next: $(cat "$T/qcowd.log")"

for n in $names; do ctl detach $n >/dev/null || die "detach $n"; done
exit 0
