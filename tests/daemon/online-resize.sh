#!/bin/bash
# Online resize (protocol resize, qcowctl resize NAME SIZE): a client doing
# verified random I/O through the ring keeps its ring across the resize,
# sees the new capacity (qcowring_refresh_capacity), writes past the old
# end, and qemu-img reads the image back exactly as the client's shadow.
# The L1 table must move (8 MiB to 64 MiB: 4 to 32 entries).  The event
# image-resized is sent, query shows the new size, a shrink and a read-only
# attachment are refused with a clear error, a paused image stays paused,
# and a raw image grows too.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon
RINGIO=$DAEMON_TOOLS/ringio
NEW=$((64 * 1024 * 1024))

field() { ctl --json query "$1" | tr -d ' \n' | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n1; }

"$QEMU_IMG" create -f qcow "$T/g.qcow" 8M >/dev/null
"$QCOWCTL" --verbose --socket "$SOCK" --json events >"$T/events" 2>"$T/events.err" &
events_pid=$!
wait_until grep -q "waiting for events" "$T/events.err" || die "qcowctl events did not start"
ctl attach "$T/g.qcow" >/dev/null || die "attach"

"$RINGIO" "$SOCK" g.qcow random "$T/g.raw" -s "$SEED" -n 600 -q 16 -m 65536 \
    -G "$NEW" -M "$T/mark" >"$T/rio.out" 2>"$T/rio.err" &
rio_pid=$!
wait_until test -e "$T/mark" || die "the client did not get to the resize: $(cat "$T/rio.err")"
ctl resize g.qcow "$NEW" >"$T/resize.out" || die "online resize: $(cat "$T/resize.out")"
grep -q "resized from 8388608 bytes .* to $NEW bytes .* while served" "$T/resize.out" ||
    die "qcowctl resize said: $(cat "$T/resize.out")"
wait "$rio_pid" || die "the client failed: $(cat "$T/rio.err")"
grep -q "capacity 8388608 -> $NEW" "$T/rio.out" || die "the client said: $(cat "$T/rio.out")"
grep -q "600 requests, 0 failures" "$T/rio.out" || die "the client said: $(cat "$T/rio.out")"
[ "$(field g.qcow size)" = "$NEW" ] || die "query shows $(ctl --json query g.qcow)"
[ "$(field g.qcow capacity-sectors)" = $((NEW / 512)) ] || die "query: $(ctl --json query g.qcow)"

# A new connection sees the new size at once; the end of the disk works.
"$RINGIO" "$SOCK" g.qcow geometry | grep -qx "capacity-sectors $((NEW / 512))" ||
    die "a new client sees another capacity"
head -c 4096 /dev/urandom >"$T/tail"
"$RINGIO" "$SOCK" g.qcow write $((NEW - 4096)) 4096 <"$T/tail" || die "write the last 4 KiB"
dd if="$T/tail" of="$T/g.raw" bs=4096 seek=$((NEW / 4096 - 1)) conv=notrunc status=none

# Refused: a shrink, a size that is not whole sectors.
expect_exit 2 ctl resize g.qcow 4M
grep -q "shrinking from $NEW to 4194304 bytes is refused while it is served" "$T/.err" ||
    die "no clear word on the shrink: $(cat "$T/.err")"
expect_exit 2 ctl resize g.qcow 1000
[ "$(field g.qcow size)" = "$NEW" ] || die "a refused resize changed the size"

kill -INT "$events_pid"
wait "$events_pid" || die "qcowctl events did not end cleanly"
grep -q "\"image-resized\".*\"old-size\":8388608,\"size\":$NEW" "$T/events" ||
    die "no image-resized event: $(cat "$T/events")"

ctl detach g.qcow >/dev/null || die "detach"
[ "$("$QEMU_IMG" info --output=json "$T/g.qcow" | tr -d ' \n' |
     sed -n 's/.*"virtual-size":\([0-9]*\).*/\1/p')" = "$NEW" ] || die "qemu-img sees another size"
"$QEMU_IMG" compare -F raw "$T/g.qcow" "$T/g.raw" >/dev/null ||
    die "the image differs from the client's shadow"
"$QCOWCTL" check "$T/g.qcow" >/dev/null || die "qcowctl check finds fault with the grown image"

# A paused image grows and stays paused.
ctl attach -n p "$T/g.qcow" >/dev/null || die "attach again"
ctl pause p >/dev/null || die "pause"
ctl resize p $((NEW + 1048576)) >/dev/null || die "resize a paused image"
ctl --json query p | tr -d ' \n' | grep -q '"state":"paused"' || die "the image was resumed"
[ "$(field p size)" = $((NEW + 1048576)) ] || die "query: $(ctl --json query p)"
ctl resume p >/dev/null || die "resume"
"$RINGIO" "$SOCK" p read 0 $NEW | cmp - "$T/g.raw" || die "the ring reads other data"
ctl detach p >/dev/null || die "detach p"
truncate -s $((NEW + 1048576)) "$T/g.raw"
"$QEMU_IMG" compare -F raw "$T/g.qcow" "$T/g.raw" >/dev/null || die "the grown image reads wrong"

# Read-only: refused.  Raw: grows as well.
ctl attach --read-only -n ro "$T/g.qcow" >/dev/null || die "attach read-only"
expect_exit 1 ctl resize ro 400M
grep -q "read-only" "$T/.err" || die "no word on read-only: $(cat "$T/.err")"
ctl detach ro >/dev/null || die "detach ro"

truncate -s 1M "$T/r.img"
ctl attach -f raw "$T/r.img" >/dev/null || die "attach raw"
ctl resize r.img 3M >/dev/null || die "resize raw"
head -c 65536 /dev/urandom >"$T/r.tail"
"$RINGIO" "$SOCK" r.img write $((3 * 1024 * 1024 - 65536)) 65536 <"$T/r.tail" ||
    die "write past the old end of the raw image"
ctl detach r.img >/dev/null || die "detach raw"
[ "$(stat -c %s "$T/r.img")" = $((3 * 1024 * 1024)) ] || die "the raw file has another size"
tail -c 65536 "$T/r.img" | cmp - "$T/r.tail" || die "the raw image's new end differs"
stop_daemon || die "qcowd did not exit cleanly"
