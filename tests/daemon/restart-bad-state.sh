#!/bin/bash
# A state file that cannot be trusted: broken JSON, a damaged entry, a file
# others may write.  qcowd says which file and why, attaches nothing from
# it (a damaged file is kept aside as .bad) and serves as usual.  A
# recorded image that cannot be attached again (gone, or it needs its key)
# is listed as failed with the reason, stays recorded, and can be detached.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
require_qemu
STATE=$T/qcowd-state.json
DAEMON_STATE=$STATE
"$QEMU_IMG" create -f qcow "$T/a.qcow" 8M >/dev/null

restart() {
    stop_daemon || die "qcowd did not stop cleanly (exit $?)"
    : >"$T/qcowd.log"
    start_daemon
}
entry() { # NAME PATH [extra JSON members]
    printf '{"name": "%s", "path": "%s", "read-only": false, "cache": "none", "poll-us": 0,
      "io-limits": {}, "caller": {"uid": %d, "gid": %d, "groups": []}%s}' \
        "$1" "$2" "$(id -u)" "$(id -g)" "${3:+, $3}"
}
write_state() { printf '{"qcowd-state": 1, "attachments": [%s]}\n' "$1" >"$STATE"; chmod 600 "$STATE"; }
nothing_attached() { [ "$(ctl --json list | jq length)" = 0 ] || die "something was attached: $(ctl list)"; }

# Broken JSON.
printf '{"qcowd-state": 1, "attachments": [%s' "$(entry a "$T/a.qcow")" >"$STATE"
chmod 600 "$STATE"
cp "$STATE" "$T/broken"
restart
nothing_attached
grep -q "$STATE: is not JSON: .* nothing is re-attached, the file is kept as $STATE.bad" \
    "$T/qcowd.log" || die "no clear error: $(cat "$T/qcowd.log")"
cmp "$STATE.bad" "$T/broken" || die "the bad file was not kept as it was"
ctl attach "$T/a.qcow" >/dev/null || die "qcowd does not serve after a bad state file"
jq -e '.attachments[0].name == "a.qcow"' "$STATE" >/dev/null || die "no fresh state file"
ctl detach a.qcow >/dev/null || die "detach"

# One damaged entry (no caller): none of the file is used, not even the
# good entry.
rm -f "$STATE.bad"
write_state "$(entry a "$T/a.qcow"), {\"name\": \"x\", \"path\": \"/x\"}"
restart
nothing_attached
grep -q "$STATE: entry 2: an entry has no valid 'caller'" "$T/qcowd.log" ||
    die "the damaged entry was not named: $(cat "$T/qcowd.log")"
[ -f "$STATE.bad" ] || die "the damaged file was not kept aside"

# Wrong version, wrong types, relative paths: the same.
for bad in '{"qcowd-state": 2, "attachments": []}' '{"qcowd-state": 1, "attachments": {}}' \
    "{\"qcowd-state\": 1, \"attachments\": [$(entry a a.qcow)]}" \
    "{\"qcowd-state\": 1, \"attachments\": [$(entry a "$T/a.qcow" '"read-only": "yes"')]}" \
    '[]' ''; do
    rm -f "$STATE.bad"
    printf '%s' "$bad" >"$STATE"; chmod 600 "$STATE"
    restart
    nothing_attached
    [ -f "$STATE.bad" ] || die "not put aside: $bad"
    grep -q "error: $STATE: .*nothing is re-attached" "$T/qcowd.log" || die "no error for: $bad"
done

# A file others may write is not believed; nor is one with a NUL byte.
write_state "$(entry a "$T/a.qcow")"
chmod 666 "$STATE"
rm -f "$STATE.bad"
restart
nothing_attached
grep -q "$STATE: it must belong to uid $(id -u) and be writable by nobody else; nothing is re-attached" \
    "$T/qcowd.log" || die "a world-writable state file was not refused"
[ ! -e "$STATE" ] && [ -f "$STATE.bad" ] || die "the refused file was not put aside"
rm -f "$STATE.bad"
{ printf '{"qcowd-state": 1, "attachments": [%s]}' "$(entry a "$T/a.qcow")"; printf '\0junk'; } >"$STATE"
chmod 600 "$STATE"
restart
nothing_attached
grep -q "$STATE: is not JSON: .*nothing is re-attached" "$T/qcowd.log" || die "a NUL byte was taken"

# Images that cannot come back: listed as failed, still recorded, and
# detachable; the others come back.
write_state "$(entry gone "$T/gone.qcow"), $(entry locked "$T/a.qcow" '"key-given": true'), \
$(entry a "$T/a.qcow")"
restart
running() { [ "$(ctl --json query a | jq -r .state)" = running ]; }
wait_until running || die "a did not come back: $(ctl list)"
ctl --json query gone | jq -r .error | grep -q "cannot attach it again: $T/gone.qcow: No such file" ||
    die "gone: $(ctl --json query gone)"
[ "$(ctl --json query gone | jq -r .state)" = failed ] || die "gone is not failed"
ctl --json query locked | jq -r .error | grep -q "attached with a key, which qcowd does not record" ||
    die "locked: $(ctl --json query locked)"
jq -e '[.attachments[].name] | sort == ["a", "gone", "locked"]' "$STATE" >/dev/null ||
    die "the failed images are no longer recorded: $(cat "$STATE")"
# Stopping with failed images: a clean exit, and they stay recorded.
restart
wait_until running || die "a did not come back: $(ctl list)"
[ "$(ctl --json query gone | jq -r .state)" = failed ] || die "gone did not stay failed"
ctl detach gone >/dev/null && ctl detach locked >/dev/null || die "cannot detach a failed image"
jq -e '[.attachments[].name] == ["a"]' "$STATE" >/dev/null || die "detach not recorded"
ctl detach a >/dev/null || die "detach a"

# key-file: absolute, and readable by the caller, or the attach is refused.
raw_attach() { printf '{"execute":"attach","arguments":%s}\n' "$1" | "$DAEMON_TOOLS/ctlraw" "$SOCK" 1 | tail -n 1; }
raw_attach "{\"path\":\"$T/a.qcow\",\"key-file\":\"pw\"}" |
    grep -q "'key-file' must be an absolute path" || die "a relative key-file was taken"
raw_attach "{\"path\":\"$T/a.qcow\",\"key-file\":\"$T/nopw\"}" |
    grep -q "$T/nopw: cannot open the key file: No such file" || die "a missing key-file was taken"
: >"$T/empty-pw"
raw_attach "{\"path\":\"$T/a.qcow\",\"key-file\":\"$T/empty-pw\"}" |
    grep -q "the key file holds no password" || die "an empty key-file was taken"
nothing_attached

# One qcowd per state file: a second one on another socket runs without it.
ctl attach "$T/a.qcow" >/dev/null || die "attach"
cp "$STATE" "$T/state.before"
"$QCOWD" --socket "$T/second.sock" --worker "$QCOWD_WORKER" --state-file "$STATE" \
    2>"$T/second.log" &
second=$!
wait_until test -S "$T/second.sock" || die "the second qcowd did not start: $(cat "$T/second.log")"
kill "$second"; wait "$second"
grep -q "$STATE: another qcowd uses this state file; running without one" "$T/second.log" ||
    die "the second qcowd did not say why: $(cat "$T/second.log")"
cmp "$STATE" "$T/state.before" || die "the second qcowd changed the state file"
[ "$(ctl --json query a.qcow | jq -r .state)" = running ] || die "the first qcowd lost a.qcow"
ctl detach a.qcow >/dev/null || die "detach"
