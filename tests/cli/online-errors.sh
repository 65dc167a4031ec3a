#!/bin/bash
# qcowctl's online commands when things go wrong: usage errors (2), no
# daemon (1, the socket named), and each error class's exit status (3 NotFound,
# 4 AlreadyExists, 5 Locked, 6 PermissionDenied, 7 InvalidState, 9
# LimitReached; 1 for ImageError), with the daemon's message.
. "$(dirname "$0")/online-lib.sh"

online="attach detach list query stats pause resume events version shutdown"

# --help: the online commands, their options and exit codes.
expect_rc 0 --help
for c in $online; do
    out_has "  $c "
done
out_has "--socket PATH"
out_has "3 NotFound"
for c in $online; do
    expect_rc 0 "$c" --help
    out_has "Usage: qcowctl"
    out_has " $c "
    out_has "--socket PATH"
    out_has "Exit status:"
    out_has "  3  no image is attached under that name (NotFound)"
    out_has "  4  the name or the image is attached already (AlreadyExists)"
done
expect_rc 0 attach --help
out_has "--key-file F"
out_has "--cache MODE"
expect_rc 0 stats --help
out_has "--interval SECS"

# Usage errors: 2, before any connection is tried.
S=$T/nobody.sock
expect_rc 2 --socket "$S" attach
err_has "attach: missing operand"
expect_rc 2 --socket "$S" attach a b
err_has "too many operands"
expect_rc 2 --socket "$S" attach --cache sometimes x.qcow
err_has "unknown cache mode 'sometimes'"
expect_rc 2 --socket "$S" attach --poll-us 1001 x.qcow
err_has "poll time"
expect_rc 2 --socket "$S" attach -f vmdk x.qcow
err_has "unknown image format 'vmdk'"
expect_rc 2 --socket "$S" detach
expect_rc 2 --socket "$S" query a b
expect_rc 2 --socket "$S" list extra
expect_rc 2 --socket "$S" stats --interval 2
err_has "--interval needs --watch"
expect_rc 2 --socket "$S" stats --watch --interval 0
err_has "invalid interval '0'"
expect_rc 2 --socket "$S" stats --watch --count 0
expect_rc 2 --socket "$S" list --frobnicate
err_has "unknown option '--frobnicate'"
expect_rc 2 --timeout soon list
err_has "invalid timeout 'soon'"
expect_rc 2 list --timeout soon
expect_rc 2 --socket
err_has "needs an argument"
expect_rc 2 list --socket ""
err_has "--socket needs a path"
# Every online command shares the connection options' checks.
# (resize stops at its first operand, since -SIZE is one: options first.)
for c in "snapshot" "resume" "limit" "export list" "commit" "resize"; do
    expect_rc 2 $c --socket "" a b
    err_has "--socket needs a path"
    expect_rc 2 $c --timeout -1 a b
    err_has "invalid timeout '-1'"
done

# No daemon: 1, naming the socket and the reason.
expect_rc 1 --socket "$S" list
err_has "qcowctl: $S: cannot connect: No such file or directory (is qcowd running?)"
expect_rc 1 list --socket "$S"
err_has "qcowctl: $S: cannot connect"
expect_rc 1 --socket "$S" detach x
err_has "qcowctl: $S: cannot connect"
# A file that is not a listening socket.
: >"$T/plain"
expect_rc 1 --socket "$T/plain" list
err_has "qcowctl: $T/plain: cannot connect: Connection refused (is qcowd running?)"
long=$T/$(printf 'x%.0s' $(seq 120)).sock
expect_rc 1 --socket "$long" list
err_has "the socket path is longer than"
# The environment, and the default.
QCOWD_SOCKET=$S expect_rc 1 list
err_has "qcowctl: $S: cannot connect"
if [ "$(id -u)" = 0 ]; then
    if [ ! -e /run/qcowd/qcowd.sock ]; then
        env -u QCOWD_SOCKET XDG_RUNTIME_DIR="$T" "$QCOWCTL" list >"$T/out" 2>"$T/err" && fail "list ran"
        err_has "qcowctl: /run/qcowd/qcowd.sock: cannot connect"
    fi
else
    env -u QCOWD_SOCKET XDG_RUNTIME_DIR="$T/xdg" "$QCOWCTL" list >"$T/out" 2>"$T/err" && fail "list ran"
    err_has "qcowctl: $T/xdg/qcowd.sock: cannot connect"
    env -u QCOWD_SOCKET -u XDG_RUNTIME_DIR "$QCOWCTL" list >"$T/out" 2>"$T/err" && fail "list ran"
    err_has "XDG_RUNTIME_DIR is not set"
fi
# version still shows the client's version.
expect_rc 1 --socket "$S" version
out_has "client: qcowctl"

make_image disk.qcow 16M
make_image other.qcow 16M
mkdir adir
start_daemon

# A file qcowctl cannot open (it passes qcowd the descriptor): 1, with the
# (absolute) path and the reason.
expect_on 1 attach missing.qcow
err_has "qcowctl: $T/missing.qcow: No such file or directory"
expect_on 1 attach adir
err_has "$T/adir"
# InvalidParameter: a name qcowd refuses is a usage error.
expect_on 2 attach --name 'no/slash' disk.qcow
err_has "'no/slash' is not a valid name"

expect_on 0 attach disk.qcow
# AlreadyExists: 4, by name and by file.
expect_on 4 attach disk.qcow
err_has "qcowctl: $SOCK: attach: an image is already attached as 'disk.qcow'"
expect_on 4 attach --name again disk.qcow
err_has "is already attached"
expect_on 4 attach --name disk.qcow other.qcow

# NotFound: 3 for every command that takes a NAME.
for c in detach query pause resume stats; do
    expect_on 3 "$c" nope
    err_has "qcowctl: $SOCK: $c: no image is attached as 'nope'"
done
expect_on 3 --json detach nope
[ ! -s "$T/out" ] || fail "an error printed JSON on stdout"

# InvalidState: 7.
expect_on 7 resume disk.qcow
err_has "is running, not paused"
expect_on 0 pause disk.qcow
expect_on 7 pause disk.qcow
err_has "is paused, not running"
expect_on 0 resume disk.qcow

# Locked: 5, when QEMU holds the image for writing.
if have_qemu; then
    hold_with_qemu_io other.qcow -f qcow || fail "qemu-io did not lock other.qcow within 30 s"
    on attach other.qcow
    lrc=$rc
    on attach --read-only --name other-ro other.qcow
    rorc=$rc
    release_qemu_io
    [ "$lrc" = 5 ] || { cat "$T/err" >&2; fail "attach of an image qemu-io holds exited $lrc, not 5"; }
    [ "$rorc" = 5 ] || { cat "$T/err" >&2; fail "read-only attach of an image qemu-io writes exited $rorc, not 5"; }
    err_has "qcowctl: $SOCK: attach: "
    err_has "other.qcow"
fi

# PermissionDenied: 6 for a caller who may not use the socket.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    chmod 755 "$T"
    as_nobody() {
        rc=0
        setpriv --reuid=65534 --regid=65534 --clear-groups "$QCOWCTL" --socket "$SOCK" list \
            >"$T/out" 2>"$T/err" || rc=$?
    }
    # The socket's mode (0660) keeps nobody out...
    as_nobody
    [ "$rc" = 6 ] || { cat "$T/err" >&2; fail "list as nobody exited $rc, expected 6"; }
    err_has "qcowctl: $SOCK: cannot connect: Permission denied"
    # ... and so does qcowd itself (SO_PEERCRED).
    chmod 666 "$SOCK"
    as_nobody
    chmod 660 "$SOCK"
    chmod 700 "$T"
    [ "$rc" = 6 ] || { cat "$T/err" >&2; fail "list as nobody exited $rc, expected 6"; }
    err_has "qcowctl: $SOCK: qcowd refused the connection: not authorised"
else
    not_judged "PermissionDenied needs root and setpriv"
fi

# A server that is not qcowd, or speaks another protocol, or says nothing.
if command -v python3 >/dev/null 2>&1; then
    fake() {
        python3 - "$T/fake.sock" "$1" <<'EOF' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
# Listening before the name appears: a client that sees it can connect.
s.bind(sys.argv[1] + ".new"); s.listen(1); os.rename(sys.argv[1] + ".new", sys.argv[1])
c, _ = s.accept()
c.sendall(sys.argv[2].encode())
time.sleep(3)
EOF
        fake_pid=$!
        wait_until test -S "$T/fake.sock" || fail "the fake server did not listen"
    }
    unfake() { kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; rm -f "$T/fake.sock"; }
    fake $'HTTP/1.0 200 OK\n'
    expect_rc 1 --socket "$T/fake.sock" list
    err_has "qcowctl: $T/fake.sock: bad message from qcowd"
    unfake
    fake $'{"hello": 1}\n'
    expect_rc 1 --socket "$T/fake.sock" list
    err_has "qcowctl: $T/fake.sock: not a qcowd control socket"
    unfake
    fake $'{"QCOWD": {"protocol": 2}}\n'
    expect_rc 1 --socket "$T/fake.sock" list
    err_has "qcowctl: $T/fake.sock: qcowd speaks protocol 2, this qcowctl speaks 1"
    unfake
    fake $'{"QCOWD": {"protocol": 1}}\n'
    expect_rc 1 --socket "$T/fake.sock" --timeout 1 list
    err_has "qcowctl: $T/fake.sock: no answer from qcowd within 1 s (waiting for the reply to list)"
    unfake
    fake ''
    expect_rc 1 --socket "$T/fake.sock" --timeout 1 list
    err_has "qcowctl: $T/fake.sock: no answer from qcowd within 1 s (waiting for its greeting)"
    unfake
else
    not_judged "python3 not found: no fake server"
fi

# LimitReached: 9 when qcowd takes no more clients.
expect_on 0 shutdown
wait_daemon_exit
start_daemon --max-clients 1
"$QCOWCTL" --verbose --socket "$SOCK" events >/dev/null 2>"$T/holder.err" &
holder=$!
# With -v, events says when it is in and listening.
holder_listening() {
    grep -q "waiting for events" "$T/holder.err" 2>/dev/null && return 0
    kill -0 "$holder" 2>/dev/null || { cat "$T/holder.err" >&2; fail "events ended"; }
    return 1
}
wait_until holder_listening || fail "events did not start listening"
expect_on 9 list
err_has "qcowctl: $SOCK: qcowd refused the connection: too many clients"
kill -INT "$holder"
wait "$holder" || fail "events did not end with 0 on SIGINT"

# A socket whose daemon died: refused, 1, "is qcowd running?".
{ kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID"; } 2>/dev/null || true
DAEMON_PID=
[ -S "$SOCK" ] || fail "the dead daemon's socket is gone"
expect_on 1 list
err_has "qcowctl: $SOCK: cannot connect: Connection refused (is qcowd running?)"
exit 0
