#!/bin/bash
# qcowctl events: lines as events arrive (text and --json), through a
# worker's death and restart; ends with 0 on Ctrl-C and when qcowd stops.
. "$(dirname "$0")/online-lib.sh"

make_image disk.qcow 16M
start_daemon

# listen NAME ARGS...: `qcowctl ARGS... events` in the background, its
# output in $T/NAME.out; waits until it listens.  Its pid in $listener.
listen() {
    local name=$1
    shift
    "$QCOWCTL" --verbose --socket "$SOCK" "$@" events >"$T/$name.out" 2>"$T/$name.err" &
    listener=$!
    wait_until listening "$name" || fail "events ($name) did not start listening"
}

listening() {
    grep -q "waiting for events" "$T/$1.err" 2>/dev/null && return 0
    kill -0 "$listener" 2>/dev/null || { cat "$T/$1.err" >&2; fail "events ($1) ended"; }
    return 1
}

# wait_for FILE TEXT: up to 30 s for TEXT to show up in FILE.
wait_for() {
    wait_until grep -qF -- "$2" "$1" && return 0
    cat "$1" >&2
    fail "$1: no '$2' within 30 s"
}

listen text
text_pid=$listener
listen json --json
json_pid=$listener

expect_on 0 attach disk.qcow
expect_on 0 --json list
pid=$(jfield 4 pid)
is_number "$pid" || fail "no worker pid"

# A worker killed: qcowd says so and starts another on the same ring.
kill -KILL "$pid"
wait_for "$T/text.out" "worker-restarted"
expect_on 0 --json query disk.qcow
expect_field 2 restarts 1
expect_field 2 state '"running"'
newpid=$(jfield 2 pid)
[ "$newpid" != "$pid" ] || fail "the restarted worker has the old pid"

expect_on 0 detach disk.qcow
wait_for "$T/text.out" "image-detached"
wait_for "$T/json.out" "image-detached"

# Ctrl-C ends events with 0.
kill -INT "$text_pid"
rc=0
wait "$text_pid" || rc=$?
[ "$rc" = 0 ] || fail "events exited $rc on SIGINT"

ts='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}'
check_line() {
    grep -Eq "^$ts  $1\$" "$T/text.out" || { cat "$T/text.out" >&2; fail "no event line '$1'"; }
}
check_line "image-attached name=disk\\.qcow path=$T/disk\\.qcow"
check_line "worker-died name=disk\\.qcow pid=$pid status=137"
check_line "worker-restarted name=disk\\.qcow pid=$newpid restarts=1"
check_line "image-detached name=disk\\.qcow"
[ "$(grep -c . "$T/text.out")" = 4 ] || { cat "$T/text.out" >&2; fail "not 4 events"; }

# qcowd stopping ends the JSON listener with 0; its lines are the event objects.
expect_on 0 shutdown
rc=0
wait "$json_pid" || rc=$?
[ "$rc" = 0 ] || fail "events --json exited $rc when qcowd stopped"
json_lines_valid "$T/json.out"
[ "$(wc -l <"$T/json.out")" = 4 ] || { cat "$T/json.out" >&2; fail "not 4 JSON events"; }
for e in image-attached worker-died worker-restarted image-detached; do
    grep -q "^{\"event\":\"$e\",\"data\":{.*},\"timestamp\":{\"seconds\":[0-9]*,\"microseconds\":[0-9]*}}\$" \
        "$T/json.out" || { cat "$T/json.out" >&2; fail "no JSON event $e"; }
done
wait_daemon_exit
[ "$daemon_rc" = 0 ] || fail "qcowd exited $daemon_rc"
exit 0
