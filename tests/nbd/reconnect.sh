#!/bin/bash
# nbdkit run by hand keeps serving across a restart of qcowd: the plugin
# notices that its ring is gone, connects again once the image is attached
# to the new qcowd, and sends the requests it had in flight once more.  An
# NBD client that wrote meanwhile sees a delay, not an error.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
start_nbd_daemon

"$QEMU_IMG" create -f qcow "$T/r.qcow" 16M >/dev/null
ctl attach "$T/r.qcow" >/dev/null || die "attach"
NBDKIT_OPTS=-v start_nbdkit r.qcow "$T/r.sock" retry=60
U=$(uri_of "$T/r.sock")
run "$QEMU_IO" -f raw -c 'write -P 0x31 0 1M' -c 'flush' "$U"

# qcowd goes away; a client writes and reads while it is gone.
stop_daemon || die "qcowd did not stop cleanly"
"$QEMU_IO" -f raw -c 'write -P 0x32 1M 1M' -c 'read -P 0x31 0 1M' -c 'read -P 0x32 1M 1M' \
    -c 'flush' "$U" >"$T/io.out" 2>&1 &
io=$!
# Only once the plugin has seen its ring go (it says so in its debug
# output) does qcowd come back: the requests in flight wait for it.
wait_until grep -q "ring of 'r.qcow' lost" "$T/nbdkit.log" || die "the plugin did not notice"
start_nbd_daemon
ctl attach "$T/r.qcow" >/dev/null || die "attach again"
wait $io || { cat "$T/io.out" >&2; die "the NBD client failed across the restart of qcowd"; }
grep -q 'Pattern verification failed' "$T/io.out" && die "wrong data after the reconnection"
stop_nbdkit || die "nbdkit did not exit when asked"
ctl detach r.qcow >/dev/null || die "detach"
"$QEMU_IO" -f qcow -c 'read -P 0x31 0 1M' -c 'read -P 0x32 1M 1M' -c 'read -P 0 2M 14M' \
    "$T/r.qcow" >"$T/final.out" || die "qemu-io offline"
grep -q 'Pattern verification failed' "$T/final.out" && die "the image does not hold what was written"
exit 0
