#!/bin/bash
# A ring client cannot wedge its worker through the eventfds it shares with
# it (O_NONBLOCK and the counter belong to the open file description):
# - response eventfd made blocking and saturated: the worker does not block
#   ringing it; it shuts the ring down as broken, and qcowd serves the image
#   on a fresh ring (same worker process, no restart);
# - request eventfd made blocking, saturated and drained by the client
#   while it posts requests: the worker never reads it, so it keeps
#   answering its supervisor and serves the next client.
# Another image is served throughout.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon

"$QEMU_IMG" create -f qcow "$T/victim.qcow" 16M >/dev/null
"$QEMU_IMG" create -f qcow "$T/other.qcow" 16M >/dev/null
ctl attach "$T/victim.qcow" >/dev/null && ctl attach "$T/other.qcow" >/dev/null || die "attach"
head -c 65536 /dev/urandom >"$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow write 0 65536 <"$T/data" || die "write victim"
"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow write 0 65536 <"$T/data" || die "write other"
query_victim() { ctl --json query victim.qcow | tr -d ' \n'; }
field() { query_victim | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
running() { query_victim | grep -q '"state":"running"'; }
pid=$(worker_pid victim.qcow)

# The response doorbell.
"$DAEMON_TOOLS/ringabuse" "$SOCK" victim.qcow rsp-block ||
    die "the worker did not shut down the ring whose response doorbell was wedged"
renewed() { [ "$(field ring-renewals)" = 1 ] && running; }
wait_until renewed || die "the ring was not renewed: $(query_victim)"
[ "$(field restarts)" = 0 ] || die "the worker was restarted, not the ring renewed"
grep -q "victim.qcow: ring shut down: the response doorbell cannot be rung at once" \
    "$T/qcowd.log" || die "the reason was not logged"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow read 0 65536 | cmp - "$T/data" ||
    die "the renewed ring does not serve"
"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow read 0 65536 | cmp - "$T/data" ||
    die "the other image was disturbed"

# The request doorbell.
pid=$(worker_pid victim.qcow)
"$DAEMON_TOOLS/ringabuse" "$SOCK" victim.qcow req-block 50 >"$T/abuse.out" ||
    die "ringabuse req-block could not run"
msg "req-block: $(cat "$T/abuse.out")"
ctl stats victim.qcow >/dev/null || die "the worker no longer answers its supervisor"
[ "$(worker_pid victim.qcow)" = "$pid" ] || die "the worker was replaced"
# The request whose wake-up the client stole is taken at the worker's next
# look (its idle tick); until then the ring is busy for a new client.
ring_idle() { "$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow read 0 512 >/dev/null 2>&1; }
wait_until ring_idle || die "the ring stays busy after the client left"
"$DAEMON_TOOLS/ringio" "$SOCK" victim.qcow read 0 65536 | cmp - "$T/data" ||
    die "the next client is not served"
"$DAEMON_TOOLS/ringio" "$SOCK" other.qcow read 0 65536 | cmp - "$T/data" ||
    die "the other image was disturbed"
ctl detach victim.qcow >/dev/null || die "the abused image does not detach"
ctl detach other.qcow >/dev/null || die "detach other"
