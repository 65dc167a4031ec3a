#!/bin/bash
# A live commit that fails, or whose worker is killed, at each of its
# steps leaves the old chain served, the client's data intact, and a
# retried commit succeeds.  The steps: its start (begin-commit), the copy
# down (the first write into the backing file), the last round before the
# switch (commit-finishing), the flush of the backing file before the
# switch, and the moment after the switch and the release of the overlay
# before qcowd is told (commit-switched: killed only).  Failures come from
# the fault shim (a pwrite or fdatasync of the backing file fails with EIO)
# and the worker's fault points; a kill holds the worker at the step (the
# shim's or the fault point's HOLD) and kills it there with SIGKILL while a
# client does verified random I/O through the ring.  After each case the
# client's reads all checked out, the ring reads the client's shadow, and
# qemu-img reads the base (the whole image once committed) as the shadow.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/lib/faults.sh"
require_qemu
require_fault_shim
RINGIO=$DAEMON_TOOLS/ringio
SIZE=$((4 * 1024 * 1024))

chain_length() { ctl --json query "$1" | grep -c '"filename"'; }
chain_top() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"chain":\[{"filename":"\([^"]*\)".*/\1/p'; }
held() { grep -q "hold $1" "$T/faultpoints.log" 2>/dev/null; }

# start_case SHIM_RULES FAULTPOINTS: a qcowd whose workers run under both,
# d attached as s1.qcow over base.qcow (both with data), a client writing.
start_case() {
    rm -f "$T/mark" "$T/stop"
    cp "$T/base.template" "$T/base.qcow"
    cp "$T/s1.template" "$T/s1.qcow"
    start_daemon_holding_at "$1" "$2"
    ctl attach -n d "$T/s1.qcow" >/dev/null || die "attach"
    "$RINGIO" "$SOCK" d random "$T/shadow" -s "$SEED" -n 40 -q 8 -m 65536 \
        -M "$T/mark" -S "$T/stop" >"$T/rio.out" 2>"$T/rio.err" &
    rio_pid=$!
    wait_until test -e "$T/mark" || die "the client did not start: $(cat "$T/rio.err")"
}

old_chain_served() {
    [ "$(chain_top d)" = "$T/s1.qcow" ] && [ "$(chain_length d)" = 2 ] ||
        die "$1: after the failed commit: $(ctl --json query d)"
    kill -0 "$rio_pid" 2>/dev/null || die "$1: the client stopped: $(cat "$T/rio.err")"
}

# The retried commit succeeds; the client's data is intact everywhere.
end_case() {
    ctl commit d >"$T/commit.out" 2>&1 || die "$1: the retried commit: $(cat "$T/commit.out")"
    grep -q "committed $T/s1.qcow into $T/base.qcow" "$T/commit.out" ||
        die "$1: commit said: $(cat "$T/commit.out")"
    [ "$(chain_top d)" = "$T/base.qcow" ] && [ "$(chain_length d)" = 1 ] ||
        die "$1: after the retried commit: $(ctl --json query d)"
    touch "$T/stop"
    wait "$rio_pid" || die "$1: the client failed: $(cat "$T/rio.err")"
    grep -q " 0 failures" "$T/rio.out" || die "$1: the client said: $(cat "$T/rio.out")"
    "$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "$1: the ring reads other data"
    ctl detach d >/dev/null || die "$1: detach"
    stop_daemon || die "$1: qcowd did not exit cleanly"
    "$QEMU_IMG" convert -O raw "$T/base.qcow" "$T/base.raw" || die "$1: qemu-img convert"
    cmp "$T/base.raw" "$T/shadow" || die "$1: qemu-img reads the base other than the shadow"
    # Leaks are allowed (a failed flush or a kill may leave clusters the
    # tables do not name), corruption (3) is not.
    "$QCOWCTL" check "$T/base.qcow" >"$T/check" 2>&1
    case $? in 0|4) ;; *) die "$1: check: $(cat "$T/check")" ;; esac
    msg "ok: $1"
}

# fail_case NAME SHIM_RULES FAULTPOINTS PATTERN: the commit fails, saying PATTERN.
fail_case() {
    start_case "$2" "$3"
    expect_exit 1 ctl commit d
    grep -q "commit failed: .*$4" "$T/.err" || die "$1: commit said: $(cat "$T/.err")"
    old_chain_served "$1"
    end_case "$1"
}

# kill_case NAME SHIM_RULES FAULTPOINTS HELD: the worker waits at the step
# (HELD: a command that succeeds once it does), is killed there, and the
# release lets the next worker pass the same step.
kill_case() {
    start_case "$2" "$3"
    ctl commit d >"$T/c.out" 2>"$T/c.err" &
    local c_pid=$! pid
    wait_until $4 || die "$1: the worker was not held: $(cat "$T/c.err")"
    pid=$(worker_pid d)
    kill -9 "$pid"
    release_holds
    wait "$c_pid" && die "$1: a commit whose worker was killed succeeded"
    grep -q "commit failed: .*the worker stopped" "$T/c.err" || die "$1: commit said: $(cat "$T/c.err")"
    wait_until replaced d "$pid" || die "$1: the worker was not replaced"
    old_chain_served "$1"
    end_case "$1"
}

"$QEMU_IMG" create -f qcow "$T/base.qcow" 4M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x5a 0 512k' -c 'write -P 0xa5 3M 64k' "$T/base.qcow" \
    >/dev/null || die "qemu-io"
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow "$T/s1.qcow" >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x33 256k 512k' "$T/s1.qcow" >/dev/null || die "qemu-io"
cp "$T/base.qcow" "$T/base.template"
cp "$T/s1.qcow" "$T/s1.template"

fail_case "fails at its start" "" "begin-commit@1" "fault injected at step begin-commit"
fail_case "fails to copy down" "pwrite@base.qcow:1:EIO,pwritev@base.qcow:1:EIO" "" \
    "base.qcow.*Input/output error"
fail_case "fails before the switch" "" "commit-finishing@1" "fault injected at step commit-finishing"
fail_case "fails to flush the backing file" "fdatasync@base.qcow:1:EIO" "" \
    "base.qcow: fdatasync: Input/output error$"

for k in copy flush finishing switched; do
    case $k in
    copy) kill_case "killed while copying down" \
        "pwrite@base.qcow:1:HOLD,pwritev@base.qcow:1:HOLD" "" "fault_injected HOLD" ;;
    flush) kill_case "killed while flushing the backing file" "fdatasync@base.qcow:1:HOLD" "" \
        "fault_injected HOLD" ;;
    finishing) kill_case "killed before the switch" "" "commit-finishing@1:hold" \
        "held commit-finishing" ;;
    switched) kill_case "killed after the switch, qcowd not told" "" "commit-switched@1:hold" \
        "held commit-switched" ;;
    esac
done
