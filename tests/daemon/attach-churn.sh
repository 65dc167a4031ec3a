#!/bin/bash
# Several images attached and detached at once by parallel clients.  A
# detach is answered only once its image is closed and unlocked, and a
# worker being started for one image never holds another image's lock: no
# attach may find its image "Locked", and qemu-io may write an image as
# soon as its detach has returned.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon

CHURNERS=4
ROUNDS=$((80 * QCOWD_TEST_SCALE))

churn() { # index
    local img=$T/c$1.qcow r
    for r in $(seq 1 "$ROUNDS"); do
        ctl attach "$img" >/dev/null 2>>"$T/err$1" || { echo "attach $r failed" >>"$T/err$1"; continue; }
        ctl detach "c$1.qcow" >/dev/null 2>>"$T/err$1" || echo "detach $r failed" >>"$T/err$1"
        if [ $((r % 8)) -eq 0 ]; then
            "$QEMU_IO" -c 'write -P 0x5a 0 512' "$img" >/dev/null 2>>"$T/err$1" ||
                echo "qemu-io after detach $r failed" >>"$T/err$1"
        fi
    done
}

pids=()
for i in $(seq 1 "$CHURNERS"); do
    "$QEMU_IMG" create -f qcow "$T/c$i.qcow" 8M >/dev/null
    : >"$T/err$i"
    churn "$i" & pids+=($!)
done
wait "${pids[@]}"

failed=0
for i in $(seq 1 "$CHURNERS"); do
    if [ -s "$T/err$i" ]; then
        msg "churner $i: $(head -n 4 "$T/err$i")"
        failed=1
    fi
done
[ "$failed" -eq 0 ] || die "attach, detach or qemu-io failed while other images were churned"
kill -0 "$QCOWD_PID" 2>/dev/null || die "qcowd died"
no_children_left "$QCOWD_PID" || die "workers left behind"
stop_daemon || die "qcowd did not exit cleanly"
msg "$CHURNERS clients x $ROUNDS attach/detach rounds"
