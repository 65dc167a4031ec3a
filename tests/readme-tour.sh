#!/bin/bash
# The README's short tour, from the README itself: every line of its tour
# block runs as written, in order, in a scratch directory, with the built
# programs on PATH (the block before it says where they are), so the README
# and the programs cannot drift apart.  The daemon is started by the tour
# without --worker: it must find the worker beside itself.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib/common.sh"
require_qcowctl
command -v xxd >/dev/null || die "xxd not found (the tour uses it; apt-get install xxd)"
readme=$top_srcdir/README.md

# The ```sh blocks of the "## A short tour" section: the first sets PATH,
# the second is the tour.
awk -v dir="$T" '
    /^## / { in_tour = ($0 == "## A short tour") }
    in_tour && /^```sh$/ { n++; out = dir "/block" n ".sh"; next }
    in_tour && /^```$/ { out = ""; next }
    out != "" { print > out }
' "$readme"
[ -s "$T/block1.sh" ] && [ -s "$T/block2.sh" ] || die "README.md: no tour (two sh blocks under '## A short tour')"
# What the first block puts on PATH is where this build has the programs.
for d in ctl daemon; do
    grep -q "build/plain/$d" "$T/block1.sh" || die "README.md no longer puts build/plain/$d on PATH"
done
for p in ctl/qcowctl daemon/qcowd daemon/qcowd-worker; do
    [ -x "$top_builddir/$p" ] || die "the README says the build makes $p; it is not at $top_builddir/$p"
done

mkdir "$T/tour" && cd "$T/tour" || die "mkdir"
stop_tour_daemon() {
    local pid
    for pid in $(pgrep -x qcowd); do
        [ "$(readlink "/proc/$pid/cwd")" = "$T/tour" ] && kill "$pid" && wait_until gone "$pid"
    done
    return 0
}
gone() { ! kill -0 "$1" 2>/dev/null; }
trap 'rc=$?; stop_tour_daemon; (exit $rc); cleanup' EXIT

PATH=$top_builddir/ctl:$top_builddir/daemon:$PATH timeout 120 bash -e -x "$T/block2.sh" \
    >"$T/tour.out" 2>"$T/tour.err"
rc=$?
if [ $rc -ne 0 ]; then
    tail -n 30 "$T/tour.err" >&2
    [ -f qcowd.log ] && tail -n 20 qcowd.log >&2
    die "the README's tour failed (exit $rc) at: $(grep '^+' "$T/tour.err" | tail -1)"
fi
# It did what it says.
grep -q "^00000000: abab abab abab abab abab abab abab abab" "$T/tour.out" || die "the tour's read did not show the bytes written"
[ -f small.qcow ] && [ -f over.qcow ] && [ -f e.qcow ] || die "the tour did not make its images"
gone_daemon() { [ -z "$(for p in $(pgrep -x qcowd); do [ "$(readlink /proc/$p/cwd)" = "$T/tour" ] && echo $p; done)" ]; }
wait_until gone_daemon || die "the tour's shutdown did not stop qcowd"
