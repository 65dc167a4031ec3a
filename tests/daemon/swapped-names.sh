#!/bin/bash
# The names on a caller's path are the caller's to change while qcowd uses
# them.  As uid 65534 (qcowd --group), a caller asks for snapshots whose
# path goes through a link it flips between a directory of its own whose
# canonical path is too long (so that naming the new file fails after it
# was made) and a directory of root's with files of the same names.  qcowd
# must clean up only the file it made, with the caller's rights: none of
# root's files may go, and every refusal names the path and the reason.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root (it runs clients as uid 65534)"
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
GROUP=$(getent group 65534 | cut -d: -f1)
[ -n "$GROUP" ] || skip "no group 65534"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# The system's python: one under root's home is not for uid 65534.
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3"
ATTEMPTS=300
# A raw request as uid 65534 (qcowctl would refuse these paths itself).
snapshot_raw() {
    printf '{"execute":"snapshot","arguments":{"name":"mine","path":"%s"}}\n' "$1" |
        as_nobody "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 | tail -n 1
}
chmod 755 "$T"
mkdir "$T/n" "$T/root"
chown 65534:65534 "$T/n"
for ((i = 0; i < ATTEMPTS; i++)); do echo "root's $i" >"$T/root/t$i.qcow"; done
run "$QCOWCTL" create -q -f qcow "$T/n/mine.qcow" 1M
chown 65534:65534 "$T/n/mine.qcow"
as_nobody "$PY" "$top_srcdir/tests/daemon/swapped-names.py" deep "$T/n" ||
    die "cannot make the deep directory"

start_daemon --group "$GROUP"
as_nobody "$QCOWCTL" --socket "$SOCK" attach --name mine "$T/n/mine.qcow" >/dev/null ||
    die "attach as uid 65534"
# Once, without the flips: the new file cannot be named, so it is refused
# and removed.
snapshot_raw "$T/n/s1/s2/first.qcow" >"$T/first.out"
jq -e '.error.class' "$T/first.out" >/dev/null ||
    die "a snapshot whose path cannot be named was taken: $(cat "$T/first.out")"
grep -q "$T/n/s1/s2/first.qcow: cannot create: File name too long" "$T/first.out" ||
    die "no path or reason: $(cat "$T/first.out")"
[ -e "$T/n/s1/s2/first.qcow" ] && die "the file qcowd made was left behind"

as_nobody "$PY" "$top_srcdir/tests/daemon/swapped-names.py" swap "$T/n/l" "s1/s2" "$T/root" \
    "$T/stop" >"$T/swap.out" 2>&1 &
swapper=$!
for ((i = 0; i < ATTEMPTS; i++)); do
    snapshot_raw "$T/n/l/t$i.qcow" >/dev/null
done
touch "$T/stop"
wait "$swapper" || die "the swapper failed: $(cat "$T/swap.out")"
for ((i = 0; i < ATTEMPTS; i++)); do
    [ "$(cat "$T/root/t$i.qcow" 2>/dev/null)" = "root's $i" ] ||
        die "root's $T/root/t$i.qcow is gone or changed (attempt $i)"
done
ctl --json query mine | jq -e '.state == "running"' >/dev/null || die "mine: $(ctl query mine)"
ctl detach mine >/dev/null || die "detach"
exit 0
