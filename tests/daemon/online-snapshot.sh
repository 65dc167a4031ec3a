#!/bin/bash
# Live external snapshots (protocol snapshot, qcowctl snapshot NAME NEW): a
# client doing verified random I/O through the ring while snapshot runs 20
# times keeps its ring; every read checks what was written before, across
# snapshots; the chain is 21 deep; after detach qemu-img reads the top as
# the client's shadow, and each overlay names its backing file relatively.
# QEMU's locks: no layer can be written by qemu-io while served.  A worker
# killed afterwards comes back on the new chain.  Then a fault at each step
# of the worker's snapshot (and its crash there) leaves the old chain
# served, the data intact and no new file behind.  resume --image (tap-ctl's
# flow) serves an overlay the operator made of the paused image's top.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
RINGIO=$DAEMON_TOOLS/ringio
SIZE=$((16 * 1024 * 1024))
N=20

chain_length() { ctl --json query "$1" | grep -c '"filename"'; }
chain_top() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"chain":\[{"filename":"\([^"]*\)".*/\1/p'; }
state() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }
events_seen() { [ "$(grep -c "\"$1\"" "$T/events")" = "$2" ]; }

start_daemon
"$QEMU_IMG" create -f qcow "$T/base.qcow" 16M >/dev/null
"$QCOWCTL" --verbose --socket "$SOCK" --json events >"$T/events" 2>"$T/events.err" &
events_pid=$!
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"
ctl attach -n d "$T/base.qcow" >/dev/null || die "attach"

"$RINGIO" "$SOCK" d random "$T/shadow" -s "$SEED" -n 400 -q 16 -m 65536 \
    -M "$T/mark" -S "$T/stop" >"$T/rio.out" 2>"$T/rio.err" &
rio_pid=$!
wait_until test -e "$T/mark" || die "the client did not start: $(cat "$T/rio.err")"
for i in $(seq 1 $N); do
    ctl snapshot d "$T/s$i.qcow" >"$T/snap.out" || die "snapshot $i failed"
    grep -q "served from $T/s$i.qcow now, over $( [ "$i" = 1 ] && echo base || echo "s$((i - 1))").qcow" \
        "$T/snap.out" || die "snapshot $i said: $(cat "$T/snap.out")"
done
touch "$T/stop"
wait "$rio_pid" || die "the client failed: $(cat "$T/rio.err")"
grep -q "0 failures" "$T/rio.out" || die "the client said: $(cat "$T/rio.out")"
[ "$(chain_length d)" = $((N + 1)) ] || die "query shows $(ctl --json query d)"
[ "$(chain_top d)" = "$T/s$N.qcow" ] || die "the top is $(chain_top d)"
wait_until events_seen snapshot-taken $N || die "events: $(cat "$T/events")"
grep -q "\"snapshot-taken\".*\"path\":\"$T/s3.qcow\",\"backing\":\"s2.qcow\"" "$T/events" ||
    die "no snapshot-taken event for s3: $(cat "$T/events")"

# Nobody else writes a served layer: the top, an old top, the base.
for f in "s$N.qcow" s5.qcow base.qcow; do
    if "$QEMU_IO" -f qcow -c 'write 0 512' "$T/$f" >"$T/qio.out" 2>&1; then
        die "qemu-io could write $f while it is served"
    fi
    grep -qi "lock" "$T/qio.out" || die "qemu-io failed on $f without a lock: $(cat "$T/qio.out")"
done

# The whole disk through the ring is the client's shadow; a killed worker
# comes back on the deep chain and reads the same.
"$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "the ring reads other data"
pid=$(worker_pid d)
kill -9 "$pid"
wait_until replaced d "$pid" || die "the worker was not replaced"
wait_until grep -q '"worker-restarted"' "$T/events" || die "no worker-restarted event"
"$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "the new worker reads other data"
[ "$(chain_length d)" = $((N + 1)) ] || die "the new worker serves another chain"

# tap-ctl's flow: pause, the operator makes the overlay, resume on it.  An
# overlay of something else, or a running image, is refused.
"$QEMU_IMG" create -u -f qcow -b "s$N.qcow" -F qcow "$T/tap.qcow" 16M >/dev/null || die "qemu-img create"
"$QEMU_IMG" create -u -f qcow -b "s1.qcow" -F qcow "$T/other.qcow" 16M >/dev/null || die "qemu-img create"
expect_exit 7 ctl resume --image "$T/tap.qcow" d
ctl pause d >/dev/null || die "pause"
expect_exit 1 ctl resume --image "$T/other.qcow" d
grep -q "its backing file is $T/s1.qcow, not the image served ($T/s$N.qcow)" "$T/.err" ||
    die "no clear word on a wrong overlay: $(cat "$T/.err")"
[ "$(state d)" = paused ] && [ "$(chain_top d)" = "$T/s$N.qcow" ] ||
    die "a refused overlay changed the image: $(ctl --json query d)"
ctl resume --image "$T/tap.qcow" d >"$T/resume.out" || die "resume --image"
grep -q "resumed d, served from $T/tap.qcow now" "$T/resume.out" || die "$(cat "$T/resume.out")"
[ "$(state d)" = running ] && [ "$(chain_top d)" = "$T/tap.qcow" ] ||
    die "resume --image: $(ctl --json query d)"
head -c 65536 /dev/urandom >"$T/last"
"$RINGIO" "$SOCK" d write 1048576 65536 <"$T/last" || die "write on the operator's overlay"
dd if="$T/last" of="$T/shadow" bs=65536 seek=16 conv=notrunc status=none
"$RINGIO" "$SOCK" d read 0 $SIZE | cmp - "$T/shadow" || die "the ring reads other data"
wait_until events_seen snapshot-taken $((N + 1)) || die "no event for resume --image"

kill -INT "$events_pid"
wait "$events_pid" || die "qcowctl events did not end cleanly"
ctl detach d >/dev/null || die "detach"
"$QEMU_IMG" info --backing-chain "$T/tap.qcow" >"$T/info" || die "qemu-img info"
[ "$(grep -c '^image:' "$T/info")" = $((N + 2)) ] || die "qemu-img sees $(cat "$T/info")"
grep -qx "backing file: s$((N - 1)).qcow (actual path: $T/s$((N - 1)).qcow)" "$T/info" ||
    die "the overlays' backing names are not relative: $(cat "$T/info")"
"$QEMU_IMG" convert -O raw "$T/tap.qcow" "$T/top.raw" || die "qemu-img convert"
cmp "$T/top.raw" "$T/shadow" || die "qemu-img reads the top other than the client's shadow"
stop_daemon || die "qcowd did not exit cleanly"

# ---- a raw image: the overlay has 512-byte clusters; --backing-dir --------
mkdir "$T/bd"
start_daemon --backing-dir "$T/bd"
truncate -s 4M "$T/bd/r.img"
head -c 65536 /dev/urandom >"$T/r1"
head -c 4096 /dev/urandom >"$T/r2"
ctl attach -f raw "$T/bd/r.img" >/dev/null || die "attach raw"
"$RINGIO" "$SOCK" r.img write 0 65536 <"$T/r1" || die "write raw"
ctl snapshot r.img "$T/bd/r.qcow" >/dev/null || die "snapshot of a raw image"
"$RINGIO" "$SOCK" r.img write 512 4096 <"$T/r2" || die "write on the overlay"
ctl detach r.img >/dev/null || die "detach raw"
"$QEMU_IMG" info "$T/bd/r.qcow" | grep -q "^cluster_size: 512$" ||
    die "$("$QEMU_IMG" info "$T/bd/r.qcow")"
cp "$T/bd/r.img" "$T/r.expect"
dd if="$T/r2" of="$T/r.expect" bs=512 seek=1 conv=notrunc status=none
"$QEMU_IMG" compare -F raw "$T/bd/r.qcow" "$T/r.expect" >/dev/null ||
    die "the raw image's overlay reads wrong"
head -c 65536 "$T/bd/r.img" | cmp - "$T/r1" || die "the raw image was written after the snapshot"
# A top outside the --backing-dir directories would become a backing file a
# restarted worker may not open: refused, nothing made.
"$QEMU_IMG" create -f qcow "$T/out.qcow" 4M >/dev/null
ctl attach "$T/out.qcow" >/dev/null || die "attach out.qcow"
expect_exit 6 ctl snapshot out.qcow "$T/bd/o.qcow"
grep -q "outside the directories qcowd opens backing files in" "$T/.err" || die "$(cat "$T/.err")"
[ ! -e "$T/bd/o.qcow" ] || die "a refused snapshot left a file"
ctl detach out.qcow >/dev/null || die "detach out.qcow"
stop_daemon || die "qcowd did not exit cleanly"

# ---- faults: each step fails once, and a crash -----------------------------
# Per worker process, snapshots are counted: 1 fails at its start, 2 once
# the new file has its header, 3 succeeds, 4 crashes there (the worker is
# replaced, and its count starts again).
QCOWD_FAULTPOINT="begin-snapshot@1,snapshot-created@2,snapshot-created@4:crash" \
    QCOWD_WORKER=$DAEMON_TOOLS/qcowd-worker-hooks start_daemon
"$QEMU_IMG" create -f qcow "$T/f.qcow" 16M >/dev/null
ctl attach -n f "$T/f.qcow" >/dev/null || die "attach f"
"$RINGIO" "$SOCK" f random "$T/fshadow" -s "$SEED" -n 200 -q 8 -m 65536 >/dev/null ||
    die "random I/O on f"

expect_failed_snapshot() {   # NEW TOP: fails, nothing made, TOP still served
    expect_exit "$3" ctl snapshot f "$T/$1"
    [ ! -e "$T/$1" ] || die "$1 was left behind"
    [ "$(chain_top f)" = "$T/$2" ] || die "after a failed snapshot the top is $(chain_top f)"
    "$RINGIO" "$SOCK" f read 0 $SIZE | cmp - "$T/fshadow" || die "$1: the ring reads other data"
}
expect_failed_snapshot n1.qcow f.qcow 1
grep -q "fault injected at step begin-snapshot" "$T/.err" || die "n1: $(cat "$T/.err")"
expect_failed_snapshot n2.qcow f.qcow 1
grep -q "fault injected at step snapshot-created" "$T/.err" || die "n2: $(cat "$T/.err")"
ctl snapshot f "$T/n3.qcow" >/dev/null || die "snapshot n3"
[ "$(chain_top f)" = "$T/n3.qcow" ] || die "n3 is not the top"
pid=$(worker_pid f)
expect_failed_snapshot n4.qcow n3.qcow 1
wait_until replaced f "$pid" || die "the crashed worker was not replaced"
[ "$(chain_top f)" = "$T/n3.qcow" ] || die "the new worker serves $(chain_top f)"
"$RINGIO" "$SOCK" f read 0 $SIZE | cmp - "$T/fshadow" || die "after the crash the ring reads other data"
# An existing file is never taken.
echo keep >"$T/exists.qcow"
expect_exit 4 ctl snapshot f "$T/exists.qcow"
[ "$(cat "$T/exists.qcow")" = keep ] || die "an existing file was touched"
ctl detach f >/dev/null || die "detach f"
"$QEMU_IMG" convert -O raw "$T/n3.qcow" "$T/f.raw" || die "qemu-img convert f"
cmp "$T/f.raw" "$T/fshadow" || die "qemu-img reads n3 other than the client's shadow"
stop_daemon || die "qcowd did not exit cleanly"
