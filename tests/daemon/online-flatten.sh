#!/bin/bash
# Snapshots, then commits, under one client (issue 13's proof): a client
# doing verified random I/O through the ring keeps it while snapshot runs
# 20 times (a 21-deep chain, which qemu-img reads as the client's shadow
# through a copy of the chain), then while commit runs 20 times, each
# merging the top into the layer below, down to the base alone.  Every read
# checks what was written before; after detach qemu-img reads the base as
# the client's shadow, qcowctl and qemu-img check find nothing wrong, and
# every overlay was released (qemu-io may write it).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
RINGIO=$DAEMON_TOOLS/ringio
SIZE=$((8 * 1024 * 1024))
N=20

chain_length() { ctl --json query "$1" | grep -c '"filename"'; }
chain_top() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"chain":\[{"filename":"\([^"]*\)".*/\1/p'; }
unlocked() { "$QEMU_IO" -f raw -c 'write 4194304 512' "$1" >/dev/null 2>&1; }
client_running() { kill -0 "$rio_pid" 2>/dev/null || die "the client stopped: $(cat "$T/rio.err")"; }

start_daemon
"$QEMU_IMG" create -f qcow "$T/base.qcow" 8M >/dev/null
ctl attach -n d "$T/base.qcow" >/dev/null || die "attach"
"$RINGIO" "$SOCK" d random "$T/shadow" -s "$SEED" -n 200 -q 8 -m 65536 \
    -M "$T/mark" -S "$T/stop" >"$T/rio.out" 2>"$T/rio.err" &
rio_pid=$!
wait_until test -e "$T/mark" || die "the client did not start: $(cat "$T/rio.err")"

for i in $(seq 1 $N); do
    ctl snapshot d "$T/s$i.qcow" >/dev/null || die "snapshot $i failed"
    client_running
done
[ "$(chain_length d)" = $((N + 1)) ] || die "query shows $(ctl --json query d)"

for i in $(seq $N -1 1); do
    below=$([ "$i" = 1 ] && echo base || echo "s$((i - 1))")
    ctl commit d >"$T/commit.out" || die "commit of s$i: $(cat "$T/commit.out")"
    grep -q "committed $T/s$i.qcow into $T/$below.qcow" "$T/commit.out" ||
        die "commit said: $(cat "$T/commit.out")"
    [ "$(chain_top d)" = "$T/$below.qcow" ] || die "after commit $i the top is $(chain_top d)"
    [ "$(chain_length d)" = "$i" ] || die "after commit $i: $(ctl --json query d)"
    client_running
done
expect_exit 2 ctl commit d
grep -q "no backing file" "$T/.err" || die "a commit of the base: $(cat "$T/.err")"

touch "$T/stop"
wait "$rio_pid" || die "the client failed: $(cat "$T/rio.err")"
grep -q " 0 failures" "$T/rio.out" || die "the client said: $(cat "$T/rio.out")"
"$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "the ring reads other data"
for i in 1 $((N / 2)) $N; do
    unlocked "$T/s$i.qcow" || die "s$i.qcow is still locked after its commit"
done
ctl detach d >/dev/null || die "detach"
stop_daemon || die "qcowd did not exit cleanly"

"$QEMU_IMG" info "$T/base.qcow" | grep -q '^backing file' && die "the base has a backing file"
"$QEMU_IMG" convert -O raw "$T/base.qcow" "$T/base.raw" || die "qemu-img convert"
cmp "$T/base.raw" "$T/shadow" || die "qemu-img reads the flattened base other than the client's shadow"
"$QEMU_IMG" check -f qcow "$T/base.qcow" >"$T/qcheck" 2>&1 ||
    grep -q "not support checks" "$T/qcheck" || die "qemu-img check: $(cat "$T/qcheck")"
"$QCOWCTL" check "$T/base.qcow" >"$T/check" || die "qcowctl check: $(cat "$T/check")"
echo "ok: 20 snapshots and 20 commits under one verifying client"
