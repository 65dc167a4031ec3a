/* daemon/worker/pool.h: objects come from the slab while it lasts, come
 * back zeroed, and the ones beyond it are ordinary allocations. */
#include "config.h"

#include <stdint.h>

#include "daemon/worker/pool.h"
#include "unit.h"

struct obj {
    uint64_t a[5];
};

static bool all_zero(const struct obj *o)
{
    for (int i = 0; i < 5; i++)
        if (o->a[i])
            return false;
    return true;
}

static void slab_then_overflow(void)
{
    struct pool p;
    struct obj *o[6];

    CHECK(pool_init(&p, sizeof(struct obj), 4) == 0);
    for (int i = 0; i < 6; i++) {
        o[i] = pool_get(&p);
        CHECK(o[i] != NULL && all_zero(o[i]));
        for (int j = 0; j < 5; j++)
            o[i]->a[j] = ~0ull;
    }
    for (int i = 0; i < 4; i++)
        CHECK(pool_owns(&p, o[i]));
    CHECK(!pool_owns(&p, o[4]) && !pool_owns(&p, o[5]));
    for (int i = 0; i < 6; i++)
        pool_put(&p, o[i]);     /* the last two are freed */
    /* Recycled, most recently returned first, and zeroed again. */
    struct obj *again = pool_get(&p);
    CHECK(again == o[3]);
    CHECK(all_zero(again));
    pool_put(&p, again);
    pool_destroy(&p);
}

static void empty_pool_allocates(void)
{
    struct pool p;
    struct obj *o;

    CHECK(pool_init(&p, sizeof(struct obj), 0) == 0);
    o = pool_get(&p);
    CHECK(o != NULL && all_zero(o) && !pool_owns(&p, o));
    pool_put(&p, o);
    pool_destroy(&p);
}

int main(void)
{
    slab_then_overflow();
    empty_pool_allocates();
    return unit_result("test-pool");
}
