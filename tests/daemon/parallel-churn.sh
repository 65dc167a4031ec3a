#!/bin/bash
# Several images attached and detached over and over, each on a connection
# of its own, all at once: every request succeeds.  A worker being started
# holds a copy of qcowd's descriptors until it has called exec, image locks
# included; a detach that released an image's lock meanwhile must not make
# the next attach of that image fail with Locked.  Afterwards qcowd holds
# the descriptors it held before and no worker is left.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
start_daemon
IMAGES=6
CYCLES=$((25 * QCOWD_TEST_SCALE))

for k in $(seq 1 $IMAGES); do
    run "$QCOWCTL" create -q "$T/c$k.qcow" 8M
done
fds_before=$(fd_count "$QCOWD_PID")

cycles() { # image-number
    local i
    for i in $(seq 1 "$CYCLES"); do
        printf '{"execute":"attach","arguments":{"path":"%s","name":"c%d"},"id":%d}\n' \
            "$T/c$1.qcow" "$1" "$i"
        printf '{"execute":"detach","arguments":{"name":"c%d"},"id":-%d}\n' "$1" "$i"
    done | "$DAEMON_TOOLS/ctlraw" "$SOCK" $((CYCLES * 2)) >"$T/replies$1"
}
pids=()
for k in $(seq 1 $IMAGES); do
    cycles "$k" & pids+=($!)
done
wait "${pids[@]}"

for k in $(seq 1 $IMAGES); do
    ok=$(grep -c '"return"' "$T/replies$k")
    [ "$ok" -eq $((CYCLES * 2)) ] ||
        die "c$k: $ok of $((CYCLES * 2)) requests succeeded: $(grep -m1 '"error"' "$T/replies$k")"
done
no_children_left "$QCOWD_PID" || die "workers left behind"
[ "$(fd_count "$QCOWD_PID")" -eq "$fds_before" ] ||
    die "descriptors: $fds_before before, $(fd_count "$QCOWD_PID") after"
stop_daemon || die "qcowd did not exit cleanly"
msg "$IMAGES images x $CYCLES attach/detach cycles in parallel"
