#!/bin/bash
# Issue 13's proof of I/O limits: a QD32 client on an image limited to
# 1000 IOPS measures 1000 +- 10 % over 10 s, while an unlimited neighbour
# served at the same time is not held back.  Then the two share 1000 IOPS
# as a limit group.
#
# Robust on a loaded machine: the upper bound holds whatever the load (the
# buckets never let more through than 10 s of the rate plus the 0.1 s
# bucket); the lower bound needs only the limited client and its worker to
# get some CPU (they ask for little: 1000 wake-ups a second), so the
# neighbour's worker is reniced; each client reports the rate it achieved
# by its own clock.  The neighbour must do many times the limit.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
command -v jq >/dev/null || skip "jq not found (apt-get install jq)"
start_daemon

LIMIT=1000
SECONDS_RUN=10
"$QCOWCTL" create -q "$T/limited.qcow" 64M || die "create"
"$QCOWCTL" create -q "$T/free.qcow" 64M || die "create"
ctl attach --iops "$LIMIT" "$T/limited.qcow" >/dev/null || die "attach --iops $LIMIT"
ctl attach "$T/free.qcow" >/dev/null || die "attach the neighbour"
renice -n 10 -p "$(worker_pid free.qcow)" >/dev/null 2>&1 || true

"$DAEMON_TOOLS/ringio" "$SOCK" free.qcow load -q 32 -t "$SECONDS_RUN" >"$T/free.out" &
free_pid=$!
"$DAEMON_TOOLS/ringio" "$SOCK" limited.qcow load -q 32 -t "$SECONDS_RUN" >"$T/limited.out" ||
    die "the limited client saw an error"
wait "$free_pid" || die "the neighbour saw an error"

# "ops N seconds S iops X from T0 to T1"
read -r _ ops _ secs _ iops _ <"$T/limited.out"
read -r _ free_ops _ free_secs _ free_iops _ <"$T/free.out"
msg "limited to $LIMIT: $ops ops in $secs s = $iops IOPS; neighbour: $free_ops ops in $free_secs s = $free_iops IOPS"

awk -v s="$secs" -v t="$SECONDS_RUN" 'BEGIN { exit !(s >= t && s < t + 5) }' ||
    die "the limited client ran $secs s, not about $SECONDS_RUN"
# Never more than the rate plus the bucket (0.1 s of it), over the window.
awk -v n="$ops" -v s="$secs" -v l="$LIMIT" 'BEGIN { exit !(n <= l * s + l / 10 + 2) }' ||
    die "$ops operations in $secs s exceed $LIMIT IOPS and its bucket"
awk -v r="$iops" -v l="$LIMIT" 'BEGIN { exit !(r >= 0.9 * l && r <= 1.1 * l) }' ||
    die "$iops IOPS is not within 10 % of $LIMIT"
awk -v r="$free_iops" -v l="$LIMIT" 'BEGIN { exit !(r >= 3 * l) }' ||
    die "the unlimited neighbour did only $free_iops IOPS"

# The worker counted the time it held requests back, and only there.
st=$(ctl --json stats limited.qcow) || die "stats"
[ "$(jq '.throttle.delayed > 1000 and .throttle["throttled-us"] > 5000000' <<<"$st")" = true ] ||
    die "the limited worker does not report holding requests: $(jq -c .throttle <<<"$st")"
[ "$(jq -c '.throttle["io-limits"]' <<<"$st")" = '{"iops-total":1000}' ] ||
    die "the worker's limits: $(jq -c '.throttle["io-limits"]' <<<"$st")"
st=$(ctl --json stats free.qcow) || die "stats"
[ "$(jq '.throttle.delayed' <<<"$st")" = 0 ] || die "the neighbour's requests were held"

# Two images of a limit group share its 1000 IOPS (within the same bound:
# one budget), and take turns: neither gets less than a quarter.
ctl detach free.qcow >/dev/null && ctl detach limited.qcow >/dev/null || die "detach"
ctl attach --limit-group pair --iops "$LIMIT" "$T/limited.qcow" >/dev/null || die "attach"
ctl attach --limit-group pair "$T/free.qcow" >/dev/null || die "attach"
"$DAEMON_TOOLS/ringio" "$SOCK" free.qcow load -q 32 -t 3 >"$T/free.out" &
free_pid=$!
"$DAEMON_TOOLS/ringio" "$SOCK" limited.qcow load -q 32 -t 3 >"$T/limited.out" ||
    die "a client of the group saw an error"
wait "$free_pid" || die "a client of the group saw an error"
# "ops N seconds S iops X from T0 to T1"
read -r _ a _ _ _ _ _ a0 _ a1 <"$T/limited.out"
read -r _ b _ _ _ _ _ b0 _ b1 <"$T/free.out"
msg "a group of two at $LIMIT IOPS: $a and $b ops from $a0/$b0 to $a1/$b1"
# Over the window both clients span: the rate, the bucket (0.1 s, and one
# request over it), and one request per worker that found the buckets
# conforming just before the other charged them.
awk -v a="$a" -v b="$b" -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v l="$LIMIT" \
    'BEGIN { s = (a1 > b1 ? a1 : b1) - (a0 < b0 ? a0 : b0); exit !(a + b <= l * s + l / 10 + 3) }' ||
    die "the group let $((a + b)) operations through"
[ "$a" -ge $(((a + b) / 4)) ] && [ "$b" -ge $(((a + b) / 4)) ] ||
    die "the group's members did not take turns: $a and $b"
exit 0
