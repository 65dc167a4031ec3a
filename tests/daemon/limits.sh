#!/bin/bash
# The limits qcowd knows of itself.  Started with a soft open-file limit
# below its hard one, it raises the soft limit to the hard one; when the
# open files cannot take another image, or --max-images is reached, an
# attach fails with LimitReached (exit 9) naming that limit, and `version`
# reports the room left.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"

for i in $(seq 1 12); do
    run "$QCOWCTL" create -q "$T/i$i.qcow" 1M
done
nofile() { awk '/^Max open files/ { print $4, $5 }' "/proc/$QCOWD_PID/limits"; }

# Hard limit 80, soft 40: qcowd takes all 80.
(ulimit -Sn 40 && ulimit -Hn 80 && exec "$QCOWD" --socket "$SOCK" --worker "$QCOWD_WORKER" --no-state \
    --max-clients 4 2>>"$T/qcowd.log") &
QCOWD_PID=$!
wait_until daemon_listening || die "qcowd did not start under ulimit -n 40/80"
[ "$(nofile)" = "80 80" ] || die "qcowd's open-file limits are '$(nofile)', expected 80 80"

# Attach until the descriptors run out: that must be LimitReached on
# "open files", after a few images, and the images before it serve.
n=0
for i in $(seq 1 12); do
    ctl attach "$T/i$i.qcow" >/dev/null 2>"$T/attach.err" || break
    n=$i
done
[ "$n" -ge 3 ] && [ "$n" -lt 12 ] || die "$n images attached under 80 descriptors"
expect_exit 9 ctl attach "$T/i12.qcow"
grep -q "open files" "$T/.err" && grep -q "RLIMIT_NOFILE" "$T/.err" ||
    die "the refusal does not name the open-file limit: $(cat "$T/.err")"
ctl version >"$T/version" || die "version"
grep -q "images: $n attached, room for 0 more (the tightest limit: open files)" "$T/version" ||
    die "version does not report the open files as full: $(cat "$T/version")"
"$DAEMON_TOOLS/ringio" "$SOCK" i1.qcow read 0 4096 >/dev/null || die "i1.qcow does not serve"
stop_daemon || die "qcowd did not exit cleanly"
msg "$n images under an open-file limit of 80"

# --max-images 2: the third attach is refused, naming the option.
start_daemon --max-images 2
ctl attach "$T/i1.qcow" >/dev/null && ctl attach "$T/i2.qcow" >/dev/null ||
    die "two attaches under --max-images 2"
expect_exit 9 ctl attach "$T/i3.qcow"
grep -q -- "--max-images reached: 2 images" "$T/.err" ||
    die "the refusal does not name --max-images: $(cat "$T/.err")"
ctl --json version | tr -d ' \n' | grep -q '"limits":{"images":2,"max-images":2,' ||
    die "version --json does not report the limits: $(ctl --json version)"
ctl detach i1.qcow >/dev/null || die "detach"
ctl attach "$T/i3.qcow" >/dev/null || die "attach after a detach made room"
stop_daemon || die "qcowd did not exit cleanly"
