#!/bin/bash
# --log-file and SIGHUP: after logrotate moves the file away, SIGHUP makes
# qcowd write to a new one; --log-level filters.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
start_daemon --log-file "$T/q.log" --log-level info
run "$QCOWCTL" create -q "$T/a.qcow" 8M
ctl attach "$T/a.qcow" >/dev/null || die "attach"
grep -q "info: a.qcow: attaching" "$T/q.log" || die "no attach line in the log file"
! grep -q "debug:" "$T/q.log" || die "debug lines at --log-level info"

mv "$T/q.log" "$T/q.log.1"
kill -HUP "$QCOWD_PID"
wait_until test -s "$T/q.log" || die "no new log file after SIGHUP"
grep -q "SIGHUP: log reopened" "$T/q.log" || die "no new log file after SIGHUP"
ctl detach a.qcow >/dev/null || die "detach"
grep -q "a.qcow: detached" "$T/q.log" || die "later lines do not go to the new file"
! grep -q "detached" "$T/q.log.1" || die "the old file still receives lines"
