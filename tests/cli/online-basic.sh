#!/bin/bash
# qcowctl's online commands against a private qcowd: attach, list, query,
# stats, pause/resume, detach, version, shutdown; text and --json.
. "$(dirname "$0")/online-lib.sh"

make_image base.qcow 32M
make_image disk.qcow 64M
make_image over.qcow 32M base.qcow
start_daemon

# Nothing attached yet.
expect_on 0 list
out_has "no image is attached"
expect_on 0 --json list
json_valid "$T/out"
[ "$(tr -d ' \n' <"$T/out")" = "[]" ] || fail "empty list is not []"

# attach: a relative IMAGE is made absolute; the default name is the file name.
expect_on 0 attach disk.qcow
out_has "attached disk.qcow: $T/disk.qcow (qcow, 64 MiB, read-write"
expect_on 0 --json attach --name ov --read-only --cache writeback -f qcow --poll-us 20 over.qcow
json_valid "$T/out"
expect_field 2 poll-us 20
expect_field 2 name '"ov"'
expect_field 2 path "\"$T/over.qcow\""
expect_field 2 read-only true
expect_field 2 cache '"writeback"'

# list: the table and the JSON array.
expect_on 0 list
out_has "NAME"
out_has "CONNECTED"
grep -Eq "^disk\.qcow +running +[0-9]+ +64 MiB +qcow +no +no +$T/disk\.qcow\$" "$T/out" ||
    { cat "$T/out" >&2; fail "list: no row for disk.qcow"; }
grep -Eq "^ov +running +[0-9]+ +32 MiB +qcow +yes +no +$T/over\.qcow\$" "$T/out" ||
    { cat "$T/out" >&2; fail "list: no row for ov"; }
expect_on 0 list --json
json_valid "$T/out"
[ "$(grep -c '^    "name": ' "$T/out")" = 2 ] || { cat "$T/out" >&2; fail "list: not 2 images"; }
grep -q '^    "size": 67108864,$' "$T/out" || fail "list: no size 67108864"
grep -q '^    "state": "running",$' "$T/out" || fail "list: no running state"
pid=$(jfield 4 pid)
is_number "$pid" && [ "$pid" -gt 0 ] || fail "list: pid '$pid'"
kill -0 "$pid" || fail "list: worker pid $pid is not alive"

# query: sizes, format, cluster size, the chain, the ring.
expect_on 0 --json query ov
json_valid "$T/out"
expect_field 2 size 33554432
expect_field 2 format '"qcow"'
expect_field 2 state '"running"'
expect_field 2 encrypted false
expect_field 2 restarts 0
cs=$(jfield 2 cluster-size)
is_number "$cs" && [ "$cs" -ge 512 ] || fail "query: cluster-size '$cs'"
# The chain: the overlay first, then its backing file.
[ "$(grep -c '^      "filename": ' "$T/out")" = 2 ] || { cat "$T/out" >&2; fail "query: chain of 2"; }
grep -q "^      \"filename\": \"$T/over.qcow\"" "$T/out" || fail "query: chain lacks over.qcow"
grep -q "^      \"filename\": \"$T/base.qcow\"" "$T/out" || fail "query: chain lacks base.qcow"
[ "$(sed -n 's/^      "filename": "\(.*\)",$/\1/p' "$T/out" | head -n 1)" = "$T/over.qcow" ] ||
    fail "query: the chain does not start with the image"
for k in ring-page-order data-pages max-indirect-segments capacity-sectors; do
    v=$(jfield 4 "$k")
    is_number "$v" || { cat "$T/out" >&2; fail "query: ring $k '$v'"; }
done
expect_field 4 capacity-sectors 65536

expect_on 0 query disk.qcow
out_has "name: disk.qcow"
out_has "path: $T/disk.qcow"
out_has "state: running"
out_has "file format: qcow"
out_has "virtual size: 64 MiB (67108864 bytes)"
out_has "cluster size: "
out_has "read-only: no"
out_has "busy-poll: 0 us"
out_has "ring renewals: 0"
out_has "backing chain:"
out_has "    [0] $T/disk.qcow (qcow, 64 MiB)"
out_has "ring capacity: 131072 sectors (64 MiB)"
out_has "ring page order: "
expect_on 0 query ov
out_has "    [1] $T/base.qcow (qcow, 32 MiB)"
out_has "busy-poll: 20 us"

# stats: every counter is a number.
expect_on 0 --json stats disk.qcow
json_valid "$T/out"
for op in read write flush discard; do
    for k in ops bytes errors latency-p50-us latency-p99-us; do
        v=$(sed -n "/^  \"$op\": {/,/^  }/s/^    \"$k\": \([0-9]*\),\{0,1\}\$/\1/p" "$T/out")
        is_number "$v" || { cat "$T/out" >&2; fail "stats: $op.$k is '$v'"; }
    done
done
for k in in-flight bad-requests uptime-ms; do
    v=$(jfield 2 "$k")
    is_number "$v" || { cat "$T/out" >&2; fail "stats: $k is '$v'"; }
done
expect_on 0 --json stats
json_valid "$T/out"
grep -q '^  "disk.qcow": {' "$T/out" || fail "stats: no disk.qcow"
grep -q '^  "ov": {' "$T/out" || fail "stats: no ov"
expect_on 0 stats
out_has "disk.qcow: uptime "
out_has "ov: uptime "
grep -Eq '^  read +[0-9]+ +[0-9.]+ [KMGT]?i?B +[0-9]+ ' "$T/out" || { cat "$T/out" >&2; fail "stats: read row"; }
for op in write flush discard; do
    grep -Eq "^  $op +[0-9]+ " "$T/out" || { cat "$T/out" >&2; fail "stats: $op row"; }
done
expect_on 0 stats --watch --interval 0.2 --count 2 ov
[ "$(grep -c '^ov: uptime' "$T/out")" = 2 ] || { cat "$T/out" >&2; fail "stats --watch: 2 samples"; }
out_has "OPS/S"
out_has "BYTES/S"
grep -Eq '^  read +[0-9]+ +[0-9]+\.[0-9] ' "$T/out" || { cat "$T/out" >&2; fail "no rate"; }
expect_on 0 --json stats -w -i 0.1 -c 3
[ "$(wc -l <"$T/out")" = 3 ] || { cat "$T/out" >&2; fail "stats --watch --json: 3 lines"; }
json_lines_valid "$T/out"

# pause and resume change the state.
expect_on 0 pause disk.qcow
out_has "paused disk.qcow"
expect_on 0 --json query disk.qcow
expect_field 2 state '"paused"'
expect_on 0 list
grep -Eq '^disk\.qcow +paused ' "$T/out" || fail "list: disk.qcow not paused"
expect_on 0 resume disk.qcow
out_has "resumed disk.qcow"
expect_on 0 --json query disk.qcow
expect_field 2 state '"running"'
expect_on 0 --json pause ov
json_valid "$T/out"

# detach removes it (a paused one too); --quiet prints nothing.
expect_on 0 detach -q ov
[ ! -s "$T/out" ] || fail "detach --quiet printed something"
expect_on 0 --json list
[ "$(grep -c '^    "name": ' "$T/out")" = 1 ] || { cat "$T/out" >&2; fail "list after detach"; }
grep -q '"name": "ov"' "$T/out" && fail "ov is still listed"
expect_on 3 query ov
err_has "no image is attached as 'ov'"
# It can be attached again after the detach.
expect_on 0 attach --name ov2 over.qcow
expect_on 0 detach ov2
out_has "detached ov2"

# An encrypted image: the password from --key-file (never shown with -v);
# without one and without a terminal, attach refuses before asking qcowd.
printf 'sesame-42\n' >pw
"$QCOWCTL" create -q --encrypt --key-file pw secret.qcow 8M || fail "create --encrypt"
expect_on 1 attach secret.qcow </dev/null
err_has "qcowctl: secret.qcow: image is encrypted, a key is needed (--key-file)"
expect_on 0 -v attach --key-file pw secret.qcow
err_has '"key":"(hidden)"'
grep -q sesame "$T/err" && fail "-v showed the password"
expect_on 0 query secret.qcow
out_has "encrypted: yes"
expect_on 0 detach secret.qcow
printf 'caf\xe9\n' >badpw
expect_on 1 attach --key-file badpw secret.qcow
err_has "badpw: the password must be UTF-8 text"
expect_on 1 attach --key-file nopw secret.qcow
err_has "nopw: cannot open the key file"

# version: both sides.
expect_on 0 version
out_has "client: qcowctl (qcowd) "
out_has "daemon: qcowd "
out_has "protocol 1"
expect_on 0 --json version
json_valid "$T/out"
grep -q '^    "protocol": 1' "$T/out" || fail "version --json: no protocol"

# The socket from the environment, and --socket after the command.
QCOWD_SOCKET=$SOCK expect_rc 0 list
out_has "disk.qcow"
QCOWD_SOCKET=$T/elsewhere.sock expect_rc 0 list --socket "$SOCK"
out_has "disk.qcow"

# shutdown: detaches every image, qcowd exits 0 and removes its socket.
expect_on 0 --json list
worker=$(jfield 4 pid)
expect_on 0 shutdown
out_has "stopped"
wait_daemon_exit
[ "$daemon_rc" = 0 ] || fail "qcowd exited $daemon_rc after shutdown"
[ ! -e "$SOCK" ] || fail "qcowd left its socket behind"
if [ -n "$worker" ] && kill -0 "$worker" 2>/dev/null; then
    fail "the worker (pid $worker) outlived qcowd"
fi
grep -q "disk.qcow: detached" "$T/qcowd.log" || fail "disk.qcow was not detached cleanly"
exit 0
