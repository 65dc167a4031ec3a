# The unit harness must not pass a test that checked nothing: a test whose
# checks were all skipped or forgotten would otherwise look green.
. "$top_srcdir/tests/lib/common.sh"

prog="$top_builddir/tests/unit/no-checks"
[ -x "$prog" ] || die "$prog not built"
expect_exit 1 "$prog"
grep -q "no check was made" "$T/.err" || die "no reason given: $(cat "$T/.err")"
