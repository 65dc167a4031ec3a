#!/bin/bash
# qcowctl's command line: help, version, exit status 2 for usage errors and
# 1 (with the file named) for failures.
. "$(dirname "$0")/lib.sh"

commands="create info map check convert read write discard compact"

expect_rc 0 --help
for c in $commands; do
    out_has "  $c "
done
out_has "Exit status"

expect_rc 0 --version
out_has "qcowctl"

for c in $commands; do
    expect_rc 0 "$c" --help
    out_has "Usage: qcowctl"
    out_has " $c "
    expect_rc 0 help "$c"
    out_has " $c "
done
# check documents its own exit codes.
expect_rc 0 check --help
out_has "3  corruption found"
out_has "4  only leaks found"

# Usage errors: exit 2 and a message saying what was wrong.
expect_rc 2
err_has "qcowctl: no command given"
expect_rc 2 frobnicate
err_has "qcowctl: unknown command 'frobnicate'"
expect_rc 2 --frobnicate info x
err_has "unknown option '--frobnicate'"
expect_rc 2 info --frobnicate x
err_has "unknown option '--frobnicate'"
expect_rc 2 create img.qcow 12Q
err_has "invalid SIZE '12Q'"
[ ! -e img.qcow ] || fail "a bad size left a file behind"
expect_rc 2 create img.qcow
err_has "SIZE is needed"
expect_rc 2 create --cluster-size 1000 img.qcow 1M
err_has "invalid cluster size '1000'"
expect_rc 2 create --l2-bits 14 img.qcow 1M
expect_rc 2 create --preallocation some img.qcow 1M
expect_rc 2 create -f raw -b base img.raw 1M
err_has "only for qcow"
expect_rc 2 create --key-file k img.qcow 1M
err_has "--key-file needs --encrypt"
expect_rc 2 create --xen-extent-alloc img.qcow 1M
expect_rc 2 read x.qcow 0
err_has "missing operand"
expect_rc 2 read x.qcow 0 1X
err_has "invalid LENGTH '1X'"
expect_rc 2 read x.qcow 0 1 2
err_has "too many operands"
expect_rc 2 write --pattern 256 x.qcow 0 1
err_has "invalid pattern byte '256'"
expect_rc 2 write --pattern 1 x.qcow 0
err_has "--pattern needs a LENGTH"
expect_rc 2 convert -c -O raw a b
err_has "-c needs a qcow target"
expect_rc 2 convert -O vmdk a b
err_has "unknown image format 'vmdk'"
expect_rc 2 info -f
err_has "needs an argument"
expect_rc 2 check
expect_rc 2 check a b

# Failures: exit 1, the file named with the reason.
for c in info map check; do
    expect_rc 1 "$c" missing.qcow
    err_has "qcowctl: missing.qcow: "
    err_has "No such file or directory"
done
expect_rc 1 read missing.qcow 0 512
err_has "missing.qcow"
expect_rc 1 convert missing.qcow out.raw
err_has "missing.qcow"
[ ! -e out.raw ] || fail "a failed convert left its target behind"

# --json and --quiet are accepted before and after the command.
expect_rc 0 create -q img.qcow 1M
[ ! -s "$T/out" ] || fail "--quiet create printed something"
expect_rc 0 --json info img.qcow
out_has '"format": "qcow"'
expect_rc 0 info img.qcow --json
out_has '"format": "qcow"'
exit 0
