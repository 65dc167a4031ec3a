#!/bin/bash
# qcowd under the real systemd-socket-activate: it takes the passed socket,
# serves through it, and works the same.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate not installed"

systemd-socket-activate -l "$SOCK" -E NOTIFY_SOCKET= \
    "$QCOWD" --worker "$QCOWD_WORKER" --no-state --socket "$T/unused.sock" 2>>"$T/qcowd.log" &
QCOWD_PID=$!
wait_until test -S "$SOCK" || die "systemd-socket-activate did not listen"

run "$QCOWCTL" create -q "$T/a.qcow" 8M
ctl attach "$T/a.qcow" >/dev/null || die "attach through the activated socket"
grep -q "listening on the socket passed by systemd" "$T/qcowd.log" ||
    die "qcowd did not take the passed socket: $(cat "$T/qcowd.log")"
[ ! -e "$T/unused.sock" ] || die "qcowd bound its own socket too"
printf 'activated\n' | head -c 512 > "$T/m"; head -c $((512 - 10)) /dev/zero >> "$T/m"
"$DAEMON_TOOLS/ringio" "$SOCK" a.qcow write 0 512 < "$T/m" || die "ring I/O"
"$DAEMON_TOOLS/ringio" "$SOCK" a.qcow read 0 512 | cmp - "$T/m" || die "read back"
ctl shutdown >/dev/null || die "shutdown"
wait "$QCOWD_PID"; rc=$?
QCOWD_PID=
[ $rc -eq 0 ] || die "qcowd exited $rc"
