#!/bin/bash
# Short-lived control connections while workers are being forked: one
# connection attaches and detaches in a loop (a fork per attach) and others
# connect, ask for the list and hang up as fast as they can.  A connection
# that ends while a child is between fork and exec must not leave a stale
# watch behind (found by AddressSanitizer as a use after free); the daemon
# answers everything and stays up.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
start_daemon
run "$QCOWCTL" create -q "$T/c.qcow" 8M

ROUNDS=$((150 * QCOWD_TEST_SCALE))

hang_ups() { # file
    local n=0
    while [ ! -e "$T/done" ]; do
        ctl list >/dev/null 2>>"$1" || echo "list failed" >>"$1"
        printf '{"execute":"query","arguments":{"name":"c"}}' |
            "$DAEMON_TOOLS/ctlraw" "$SOCK" >/dev/null 2>>"$1" || echo "raw failed" >>"$1"
        n=$((n + 1))
    done
    echo "$n" >"$1.count"
}

: >"$T/h1"; : >"$T/h2"
hang_ups "$T/h1" & h1=$!
hang_ups "$T/h2" & h2=$!

for i in $(seq 1 "$ROUNDS"); do
    printf '{"execute":"attach","arguments":{"path":"%s","name":"c"},"id":%d}\n' "$T/c.qcow" "$i"
    printf '{"execute":"detach","arguments":{"name":"c"},"id":-%d}\n' "$i"
done | "$DAEMON_TOOLS/ctlraw" "$SOCK" $((ROUNDS * 2)) >"$T/replies"
touch "$T/done"
wait "$h1" "$h2"

kill -0 "$QCOWD_PID" 2>/dev/null || die "qcowd died"
[ "$(grep -c '"return"' "$T/replies")" -eq $((ROUNDS * 2)) ] ||
    die "not every attach/detach succeeded: $(grep -m1 -v '"return"' "$T/replies")"
[ ! -s "$T/h1" ] && [ ! -s "$T/h2" ] ||
    die "a short connection failed: $(cat "$T/h1" "$T/h2" | head -n 3)"
ctl list >/dev/null || die "the daemon stopped answering"
no_children_left "$QCOWD_PID" || die "workers left behind"
stop_daemon || die "qcowd did not exit cleanly"
msg "$ROUNDS attach/detach cycles beside $(( $(cat "$T/h1.count") + $(cat "$T/h2.count") )) short connections"
