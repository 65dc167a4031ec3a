#!/bin/bash
# qcowctl check: exit 0 clean, 1 cannot check, 3 corruption, 4 leaks only;
# --repair fixes what it can and exits with the status after the repair.
. "$(dirname "$0")/lib.sh"

# A small image with two clusters of data: A (guest 0) and B (guest 64K),
# B allocated last, so it sits at the end of the file.
expect_rc 0 create -q good.qcow 16M
expect_rc 0 write -q --pattern 0xaa good.qcow 0 4K
expect_rc 0 write -q --pattern 0xbb good.qcow 64K 4K
l1=$(be64 good.qcow 40)
l2=$(be64 good.qcow "$l1")
entry_a=$l2
entry_b=$((l2 + 16 * 8))
cluster_a=$(be64 good.qcow $entry_a)
cluster_b=$(be64 good.qcow $entry_b)
[ "$cluster_a" -gt 0 ] && [ "$cluster_b" -gt "$cluster_a" ] || fail "unexpected layout"
size=$(file_size good.qcow)
[ $((cluster_b + 4096)) = "$size" ] || fail "cluster B is not at the end of the file"

expect_rc 0 check good.qcow
out_has "No errors were found on the image."
expect_rc 0 --json check good.qcow
out_has '"corruptions": 0'
out_has '"leaks": 0'
out_has '"repaired": false'

# An L2 entry past the end of the file: corruption.
cp good.qcow eof.qcow
put_be64 eof.qcow $entry_b $((size * 16))
expect_rc 3 check eof.qcow
out_has "ERROR: eof.qcow: guest offset 65536: cluster at"
out_has "lies past the end of the file"
out_has "1 error was found on the image."
expect_rc 3 --json check eof.qcow
out_has '"corruptions": 1'
out_has '"kind": "past-eof"'
# Repair clears the entry (B's data is lost, B's cluster is now a leaked
# tail and is cut off): clean afterwards.
expect_rc 0 check --repair eof.qcow
out_has "Repaired: eof.qcow: guest offset 65536"
out_has "data of this cluster is lost"
out_has "No errors were found on the image."
[ "$(file_size eof.qcow)" = "$cluster_b" ] || fail "leaked tail not truncated"
expect_rc 0 check eof.qcow
"$QCOWCTL" read eof.qcow 64K 4K | cmp - <(head -c 4096 /dev/zero) || fail "cleared cluster not zero"
pattern_file want_a 170 4096
"$QCOWCTL" read eof.qcow 0 4K | cmp - want_a || fail "cluster A damaged by the repair"

# A misaligned entry: corruption; after the repair A's old cluster is a leak
# inside the file, and repair punches a hole in it: clean.
cp good.qcow mis.qcow
put_be64 mis.qcow $entry_a $((cluster_a + 16))
expect_rc 3 check mis.qcow
out_has "is not 512-byte aligned"
expect_rc 0 check -r mis.qcow
out_has "Repaired: mis.qcow: guest offset 0"
out_has "Repaired: mis.qcow: 4096 bytes (1 cluster) at offset $(printf '%#x' "$cluster_a") are not referenced: leaked (hole punched"
expect_rc 0 check mis.qcow
"$QCOWCTL" read mis.qcow 64K 4K | cmp - <(head -c 4096 /dev/zero | tr '\0' '\273') ||
    fail "cluster B damaged by the repair"

# A leak in the middle that holds data: exit 4; a hole there is no leak.
cp good.qcow leak.qcow
put_be64 leak.qcow $entry_a 0
expect_rc 4 check leak.qcow
out_has "1 leaked cluster (4096 bytes) was found on the image."
fallocate -p -o "$cluster_a" -l 4096 leak.qcow
expect_rc 0 check leak.qcow

# An entry pointing into the L2 table; two entries sharing a cluster.
cp good.qcow meta.qcow
put_be64 meta.qcow $((l2 + 8)) "$l2"
expect_rc 3 check meta.qcow
out_has "overlaps the L2 table"
expect_rc 3 --json check meta.qcow
out_has '"kind": "overlap"'
cp good.qcow twice.qcow
put_be64 twice.qcow $((l2 + 8)) "$cluster_a"
expect_rc 3 check twice.qcow
out_has "guest offset 4096: a cluster at"
out_has "shares bytes with a cluster"
expect_rc 0 check --repair twice.qcow
"$QCOWCTL" read twice.qcow 0 4K | cmp - want_a || fail "the first owner lost its data"

# L1 entries: past the end, misaligned.
cp good.qcow l1eof.qcow
put_be64 l1eof.qcow $((l1 + 8)) $((size + 4096))
expect_rc 3 check l1eof.qcow
out_has "L1 entry 1 (guest offset 2097152): L2 table at"
out_has "lies past the end of the file"
expect_rc 0 check --repair l1eof.qcow
out_has "L1 entry cleared"
cp good.qcow l1mis.qcow
put_be64 l1mis.qcow "$l1" $((l2 + 8))
expect_rc 3 check l1mis.qcow
out_has "L2 table at"
out_has "is not 512-byte aligned"

# Junk after the end: leaks only, exit 4; repair truncates it.
cp good.qcow junk.qcow
head -c 10000 /dev/urandom >>junk.qcow
expect_rc 4 check junk.qcow
out_has "Leaked: junk.qcow: 10000 bytes at the end of the file"
out_has "3 leaked clusters (10000 bytes) were found on the image."
expect_rc 4 --json check junk.qcow
out_has '"corruptions": 0'
out_has '"leaks": 3'
out_has '"leaked-bytes": 10000'
out_has '"kind": "leak"'
expect_rc 0 check --repair junk.qcow
out_has "file truncated"
cmp good.qcow junk.qcow || fail "repair did not restore the image"
expect_rc 0 --json check junk.qcow
out_has '"repaired": false'
cp good.qcow junk2.qcow
head -c 100 /dev/urandom >>junk2.qcow
expect_rc 0 --json check -r junk2.qcow
out_has '"repaired": true'
cmp good.qcow junk2.qcow || fail "repair did not restore the image"

# A fresh image with junk right after its L1 table.
expect_rc 0 create -q fresh.qcow 1M
cp fresh.qcow fresh-junk.qcow
head -c 4096 /dev/urandom >>fresh-junk.qcow
expect_rc 4 check fresh-junk.qcow

# The Xen header's L1 checksum.
expect_rc 0 create -q --xen-header xen.qcow 16M
expect_rc 0 write -q --pattern 7 xen.qcow 3M 4K
expect_rc 0 check xen.qcow
cp xen.qcow xenbad.qcow
printf '\xde\xad\xbe\xef' | dd of=xenbad.qcow bs=1 seek=52 conv=notrunc status=none
expect_rc 3 check xenbad.qcow
out_has "ERROR: xenbad.qcow: Xen header: L1 checksum 0xdeadbeef does not match"
expect_rc 3 --json check xenbad.qcow
out_has '"kind": "xen-checksum"'
expect_rc 0 check --repair xenbad.qcow
out_has "Repaired: xenbad.qcow: Xen header"
cmp xen.qcow xenbad.qcow || fail "checksum repair did not restore the image"

# Clearing an L1 entry of a Xen image keeps its checksum right.
cp xen.qcow xenl1.qcow
xl1=$(be64 xen.qcow 40)
put_be64 xenl1.qcow $((xl1 + 8)) 1000000000
expect_rc 3 check xenl1.qcow
expect_rc 0 check --repair xenl1.qcow
expect_rc 0 info xenl1.qcow
out_has "L1 checksum: ok"

# A compressed cluster that does not inflate.
expect_rc 0 convert -c -O qcow good.qcow comp.qcow
expect_rc 0 check comp.qcow
expect_rc 0 --json info comp.qcow
out_has '"compressed-clusters": 2'
cl1=$(be64 comp.qcow 40)
cl2=$(be64 comp.qcow "$cl1")
e=$(be64 comp.qcow "$cl2")
[ "$e" -lt 0 ] || fail "first cluster of comp.qcow is not compressed"
stream=$((e & ((1 << 51) - 1)))
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of=comp.qcow bs=1 seek="$stream" conv=notrunc status=none
expect_rc 3 check comp.qcow
out_has "does not inflate to one cluster of 4096 bytes"
expect_rc 3 --json check comp.qcow
out_has '"kind": "bad-compressed"'

# What check cannot look at: exit 1, the file named.
expect_rc 0 create -q -f raw r.raw 1M
expect_rc 1 check r.raw
err_has "qcowctl: r.raw: not a qcow image"
head -c 30 good.qcow >short.qcow
expect_rc 1 check short.qcow
err_has "short.qcow"
cp good.qcow badhdr.qcow
printf '\x20' | dd of=badhdr.qcow bs=1 seek=32 conv=notrunc status=none
expect_rc 1 check badhdr.qcow
err_has "badhdr.qcow: cluster_bits 32 out of range"
expect_rc 1 check --repair badhdr.qcow

# Images written by QEMU are clean.
if have_qemu; then
    "$QEMU_IMG" create -q -f qcow q.qcow 32M
    "$QEMU_IO" -c 'write -P 1 0 1M' -c 'write -P 2 7M 12K' q.qcow >/dev/null
    expect_rc 0 check q.qcow
    "$QEMU_IMG" create -q -f qcow -b q.qcow -F qcow qb.qcow
    "$QEMU_IO" -c 'write -P 3 512 4K' qb.qcow >/dev/null
    expect_rc 0 check qb.qcow
    # 7.2 exits 1 after writing a correct compressed image.
    "$QEMU_IMG" convert -c -O qcow q.qcow qc.qcow || true
    expect_rc 0 check qc.qcow
fi
exit 0
