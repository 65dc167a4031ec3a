#!/bin/bash
# Exports follow the callers' rights (doc/security.md).  As uid 65534 with
# qcowd --group: another user's image cannot be exported, listed or
# unexported; its own can, on a socket made with its rights (not where it
# may not create files, owned by it), not on a port below 1024, and not
# with TLS keys it cannot read.  nbdkit is started so that it never holds
# an image's lock descriptor: a detach and qemu-io right after it work while
# exports start.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
[ "$(id -u)" -eq 0 ] || skip "needs root (it runs clients as uid 65534)"
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
GROUP=$(getent group 65534 | cut -d: -f1)
[ -n "$GROUP" ] || skip "no group 65534"
chmod 755 "$T"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody_ctl() { as_nobody "$QCOWCTL" --socket "$SOCK" "$@"; }

mkzero "$T/root.raw" 4194304
mkzero "$T/mine.raw" 4194304
chown 65534:65534 "$T/mine.raw"
mkdir "$T/nb" "$T/closed" "$T/tls"
chown 65534:65534 "$T/nb"
chmod 700 "$T/closed"
echo "not a key" >"$T/tls/server-key.pem"
chmod 600 "$T/tls/server-key.pem"
start_nbd_daemon --group "$GROUP"

ctl attach "$T/root.raw" >/dev/null || die "attach root.raw"
ctl export add root.raw --nbd "unix:$T/root.sock" >/dev/null || die "root's export"
expect_exit 6 nobody_ctl export add root.raw --nbd "unix:$T/nb/r.sock"
expect_exit 6 nobody_ctl export remove root.raw
nobody_ctl export list >"$T/list" || die "export list as uid 65534"
grep -q root.raw "$T/list" && die "uid 65534 sees root's export"

expect_exit 0 nobody_ctl attach "$T/mine.raw"
expect_exit 6 nobody_ctl export add mine.raw --nbd "unix:$T/closed/m.sock"
[ -e "$T/closed/m.sock" ] && die "a socket was made where uid 65534 may not create one"
expect_exit 6 nobody_ctl export add mine.raw --nbd "tcp:127.0.0.1:999"
grep -q "ports below 1024" "$T/.err" || die "no reason given: $(cat "$T/.err")"
expect_exit 6 nobody_ctl export add mine.raw --nbd "tcp:0" --tls-certs "$T/tls"
grep -q "cannot read" "$T/.err" || die "no reason given: $(cat "$T/.err")"
expect_exit 0 nobody_ctl export add mine.raw --nbd "unix:$T/nb/m.sock"
[ "$(stat -c %u "$T/nb/m.sock")" = 65534 ] || die "the socket is not owned by uid 65534"
nbdinfo --size "nbd+unix:///?socket=$T/nb/m.sock" >/dev/null || die "the export does not serve"
nobody_ctl export list | grep -q mine.raw || die "uid 65534 does not see its export"
expect_exit 0 nobody_ctl export remove mine.raw
[ -e "$T/nb/m.sock" ] && die "the socket was left behind"

# nbdkit being started never holds another image's lock.
ctl export remove root.raw >/dev/null || die "unexport root.raw"
"$QEMU_IMG" create -q -f qcow "$T/l.qcow" 4M
for i in $(seq 1 20); do
    ctl attach "$T/l.qcow" >/dev/null || die "attach l.qcow ($i)"
    ctl export add root.raw --nbd "unix:$T/root.sock" >/dev/null &
    adding=$!
    ctl detach l.qcow >/dev/null || die "detach l.qcow ($i)"
    "$QEMU_IO" -c 'write 0 512' "$T/l.qcow" >/dev/null 2>&1 || die "l.qcow locked after its detach ($i)"
    wait "$adding" || die "export root.raw ($i)"
    ctl export remove root.raw >/dev/null || die "unexport root.raw ($i)"
done
stop_daemon || die "qcowd did not exit cleanly"
