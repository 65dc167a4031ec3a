#!/bin/bash
# kill -9 of qcowd with three images attached (different options, one with
# limits changed live) and data written and flushed through their rings:
# qcowd started again on the same state file attaches every image again
# with the same options (qcowctl --json list and query say so), the data
# reads back byte-exact through new rings and, after detach, in qemu-img.
# A detach is recorded too: the next start does not bring that image back,
# and a live snapshot is: the image comes back on its new top.
# An encrypted image comes back when its attach named a key file (qcowd
# reads it again), and is listed failed when the key came alone.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
# Its workers stop when it dies: the images come back on fresh workers
# (adopting them instead is adopt-running.sh).
start_daemon --orphan-wait=0

"$QEMU_IMG" create -f qcow "$T/a.qcow" 32M >/dev/null
"$QEMU_IMG" create -f raw "$T/b.raw" 16M >/dev/null
"$QEMU_IMG" create -f qcow "$T/c.qcow" 8M >/dev/null
"$QEMU_IO" -f qcow -c "write -P 0x5a 64k 1M" "$T/c.qcow" >/dev/null || die "qemu-io write"
ctl attach --name a --cache writeback --poll-us 10 --iops 5000 "$T/a.qcow" >/dev/null ||
    die "attach a"
ctl attach --name b -f raw --ring-page-order 1 --data-pages 64 --bps-write 64M "$T/b.raw" \
    >/dev/null || die "attach b"
ctl attach --name c --read-only -f qcow "$T/c.qcow" >/dev/null || die "attach c"
ctl limit a --iops 4000 --iops-burst 8000 >/dev/null || die "limit a"

# Writes through the rings, each run ending with a flush.
"$DAEMON_TOOLS/ringio" "$SOCK" a random "$T/a.shadow" -s "$QCOWD_TEST_SEED" -n 600 -q 16 \
    >/dev/null || die "ring I/O on a"
"$DAEMON_TOOLS/ringio" "$SOCK" b random "$T/b.shadow" -s "$((QCOWD_TEST_SEED + 1))" -n 600 \
    -q 8 >/dev/null || die "ring I/O on b"
# A live snapshot moves a onto a new top: the state file must follow, or
# the restart would attach the old top (now a backing file) read-write.
ctl snapshot a "$T/a-top.qcow" >/dev/null || die "snapshot a"
head -c 65536 /dev/urandom >"$T/last"
"$DAEMON_TOOLS/ringio" "$SOCK" a write 1048576 65536 <"$T/last" || die "write a"
"$DAEMON_TOOLS/ringio" "$SOCK" a flush || die "flush a"
dd if="$T/last" of="$T/a.shadow" bs=64k seek=16 conv=notrunc status=none
wait_ring_free a                 # "connected" is compared after the restart
wait_ring_free b

options() { ctl --json query "$1" | jq -S 'del(.pid)'; }
listing() { ctl --json list | jq -S 'map(del(.pid)) | sort_by(.name)'; }
for n in a b c; do options $n >"$T/$n.before" || die "query $n"; done
listing >"$T/list.before"
grep -q '"iops-total": 4000' "$T/a.before" || die "the limit change did not take"
old_workers=$(pgrep -P "$QCOWD_PID" | tr '\n' ' ')

kill -9 "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=
rm -f "$SOCK"                   # left by the killed qcowd: start_daemon waits for the new one
[ -f "$STATE" ] || die "no state file at $STATE"
[ "$(stat -c %a "$STATE")" = 600 ] || die "the state file is mode $(stat -c %a "$STATE")"
grep -q '"key' "$STATE" && die "the state file mentions a key"
ls "$T" | grep -Eq '^qcowd-state\.json\.[A-Za-z0-9]{6}$' && die "a temporary state file was left behind"

start_daemon
all_running() { [ "$(ctl --json list | jq '[.[] | select(.state == "running")] | length')" = 3 ]; }
wait_until all_running || die "not every image came back: $(ctl list)"
grep -q 're-attaching 3 image(s)' "$T/qcowd.log" || die "the restore was not logged"
for pid in $old_workers; do
    [ "$(pgrep -P "$QCOWD_PID" | grep -cx "$pid")" = 0 ] || die "old worker $pid adopted?"
done
[ "$(ctl --json query a | jq -r .path)" = "$T/a-top.qcow" ] ||
    die "a came back on $(ctl --json query a | jq -r .path), not on its snapshot's top"
for n in a b c; do
    options $n >"$T/$n.after"
    diff -u "$T/$n.before" "$T/$n.after" >&2 || die "$n came back with other options"
done
listing >"$T/list.after"
diff -u "$T/list.before" "$T/list.after" >&2 || die "the list differs after the restart"

# Every flushed write, through a new ring.
"$DAEMON_TOOLS/ringio" "$SOCK" a read 0 33554432 | cmp - "$T/a.shadow" || die "a differs"
"$DAEMON_TOOLS/ringio" "$SOCK" b read 0 16777216 | cmp - "$T/b.shadow" || die "b differs"
"$QEMU_IMG" convert -f qcow -O raw "$T/c.qcow" "$T/c.expected" || die "convert c"
"$DAEMON_TOOLS/ringio" "$SOCK" c read 0 8388608 | cmp - "$T/c.expected" || die "c differs"
"$DAEMON_TOOLS/ringio" "$SOCK" c write 0 512 </dev/zero 2>/dev/null &&
    die "c took a write: it is read-only"

# A detach is recorded: b does not come back at the next start.
ctl detach b >/dev/null || die "detach b"
jq -e '[.attachments[].name] | sort == ["a", "c"]' "$STATE" >/dev/null ||
    die "the state file does not follow the detach: $(cat "$STATE")"
stop_daemon || die "qcowd exited non-zero at SIGTERM"
jq -e '.attachments | length == 2' "$STATE" >/dev/null || die "stopping changed the state file"
start_daemon
two_running() { [ "$(ctl --json list | jq '[.[] | select(.state == "running")] | length')" = 2 ]; }
wait_until two_running || die "a and c did not come back after SIGTERM: $(ctl list)"
ctl query b >/dev/null 2>&1 && die "b came back though it was detached"
ctl detach a >/dev/null && ctl detach c >/dev/null || die "detach"
"$QEMU_IMG" compare -F raw "$T/a-top.qcow" "$T/a.shadow" >/dev/null || die "qemu-img: a differs"
"$QEMU_IMG" compare -f raw -F raw "$T/b.raw" "$T/b.shadow" >/dev/null || die "qemu-img: b differs"
jq -e '.attachments == []' "$STATE" >/dev/null || die "the state file still lists images"

printf 'restart-secret\n' >"$T/pw"
"$QCOWCTL" create -q --encrypt --key-file "$T/pw" "$T/e.qcow" 4M || die "create e"
"$QCOWCTL" create -q --encrypt --key-file "$T/pw" "$T/k.qcow" 4M || die "create k"
ctl attach --key-file "$T/pw" "$T/e.qcow" >/dev/null || die "attach e"
printf '{"execute":"attach","arguments":{"path":"%s","key":"restart-secret"}}\n' "$T/k.qcow" |
    "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 | tail -n 1 | grep -q '"return"' || die "attach k"
head -c 8192 /dev/urandom >"$T/e.data"
"$DAEMON_TOOLS/ringio" "$SOCK" e.qcow write 0 8192 <"$T/e.data" || die "write e"
"$DAEMON_TOOLS/ringio" "$SOCK" e.qcow flush || die "flush e"
grep -q restart-secret "$STATE" && die "the state file holds a password"
jq -e --arg pw "$T/pw" '[.attachments[] | select(.name == "e.qcow") | .["key-file"]] == [$pw]' \
    "$STATE" >/dev/null || die "the key file is not recorded: $(cat "$STATE")"
stop_daemon || die "qcowd exited non-zero at SIGTERM"
start_daemon
e_back() { [ "$(ctl --json query e.qcow | jq -r .state)" = running ]; }
wait_until e_back || die "the encrypted image did not come back: $(ctl list)"
"$DAEMON_TOOLS/ringio" "$SOCK" e.qcow read 0 8192 | cmp - "$T/e.data" || die "e differs"
ctl --json query k.qcow | jq -r .error | grep -q "attached with a key, which qcowd does not record" ||
    die "k: $(ctl --json query k.qcow)"
ctl detach e.qcow >/dev/null && ctl detach k.qcow >/dev/null || die "detach e, k"
