#!/bin/bash
# qcowctl discard and compact, offline: what they do to the data, the space
# and the layout, and what they refuse.
. "$(dirname "$0")/lib.sh"
M=$((1 << 20))
disk_bytes() { echo $(( $(stat -c %b "$1") * 512 )); }
zeros() { head -c "$1" /dev/zero; }
pat() { head -c "$2" /dev/zero | tr '\0' "$(printf '\\%03o' "$1")"; }

# discard: whole clusters read as zeros and take no space; a part of a
# cluster keeps its data.
expect_rc 0 create -q d.qcow 8M
expect_rc 0 write -q --pattern 0x61 d.qcow 0 4M
before=$(disk_bytes d.qcow)
expect_rc 0 discard d.qcow 1M 2M
out_has "discarded 2097152 of 2097152 bytes at offset 1048576"
expect_rc 0 --json discard d.qcow $((3 * M + 512)) 1024
out_has '"discarded": 0'
"$QCOWCTL" read d.qcow 0 4M | cmp - <(pat 97 $M; zeros $((2 * M)); pat 97 $M) ||
    fail "discard: wrong data"
[ "$(disk_bytes d.qcow)" -le $((before - 2 * M + 65536)) ] || fail "discard freed no space"
expect_rc 0 check d.qcow
expect_rc 2 discard d.qcow 100 512
err_has "multiples of 512"
expect_rc 1 discard d.qcow 6M 4M
err_has "beyond the end of the image"
echo pw >pw
expect_rc 0 create -q --encrypt --key-file pw e.qcow 1M
expect_rc 1 discard e.qcow 0 64K
err_has "e.qcow: cannot discard on an encrypted image"

# compact: same data, no leaks, clusters in guest order (written here in
# reverse), a smaller file.
expect_rc 0 create -q c.qcow 16M
for g in 7 6 5 4 3 2 1 0; do
    expect_rc 0 write -q --pattern $((g + 1)) c.qcow $((g * M)) 64K
done
head -c 12345 /dev/urandom >>c.qcow
"$QCOWCTL" read c.qcow 0 16M >c.want
expect_rc 4 check c.qcow
expect_rc 0 compact c.qcow
out_has "c.qcow: 4 L2 tables and 128 clusters rewritten in order"
expect_rc 0 check c.qcow
"$QCOWCTL" read c.qcow 0 16M | cmp - c.want || fail "compact changed the data"
"$QCOWCTL" --json map c.qcow | tr -d ' \n' | grep -o '"offset":[0-9]*' | cut -d: -f2 >offsets
[ "$(wc -l <offsets)" -eq 8 ] || fail "compact: $(wc -l <offsets) data ranges, expected 8"
sort -n -c offsets || fail "compact: clusters not in guest order"
ls .c.qcow.compact.* 2>/dev/null && fail "compact left its temporary file"

# Encrypted and compressed images are compacted without a key, as they are.
expect_rc 0 write -q --key-file pw --pattern 0x77 e.qcow 64K 8K
"$QCOWCTL" read --key-file pw e.qcow 0 1M >e.want
expect_rc 0 compact e.qcow
"$QCOWCTL" read --key-file pw e.qcow 0 1M | cmp - e.want || fail "compact changed encrypted data"
expect_rc 0 convert -c -f raw -O qcow c.want cz.qcow
expect_rc 0 compact cz.qcow
expect_rc 0 --json info cz.qcow
out_has '"compressed-clusters": 128'
"$QCOWCTL" read cz.qcow 0 16M | cmp - c.want || fail "compact changed compressed data"

# What compact refuses: corrupt entries, raw images, an image in use.
cp c.qcow bad.qcow
l1=$(be64 bad.qcow 40)
l2=$(be64 bad.qcow "$l1")
put_be64 bad.qcow "$l2" $(( $(file_size bad.qcow) * 4 ))
expect_rc 1 compact bad.qcow
err_has "check --repair first"
expect_rc 0 create -q -f raw r.raw 1M
expect_rc 1 compact r.raw
err_has "r.raw: not a qcow image"
if have_qemu; then
    # qemu-io holds the image (and its lock bytes) while it waits on a fifo;
    # compact is tried once qemu-io has the file open (trying earlier could
    # rename a copy over the file under it).
    mkfifo hold
    "$QEMU_IO" c.qcow <hold >/dev/null 2>&1 &
    qemu=$!
    exec 7>hold
    qemu_has_it() { ls -l "/proc/$qemu/fd" 2>/dev/null | grep -q "c.qcow$"; }
    wait_until qemu_has_it || fail "qemu-io did not open c.qcow"
    expect_rc 1 compact c.qcow
    err_has "c.qcow: the image is in use"
    exec 7>&-
    wait
fi
exit 0
