/* A unit test that makes no check: unit_result() must fail it.  Not a test
 * itself; tests/unit/no-checks.sh runs it and expects the failure. */
#include "config.h"

#include "unit.h"

int main(void)
{
    return unit_result("no-checks");
}
