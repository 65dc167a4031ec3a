#!/bin/bash
# qcowctl resize, commit and rebase, offline: what the guest reads after
# them (judged by qemu-img), what qemu-img info says, what they refuse, and
# that check is clean after each.
. "$(dirname "$0")/lib.sh"
[ -n "$QEMU_IMG" ] && [ -n "$QEMU_IO" ] || { echo "$TEST_NAME: SKIP: no qemu-img/qemu-io" >&2; exit 77; }
M=$((1 << 20))
G=$((1 << 30))

virtual_size() { "$QEMU_IMG" info --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }
backing_of() { "$QEMU_IMG" info --output=json "$1" | sed -n 's/.*"backing-filename": "\(.*\)",*$/\1/p'; }
same() { "$QEMU_IMG" compare -q "$@" || fail "qemu-img compare $* differs"; }
clean() { expect_rc 0 check "$1"; }
disk_bytes() { echo $(( $(stat -c %b "$1") * 512 )); }

# ---- resize: grow a plain image, past what its L1 table covers -----------
expect_rc 0 create -q a.qcow 10M
expect_rc 0 write -q --pattern 0x11 a.qcow 0 1M
expect_rc 0 write -q --pattern 0x22 a.qcow $((9 * M)) 1M
"$QEMU_IMG" convert -O raw a.qcow a.raw
l1_before=$(be64 a.qcow 40)
expect_rc 0 resize a.qcow 2G
out_has "a.qcow: resized from 10485760 bytes (10 MiB) to 2147483648 bytes (2 GiB)"
[ "$(virtual_size a.qcow)" = $((2 * G)) ] || fail "qemu-img sees $(virtual_size a.qcow) bytes"
[ "$(be64 a.qcow 40)" -gt "$l1_before" ] || fail "the L1 table did not move"
truncate -s 2G a.raw
same -f raw a.raw a.qcow
clean a.qcow
# The new end is usable, by qcowctl and by QEMU.
expect_rc 0 write -q --pattern 0x33 a.qcow $((2 * G - M)) 1M
"$QEMU_IO" -c "read -P 0x33 $((2 * G - M)) 1M" a.qcow | grep -q "^read 1048576" ||
    fail "qemu-io cannot read what was written past the old end"
"$QEMU_IO" -c "write -P 0x44 $((G + 64 * M)) 64k" a.qcow >/dev/null
expect_rc 0 read a.qcow $((G + 64 * M)) 64K
pattern_file p44 0x44 65536
cmp -s "$T/out" p44 || fail "QEMU's write past the old end reads wrong"
clean a.qcow
# Growing within the L1 table's span, and by +SIZE.
expect_rc 0 create -q b.qcow 3M
expect_rc 0 resize b.qcow +512K
out_has "to 3670016 bytes"
l1=$(be64 b.qcow 40)
[ "$l1" = 48 ] || fail "the L1 table moved although it did not need to ($l1)"
expect_rc 0 --json resize b.qcow 4M
out_has '"new-size": 4194304'
clean b.qcow

# ---- resize: shrink only offline and only when asked ----------------------
expect_rc 1 resize a.qcow 1G
err_has "a.qcow: shrinking from 2147483648 to 1073741824 bytes would cut off the end of the disk"
[ "$(virtual_size a.qcow)" = $((2 * G)) ] || fail "a refused shrink changed the size"
before=$(disk_bytes a.qcow)
expect_rc 0 resize --shrink a.qcow $((2 * G - 4 * M))
out_has "bytes of the file given back"
[ "$(virtual_size a.qcow)" = $((2 * G - 4 * M)) ] || fail "shrink: size $(virtual_size a.qcow)"
[ "$(disk_bytes a.qcow)" -lt "$before" ] || fail "shrink gave no space back"
clean a.qcow
# A shrink that cuts a cluster in two, then a grow: what was cut off reads
# as zeros again, not as the data that was there.
expect_rc 0 create -q c.qcow 8M
expect_rc 0 write -q --pattern 0x55 c.qcow 0 8M
expect_rc 0 resize --shrink c.qcow $((5 * M + 512))
clean c.qcow
expect_rc 0 resize c.qcow 8M
clean c.qcow
{ pattern_file p55 0x55 $((5 * M + 512)); cat p55; head -c $((3 * M - 512)) /dev/zero; } >c.raw
same -f raw c.raw c.qcow

# ---- resize: an overlay over a longer backing file -------------------------
"$QEMU_IMG" create -f qcow long.qcow 8M >/dev/null
"$QEMU_IO" -c "write -P 0x66 0 8M" long.qcow >/dev/null
"$QEMU_IMG" create -f qcow -b long.qcow -F qcow short.qcow $((3 * M + 1536)) >/dev/null
expect_rc 0 resize short.qcow 8M
{ pattern_file p66 0x66 $((3 * M + 1536)); cat p66; head -c $((5 * M - 1536)) /dev/zero; } >short.raw
same -f raw short.raw short.qcow
clean short.qcow
# The 512-byte clusters of a QEMU overlay: its L1 moves, nothing leaks.
"$QEMU_IMG" create -f qcow -b long.qcow -F qcow ov.qcow >/dev/null
"$QEMU_IO" -c "write -P 0x77 1M 1M" ov.qcow >/dev/null
"$QEMU_IMG" convert -O raw ov.qcow ov.raw
expect_rc 0 resize ov.qcow 256M
truncate -s 256M ov.raw
same -f raw ov.raw ov.qcow
clean ov.qcow

# ---- resize: raw, encrypted, and what it refuses ---------------------------
expect_rc 0 create -q -f raw r.raw 1M
expect_rc 0 resize r.raw 3M
[ "$(file_size r.raw)" = $((3 * M)) ] || fail "raw resize: $(file_size r.raw) bytes"
expect_rc 0 resize --shrink -f raw r.raw 2M
[ "$(file_size r.raw)" = $((2 * M)) ] || fail "raw shrink: $(file_size r.raw) bytes"
echo secret >pw
expect_rc 0 create -q --encrypt --key-file pw e.qcow 2M
expect_rc 0 write -q --key-file pw --pattern 0x12 e.qcow 0 2M
expect_rc 0 resize --key-file pw e.qcow 1G
"$QEMU_IO" --object secret,id=s0,data=secret --image-opts \
    driver=qcow,file.filename=e.qcow,encrypt.key-secret=s0 \
    -c "read -P 0x12 0 2M" -c "read -P 0 2M 8M" | grep -c "^read" | grep -qx 2 ||
    fail "the grown encrypted image reads wrong in qemu-io"
expect_rc 0 create -q --xen-header x.qcow 8M
expect_rc 1 resize x.qcow 16M
err_has "x.qcow: the image has blktap's Xen header"
expect_rc 2 resize a.qcow 1Q
expect_rc 1 resize a.qcow -3G
err_has "cannot take"

# ---- commit -----------------------------------------------------------------
"$QEMU_IMG" create -f qcow base.qcow 8M >/dev/null
"$QEMU_IO" -c "write -P 0x11 0 2M" -c "write -P 0x12 6M 1M" base.qcow >/dev/null
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow mid.qcow >/dev/null
"$QEMU_IO" -c "write -P 0x21 1M 2M" mid.qcow >/dev/null
"$QEMU_IMG" create -f qcow -b mid.qcow -F qcow top.qcow 16M >/dev/null
"$QEMU_IO" -c "write -P 0x31 2M 1M" -c "write -P 0x32 12M 1M" top.qcow >/dev/null
"$QEMU_IMG" convert -O raw top.qcow top.raw
"$QEMU_IMG" convert -O raw base.qcow base.raw
expect_rc 0 --json commit top.qcow
out_has '"copied": 2097152'
out_has '"emptied": true'
out_has '"backing-new-size": 16777216'
same -f raw top.raw top.qcow
same -f raw top.raw mid.qcow
same -f raw base.raw base.qcow
[ "$(virtual_size mid.qcow)" = $((16 * M)) ] || fail "commit did not grow mid.qcow"
"$QEMU_IMG" map --output=json top.qcow | grep -q '"data": true.*"depth": 0' &&
    fail "the committed overlay still holds data"
[ "$(file_size top.qcow)" -le 4096 ] || fail "the emptied overlay is $(file_size top.qcow) bytes"
clean top.qcow
clean mid.qcow
# -d keeps the overlay as it is.
"$QEMU_IO" -c "write -P 0x41 4M 64k" top.qcow >/dev/null
"$QEMU_IMG" convert -O raw top.qcow top.raw
expect_rc 0 commit -d top.qcow
out_has "Image committed: 65536 bytes (64 KiB) of top.qcow copied into"
"$QEMU_IMG" map --output=json top.qcow | grep -q '"depth": 0, "present": true' ||
    fail "commit -d emptied the overlay"
same -f raw top.raw mid.qcow
expect_rc 1 commit base.qcow
err_has "base.qcow: has no backing file to commit into"

# ---- rebase ----------------------------------------------------------------
# Safe: top onto base directly, then onto nothing; the guest reads the same.
"$QEMU_IMG" convert -O raw top.qcow top.raw
expect_rc 0 rebase -b base.qcow top.qcow
[ "$(backing_of top.qcow)" = base.qcow ] || fail "backing file: $(backing_of top.qcow)"
same -f raw top.raw top.qcow
clean top.qcow
expect_rc 0 --json rebase -b "" top.qcow
out_has '"backing-filename": null'
"$QEMU_IMG" info top.qcow | grep -q "backing file" && fail "top.qcow still has a backing file"
same -f raw top.raw top.qcow
clean top.qcow
# A name that does not fit in front of the L1 table goes to the end of the
# file; QEMU and qcowctl read it; unsafe only renames.
part=$(printf 'd%.0s' {1..100})
long=$part/$part/$part/$part/base.qcow
mkdir -p "$(dirname "$long")"
cp base.qcow "$long"
"$QEMU_IMG" create -f qcow -b base.qcow -F qcow o.qcow >/dev/null
"$QEMU_IO" -c "write -P 0x51 1M 1M" o.qcow >/dev/null
"$QEMU_IMG" convert -O raw o.qcow o.raw
expect_rc 0 rebase -u -b "$long" o.qcow
[ "$(backing_of o.qcow)" = "$long" ] || fail "the long name reads back as $(backing_of o.qcow)"
[ "$(be64 o.qcow 8)" -ge 4096 ] || fail "the long name was not put apart ($(be64 o.qcow 8))"
same -f raw o.raw o.qcow
clean o.qcow
expect_rc 0 rebase -u -b base.qcow o.qcow
[ "$(be64 o.qcow 8)" = 48 ] || fail "the short name did not come back to the front"
clean o.qcow
same -f raw o.raw o.qcow
expect_rc 1 rebase -b nbd:localhost:10809 o.qcow
err_has "protocol prefix"
expect_rc 2 rebase o.qcow
err_has "-b BACKING is required"
expect_rc 0 create -q -f raw plain.raw 1M
expect_rc 1 rebase -u -b base.qcow -f raw plain.raw
err_has "raw images have no backing file"

# ---- compact brings moved pieces back to the front --------------------------
expect_rc 0 compact o.qcow
[ "$(be64 o.qcow 8)" = 48 ] || fail "compact: backing name at $(be64 o.qcow 8)"
expect_rc 0 compact a.qcow
[ "$(be64 a.qcow 40)" = 48 ] || fail "compact: L1 table at $(be64 a.qcow 40)"
"$QCOWCTL" read a.qcow $((G + 64 * M)) 64K | cmp -s - p44 || fail "compact lost data after a resize"
clean a.qcow
exit 0
