#!/bin/bash
# Workers run with least privilege: once their image is open they are the
# worker user (nobody here, when there is no qcowd user), with no
# capability, NoNewPrivs, and (built with libseccomp) a seccomp filter.  A
# worker that makes a forbidden system call (the test build's hook, on
# SIGUSR1) is killed; the supervisor reports it and serves the image again.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
HOOKED=$DAEMON_TOOLS/qcowd-worker-hooks
[ -x "$HOOKED" ] || die "$HOOKED not built"
grep -q "test hook: making a forbidden" "$QCOWD_WORKER" && die "the installed worker has the test hook"
QCOWD_WORKER=$HOOKED start_daemon
run "$QCOWCTL" create -q "$T/s.qcow" 8M
ctl attach "$T/s.qcow" >/dev/null || die "attach"
pid=$(worker_pid s.qcow)
status_of() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

if [ "$(id -u)" -eq 0 ]; then
    want_uid=$(id -u qcowd 2>/dev/null || id -u nobody)
    want_gid=$(id -g qcowd 2>/dev/null || id -g nobody)
    [ "$(status_of "$pid" Uid)" = "$(printf '%s\t%s\t%s\t%s' "$want_uid" "$want_uid" "$want_uid" "$want_uid")" ] ||
        die "worker Uid: $(status_of "$pid" Uid), expected $want_uid"
    [ "$(status_of "$pid" Gid)" = "$(printf '%s\t%s\t%s\t%s' "$want_gid" "$want_gid" "$want_gid" "$want_gid")" ] ||
        die "worker Gid: $(status_of "$pid" Gid), expected $want_gid"
    [ -z "$(status_of "$pid" Groups)" ] || die "worker Groups: $(status_of "$pid" Groups)"
    [ "$(status_of "$pid" CapBnd)" = 0000000000000000 ] || die "worker CapBnd: $(status_of "$pid" CapBnd)"
fi
[ "$(status_of "$pid" NoNewPrivs)" = 1 ] || die "worker NoNewPrivs: $(status_of "$pid" NoNewPrivs)"
for cap in CapEff CapPrm CapInh CapAmb; do
    [ "$(status_of "$pid" $cap)" = 0000000000000000 ] || die "worker $cap: $(status_of "$pid" $cap)"
done
if [ "${QCOWD_SECCOMP:-no}" != yes ]; then
    [ "$(status_of "$pid" Seccomp)" = 0 ] || die "worker Seccomp: $(status_of "$pid" Seccomp)"
    skip "built without libseccomp: no filter to test"
fi
[ "$(status_of "$pid" Seccomp)" = 2 ] || die "worker Seccomp: $(status_of "$pid" Seccomp), expected 2"

# Data written and flushed, then the worker tries what it must not.
"$RANDIO" data 3 65536 >"$T/d"
"$DAEMON_TOOLS/ringio" "$SOCK" s.qcow write 131072 65536 <"$T/d" || die "write"
"$DAEMON_TOOLS/ringio" "$SOCK" s.qcow flush || die "flush"
[ "$(worker_pid s.qcow)" = "$pid" ] || die "the worker was replaced by ring I/O alone"
SANDBOX_KILL_EXPECTED=1
kill -USR1 "$pid"
replaced() { [ "$(worker_pid s.qcow)" != "$pid" ] && ctl --json query s.qcow | grep -q '"state": *"running"'; }
wait_until replaced || die "the worker was not replaced after its forbidden call"
grep -q "worker pid $pid was killed by its seccomp filter for a forbidden system call" "$T/qcowd.log" ||
    die "the supervisor did not report the forbidden call"
grep -q '"reason":"forbidden system call"' "$T/qcowd.log" || die "no worker-died event with the reason"
ctl --json query s.qcow | tr -d ' \n' | grep -q '"restarts":1' || die "restart not counted"
"$DAEMON_TOOLS/ringio" "$SOCK" s.qcow read 131072 65536 | cmp - "$T/d" || die "the data is gone"
[ "$(status_of "$(worker_pid s.qcow)" Seccomp)" = 2 ] || die "the new worker has no filter"
ctl detach s.qcow >/dev/null || die "detach"
stop_daemon || die "qcowd did not exit cleanly"
