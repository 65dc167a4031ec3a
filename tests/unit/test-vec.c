/* daemon/common/vec.h: elements survive growth, and no count can wrap an
 * allocation's size around. */
#include "config.h"

#include <errno.h>
#include <stdint.h>

#include "daemon/common/vec.h"
#include "unit.h"

struct pair {
    uint64_t a, b;
};

static void push_keeps_elements(void)
{
    VEC(struct pair) v = { 0 };

    for (uint64_t i = 0; i < 10000; i++)
        CHECK(vec_push(&v, ((struct pair){ i, ~i })) == 0);
    CHECK_U64(v.n, 10000);
    CHECK(v.cap >= v.n);
    for (uint64_t i = 0; i < v.n; i++)
        if (v.v[i].a != i || v.v[i].b != ~i) {
            CHECK_U64(v.v[i].a, i);
            break;
        }
    vec_free(&v);
    CHECK(v.v == NULL && v.n == 0 && v.cap == 0);
}

static void reserve_is_enough_and_stable(void)
{
    VEC(int) v = { 0 };
    int *before;

    CHECK(vec_reserve(&v, 100) == 0);
    CHECK(v.cap >= 100);
    before = v.v;
    for (int i = 0; i < 100; i++)
        v.v[v.n++] = i;
    /* Room already there: no reallocation. */
    CHECK(vec_reserve(&v, 0) == 0);
    CHECK(v.v == before);
    vec_free(&v);
}

static void sizes_never_wrap(void)
{
    VEC(struct pair) v = { 0 };
    struct pair *p = NULL;
    size_t cap = 0, full = SIZE_MAX - 1;

    /* n + more past SIZE_MAX. */
    CHECK(array_reserve(p, full, SIZE_MAX - 1, 2) == -ENOMEM);
    /* need * sizeof past SIZE_MAX: would be a tiny allocation if wrapped. */
    CHECK(array_reserve(p, cap, 0, SIZE_MAX / sizeof *p + 1) == -ENOMEM);
    CHECK(p == NULL && cap == 0);
    /* A failed growth leaves the vector as it was. */
    CHECK(vec_push(&v, ((struct pair){ 1, 2 })) == 0);
    cap = v.cap;
    v.n = v.cap = SIZE_MAX;
    CHECK(vec_push(&v, ((struct pair){ 3, 4 })) == -ENOMEM);
    v.n = 1;
    v.cap = cap;
    CHECK(v.v[0].a == 1 && v.v[0].b == 2);
    vec_free(&v);
}

int main(void)
{
    push_keeps_elements();
    reserve_is_enough_and_stable();
    sizes_never_wrap();
    return unit_result("test-vec");
}
