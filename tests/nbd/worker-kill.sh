#!/bin/bash
# kill -9 of the worker while nbdcopy writes through the export: nbdcopy
# finishes without an error (qcowd restarts the worker on the same ring; the
# plugin's requests in flight are answered by the new one), and every byte
# it wrote is in the image, as qemu-img and qcowctl read it offline.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
start_nbd_daemon

"$QEMU_IMG" create -f qcow "$T/k.qcow" 64M >/dev/null
ctl attach "$T/k.qcow" >/dev/null || die "attach"
ctl export add k.qcow --nbd "unix:$T/k.sock" >/dev/null || die "export add"
"$RANDIO" data "$SEED" $((64 << 20)) >"$T/data.raw"
stat_of() { ctl --json stats k.qcow | jq -r "$1"; }
restarts() { ctl --json query k.qcow | jq -r .restarts; }

# The first kill lands with requests surely waiting: the image is paused,
# so nbdcopy's first writes wait in the ring while the worker dies.
ctl pause k.qcow >/dev/null || die "pause"
nbdcopy --flush "$T/data.raw" "$(uri_of "$T/k.sock")" 2>"$T/nbdcopy.err" &
copy=$!
pid=$(image_worker_pid k.qcow)
kill -9 "$pid"
# Until the replacement serves (paused, as the image was): the old state
# still reads paused until qcowd has reaped the dead worker.
restarted_paused() {
    [ "$(restarts)" -ge 1 ] && [ "$(ctl --json query k.qcow | jq -r .state)" = paused ]
}
wait_until restarted_paused || die "no paused worker after the kill"
ctl resume k.qcow >/dev/null || die "resume"
# The second one lands while writes are being done, if nbdcopy is not
# finished by then.
wait_until sh -c "[ \"\$(\"$QCOWCTL\" --socket '$SOCK' --json stats k.qcow 2>/dev/null | jq -r '.write.ops // 0')\" -gt 20 ]" ||
    kill -0 $copy 2>/dev/null && kill -9 "$(image_worker_pid k.qcow)" 2>/dev/null
wait $copy || { cat "$T/nbdcopy.err" >&2; die "nbdcopy failed across the worker kills"; }
[ "$(restarts)" -ge 1 ] || die "no worker restart counted"
msg "worker restarts: $(restarts)"
ctl detach k.qcow >/dev/null || die "detach"

assert_qemu_identical "$T/k.qcow" "$T/data.raw" -F raw
"$QCOWCTL" convert -O raw "$T/k.qcow" "$T/back.raw" || die "qcowctl convert"
assert_same "$T/data.raw" "$T/back.raw" "qcowctl reads other bytes than nbdcopy wrote"
"$QCOWCTL" check "$T/k.qcow" >/dev/null; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 4 ] || die "check found corruption (exit $rc)"
