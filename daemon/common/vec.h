/* Growable arrays.  A vector is any struct with the members `v` (the
 * elements), `n` (how many are in use) and `cap` (how many fit):
 *
 *     VEC(struct extent) ev = { 0 };
 *     if ((r = vec_push(&ev, e)) < 0)
 *         return r;
 *     ...
 *     vec_free(&ev);
 *
 * Arrays kept as a separate pointer, count and capacity grow with
 * array_reserve().  Growth doubles the allocation and checks every size
 * computation for overflow, so no count can wrap an allocation around. */
#ifndef QCOWD_VEC_H
#define QCOWD_VEC_H

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VEC(T) struct { T *v; size_t n, cap; }

/* Make the array at *pv (the address of its pointer, of any pointer type),
 * which holds *cap elements of `size` bytes, hold at least `need`: 0, or
 * -ENOMEM (also when the size does not fit in a size_t). */
static inline int vec_grow_(void *pv, size_t *cap, size_t need, size_t size)
{
    void *old, *grown;
    size_t c;

    if (need <= *cap)
        return 0;
    c = *cap < 8 ? 8 : *cap;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : 2 * c;
    if (size && c > SIZE_MAX / size)
        return -ENOMEM;
    memcpy(&old, pv, sizeof old);
    if (!(grown = realloc(old, c * size)))
        return -ENOMEM;
    memcpy(pv, &grown, sizeof grown);
    *cap = c;
    return 0;
}

static inline int vec_reserve_(void *pv, size_t *cap, size_t n, size_t more, size_t size)
{
    assert(n <= *cap);
    if (more > SIZE_MAX - n)
        return -ENOMEM;
    return vec_grow_(pv, cap, n + more, size);
}

/* Room for `more` elements after the first n of the array ptr (an lvalue),
 * whose capacity is the lvalue cap: 0 or -ENOMEM. */
#define array_reserve(ptr, cap, n, more) vec_reserve_(&(ptr), &(cap), (n), (more), sizeof *(ptr))

#define vec_reserve(vec, more) array_reserve((vec)->v, (vec)->cap, (vec)->n, (more))

/* Append one element: 0 or -ENOMEM. */
#define vec_push(vec, elem) \
    (vec_reserve((vec), 1) < 0 ? -ENOMEM : ((vec)->v[(vec)->n++] = (elem), 0))

#define vec_free(vec) \
    do { \
        free((vec)->v); \
        (vec)->v = NULL; \
        (vec)->n = (vec)->cap = 0; \
    } while (0)

#endif
