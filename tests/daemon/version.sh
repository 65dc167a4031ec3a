#!/bin/bash
# The version is written once (configure's AC_INIT): the greeting, the
# version command, qcowctl --version and every man page's header all say
# the package version configure was given.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
command -v jq >/dev/null || skip "jq not installed (apt-get install jq)"
[ -n "${PACKAGE_VERSION:-}" ] || die "PACKAGE_VERSION not set (run through make check)"
IFS=. read -r major minor micro <<<"$PACKAGE_VERSION"
start_daemon

# parts JSON-OBJECT: "major.minor.micro" of a version object.
parts() { jq -r '"\(.major).\(.minor).\(.micro)"'; }

printf '' | "$DAEMON_TOOLS/ctlraw" "$SOCK" >"$T/greeting" || die "no greeting"
[ "$(head -n 1 "$T/greeting" | jq -c '.QCOWD.version' | parts)" = "$PACKAGE_VERSION" ] ||
    die "the greeting says $(head -n 1 "$T/greeting"), not $PACKAGE_VERSION"
head -n 1 "$T/greeting" | jq -e --arg p "qcowd $PACKAGE_VERSION" '.QCOWD.version.package == $p' \
    >/dev/null || die "the greeting's package is not qcowd $PACKAGE_VERSION"

ctl --json version >"$T/version" || die "qcowctl version"
[ "$(jq -c .daemon "$T/version" | parts)" = "$PACKAGE_VERSION" ] ||
    die "the version command says $(cat "$T/version")"
[ "$(jq -r .client.version "$T/version")" = "$PACKAGE_VERSION" ] || die "qcowctl's own version"
"$QCOWCTL" --version | grep -qF " $PACKAGE_VERSION" || die "qcowctl --version: $("$QCOWCTL" --version)"
[ "$major.$minor.$micro" = "$PACKAGE_VERSION" ] || die "PACKAGE_VERSION $PACKAGE_VERSION has not three parts"

for page in doc/qcowd.8 doc/qcowctl.8 doc/libqcowring.3 doc/nbdkit-qcowd-plugin.1; do
    [ -f "$top_builddir/$page" ] || die "$page not built"
    grep -m 1 '^\.TH ' "$top_builddir/$page" | grep -qF "\"qcowd $PACKAGE_VERSION\"" ||
        die "$page: its header does not name qcowd $PACKAGE_VERSION: $(grep -m 1 '^\.TH ' "$top_builddir/$page")"
done
