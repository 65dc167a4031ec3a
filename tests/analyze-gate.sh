# make analyze (tools/analyze.sh) is a gate: a use after free or a leak
# fails it, a leak report on a _cleanup_ variable (which clang 14's analyser
# does not model) does not, a listed false positive does not, and a listed
# false positive that no longer occurs does.  Run on a small tree of its own.
. "$top_srcdir/tests/lib/common.sh"

[ -n "${CLANG:-}" ] && command -v "$CLANG" >/dev/null || skip "clang not found (apt-get install clang)"
ANALYZE="$top_srcdir/tools/analyze.sh"
src=$T/src
mkdir -p "$src/daemon" "$src/tools" "$T/build"
: >"$T/build/config.h"

# tree FILE-CONTENT: the tree's one source, daemon/x.c.
tree() { printf '%s\n' "$1" >"$src/daemon/x.c"; }
analyze() { CLANG=$CLANG CPPCHECK= ANALYZE_JOBS=1 bash "$ANALYZE" "$src" "$T/build"; }

header='#include <stdlib.h>
#include <string.h>
static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ __attribute__((cleanup(freep)))'

tree "$header
int use_after_free(void);
int use_after_free(void)
{
    char *p = malloc(8);
    if (!p)
        return -1;
    free(p);
    return p[0];
}"
: >"$src/tools/analyze.supp"
expect_exit 1 analyze
grep -q "daemon/x.c:.*Use of memory after it is freed" "$T/.out" ||
    die "the use after free is not reported: $(cat "$T/.out" "$T/.err")"

tree "$header
int leaks(void);
int leaks(void)
{
    char *p = malloc(8);
    return p ? 0 : -1;
}"
expect_exit 1 analyze
grep -q "daemon/x.c:.*leak" "$T/.out" || die "the leak is not reported: $(cat "$T/.out" "$T/.err")"

tree "$header
int scoped(void);
int scoped(void)
{
    _cleanup_free_ char *p = malloc(8);
    return p ? 0 : -1;
}"
expect_exit 0 analyze
grep -q "1 leak report(s) on _cleanup_ variables dropped" "$T/.err" ||
    die "the _cleanup_ variable was not recognised: $(cat "$T/.out" "$T/.err")"

# A listed false positive passes; once it is gone, its entry fails the run.
tree "$header
int use_after_free(void);
int use_after_free(void)
{
    char *p = malloc(8);
    if (!p)
        return -1;
    free(p);
    return p[0];
}"
echo "daemon/x.c | clang | unix.Malloc | Use of memory after it is freed | a test" >"$src/tools/analyze.supp"
expect_exit 0 analyze
grep -q "1 suppressed" "$T/.err" || die "the suppression was not counted: $(cat "$T/.err")"
tree "$header
int fine(void);
int fine(void)
{
    return 0;
}"
expect_exit 1 analyze
grep -q "stale suppression" "$T/.err" || die "a stale suppression passed: $(cat "$T/.err")"
