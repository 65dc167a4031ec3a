#!/bin/bash
# An image comes back after a restart with the rights of the caller that
# attached it, never qcowd's: uid 65534 (a --group member) attaches two
# images of its own by descriptor; qcowd is killed; one of them is given
# to root meanwhile.  The new qcowd attaches the other one again, still
# owned by uid 65534 (it queries and reads it, with what it wrote), and
# refuses the one uid 65534 can no longer open, which is listed failed
# with the reason; root's own image comes back, still invisible to 65534.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
[ "$(id -u)" -eq 0 ] || skip "needs root (it runs clients as uid 65534)"
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
GROUP=$(getent group 65534 | cut -d: -f1)
[ -n "$GROUP" ] || skip "no group 65534"
chmod 755 "$T"
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody_ctl() { as_nobody "$QCOWCTL" --socket "$SOCK" "$@"; }

mkzero "$T/mine.raw" 1048576
mkzero "$T/taken.raw" 1048576
mkzero "$T/root.raw" 1048576
chown 65534:65534 "$T/mine.raw" "$T/taken.raw"
chmod 600 "$T/mine.raw" "$T/taken.raw" "$T/root.raw"

start_daemon --group "$GROUP"
nobody_ctl attach "$T/mine.raw" >/dev/null || die "uid 65534: attach mine.raw"
nobody_ctl attach "$T/taken.raw" >/dev/null || die "uid 65534: attach taken.raw"
ctl attach "$T/root.raw" >/dev/null || die "attach root.raw"
head -c 65536 /dev/urandom >"$T/data"
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw write 4096 65536 <"$T/data" || die "write"
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw flush || die "flush"
jq -e '[.attachments[] | select(.caller.uid == 65534) | .name] | sort == ["mine.raw", "taken.raw"]' \
    "$STATE" >/dev/null || die "the callers are not recorded: $(cat "$STATE")"
wait_ring_free mine.raw          # else the adopted ring stays Busy, as it should

kill -9 "$QCOWD_PID"
wait "$QCOWD_PID" 2>/dev/null
QCOWD_PID=
rm -f "$SOCK"
chown root:root "$T/taken.raw"      # root could still open it; uid 65534 cannot

start_daemon --group "$GROUP"
state_of() { ctl --json query "$1" | jq -r .state; }
settled() { [ "$(state_of mine.raw)" = running ] && [ "$(state_of taken.raw)" = failed ] &&
            [ "$(state_of root.raw)" = running ]; }
wait_until settled || die "not as expected after the restart: $(ctl list)"
ctl --json query taken.raw | jq -r .error | grep -q "$T/taken.raw: Permission denied" ||
    die "taken.raw: $(ctl --json query taken.raw | jq -r .error)"

[ "$(nobody_ctl --json query mine.raw | jq -r .state)" = running ] ||
    die "uid 65534 does not own mine.raw any more"
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw read 4096 65536 | cmp - "$T/data" ||
    die "what uid 65534 wrote did not come back"
nobody_ctl query root.raw >/dev/null 2>&1 && die "uid 65534 sees root's image after the restart"
nobody_ctl detach taken.raw >/dev/null || die "uid 65534 cannot detach its failed image"
nobody_ctl detach mine.raw >/dev/null || die "uid 65534: detach"
ctl detach root.raw >/dev/null || die "detach root.raw"
cmp <(dd if="$T/mine.raw" bs=4096 skip=1 count=16 status=none) "$T/data" ||
    die "the image does not hold what was written"
