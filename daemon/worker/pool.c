#include "config.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

int pool_init(struct pool *p, size_t size, size_t count)
{
    size_t a = alignof(max_align_t);

    *p = (struct pool){ .size = (size + a - 1) / a * a, .count = count };
    if (count && !(p->slab = calloc(count, p->size)))
        return -ENOMEM;
    for (size_t i = count; i-- > 0;) {
        void *obj = p->slab + i * p->size;
        *(void **)obj = p->free;
        p->free = obj;
    }
    return 0;
}

void pool_destroy(struct pool *p)
{
    free(p->slab);
    *p = (struct pool){ 0 };
}

bool pool_owns(const struct pool *p, const void *obj)
{
    uintptr_t o = (uintptr_t)obj, lo = (uintptr_t)p->slab;

    return p->slab && o >= lo && o < lo + p->count * p->size;
}

void *pool_get(struct pool *p)
{
    void *obj = p->free;

    if (!obj)
        return calloc(1, p->size);
    p->free = *(void **)obj;
    memset(obj, 0, p->size);
    return obj;
}

void pool_put(struct pool *p, void *obj)
{
    if (!obj)
        return;
    if (!pool_owns(p, obj)) {
        free(obj);
        return;
    }
    *(void **)obj = p->free;
    p->free = obj;
}
