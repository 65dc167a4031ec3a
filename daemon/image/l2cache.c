#include "config.h"

#include <assert.h>
#include <stdlib.h>

#include "l2cache.h"

static size_t bucket_of(const struct l2_cache *c, uint64_t l1_index)
{
    uint64_t h = l1_index * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (c->nbuckets - 1);
}

int l2_cache_init(struct l2_cache *c, size_t capacity, uint32_t entries_per_table)
{
    size_t n = 16;

    while (n < capacity * 2)
        n <<= 1;
    *c = (struct l2_cache){ .capacity = capacity ? capacity : 1,
                            .entries_per_table = entries_per_table, .nbuckets = n };
    c->buckets = calloc(n, sizeof *c->buckets);
    if (!c->buckets)
        return -1;
    c->lru.lru_next = c->lru.lru_prev = &c->lru;
    return 0;
}

static void lru_unlink(struct l2_table *t)
{
    t->lru_prev->lru_next = t->lru_next;
    t->lru_next->lru_prev = t->lru_prev;
}

static void lru_push_front(struct l2_cache *c, struct l2_table *t)
{
    t->lru_next = c->lru.lru_next;
    t->lru_prev = &c->lru;
    c->lru.lru_next->lru_prev = t;
    c->lru.lru_next = t;
}

static void hash_unlink(struct l2_cache *c, struct l2_table *t)
{
    struct l2_table **pp = &c->buckets[bucket_of(c, t->l1_index)];

    while (*pp && *pp != t)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = t->hash_next;
}

static void table_free(struct l2_cache *c, struct l2_table *t)
{
    assert(c->count > 0 && c->dirty <= c->count);
    assert(!t->dirty || c->dirty > 0);
    hash_unlink(c, t);
    lru_unlink(t);
    if (t->dirty)
        c->dirty--;
    c->count--;
    free(t->entries);
    free(t);
}

struct l2_table *l2_cache_lookup(struct l2_cache *c, uint64_t l1_index)
{
    for (struct l2_table *t = c->buckets[bucket_of(c, l1_index)]; t; t = t->hash_next) {
        if (t->l1_index == l1_index) {
            lru_unlink(t);
            lru_push_front(c, t);
            return t;
        }
    }
    return NULL;
}

static void evict_clean(struct l2_cache *c)
{
    struct l2_table *t = c->lru.lru_prev;

    /* Never the table at the front: the caller is about to use it. */
    while (c->count > c->capacity && t != &c->lru && t != c->lru.lru_next) {
        struct l2_table *prev = t->lru_prev;
        if (!t->dirty && !t->writeback && !t->pins)
            table_free(c, t);
        t = prev;
    }
}

struct l2_table *l2_cache_insert(struct l2_cache *c, uint64_t l1_index, uint64_t offset)
{
    struct l2_table *t = calloc(1, sizeof *t);
    size_t b;

    if (!t)
        return NULL;
    t->entries = calloc(c->entries_per_table, sizeof *t->entries);
    if (!t->entries) {
        free(t);
        return NULL;
    }
    t->l1_index = l1_index;
    t->offset = offset;
    b = bucket_of(c, l1_index);
    t->hash_next = c->buckets[b];
    c->buckets[b] = t;
    lru_push_front(c, t);
    c->count++;
    evict_clean(c);
    return t;
}

void l2_cache_set_dirty(struct l2_cache *c, struct l2_table *t, bool dirty)
{
    if (t->dirty == dirty)
        return;
    /* The dirty count is of tables in the cache, so it stays within count. */
    assert(dirty ? c->dirty < c->count : c->dirty > 0);
    t->dirty = dirty;
    if (dirty)
        c->dirty++;
    else
        c->dirty--;
}

void l2_table_unpin(struct l2_table *t)
{
    assert(t->pins > 0);
    t->pins--;
}

int l2_cache_foreach(struct l2_cache *c, int (*fn)(struct l2_table *t, void *opaque), void *opaque)
{
    for (struct l2_table *t = c->lru.lru_next, *next; t != &c->lru; t = next) {
        int r;
        next = t->lru_next;
        if ((r = fn(t, opaque)) != 0)
            return r;
    }
    return 0;
}

void l2_cache_clear(struct l2_cache *c)
{
    for (struct l2_table *t = c->lru.lru_next, *next; t != &c->lru; t = next) {
        next = t->lru_next;
        table_free(c, t);
    }
}

void l2_cache_destroy(struct l2_cache *c)
{
    if (!c->buckets)
        return;
    l2_cache_clear(c);
    free(c->buckets);
    c->buckets = NULL;
}
