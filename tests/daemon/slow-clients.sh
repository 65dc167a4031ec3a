#!/bin/bash
# Control clients that never read, or never send, cannot stall qcowd or lock
# others out.  qcowd keeps what a client does not read in a queue of its
# own and drops the client once the queue passes a bound, so a well-behaved
# client's request is answered at once (before, each deaf client held the
# daemon for a 5 s send timeout); connections that send no request within
# --idle-timeout are closed, so they cannot hold every --max-clients slot;
# and the ring's descriptors stay with the connect answer even when it
# waits in such a queue.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
HOG=$DAEMON_TOOLS/ctlhog
start_daemon

run "$QCOWCTL" create -q "$T/a.qcow" 16M
ctl attach "$T/a.qcow" >/dev/null || die "attach"

# hog ARGS...: run ctlhog until release_hog, its output in $T/hog.out.
hog() {
    rm -f "$T/hold" "$T/hog.out"
    mkfifo "$T/hold"
    "$HOG" "$SOCK" "$@" < "$T/hold" > "$T/hog.out" &
    hog_pid=$!
    exec {hold}>"$T/hold"
    wait_until grep -q ready "$T/hog.out" || die "ctlhog $* did not get ready"
}
# release_hog: ctlhog ends; $closed: how many of its connections qcowd had closed.
release_hog() {
    exec {hold}>&-
    wait "$hog_pid" || die "ctlhog failed"
    closed=$(sed -n 's/^closed //p' "$T/hog.out")
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# 8 clients flood queries and never read their answers.
hog 8 '{"execute":"query","arguments":{"name":"a.qcow"}}' 20000
t0=$(ms)
ctl list | grep -q a.qcow || die "list does not answer while clients do not read"
t=$(( $(ms) - t0 ))
[ "$t" -lt 10000 ] || die "list took $t ms: the daemon waited for clients that do not read"
dropped() { [ "$(grep -c 'does not read' "$T/qcowd.log")" -ge 8 ]; }
wait_until dropped || die "the clients that do not read were not dropped"
release_hog
[ "$closed" = 8 ] || die "$closed of 8 clients that do not read were closed"

# A connect answer queued behind a lot of unread output keeps its descriptors.
"$HOG" "$SOCK" pipeline a.qcow 400 || die "the ring's descriptors did not come with the connect answer"

# Connections that never send: they hold every slot until the idle timeout.
stop_daemon
start_daemon --max-clients 6 --idle-timeout 1
hog 6
wait_until ctl list >/dev/null 2>&1 || die "silent connections lock everyone out"
release_hog
[ "$closed" = 6 ] || die "$closed of 6 silent connections were closed"
grep -q "sent no request within 1 s" "$T/qcowd.log" || die "the idle connections' close was not logged"
