#!/bin/bash
# A caller's lease must not stop qcowd.  A client opens its own image,
# takes a write lease on it (F_SETLEASE; it ignores the SIGIO that asks it
# to give the lease up) and attaches it by descriptor: qcowd's own open of
# that file would wait lease-break-time (45 s by default) inside its event
# loop.  The attach must be refused at once, naming the path and the lease,
# and qcowd must go on answering; without the lease the same attach works.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
mkzero "$T/leased.raw" 1048576
start_daemon

# attach_leased SOCKET PATH LEASE: the reply line of an attach by descriptor.
attach_leased() {
    python3 - "$@" <<'EOF'
import fcntl, json, os, signal, socket, sys
sock_path, path, lease = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
signal.signal(signal.SIGIO, signal.SIG_IGN)
fd = os.open(path, os.O_RDWR)
if lease:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
s.recv(65536)                               # the greeting
line = {"execute": "attach", "arguments": {"path": path, "name": "leased", "format": "raw",
                                           "fd": True}}
socket.send_fds(s, [json.dumps(line).encode() + b"\n"], [fd])
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    reply += chunk
sys.stdout.write(reply.decode())
EOF
}

timeout 20 bash -c "$(declare -f attach_leased); attach_leased '$SOCK' '$T/leased.raw' yes" \
    >"$T/leased.out" || die "no answer within 20 s to an attach of a leased file"
jq -e '.error' "$T/leased.out" >/dev/null || die "a leased file was attached: $(cat "$T/leased.out")"
grep -q "$T/leased.raw: cannot reopen the descriptor passed: another process holds a lease" \
    "$T/leased.out" || die "no path or reason: $(cat "$T/leased.out")"
ctl list >/dev/null || die "qcowd stopped answering"

attach_leased "$SOCK" "$T/leased.raw" no >"$T/plain.out"
jq -e '.return' "$T/plain.out" >/dev/null || die "attach by descriptor: $(cat "$T/plain.out")"
ctl detach leased >/dev/null || die "detach"
exit 0
