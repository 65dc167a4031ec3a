#!/bin/bash
# A caller reaches only what it could open itself.  qcowd --group lets uid
# 65534 (nobody, in its own group) connect; as that uid (setpriv, no
# supplementary groups) it may not attach a file it cannot read, attach
# read-write a file it can only read, or attach an overlay whose backing
# file it cannot read, through qcowctl, libqcowring or a raw request; what
# it can open works.  It neither sees nor touches root's attachments, nor,
# through a limit group of the same name, their I/O limits.
# With --backing-dir, backing files outside it are refused to everyone.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root (it runs clients as uid 65534)"
command -v setpriv >/dev/null || skip "setpriv not found (util-linux)"
GROUP=$(getent group 65534 | cut -d: -f1)
[ -n "$GROUP" ] || skip "no group 65534"
chmod 755 "$T"

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody_ctl() { as_nobody "$QCOWCTL" --socket "$SOCK" "$@"; }
# A raw request as uid 65534; its reply line.
nobody_raw() { printf '%s\n' "$1" | as_nobody "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 | tail -n 1; }

pattern_file() { # file byte size
    head -c "$3" /dev/zero | tr '\0' "\\$(printf '%03o' "$2")" >"$1"
}
pattern_file "$T/secret.raw" 83 1048576      # root's, 0600
pattern_file "$T/public.raw" 80 1048576      # root's, 0644
chmod 600 "$T/secret.raw"
chmod 644 "$T/public.raw"
run "$QCOWCTL" create -q -b "$T/secret.raw" -F raw "$T/own.qcow"
run "$QCOWCTL" create -q -b "$T/public.raw" -F raw "$T/over.qcow"
mkzero "$T/mine.raw" 1048576
chown 65534:65534 "$T/own.qcow" "$T/over.qcow" "$T/mine.raw"
chmod 600 "$T/own.qcow" "$T/over.qcow" "$T/mine.raw"
cp "$T/secret.raw" "$T/root.raw"

start_daemon --group "$GROUP"

# A file it cannot read: refused, read-only or not, by every client.
expect_exit 6 nobody_ctl attach "$T/secret.raw"
grep -q "Permission denied" "$T/.err" || die "no reason given: $(cat "$T/.err")"
expect_exit 6 nobody_ctl attach --read-only "$T/secret.raw"
expect_exit 13 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" secret.raw attach "$T/secret.raw" ro
nobody_raw "{\"execute\":\"attach\",\"arguments\":{\"path\":\"$T/secret.raw\",\"read-only\":true}}" |
    grep -q '"class":"PermissionDenied"' || die "a raw attach of an unreadable file was not refused"

# A file it can only read: read-write refused, read-only served.
expect_exit 6 nobody_ctl attach "$T/public.raw"
expect_exit 13 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" public.raw attach "$T/public.raw"
nobody_raw "{\"execute\":\"attach\",\"arguments\":{\"path\":\"$T/public.raw\"}}" |
    grep -q '"class":"PermissionDenied"' || die "a raw read-write attach of a read-only file was not refused"
expect_exit 0 nobody_ctl attach --read-only "$T/public.raw"
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" public.raw read 4096 512 | cmp - <(head -c 512 "$T/public.raw") ||
    die "reading the read-only attachment gave other bytes"
expect_exit 0 nobody_ctl detach public.raw

# An overlay of its own on a backing file it cannot read: refused.
expect_exit 6 nobody_ctl attach "$T/own.qcow"
grep -q "secret.raw" "$T/.err" && grep -q "uid 65534" "$T/.err" ||
    die "the refusal does not name the backing file and the uid: $(cat "$T/.err")"
expect_exit 13 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" own.qcow attach "$T/own.qcow"
ctl list | grep -q own.qcow && die "a refused attach left an attachment"

# What it can open works: its own raw image read-write, and its overlay on
# a file it can read.
expect_exit 0 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw attach "$T/mine.raw"
pattern_file "$T/w" 119 8192
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw write 65536 8192 <"$T/w" || die "ring write"
expect_exit 0 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" mine.raw detach
extract "$T/mine.raw" 65536 8192 | cmp - "$T/w" || die "the write did not reach mine.raw"
expect_exit 0 nobody_ctl attach "$T/over.qcow"
as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" over.qcow read 0 4096 | cmp - <(head -c 4096 "$T/public.raw") ||
    die "the overlay does not read its backing file"

# Root keeps what it had: it attaches by path, without a descriptor.  The
# other uid does not see that attachment and cannot act on it.
printf '{"execute":"attach","arguments":{"path":"%s"}}\n' "$T/root.raw" | "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 |
    tail -n 1 | grep -q '"return"' || die "root's attach by path failed"
nobody_ctl list >"$T/list" || die "list as uid 65534"
grep -q over.qcow "$T/list" || die "uid 65534 does not see its own attachment"
grep -q root.raw "$T/list" && die "uid 65534 sees root's attachment"
expect_exit 6 nobody_ctl detach root.raw
expect_exit 6 nobody_ctl stats root.raw
expect_exit 1 as_nobody "$DAEMON_TOOLS/ringio" "$SOCK" root.raw read 0 512
grep -q "connect: Permission denied" "$T/.err" || die "connect to root's image: $(cat "$T/.err")"
expect_exit 6 nobody_ctl shutdown
# Limit groups are each user's own: uid 65534 naming root's group makes a
# group of its own, and neither joins nor reconfigures root's images.
ctl limit root.raw --limit-group tenant1 --iops 2000 >/dev/null || die "root's limit group"
expect_exit 0 nobody_ctl limit over.qcow --limit-group tenant1 --iops 1
ctl --json query root.raw | jq -e '.["io-limits"] | .group == "tenant1" and .["iops-total"] == 2000' \
    >/dev/null || die "uid 65534 changed root's limits: $(ctl --json query root.raw)"
ctl --json stats root.raw | jq -e '.throttle["io-limits"]["iops-total"] == 2000' >/dev/null ||
    die "root's worker was told other limits: $(ctl --json stats root.raw)"
ctl --json query over.qcow | jq -e '.["io-limits"]["iops-total"] == 1' >/dev/null ||
    die "uid 65534's group has other limits: $(ctl --json query over.qcow)"
ctl detach root.raw >/dev/null || die "root cannot detach its image"
ctl detach over.qcow >/dev/null || die "root cannot detach uid 65534's image"
stop_daemon || die "qcowd did not exit cleanly"

# --backing-dir confines backing files, whatever links a path goes through.
mkdir "$T/base"
cp "$T/public.raw" "$T/base/inside.raw"
ln -s "$T/public.raw" "$T/base/link.raw"
run "$QCOWCTL" create -q -b "$T/base/inside.raw" -F raw "$T/in.qcow"
run "$QCOWCTL" create -q -b "$T/public.raw" -F raw "$T/out.qcow"
run "$QCOWCTL" create -q -b "$T/base/link.raw" -F raw "$T/link.qcow"
chown 65534:65534 "$T/in.qcow" "$T/out.qcow" "$T/link.qcow"
start_daemon --group "$GROUP" --backing-dir "$T/base"
expect_exit 0 nobody_ctl attach "$T/in.qcow"
expect_exit 6 nobody_ctl attach "$T/out.qcow"
grep -q "outside the directories" "$T/.err" || die "no reason given: $(cat "$T/.err")"
expect_exit 6 nobody_ctl attach "$T/link.qcow"
expect_exit 6 ctl attach "$T/out.qcow"
stop_daemon || die "qcowd did not exit cleanly"
