/* Fixed-size objects for the hot path, allocated up front (one slab sized
 * to the ring) and recycled through a free list, so that serving a request
 * makes no malloc.  When the slab runs out (more in flight than it was
 * sized for) pool_get falls back to malloc, and pool_put frees those. */
#ifndef QCOWD_POOL_H
#define QCOWD_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct pool {
    char *slab;
    size_t size;                /* of one object, rounded up for alignment */
    size_t count;
    void *free;                 /* free list, through each object's first bytes */
};

int pool_init(struct pool *p, size_t size, size_t count);
void pool_destroy(struct pool *p);

/* A zeroed object, or NULL when out of memory. */
void *pool_get(struct pool *p);
void pool_put(struct pool *p, void *obj);

/* obj is one of the slab's (pool_put would keep it). */
bool pool_owns(const struct pool *p, const void *obj);

#endif
