#!/bin/bash
# The main job, end to end, narrated: create an image, start the daemon,
# attach it, do real I/O through the shared-memory ring with libqcowring,
# show list and stats, detach, stop the daemon, and look at the image
# offline (info, map, check, convert) with qemu-img as the judge.
# Run by `./quickstart demo` (argument: the build directory) and by
# `make check` (top_builddir set), so it never rots.
set -euo pipefail

builddir=$(cd "${1:-${top_builddir:-.}}" && pwd)
QCOWCTL=$builddir/ctl/qcowctl
QCOWD=$builddir/daemon/qcowd
WORKER=$builddir/daemon/qcowd-worker
RINGIO=$builddir/tests/daemon/ringio
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowd-demo.XXXXXX")
sock=$work/qcowd.sock
daemon=
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

cd "$work"
say "An image, as qemu-img would make it"
step "$QCOWCTL" create disk.qcow 64M

say "The daemon, on a private socket (logs go to qcowd.log)"
"$QCOWD" --socket "$sock" --worker "$WORKER" --no-state 2>qcowd.log &
daemon=$!
for _ in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.05; done
echo "qcowd running as pid $daemon on $sock"
step "$QCOWCTL" --socket "$sock" attach disk.qcow
step "$QCOWCTL" --socket "$sock" list

say "Real I/O through the ring (libqcowring's qcowring_connect, pwrite, pread)"
{ printf 'hello from qcowd, through the shared-memory ring\n'; head -c 4096 /dev/zero; } |
    head -c 4096 > greeting
head -c 1048576 /dev/urandom > random.bin
step "$RINGIO" "$sock" disk.qcow write 1048576 4096 < greeting
step "$RINGIO" "$sock" disk.qcow write 8388608 1048576 < random.bin
"$RINGIO" "$sock" disk.qcow read 1048576 4096 > back
"$RINGIO" "$sock" disk.qcow read 8388608 1048576 > back.bin
cmp greeting back && cmp random.bin back.bin
echo "read back through the ring: $(head -c 49 back)"
step "$RINGIO" "$sock" disk.qcow random shadow.raw -n 2000 -q 32
step "$QCOWCTL" --socket "$sock" stats disk.qcow
step "$QCOWCTL" --socket "$sock" detach disk.qcow
step "$QCOWCTL" --socket "$sock" shutdown
wait "$daemon"
daemon=

say "The image offline: what qcowd wrote, QEMU reads"
step "$QCOWCTL" info disk.qcow
printf '\n\033[1m$ %s\033[0m\n' "$QCOWCTL map disk.qcow"
"$QCOWCTL" map disk.qcow > map.txt
head -n 8 map.txt; echo "... ($(wc -l < map.txt) lines in all)"
step "$QCOWCTL" check disk.qcow || [ $? -eq 4 ]
if command -v qemu-img >/dev/null; then
    step qemu-img compare -f qcow -F raw disk.qcow shadow.raw
fi
step "$QCOWCTL" convert -c -O qcow disk.qcow small.qcow
step "$QCOWCTL" convert -O raw small.qcow disk.raw
cmp shadow.raw disk.raw
ls -l disk.qcow small.qcow | awk '{print $5, $9}'
echo; echo "demo finished: every byte read back as written, through the ring and offline"
