#!/bin/bash
# I/O limits (attach --iops/--bps..., qcowctl limit): what query, limit and
# stats show; what is refused; requests over a limit are held in order, a
# flush passes them, a barrier keeps its place, a large request is not
# overtaken; a pause keeps them held, a change of limits or a detach lets
# them go, a restarted worker keeps the limits; a limit group shares one
# budget.  The ring's client only ever sees a delay, never an error.
#
# Most holds use a limit of 1 byte per second: a held request then waits
# for an hour unless the test lets it go, so nothing here depends on how
# fast the machine is.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
command -v jq >/dev/null || skip "jq not found (apt-get install jq)"
start_daemon

# Events, until qcowd stops at the end.
"$QCOWCTL" --socket "$SOCK" --json -v events >"$T/events" 2>"$T/events.err" &
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"

mk() { "$QCOWCTL" create -q "$T/$1" 16M || die "create $1"; }
limits_of() { ctl --json query "$1" | jq -c '.["io-limits"]'; }
worker_limits() { ctl --json stats "$1" | jq -c '.throttle["io-limits"]'; }
stat_of() { ctl --json stats "$1" | jq "$2"; }
held_is() { [ "$(stat_of "$1" .throttle.held)" = "$2" ]; }
flushes_are() { [ "$(stat_of "$1" .flush.ops)" = "$2" ]; }
expect_limits() {
    local got
    got=$(limits_of "$1")
    [ "$got" = "$2" ] || die "$1: limits $got, expected $2"
}
# ringio order in the background; its output in $T/order.$1
order_bg() {
    local name=$1
    shift
    "$DAEMON_TOOLS/ringio" "$SOCK" "$name" order "$@" >"$T/order.$name" &
}
# position of request $2 in the completion order of $T/order.$1
pos() { tr ' ' '\n' <"$T/order.$1" | tail -n +2 | grep -nx "$2" | cut -d: -f1; }

# ---- attach, query, limit, refusals -----------------------------------------
mk a.qcow
ctl attach --iops 4 --bps 1M --iops-burst 8 --burst-length 2 "$T/a.qcow" >/dev/null ||
    die "attach with limits"
want='{"iops-total":4,"iops-total-max":8,"iops-total-max-length":2,"bps-total":1048576}'
expect_limits a.qcow "$want"
[ "$(worker_limits a.qcow)" = "$want" ] || die "the worker applies $(worker_limits a.qcow)"
out=$(ctl limit a.qcow) || die "limit NAME"
[ "$out" = "a.qcow: iops-total 4/s, iops-total-max 8/s, iops-total-max-length 2 s, bps-total 1 MiB/s" ] ||
    die "limit shows: $out"
ctl query a.qcow | grep -qx "I/O limits: iops-total 4/s, .*bps-total 1 MiB/s" ||
    die "query does not show the limits"

ctl limit a.qcow --iops-burst 2 2>"$T/err" && die "a burst below its limit was accepted"
[ $? -eq 2 ] || die "a refused limit does not exit 2"
grep -q "'iops-total-max' (2) is below 'iops-total' (4)" "$T/err" || die "refusal: $(cat "$T/err")"
expect_exit 2 ctl limit a.qcow --limit iops=5
expect_exit 2 ctl limit a.qcow --limit iops-read-max=5
expect_exit 2 ctl limit a.qcow --limit-group 'a/b'
expect_exit 3 ctl limit nothere --iops 5
expect_limits a.qcow "$want"
mk bad.qcow
expect_exit 2 ctl attach --limit iops-write-max=9 "$T/bad.qcow"
ctl --json list | jq -e 'length == 1' >/dev/null || die "a refused attach left an attachment"
# 0 removes a limit with its burst.
ctl limit a.qcow --iops 0 >/dev/null || die "limit --iops 0"
expect_limits a.qcow '{"bps-total":1048576}'
wait_until grep -q '"event":"io-limits-changed","data":{"name":"a.qcow","io-limits":{"bps-total":1048576}}' \
    "$T/events" || die "no io-limits-changed event"

# ---- held in order; a flush passes; a barrier keeps its place ----------------
ctl limit a.qcow --reset --bps 1 >/dev/null || die "limit --reset --bps 1"
expect_limits a.qcow '{"bps-total":1}'
order_bg a.qcow w:4096 w:4096 w:4096 f
client=$!
wait_until held_is a.qcow 2 || die "two writes are not held"
wait_until flushes_are a.qcow 1 || die "the flush did not pass the held writes"
held_is a.qcow 2 || die "the flush released held writes"
ctl limit a.qcow --bps 0 >/dev/null || die "lift the limit"
wait "$client" || die "the client saw an error"
[ "$(pos a.qcow 3)" -lt "$(pos a.qcow 1)" ] && [ "$(pos a.qcow 3)" -lt "$(pos a.qcow 2)" ] ||
    die "completion order $(cat "$T/order.a.qcow"): the flush did not pass"

ctl limit a.qcow --bps 1 >/dev/null || die "limit --bps 1"
order_bg a.qcow w:4096 w:4096 w:4096 b w:4096
client=$!
wait_until held_is a.qcow 4 || die "the barrier and the writes around it are not held"
flushes_are a.qcow 1 || die "a barrier without data passed held writes"
ctl limit a.qcow --bps 0 >/dev/null || die "lift the limit"
wait "$client" || die "the client saw an error"
for w in 0 1 2; do
    [ "$(pos a.qcow "$w")" -lt "$(pos a.qcow 3)" ] || die "order $(cat "$T/order.a.qcow"): barrier before $w"
done
[ "$(pos a.qcow 3)" -lt "$(pos a.qcow 4)" ] || die "order $(cat "$T/order.a.qcow"): overtook the barrier"

# A large request at the head is not overtaken by small ones behind it:
# at 64 KiB/s the 64 KiB write starts about a second before the others.
ctl limit a.qcow --bps 64K >/dev/null || die "limit --bps 64K"
"$DAEMON_TOOLS/ringio" "$SOCK" a.qcow order w:8192 w:65536 w:4096 w:4096 >"$T/order.a.qcow" ||
    die "the client saw an error"
[ "$(pos a.qcow 1)" -lt "$(pos a.qcow 2)" ] && [ "$(pos a.qcow 1)" -lt "$(pos a.qcow 3)" ] ||
    die "order $(cat "$T/order.a.qcow"): small writes overtook a large one"

# ---- a pause keeps held requests held; a change of limits lets them go --------
# (A limit that changes carries its debt over: removed first, it starts full.)
ctl limit a.qcow --bps 0 >/dev/null && ctl limit a.qcow --bps 1 >/dev/null || die "limit --bps 1"
before=$(stat_of a.qcow .throttle.delayed)
order_bg a.qcow w:4096 w:4096 w:4096 w:4096 w:4096 w:4096
client=$!
wait_until held_is a.qcow 5 || die "five writes are not held"
ctl pause a.qcow >/dev/null || die "pause with held requests"
held_is a.qcow 5 || die "the pause did not keep the held requests"
# Paused, they stay held even when the limit goes; resumed, they run.
ctl limit a.qcow --bps 0 >/dev/null || die "lift the limit"
held_is a.qcow 5 || die "held requests started while the image was paused"
ctl resume a.qcow >/dev/null || die "resume"
wait_until held_is a.qcow 0 || die "held requests were not let go when the limit went"
wait "$client" || die "the client saw an error"
[ "$(wc -w <"$T/order.a.qcow")" -eq 7 ] || die "not every request completed: $(cat "$T/order.a.qcow")"
[ "$(stat_of a.qcow .throttle.delayed)" -ge $((before + 5)) ] || die "stats do not count the delayed"
[ "$(stat_of a.qcow '.throttle["throttled-us"] > 0')" = true ] || die "no throttled time counted"
ctl stats a.qcow | grep -q "throttled: .* requests delayed" || die "stats do not show the throttling"

# ---- a detach answers held requests ----------------------------------------
mk d.qcow
ctl attach --bps 1 "$T/d.qcow" >/dev/null || die "attach"
order_bg d.qcow w:4096 w:4096 w:4096 w:4096
client=$!
wait_until held_is d.qcow 3 || die "three writes are not held"
ctl --timeout 60 detach d.qcow >/dev/null || die "detach with held requests"
wait "$client" || die "the client saw an error at the detach"
[ "$(wc -w <"$T/order.d.qcow")" -eq 5 ] || die "not every request was answered: $(cat "$T/order.d.qcow")"

# ---- a restarted worker keeps the limits ------------------------------------
mk k.qcow
ctl attach --bps 1 "$T/k.qcow" >/dev/null || die "attach"
order_bg k.qcow w:4096 w:4096 w:4096 w:4096
client=$!
wait_until held_is k.qcow 3 || die "three writes are not held"
# The first write's answer must be out before the kill, or the new worker
# takes over four requests, not three.  The worker publishes answers at the
# end of the loop round in which it counted them, so a second stats query
# (answered in a later round) proves the answer is on the ring.
wait_until eval '[ "$(stat_of k.qcow .write.ops)" = 1 ]' || die "the first write did not complete"
stat_of k.qcow .write.ops >/dev/null || die "stats"
pid=$(worker_pid k.qcow)
kill -9 "$pid"
restarted() { [ "$(ctl --json query k.qcow | jq -r '.state + " " + (.pid | tostring)')" != "running $pid" ] &&
              [ "$(ctl --json query k.qcow | jq -r .state)" = running ]; }
wait_until restarted || die "the worker was not restarted"
[ "$(worker_limits k.qcow)" = '{"bps-total":1}' ] || die "the new worker applies $(worker_limits k.qcow)"
# Of the three requests the dead worker held, the new one's full bucket
# lets one through and holds the others.
wait_until held_is k.qcow 2 || die "the new worker does not hold the requests it took over"
ctl limit k.qcow --bps 0 >/dev/null || die "lift the limit"
wait "$client" || die "the client saw an error across the restart"

# ---- a limit group shares one budget ----------------------------------------
mk g1.qcow
mk g2.qcow
mk g3.qcow
ctl attach --limit-group grp --bps 1 "$T/g1.qcow" >/dev/null || die "attach into a group"
ctl attach --limit-group grp "$T/g2.qcow" >/dev/null || die "attach into a group"
expect_limits g2.qcow '{"bps-total":1,"group":"grp"}'
# g1 spends the group's budget for an hour: g2's write waits.
"$DAEMON_TOOLS/ringio" "$SOCK" g1.qcow write 0 4096 </dev/zero || die "write to g1"
order_bg g2.qcow w:4096
client=$!
wait_until held_is g2.qcow 1 || die "g2's write is not held by the budget g1 spent"
# Out of the group, g2 has its own (full) bucket.
ctl limit g2.qcow --limit-group '' >/dev/null || die "leave the group"
wait "$client" || die "the client saw an error"
expect_limits g2.qcow '{"bps-total":1}'
expect_limits g1.qcow '{"bps-total":1,"group":"grp"}'
# Limits given with a group are the group's, for every image in it.
ctl attach --limit-group grp --iops 7 "$T/g3.qcow" >/dev/null || die "attach into a group"
want='{"iops-total":7,"bps-total":1,"group":"grp"}'
expect_limits g1.qcow "$want"
expect_limits g3.qcow "$want"
wait_until eval '[ "$(worker_limits g1.qcow)" = "$want" ]' ||
    die "g1's worker was not told: $(worker_limits g1.qcow)"
wait_until grep -q '"name":"g1.qcow","io-limits":{"iops-total":7' "$T/events" ||
    die "no io-limits-changed event for g1"
ctl limit g3.qcow --reset >/dev/null || die "limit --reset"
expect_limits g1.qcow '{"group":"grp"}'
exit 0
