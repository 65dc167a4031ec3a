#!/bin/bash
# A worker parses hostile images, so qcowd trusts nothing it says.  A worker
# that sends nonsense (malformed JSON, nulls and wrong types where strings
# and numbers belong, answers to questions never asked, a message too big)
# is killed: at start-up its attach fails with an error, later it is
# restarted on the same ring like after a crash.  qcowd survives, the
# image's data too, and another image keeps serving throughout.  And a
# worker that cannot even be run makes attach say why.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
PLAN=$T/plan
: > "$PLAN"
export BADWORKER_REAL=$QCOWD_WORKER BADWORKER_PLAN=$PLAN BADWORKER_NAME=r.qcow
QCOWD_WORKER=$DAEMON_TOOLS/badworker
start_daemon

run "$QCOWCTL" create -q "$T/r.qcow" 16M
run "$QCOWCTL" create -q "$T/o.qcow" 16M
ctl attach "$T/o.qcow" >/dev/null || die "attach o.qcow"
other_pid=$(worker_pid o.qcow)
head -c 65536 /dev/urandom > "$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" o.qcow write 0 65536 < "$T/data" || die "write o.qcow"

# State and restarts from one query: read from two, they can come from
# either side of a restart (running with 4, then restarting with 5).
state_restarts() { ctl --json query r.qcow | jq -r '"\(.state) \(.restarts)"'; }
plan_used() { [ ! -s "$PLAN" ]; }
other_serves() {
    [ "$(worker_pid o.qcow)" = "$other_pid" ] || die "the other image's worker changed ($1)"
    "$DAEMON_TOOLS/ringio" "$SOCK" o.qcow read 0 65536 | cmp -s - "$T/data" ||
        die "the other image does not serve its data ($1)"
}

# At start-up: each attach fails with an error naming the trouble.
for text in '{"event": null}' '{"event": 7, "data": {}}' 'not json at all' '{"event": "ready"' \
            '{"event": "ready", "data": {"size": "big"}}' 'big:200000' '[1, 2, 3]'; do
    echo "first $text" > "$PLAN"
    ctl attach "$T/r.qcow" >/dev/null 2>"$T/err" && die "attach succeeded with a worker saying: $text"
    grep -q "unexpected first message\|did not start" "$T/err" ||
        die "attach with a worker saying '$text' failed with: $(cat "$T/err")"
    plan_used || die "the plan was not followed for: $text"
    kill -0 "$QCOWD_PID" || die "qcowd died when a worker said: $text"
done
ctl list | grep -q r.qcow && die "a failed attach left its image listed"
other_serves "after start-up nonsense"

# While serving: data written first, then the worker is killed and its
# replacements misbehave one after another (5 deaths: the restart limit
# would be passed by the 6th); the last replacement is a real worker that
# has the data.
{
    echo real
    echo 'first {"event": null}'
    echo 'after-ready {"event": null}'
    echo 'after-ready {"event": "stopped", "data": {"status": "zero"}}'
    echo 'after-ready {"return": {}, "id": 424242}'
} > "$PLAN"
ctl attach "$T/r.qcow" >/dev/null || die "attach r.qcow"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow write 65536 65536 < "$T/data" || die "write r.qcow"
kill -9 "$(worker_pid r.qcow)"
recovered() { plan_used && [ "$(state_restarts)" = "running 5" ]; }
wait_until recovered || die "not recovered from lying workers (state, restarts: $(state_restarts))"
"$DAEMON_TOOLS/ringio" "$SOCK" r.qcow read 65536 65536 | cmp - "$T/data" ||
    die "the data did not survive the lying workers"
ctl detach r.qcow >/dev/null || die "detach r.qcow"
"$QCOWCTL" read "$T/r.qcow" 65536 65536 | cmp - "$T/data" || die "the data is not in the image"

# More nonsense while serving, each from a fresh worker.
{
    echo 'after-ready not json'
    echo 'after-ready {"id": "1", "return": {}}'
    echo 'after-ready {"id": null}'
    echo 'after-ready big:200000'
    echo 'after-ready {"event": "ring-broken", "data": 7}'
} > "$PLAN"
ctl attach "$T/r.qcow" >/dev/null || die "attach r.qcow again"
wait_until recovered || die "not recovered from lying workers (state, restarts: $(state_restarts))"
grep -q "r.qcow: the worker (pid [0-9]*) sent .*: killing it" "$T/qcowd.log" ||
    die "the kills are not logged"
ctl detach r.qcow >/dev/null || die "detach r.qcow again"
other_serves "after nonsense while serving"
stop_daemon || die "qcowd did not stop cleanly"

# A worker program that cannot be run: attach says so.
QCOWD_WORKER=$T/no-such-worker
start_daemon
ctl attach "$T/r.qcow" >/dev/null 2>"$T/err" && die "attach without a worker succeeded"
grep -q "cannot run $T/no-such-worker: No such file or directory" "$T/err" ||
    die "attach without a worker said: $(cat "$T/err")"
stop_daemon
QCOWD_WORKER=$T/data
start_daemon
ctl attach "$T/r.qcow" >/dev/null 2>"$T/err" && die "attach with a worker that is not a program succeeded"
grep -q "cannot run $T/data: Permission denied" "$T/err" ||
    die "attach with a non-executable worker said: $(cat "$T/err")"
