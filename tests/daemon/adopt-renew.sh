#!/bin/bash
# An adopted worker that stops on its own (SIGTERM) flushes and exits; the
# image goes on with a fresh ring and a new worker, qcowd's child.  The old
# worker's exit, seen through its pidfd a moment later, must not be taken
# for the new worker's death: no second worker is started on the same
# image, and the new one is never orphaned.  Every acknowledged write reads
# back, through the ring and in qemu-img.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

start_daemon
"$QEMU_IMG" create -f qcow "$T/x.qcow" 8M >/dev/null
ctl attach --name x "$T/x.qcow" >/dev/null || die "attach x"
head -c 65536 /dev/urandom >"$T/data"
"$DAEMON_TOOLS/ringio" "$SOCK" x write 0 65536 <"$T/data" || die "write x"
old=$(worker_pid x)
kill -9 "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=
rm -f "$SOCK"

start_daemon
adopted() { ctl --json query x | jq -e '.adopted == true and .state == "running"' >/dev/null; }
wait_until adopted || die "x was not adopted: $(ctl --json query x)"
[ "$(worker_pid x)" = "$old" ] || die "not the same worker"

kill -TERM "$old"
renewed() {
    local q
    q=$(ctl --json query x) || return 1
    [ "$(jq -r .state <<<"$q")" = running ] && [ "$(jq -r .pid <<<"$q")" != "$old" ] &&
        [ "$(jq -r '.["ring-renewals"]' <<<"$q")" = 1 ]
}
wait_until renewed || die "x did not go on with a fresh ring: $(ctl --json query x)"
new=$(worker_pid x)
wait_until gone "$old" || die "the adopted worker did not exit"
# A round trip through qcowd after the old worker's exit: its pidfd event
# has been handled by the time this is answered.
"$DAEMON_TOOLS/ringio" "$SOCK" x read 0 65536 | cmp - "$T/data" || die "x differs"
[ "$(worker_pid x)" = "$new" ] || die "the new worker was replaced: $(ctl --json query x)"
grep -q "x: worker died" "$T/qcowd.log" && die "the old worker's exit was taken for the new one's"
[ "$(ctl --json query x | jq .restarts)" = 0 ] || die "x restarted: $(ctl --json query x)"
grep -q "qcowd-worker\[$new\]: .*supervisor went away" "$T/qcowd.log" &&
    die "the new worker was orphaned"
ctl detach x >/dev/null || die "detach x"
wait_until gone "$new" || die "the new worker outlived its detach"
"$QEMU_IO" -f qcow -c "read -q -v 0 64k" "$T/x.qcow" >/dev/null || die "qemu-io read"
"$QEMU_IMG" convert -f qcow -O raw "$T/x.qcow" "$T/x.raw" && cmp -n 65536 "$T/data" "$T/x.raw" ||
    die "qemu-img: x differs"
exit 0
