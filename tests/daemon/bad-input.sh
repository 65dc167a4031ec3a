#!/bin/bash
# Bad control input: each case gets the right error class and the daemon
# keeps serving an attached image (and other clients) throughout.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
RAW=$DAEMON_TOOLS/ctlraw
start_daemon

run "$QCOWCTL" create -q "$T/ok.qcow" 8M
ctl attach "$T/ok.qcow" >/dev/null || die "attach"
printf 'x' > "$T/notimage"

# expect CLASS INPUT: the reply to INPUT (one line) must carry CLASS.
expect() {
    local cls=$1 input=$2
    printf '%s\n' "$input" | "$RAW" "$SOCK" 1 > "$T/out" || die "no greeting for: $input"
    sed -n 2p "$T/out" | grep -q "\"class\":\"$cls\"" ||
        die "for $input expected $cls, got: $(sed -n 2p "$T/out")"
}

expect GenericError 'this is not json'
expect GenericError '{"execute": "list"'
expect GenericError '[1, 2, 3]'
expect GenericError '"just a string"'
expect GenericError '{"execute": 42}'
expect GenericError '{"arguments": {}}'
expect GenericError '{"execute": "list"} trailing'
expect GenericError "$(printf '%.0s[' $(seq 1 40))"
expect CommandNotFound '{"execute": "format-the-disk"}'
expect InvalidParameter '{"execute": "query"}'
expect InvalidParameter '{"execute": "query", "arguments": {"name": 7}}'
expect InvalidParameter '{"execute": "query", "arguments": []}'
expect InvalidParameter '{"execute": "list", "arguments": {"bogus": 1}}'
expect InvalidParameter '{"execute": "attach", "arguments": {}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "name": "a/b"}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "cache": "maybe"}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "read-only": "yes"}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "poll-us": -1}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "poll-us": 1001}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "poll-us": "20"}}'
expect InvalidParameter '{"execute": "attach", "arguments": {"path": "/x", "poll-us": 2.5}}'
expect ImageError "{\"execute\": \"attach\", \"arguments\": {\"path\": \"$T/missing.qcow\"}}"
expect ImageError "{\"execute\": \"attach\", \"arguments\": {\"path\": \"$T\"}}"
expect ImageError "{\"execute\": \"attach\", \"arguments\": {\"path\": \"$T/notimage\", \"format\": \"qcow\"}}"
expect AlreadyExists "{\"execute\": \"attach\", \"arguments\": {\"path\": \"$T/ok.qcow\"}}"
expect AlreadyExists "{\"execute\": \"attach\", \"arguments\": {\"path\": \"$T/ok.qcow\", \"name\": \"other\"}}"
expect NotFound '{"execute": "detach", "arguments": {"name": "nobody"}}'
expect NotFound '{"execute": "connect", "arguments": {"name": "nobody"}}'
expect InvalidParameter '{"execute": "connect", "arguments": {"name": "ok.qcow", "hold-lock": 1}}'
expect InvalidState '{"execute": "resume", "arguments": {"name": "ok.qcow"}}'

# The ImageError names the path and the reason.
printf '{"execute":"attach","arguments":{"path":"%s/missing.qcow"}}\n' "$T" | "$RAW" "$SOCK" 1 |
    grep -q "missing.qcow: No such file or directory" || die "ImageError does not say why"

# A line over 64 KiB: an error, and the same connection still works.
{ head -c 70000 /dev/zero | tr '\0' 'a'; printf '\n{"execute":"version","id":5}\n'; } |
    "$RAW" "$SOCK" 2 > "$T/out"
grep -q '"class":"GenericError".*too long' "$T/out" || die "no error for an oversized line"
grep -q '"id":5' "$T/out" || die "the connection died after an oversized line"

# Invalid UTF-8 is refused.
printf '{"execute":"query","arguments":{"name":"\xff\xfe"}}\n' | "$RAW" "$SOCK" 1 |
    grep -q GenericError || die "invalid UTF-8 accepted"

# Garbage bytes and an abrupt close do not hurt.
head -c 100000 /dev/urandom | "$RAW" "$SOCK" >/dev/null || true

# The daemon and the image are fine, the id comes back as sent.
printf '{"execute":"query","arguments":{"name":"ok.qcow"},"id":{"a":[1,"x"]}}\n' |
    "$RAW" "$SOCK" 1 | grep -q '"state":"running".*"id":{"a":\[1,"x"\]}' ||
    die "daemon unhealthy after bad input"
"$DAEMON_TOOLS/ringio" "$SOCK" ok.qcow read 0 4096 > /dev/null || die "I/O broken after bad input"
