#!/bin/bash
# attach --poll-us: the worker busy-polls before it sleeps.  Random I/O
# through a polling worker matches its shadow in qemu-img's eyes, the
# polling really happened (its stats count the sleeps it saved), and a
# worker attached without it never polls.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
start_daemon

hits() { ctl --json stats "$1" | tr -d ' \n' | sed -n 's/.*"busy-poll-hits":\([0-9]*\).*/\1/p'; }

for poll in 0 500; do
    "$QEMU_IMG" create -f qcow "$T/p$poll.qcow" 32M >/dev/null
    ctl attach --poll-us "$poll" "$T/p$poll.qcow" >/dev/null || die "attach with --poll-us $poll"
    ctl --json query "p$poll.qcow" | tr -d ' \n' | grep -q "\"poll-us\":$poll" ||
        die "query does not show poll-us $poll"
    "$DAEMON_TOOLS/ringio" "$SOCK" "p$poll.qcow" random "$T/p$poll.raw" -s "$QCOWD_TEST_SEED" \
        -n 1500 -q 32 >/dev/null || die "random I/O through a worker with --poll-us $poll"
    h=$(hits "p$poll.qcow")
    [ -n "$h" ] || die "stats have no busy-poll-hits"
    if [ "$poll" = 0 ]; then
        [ "$h" -eq 0 ] || die "a worker attached without --poll-us polled ($h hits)"
    else
        [ "$h" -gt 0 ] || die "a worker attached with --poll-us $poll never found work polling"
    fi
    ctl detach "p$poll.qcow" >/dev/null || die "detach"
    "$QEMU_IMG" compare -F raw "$T/p$poll.qcow" "$T/p$poll.raw" >/dev/null ||
        die "the image differs from its shadow (--poll-us $poll)"
    msg "--poll-us $poll: $h sleeps saved"
done
