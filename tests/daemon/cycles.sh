#!/bin/bash
# 1000 attach/detach cycles over one connection: the daemon's descriptors
# and memory do not grow, and no worker is left.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
# Under AddressSanitizer freed memory sits in a quarantine and RSS climbs
# without a leak: measure without it (a no-op in a plain build).
ASAN_OPTIONS="quarantine_size_mb=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" start_daemon
run "$QCOWCTL" create -q "$T/c.qcow" 8M

cycles() { # count
    local i
    for i in $(seq 1 "$1"); do
        printf '{"execute":"attach","arguments":{"path":"%s","name":"c"},"id":%d}\n' "$T/c.qcow" "$i"
        printf '{"execute":"detach","arguments":{"name":"c"},"id":-%d}\n' "$i"
    done | "$DAEMON_TOOLS/ctlraw" "$SOCK" $(($1 * 2)) > "$T/replies"
    [ "$(grep -c '"return"' "$T/replies")" -eq $(($1 * 2)) ] ||
        die "not every attach/detach succeeded: $(grep -m1 error "$T/replies")"
}

cycles 100
fds=$(fd_count "$QCOWD_PID")
rss=$(rss_kb "$QCOWD_PID")
cycles 900
[ "$(fd_count "$QCOWD_PID")" -eq "$fds" ] || die "descriptors grew: $fds -> $(fd_count "$QCOWD_PID")"
rss_end=$(rss_kb "$QCOWD_PID")
[ "$rss_end" -le $((rss + 2048)) ] || die "memory grew: ${rss} KiB -> ${rss_end} KiB"
no_children_left "$QCOWD_PID" || die "workers left behind"
msg "1000 cycles: $fds descriptors, RSS ${rss} -> ${rss_end} KiB"
