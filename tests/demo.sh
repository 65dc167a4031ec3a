#!/bin/bash
# The main job, end to end, narrated.  Run by `./quickstart demo` (argument:
# the build directory) and by `make check` (QCOWCTL set), so it never rots.
set -euo pipefail

builddir=${1:-${top_builddir:-}}
QCOWCTL=${QCOWCTL:-$builddir/ctl/qcowctl}
work=$(mktemp -d "${TMPDIR:-/tmp}/qcowd-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cd "$work"
step "$QCOWCTL" create disk.qcow 64M
printf 'hello from qcowd\n' > greeting
step "$QCOWCTL" write disk.qcow 1M 17 < greeting
step "$QCOWCTL" write --pattern 0xab disk.qcow 8M 300K
echo; echo "read back:"
"$QCOWCTL" read disk.qcow 1M 17 | tee readback
cmp greeting readback
step "$QCOWCTL" info disk.qcow
step "$QCOWCTL" map disk.qcow
step "$QCOWCTL" check disk.qcow
step "$QCOWCTL" convert -c -O qcow disk.qcow small.qcow
step "$QCOWCTL" info small.qcow
step "$QCOWCTL" convert -O raw small.qcow disk.raw
"$QCOWCTL" read disk.qcow 0 64M > expect.raw
cmp expect.raw disk.raw
if command -v qemu-img >/dev/null; then
    step qemu-img compare -f qcow -F raw small.qcow disk.raw
fi
echo; echo "demo finished: every byte read back as written"
