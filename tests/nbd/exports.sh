#!/bin/bash
# Supervised exports: qcowctl export add/list/remove, the address in
# query, loopback by default for plain TCP, nbdkit restarted when it dies
# and stopped at detach, and clear errors for bad requests.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
start_nbd_daemon

"$QEMU_IMG" create -f qcow "$T/d.qcow" 16M >/dev/null
"$QEMU_IO" -f qcow -c 'write -P 0xa5 0 64K' "$T/d.qcow" >/dev/null
ctl attach "$T/d.qcow" >/dev/null || die "attach"
ring_free() { "$DAEMON_TOOLS/ringio" "$SOCK" d.qcow read 0 512 >/dev/null 2>&1; }
jqr() { ctl --json "$@" | jq -r "$JQ"; }
exp() { JQ=$1; shift; jqr "$@"; }

# Bad requests: each a clear error and its exit status; nothing is left behind.
expect_exit 3 ctl export add nope --nbd "unix:$T/x.sock"
grep -q "no image is attached as 'nope'" "$T/.err" || die "unclear NotFound: $(cat "$T/.err")"
expect_exit 2 ctl export add d.qcow --nbd "udp:1234"
grep -q "expected unix:PATH or tcp:HOST:PORT" "$T/.err" || die "unclear bad address"
touch "$T/file"
expect_exit 4 ctl export add d.qcow --nbd "unix:$T/file"
grep -q "exists and is not a socket" "$T/.err" || die "unclear existing file: $(cat "$T/.err")"
[ -f "$T/file" ] || die "a regular file was removed"
# A socket something listens on and never accepts, its backlog full: in
# use, said at once (the probe never waits), and qcowd keeps answering.
python3 - "$T/full.sock" "$T/full.ready" "$T/full.stop" <<'EOF' &
import os, socket, sys, time
path, ready, stop = sys.argv[1:4]
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(0)
pending = socket.socket(socket.AF_UNIX)
pending.connect(path)           # never accepted: the backlog of 0 is full
open(ready, "w").close()
give_up = time.monotonic() + 120    # should the test die before it says stop
while not os.path.exists(stop) and time.monotonic() < give_up:
    time.sleep(0.05)
EOF
full=$!
wait_until test -e "$T/full.ready" || die "no listener with a full backlog"
expect_exit 4 timeout 20 "$QCOWCTL" --socket "$SOCK" export add d.qcow --nbd "unix:$T/full.sock"
grep -q "$T/full.sock: something is listening there already" "$T/.err" ||
    die "a busy socket was not said to be in use: $(cat "$T/.err")"
ctl list >/dev/null || die "qcowd stopped answering"
touch "$T/full.stop"
wait "$full"
expect_exit 2 ctl export add d.qcow --nbd "tcp:example.invalid:10809"
grep -q "give an IP address" "$T/.err" || die "a host name was not refused: $(cat "$T/.err")"
expect_exit 2 ctl export add d.qcow --nbd "tcp:192.0.2.1:10809"
grep -q "plain NBD beyond this host" "$T/.err" || die "plain NBD off-host not refused"
expect_exit 2 ctl export add d.qcow --nbd "tcp:0" --tls-certs "$T/no-such-dir"
expect_exit 2 ctl export add d.qcow
expect_exit 3 ctl export remove d.qcow
[ "$(exp 'length' export list)" = 0 ] || die "a failed export add left an export"

# A plain TCP export with port 0 binds loopback and says which port.
ctl export add d.qcow --nbd tcp:0 >/dev/null || die "export add tcp"
addr=$(exp .export.nbd query d.qcow)
uri=$(exp .export.uri query d.qcow)
case $addr in tcp:127.0.0.1:[1-9]*) ;; *) die "plain TCP export not on loopback: $addr" ;; esac
[ "$uri" = "nbd://${addr#tcp:}" ] || die "URI $uri does not match $addr"
[ "$(nbdinfo --size "$uri")" = $((16 << 20)) ] || die "wrong size over TCP"
expect_exit 4 ctl export add d.qcow --nbd "unix:$T/x.sock"
[ -e "$T/x.sock" ] && die "a refused export left its socket"
# The ring belongs to the export now.
expect_exit 1 "$DAEMON_TOOLS/ringio" "$SOCK" d.qcow read 0 4096
grep -q "Device or resource busy" "$T/.err" || die "the ring is not the export's: $(cat "$T/.err")"
run ctl export remove d.qcow
[ "$(exp 'length' export list)" = 0 ] || die "export still listed after remove"
ctl --json query d.qcow | jq -e 'has("export")' >/dev/null && die "query still shows an export"
nbdinfo --size "$uri" >/dev/null 2>&1 && die "the TCP export still answers after remove"
wait_until ring_free || die "the ring was not given back after export remove"

# A unix export, read-only on request; nbdkit killed is restarted on the same socket.
ctl export add --read-only d.qcow --nbd "unix:$T/e.sock" >/dev/null || die "export add unix"
U=$(uri_of "$T/e.sock")
[ "$(stat -c %a "$T/e.sock")" = 660 ] || die "the socket is not mode 0660"
[ "$(nbdinfo --can write "$U"; echo $?)" != 0 ] || die "a read-only export is writable"
pid=$(exp .export.pid query d.qcow)
kill -9 "$pid"
restarted() { [ "$(exp .export.restarts query d.qcow)" = 1 ] && [ "$(exp .export.state query d.qcow)" = running ]; }
wait_until restarted || die "nbdkit was not restarted"
[ "$(exp .export.pid query d.qcow)" != "$pid" ] || die "same nbdkit pid after a restart"
run "$QEMU_IO" -f raw -r -c 'read -P 0xa5 0 64K' "$U"
grep -q "export-restarted" "$T/qcowd.log" || die "no export-restarted event"

# Detach stops nbdkit and removes the socket.
pid=$(exp .export.pid query d.qcow)
run ctl detach d.qcow
[ -e "$T/e.sock" ] && die "socket left after detach"
wait_until sh -c "! kill -0 $pid 2>/dev/null" || die "nbdkit still running after detach"
[ "$(exp 'length' export list)" = 0 ] || die "export listed after detach"

# An nbdkit that cannot serve fails export add with the reason in the log.
ctl attach "$T/d.qcow" >/dev/null || die "attach again"
printf '#!/bin/sh\necho "fake nbdkit: cannot start" >&2\nexit 3\n' >"$T/bad-nbdkit"
chmod +x "$T/bad-nbdkit"
stop_daemon
start_daemon --nbdkit "$T/bad-nbdkit" --nbdkit-plugin "$PLUGIN"
ctl attach "$T/d.qcow" >/dev/null || die "attach under the second daemon"
expect_exit 1 ctl export add d.qcow --nbd "unix:$T/f.sock"
grep -q "nbdkit exited with status 3" "$T/.err" || die "unclear nbdkit failure: $(cat "$T/.err")"
[ -e "$T/f.sock" ] && die "socket left after a failed start"
ctl list >/dev/null || die "the daemon stopped answering"
