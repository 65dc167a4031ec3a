/* parse_size: plain numbers and binary units; junk, negatives and overflow
 * refused. */
#include "config.h"

#include <errno.h>

#include "util.h"
#include "unit.h"

static void ok(const char *s, uint64_t want)
{
    uint64_t v = 12345;
    int r = parse_size(s, &v);

    unit_checks++;
    if (r != 0 || v != want) {
        fprintf(stderr, "parse_size(\"%s\") = %d, %" PRIu64 "; expected 0, %" PRIu64 "\n", s, r, v, want);
        unit_failures++;
    }
}

static void bad(const char *s, int want)
{
    uint64_t v = 12345;
    int r = parse_size(s, &v);

    unit_checks++;
    if (r != want) {
        fprintf(stderr, "parse_size(\"%s\") = %d, expected %d\n", s ? s : "(null)", r, want);
        unit_failures++;
    }
}

int main(void)
{
    ok("0", 0);
    ok("1", 1);
    ok("10", 10);
    ok("512", 512);
    ok("512K", UINT64_C(512) << 10);
    ok("3000K", UINT64_C(3000) << 10);
    ok("64M", UINT64_C(64) << 20);
    ok("1G", UINT64_C(1) << 30);
    ok("2T", UINT64_C(2) << 40);
    ok("67109376", (UINT64_C(64) << 20) + 512);
    ok("18446744073709551615", UINT64_MAX);
    ok("16777215T", UINT64_C(16777215) << 40);

    bad("", -EINVAL);
    bad(NULL, -EINVAL);
    bad("-1", -EINVAL);
    bad("abc", -EINVAL);
    bad("K", -EINVAL);
    bad("10X", -EINVAL);
    bad("1.5G", -EINVAL);
    bad("10KK", -EINVAL);
    bad("64M junk", -EINVAL);
    bad("18446744073709551616", -ERANGE);
    bad("16777216T", -ERANGE);
    bad("99999999999999999999G", -ERANGE);
    return unit_result("test-parse-size");
}
