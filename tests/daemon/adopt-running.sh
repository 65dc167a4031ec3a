#!/bin/bash
# kill -9 of qcowd while three images are served with ring clients doing
# checked random I/O: the workers serve on, and qcowd started again on the
# same state file adopts them.  Each client keeps its ring and its I/O goes
# on without an error (reads checked against its model all along); the
# images are listed with the same options and "adopted"; a second client is
# refused the adopted ring (Busy) while the first one is there, and given it
# once that client has exited.  That holds for a client that speaks the
# protocol itself, asks for no lock and keeps nothing of the ring but its
# mapping (rawring.py, image d): the presence lock is qcowd's to take.  A
# ring recorded by an older qcowd as given without a lock stays held.  An
# adopted worker killed with -9 (not qcowd's child:
# its exit comes through a pidfd) is replaced on the same ring, and its
# client goes on.  At the end every acknowledged write reads back in
# qemu-img.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
start_daemon

"$QEMU_IMG" create -f qcow "$T/a.qcow" 16M >/dev/null
"$QEMU_IMG" create -f raw "$T/b.raw" 8M >/dev/null
"$QEMU_IMG" create -f qcow "$T/c.qcow" 8M >/dev/null
ctl attach --name a --cache writeback --iops 5000 "$T/a.qcow" >/dev/null || die "attach a"
ctl attach --name b -f raw --ring-page-order 1 --data-pages 64 "$T/b.raw" >/dev/null ||
    die "attach b"
ctl attach --name c -f qcow --poll-us 10 "$T/c.qcow" >/dev/null || die "attach c"
"$QEMU_IMG" create -f qcow "$T/d.qcow" 4M >/dev/null
ctl attach --name d "$T/d.qcow" >/dev/null || die "attach d"
python3 "$top_srcdir/tests/daemon/rawring.py" "$SOCK" d "$T/d.ready" "$T/d.stop" \
    >"$T/d.out" 2>&1 &
client_d=$!
wait_until test -e "$T/d.ready" || die "the raw client did not get d's ring: $(cat "$T/d.out")"

options() { ctl --json query "$1" | jq -S 'del(.pid, .adopted, .connected)'; }
for n in a b c d; do options $n >"$T/$n.before" || die "query $n"; done

# Each client: half its requests, then more until $T/stop, then the rest
# and a flush; its model of the disk goes to $T/N.shadow.
seed=$QCOWD_TEST_SEED
for n in a b c; do
    seed=$((seed + 1))
    "$DAEMON_TOOLS/ringio" "$SOCK" $n random "$T/$n.shadow" -s $seed -n 300 -q 8 -m 65536 \
        -M "$T/$n.mark" -S "$T/stop" >"$T/$n.out" 2>&1 &
    eval "client_$n=\$!"
done
marked() { [ -e "$T/a.mark" ] && [ -e "$T/b.mark" ] && [ -e "$T/c.mark" ]; }
wait_until marked || die "the clients did not get going"
for n in a b c d; do eval "worker_$n=$(worker_pid $n)"; done
[ -n "$worker_a" ] && [ -n "$worker_b" ] && [ -n "$worker_c" ] && [ -n "$worker_d" ] ||
    die "no worker pids"

kill -9 "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=
rm -f "$SOCK"
# Orphaned, the workers serve on (the clients do I/O all along).
served_on() { grep -q "a: supervisor went away: serving on" "$T/qcowd.log"; }
wait_until served_on || die "the workers did not say they serve on"
for n in a b c d; do
    eval "kill -0 \$worker_$n" 2>/dev/null || die "the worker of $n exited when qcowd died"
done
jq -e '[.attachments[] | select(.rendezvous and .["ring-held"])] | length == 4' "$STATE" \
    >/dev/null || die "the state file records no rendezvous: $(cat "$STATE")"
jq -e '[.attachments[] | select(.["ring-lock"])] | length == 4' "$STATE" >/dev/null ||
    die "the clients' presence locks are not recorded: $(cat "$STATE")"
# c's entry stands for one an older qcowd wrote, whose client took no
# presence lock: its ring must stay held after the client has gone.
jq '(.attachments[] | select(.name == "c") | .["ring-lock"]) = false' "$STATE" >"$T/state.new" &&
    chmod 600 "$T/state.new" && mv "$T/state.new" "$STATE" || die "editing the state file"

start_daemon
adopted() {
    [ "$(ctl --json list | jq '[.[] | select(.adopted and .state == "running")] | length')" = 4 ]
}
wait_until adopted || die "the workers were not adopted: $(ctl list)"
[ "$(ctl list | grep -cE '^[abcd] +running \(adopted\) ')" = 4 ] ||
    die "list does not show the adopted workers: $(ctl list)"
for n in a b c d; do
    eval "[ \"\$(worker_pid $n)\" = \"\$worker_$n\" ]" || die "$n: not the same worker"
    grep -q "$n: adopted its running worker" "$T/qcowd.log" || die "$n: adoption not logged"
    options $n >"$T/$n.after"
    diff -u "$T/$n.before" "$T/$n.after" >&2 || die "$n came back with other options"
done
for n in a d; do
    ctl --json query $n | jq -e '.adopted == true and .connected == true' >/dev/null ||
        die "query $n: $(ctl --json query $n)"
done
"$DAEMON_TOOLS/ringio" "$SOCK" d flush 2>/dev/null && die "a second client got d's ring"
"$DAEMON_TOOLS/ringio" "$SOCK" a flush 2>/dev/null && die "a second client got the ring"
printf '{"execute":"connect","arguments":{"name":"a"}}\n' | "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 |
    tail -n 1 >"$T/busy.out"
jq -e '.error.class == "Busy"' "$T/busy.out" >/dev/null && grep -q "previous qcowd" "$T/busy.out" ||
    die "not refused as held by the previous qcowd's client: $(cat "$T/busy.out")"

# The adopted worker of a dies: a replacement (qcowd's child) takes over
# the same ring and journal, and the client does not notice.
kill -9 "$worker_a"
replaced() {
    local q
    q=$(ctl --json query a) || return 1
    [ "$(jq -r .state <<<"$q")" = running ] && [ "$(jq -r .restarts <<<"$q")" = 1 ] &&
        [ "$(jq -r .pid <<<"$q")" != "$worker_a" ]
}
wait_until replaced || die "the adopted worker was not replaced: $(ctl --json query a)"
grep -q "a: worker died (status -1); restarted" "$T/qcowd.log" || die "the death was not logged"
[ "$(pgrep -P "$QCOWD_PID" | grep -cx "$(worker_pid a)")" = 1 ] ||
    die "the replacement is not qcowd's child"

touch "$T/stop" "$T/d.stop"
wait "$client_d" || die "the raw client failed: $(cat "$T/d.out")"
for n in a b c; do
    eval "wait \$client_$n" || die "the client of $n failed: $(cat "$T/$n.out")"
    grep -q " 0 failures" "$T/$n.out" || die "$n: $(cat "$T/$n.out")"
done

# The clients have exited, and their presence locks with them: a, b and d
# are free for a new client, with every write the old one made; c's
# entry said its client took no lock, so c stays held.
: >"$T/d.shadow"
truncate -s 4M "$T/d.shadow"
for n in a b d; do
    ctl --json query $n | jq -e '.connected == false' >/dev/null ||
        die "$n: still connected after its client left: $(ctl --json query $n)"
    "$DAEMON_TOOLS/ringio" "$SOCK" $n read 0 "$(ctl --json query $n | jq .size)" |
        cmp - "$T/$n.shadow" || die "$n: a new client did not get the ring, or other data"
    grep -q "$n: the previous qcowd's ring client is gone" "$T/qcowd.log" ||
        die "$n: the freed ring was not logged"
done
ctl --json query c | jq -e '.connected == true' >/dev/null || die "c: $(ctl --json query c)"
"$DAEMON_TOOLS/ringio" "$SOCK" c flush 2>/dev/null &&
    die "c: a new client got the ring its previous client may still hold"

for n in a b c d; do ctl detach $n >/dev/null || die "detach $n"; done
"$QEMU_IMG" compare -F raw "$T/a.qcow" "$T/a.shadow" >/dev/null || die "qemu-img: a differs"
"$QEMU_IMG" compare -f raw -F raw "$T/b.raw" "$T/b.shadow" >/dev/null || die "qemu-img: b differs"
"$QEMU_IMG" compare -F raw "$T/c.qcow" "$T/c.shadow" >/dev/null || die "qemu-img: c differs"
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
for n in b c d; do
    eval "wait_until gone \$worker_$n" || die "the adopted worker of $n outlived its detach"
done
[ -z "$(ls -A "$STATE.rendezvous")" ] || die "rendezvous left: $(ls "$STATE.rendezvous")"
exit 0
