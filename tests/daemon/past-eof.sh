#!/bin/bash
# One reading of the format: an L2 entry whose cluster starts inside the
# file and runs past its end (a file cut short) gets the same verdict from
# every reader: qcowctl check calls it corruption, info counts it, convert
# and read refuse it, and through the ring a read of that cluster fails
# while the rest of the image reads right.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qcowctl
require_tools mkbad

"$MKBAD" "$T" || die "mkbad failed"
img=$T/l2-entry-runs-past-eof.qcow
extract() { dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) status=none; }

expect_exit 3 "$QCOWCTL" check "$img"
grep -q "guest offset 0: cluster at .* lies past the end of the file" "$T/.out" ||
    die "check does not say the cluster lies past the end: $(cat "$T/.out")"
expect_exit 3 "$QCOWCTL" --json check "$img"
grep -q '"kind": "past-eof"' "$T/.out" || die "check --json: no past-eof problem"

expect_exit 0 "$QCOWCTL" info "$img"
grep -q "^corrupt entries: 1 " "$T/.out" || die "info does not count the bad entry: $(cat "$T/.out")"
expect_exit 0 "$QCOWCTL" --json info "$img"
tr -d ' \n' <"$T/.out" | grep -q '"corrupt-entries":1' || die "info --json: no corrupt-entries 1"

expect_exit 1 "$QCOWCTL" convert -O raw "$img" "$T/out.raw"
grep -q "L2 entry .*cluster lies past the end of the file" "$T/.err" ||
    die "convert does not say why: $(cat "$T/.err")"
expect_exit 1 "$QCOWCTL" read "$img" 0 4096

# Through the ring: the bad cluster fails, the others read right.
start_daemon
ctl attach --read-only "$img" >/dev/null || die "attach"
if "$DAEMON_TOOLS/ringio" "$SOCK" "$(basename "$img")" read 0 4096 >"$T/bad" 2>"$T/ring.err"; then
    die "a read of the cluster past the end succeeded through the ring"
fi
"$DAEMON_TOOLS/ringio" "$SOCK" "$(basename "$img")" read 20480 4096 >"$T/good" ||
    die "a read of a good cluster failed through the ring"
extract "$T/valid.raw" 20480 4096 | cmp -s - "$T/good" || die "a good cluster reads wrong through the ring"
grep -q "cluster lies past the end of the file" "$T/qcowd.log" ||
    die "the worker did not log why the read failed"
ctl detach "$(basename "$img")" >/dev/null || die "detach"
