#!/bin/bash
# qcowctl map: allocated ranges, merged; JSON covering the whole image.
. "$(dirname "$0")/lib.sh"

expect_rc 0 create -q a.qcow 16M
expect_rc 0 write -q --pattern 1 a.qcow 0 64K
expect_rc 0 write -q --pattern 2 a.qcow 64K 64K
expect_rc 0 write -q --pattern 3 a.qcow 5M 4K

# Human: two ranges (the first two writes are contiguous on the host).
expect_rc 0 map a.qcow
[ "$(wc -l <"$T/out")" = 3 ] || { cat "$T/out"; fail "expected a header and two ranges"; }
out_has "Offset          Length          Mapped to       File"
grep -q '^0  *0x20000  *0x[0-9a-f]*  *a.qcow$' "$T/out" || { cat "$T/out"; fail "first range"; }
grep -q '^0x500000  *0x1000  *0x[0-9a-f]*  *a.qcow$' "$T/out" || { cat "$T/out"; fail "second range"; }

# The host offset is where the data really is.
host=$(awk '$1 == "0x500000" { print $3 }' "$T/out")
pattern_file want 3 4096
cmp <(tail -c +$((host + 1)) a.qcow | head -c 4096) want || fail "map's host offset is wrong"

# Same as qemu-img for a plain image.
if have_qemu; then
    "$QEMU_IMG" map a.qcow >qemu.map
    cmp qemu.map "$T/out" || { diff qemu.map "$T/out" >&2; fail "differs from qemu-img map"; }
fi

# JSON: contiguous ranges from 0 to the virtual size.
expect_rc 0 --json map a.qcow
starts=$(grep -o '"start": [0-9]*' "$T/out" | awk '{ print $2 }')
lengths=$(grep -o '"length": [0-9]*' "$T/out" | awk '{ print $2 }')
paste <(echo "$starts") <(echo "$lengths") | awk '
    $1 != next_start { bad = 1 } { next_start = $1 + $2 }
    END { if (bad || next_start != 16777216) exit 1 }' || { cat "$T/out"; fail "JSON map does not cover the image"; }
[ "$(grep -c '"data": true' "$T/out")" = 2 ] || fail "two data ranges expected"
[ "$(grep -c '"zero": true' "$T/out")" = 2 ] || fail "two zero ranges expected"
out_has '"offset": '
out_has '"filename": "a.qcow"'

# Compressed clusters are marked, without an offset.
expect_rc 0 convert -c -O qcow a.qcow c.qcow
expect_rc 0 map c.qcow
out_has "compressed"
expect_rc 0 --json map c.qcow
out_has '"compressed": true'

# A backing chain: depth tells the layer.
expect_rc 0 create -q -b a.qcow over.qcow
expect_rc 0 write -q --pattern 9 over.qcow 1M 512
expect_rc 0 --json map over.qcow
grep -q '"depth": 1' "$T/out" || fail "no range from the backing file"
grep -q '"depth": 0' "$T/out" || fail "no range from the top layer"
exit 0
