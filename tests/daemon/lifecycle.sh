#!/bin/bash
# 64 images attached at once, real I/O through every ring, all detached:
# afterwards the daemon holds exactly the descriptors it held before and no
# worker is left.  Then SIGTERM with images attached: exit 0, images clean.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
RINGIO=$DAEMON_TOOLS/ringio
N=64

start_daemon --max-images 100
fds_before=$(fd_count "$QCOWD_PID")

for i in $(seq 1 $N); do
    "$QEMU_IMG" create -f qcow "$T/d$i.qcow" 8M >/dev/null
    # Half of the workers busy-poll: the same I/O must work either way.
    ctl attach --name "d$i" --poll-us $(( i % 2 ? 0 : 30 )) "$T/d$i.qcow" >/dev/null ||
        die "attach d$i"
done
[ "$(ctl --json list | grep -o '"name"' | wc -l)" -eq $N ] || die "list does not show $N images"
[ "$(children "$QCOWD_PID")" -eq $N ] || die "expected $N workers"

for i in $(seq 1 $N); do
    printf 'image %d says hello\n' "$i" > "$T/msg"
    head -c 4096 /dev/zero >> "$T/msg"
    head -c 4096 "$T/msg" > "$T/msg4k"
    "$RINGIO" "$SOCK" "d$i" write $((i * 4096)) 4096 < "$T/msg4k" || die "write d$i"
    "$RINGIO" "$SOCK" "d$i" read $((i * 4096)) 4096 > "$T/back" || die "read d$i"
    cmp "$T/msg4k" "$T/back" || die "d$i read back wrong data"
done
ctl --json stats d7 | tr -d ' \n' | grep -q '"write":{"ops":1,"bytes":4096' ||
    die "stats of d7 do not count the write"

for i in $(seq 1 $N); do
    ctl detach "d$i" >/dev/null || die "detach d$i"
done
no_children_left "$QCOWD_PID" || die "workers left after detaching everything"
fds_after=$(fd_count "$QCOWD_PID")
[ "$fds_after" -eq "$fds_before" ] || die "descriptors: $fds_before before, $fds_after after"

# Each image holds its bytes, as QEMU reads them.
for i in 1 17 64; do
    "$QEMU_IO" -r -c "read -v $((i * 4096)) 32" "$T/d$i.qcow" | grep -q "image.$i.says" ||
        die "qemu-io does not see d$i's data"
done

# SIGTERM with images attached and data written: every image detached,
# flushed, exit 0, socket gone.
for i in 1 2 3; do
    ctl attach --name "d$i" "$T/d$i.qcow" >/dev/null
    "$RINGIO" "$SOCK" "d$i" write 1048576 4096 < "$T/msg4k" || die "write d$i"
done
stop_daemon || die "qcowd did not exit 0 on SIGTERM"
[ ! -e "$SOCK" ] || die "the socket file is left behind"
for i in 1 2 3; do
    "$QCOWCTL" check "$T/d$i.qcow" >/dev/null; rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 4 ] || die "d$i is not clean after SIGTERM (check exit $rc)"
    "$QEMU_IO" -r -c "read -v 1048576 32" "$T/d$i.qcow" | grep -q "image" ||
        die "d$i lost the write made before SIGTERM"
done
