#!/bin/bash
# No format surprises (QEMU's rules, and CVE-2008-2004's attack).  A guest
# of a raw image attached without a format writes a qcow header naming
# /etc/shadow as its backing file into its first sector: the write is
# refused, and the next attach still serves the raw image, not /etc/shadow.
# Given as raw, the image may be written so, but then it is not attached
# read-write as raw again, and a caller who cannot read /etc/shadow cannot
# attach it probed.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
[ -r /etc/shadow ] && [ -s /etc/shadow ] || skip "needs a readable, non-empty /etc/shadow (run as root)"
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
GROUP=$(getent group 65534 | cut -d: -f1)
[ -n "$GROUP" ] || skip "no group 65534"
chmod 755 "$T"
ring() { "$DAEMON_TOOLS/ringio" "$SOCK" "$@"; }
format_of() { ctl --json query "$1" | tr -d ' \n' | sed -n 's/.*"format":"\([a-z]*\)".*/\1/p'; }

# The attack's first sector: a qcow header whose backing file is /etc/shadow.
run "$QCOWCTL" create -q -b /etc/shadow -F raw "$T/evil.qcow" 4M
head -c 512 "$T/evil.qcow" >"$T/hdr"
grep -q /etc/shadow "$T/hdr" || die "the backing name is not in the first sector"
"$RANDIO" data 7 65536 >"$T/data"
cat "$T/hdr" <(tail -c +513 "$T/data") >"$T/hdr64k"
mkzero "$T/guest.raw" 4194304
start_daemon --group "$GROUP"

# Probed raw: the header is refused at sector 0, alone or leading a longer
# write; other data there, and the header elsewhere, are fine.
ctl attach "$T/guest.raw" >/dev/null || die "attach"
[ "$(format_of guest.raw)" = raw ] || die "guest.raw not probed as raw"
ring guest.raw write 0 512 <"$T/hdr" 2>/dev/null && die "a qcow header was written into a probed raw image"
ring guest.raw write 0 65536 <"$T/hdr64k" 2>/dev/null && die "a write starting with a qcow header was allowed"
grep -q "refused a write that would make the first sector a qcow header" "$T/qcowd.log" ||
    die "the worker does not say why it refused the write"
ring guest.raw write 0 65536 <"$T/data" || die "an ordinary write at sector 0 failed"
ring guest.raw write 4096 512 <"$T/hdr" || die "the header at sector 8 was refused"
ctl detach guest.raw >/dev/null || die "detach"

ctl attach "$T/guest.raw" >/dev/null || die "re-attach"
[ "$(format_of guest.raw)" = raw ] || die "guest.raw is no longer probed as raw"
ring guest.raw read 0 4096 | cmp - <(head -c 4096 "$T/data") || die "sector 0 does not read back as written"
ring guest.raw read 4096 512 | cmp - "$T/hdr" || die "sector 8 does not read back as written"
ctl detach guest.raw >/dev/null || die "detach"

# Stated raw: QEMU lets the guest write any first sector.  Then probing
# and the stated format disagree: no read-write attach as raw.
ctl attach --format raw "$T/guest.raw" >/dev/null || die "attach --format raw"
ring guest.raw write 0 512 <"$T/hdr" || die "a write to a raw image of stated format was refused"
ctl detach guest.raw >/dev/null || die "detach"
expect_exit 1 ctl attach --format raw "$T/guest.raw"
grep -q "given as raw, but its first sector is a qcow header" "$T/.err" ||
    die "no clear reason: $(cat "$T/.err")"
expect_exit 0 ctl attach --format raw --read-only "$T/guest.raw"
ctl detach guest.raw >/dev/null || die "detach"

# Probed now, it is a qcow overlay of /etc/shadow: its owner, who cannot
# read /etc/shadow, cannot attach it.
chown 65534:65534 "$T/guest.raw"
expect_exit 6 setpriv --reuid=65534 --regid=65534 --clear-groups "$QCOWCTL" --socket "$SOCK" \
    attach "$T/guest.raw"
grep -q "/etc/shadow" "$T/.err" || die "the refusal does not name the backing file: $(cat "$T/.err")"
ctl list | grep -q guest.raw && die "a refused attach left an attachment"
stop_daemon || die "qcowd did not exit cleanly"
