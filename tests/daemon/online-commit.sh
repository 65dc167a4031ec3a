#!/bin/bash
# Live commit (protocol commit, qcowctl commit NAME): while a client does
# verified random I/O through the ring, a chain made by 3 live snapshots is
# committed back, one layer at a time, into the base: the copy runs in the
# background in passes (commit-progress events), the backing file then
# takes the top's place (commit-completed) and the overlay is released (its
# locks go).  Every read checks what was written; after detach qemu-img
# reads the base as the client's shadow.  A commit without a backing file
# is refused; one whose worker is killed fails and leaves the old chain.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
RINGIO=$DAEMON_TOOLS/ringio
SIZE=$((16 * 1024 * 1024))

chain_length() { ctl --json query "$1" | grep -c '"filename"'; }
chain_top() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"chain":\[{"filename":"\([^"]*\)".*/\1/p'; }
events_seen() { [ "$(grep -c "\"$1\"" "$T/events")" -ge "$2" ]; }
commit_shown() { ctl --json query "$1" | grep -q '"commit"'; }
unlocked() { "$QEMU_IO" -f raw -c 'write 8388608 512' "$1" >/dev/null 2>&1; }

start_daemon
"$QEMU_IMG" create -f qcow "$T/base.qcow" 16M >/dev/null
"$QCOWCTL" --verbose --socket "$SOCK" --json events >"$T/events" 2>"$T/events.err" &
events_pid=$!
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"
ctl attach -n d "$T/base.qcow" >/dev/null || die "attach"
expect_exit 2 ctl commit d
grep -q "no backing file" "$T/.err" || die "no word on the missing backing file: $(cat "$T/.err")"

"$RINGIO" "$SOCK" d random "$T/shadow" -s "$SEED" -n 400 -q 16 -m 65536 \
    -M "$T/mark" -S "$T/stop" >"$T/rio.out" 2>"$T/rio.err" &
rio_pid=$!
wait_until test -e "$T/mark" || die "the client did not start: $(cat "$T/rio.err")"
for i in 1 2 3; do
    ctl snapshot d "$T/s$i.qcow" >/dev/null || die "snapshot $i"
done
[ "$(chain_length d)" = 4 ] || die "query shows $(ctl --json query d)"
unlocked "$T/s3.qcow" && die "the top was not locked"
# A commit stays at its start while the image is paused; its worker killed
# then, the commit fails, the old chain is served by a new worker (which
# could lock the backing file again), and nothing is lost.
ctl pause d >/dev/null || die "pause"
"$QCOWCTL" --socket "$SOCK" commit d >"$T/c0.out" 2>"$T/c0.err" &
c0_pid=$!
wait_until commit_shown d || die "the commit did not start: $(cat "$T/c0.err")"
pid=$(worker_pid d)
kill -9 "$pid"
wait "$c0_pid" && die "a commit whose worker was killed succeeded"
grep -q "commit failed: .*the worker stopped" "$T/c0.err" || die "commit said: $(cat "$T/c0.err")"
wait_until replaced d "$pid" "running paused" || die "the worker was not replaced"
[ "$(chain_top d)" = "$T/s3.qcow" ] && [ "$(chain_length d)" = 4 ] ||
    die "after a failed commit: $(ctl --json query d)"
ctl resume d >/dev/null || die "resume"

for i in 3 2 1; do
    ctl commit d >"$T/commit.out" || die "commit of s$i: $(cat "$T/commit.out")"
    below=$([ "$i" = 1 ] && echo base || echo "s$((i - 1))")
    grep -q "committed $T/s$i.qcow into $T/$below.qcow" "$T/commit.out" ||
        die "commit said: $(cat "$T/commit.out")"
    [ "$(chain_top d)" = "$T/$below.qcow" ] || die "after commit the top is $(chain_top d)"
    [ "$(chain_length d)" = "$i" ] || die "query shows $(ctl --json query d)"
    unlocked "$T/s$i.qcow" || die "s$i.qcow is still locked after its commit"
done
touch "$T/stop"
wait "$rio_pid" || die "the client failed: $(cat "$T/rio.err")"
grep -q "0 failures" "$T/rio.out" || die "the client said: $(cat "$T/rio.out")"
"$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "the ring reads other data"
wait_until events_seen commit-completed 3 || die "events: $(cat "$T/events")"
events_seen commit-progress 3 || die "no commit-progress events: $(cat "$T/events")"
grep -q "\"commit-completed\".*\"overlay\":\"$T/s1.qcow\",\"path\":\"$T/base.qcow\"" \
    "$T/events" || die "no commit-completed for s1: $(grep commit "$T/events")"
kill -INT "$events_pid"
wait "$events_pid" || die "qcowctl events did not end cleanly"
ctl detach d >/dev/null || die "detach"
"$QEMU_IMG" convert -O raw "$T/base.qcow" "$T/base.raw" || die "qemu-img convert"
cmp "$T/base.raw" "$T/shadow" || die "qemu-img reads the base other than the client's shadow"
# A backing file that another attached image reads too: a commit into it
# would change that image under it, so it is refused (naming the other
# image) and both read on as before; once the other image is detached, it
# goes ahead.
"$QEMU_IMG" create -f qcow "$T/shared.qcow" 1M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0x11 0 64K' "$T/shared.qcow" >/dev/null
for o in o1 o2; do
    "$QEMU_IMG" create -f qcow -b "$T/shared.qcow" -F qcow "$T/$o.qcow" 1M >/dev/null
done
"$QEMU_IO" -f qcow -c 'write -P 0x22 0 64K' "$T/o1.qcow" >/dev/null
ctl attach -n o1 "$T/o1.qcow" >/dev/null || die "attach o1"
ctl attach -n o2 "$T/o2.qcow" >/dev/null || die "attach o2"
expect_exit 8 ctl commit o1
grep -q "its backing file $T/shared.qcow is also served by 'o2'" "$T/.err" ||
    die "the commit into a shared backing file was not refused: $(cat "$T/.err")"
"$RINGIO" "$SOCK" o2 read 0 65536 | cmp - <(head -c 65536 /dev/zero | tr '\0' '\021') ||
    die "o2 reads other data"
ctl detach o2 >/dev/null || die "detach o2"
ctl commit o1 >/dev/null || die "commit of o1 once alone"
ctl detach o1 >/dev/null || die "detach o1"
run "$QEMU_IO" -f qcow -c 'read -P 0x22 0 64K' "$T/shared.qcow"
grep -q 'Pattern verification failed' "$T/.err" && die "the commit did not reach shared.qcow"
stop_daemon || die "qcowd did not exit cleanly"
