/* An LRU cache of L2 tables for one qcow layer.
 *
 * Entries are kept in host byte order.  A dirty table (changed in memory, not
 * yet written back), a table whose writeback is in flight and a pinned table
 * are never evicted, so the cache may run over its capacity while metadata is
 * pending; l2_cache_over() tells the owner to write back.
 *
 * Pins: a table that something will change or read later, without looking it
 * up again, is pinned until then (a planned allocation until it commits; a
 * table just read from the file until the requests that waited for it have
 * looked at it).  Eviction goes by LRU among the others. */
#ifndef QCOWD_L2CACHE_H
#define QCOWD_L2CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct l2_table {
    uint64_t l1_index;
    uint64_t offset;            /* host offset of the table */
    uint64_t *entries;
    bool dirty;
    bool fresh;                 /* newly allocated: not yet referenced by the on-disk L1 */
    bool writeback;             /* a snapshot of it is being written */
    unsigned pins;              /* users that keep it cached (see above) */
    struct l2_table *lru_prev, *lru_next;
    struct l2_table *hash_next;
};

struct l2_cache {
    size_t capacity;            /* tables kept when clean */
    size_t count;
    size_t dirty;
    uint32_t entries_per_table;
    struct l2_table **buckets;
    size_t nbuckets;            /* power of two */
    struct l2_table lru;        /* sentinel: lru.lru_next is the most recent */
};

int l2_cache_init(struct l2_cache *c, size_t capacity, uint32_t entries_per_table);
void l2_cache_destroy(struct l2_cache *c);

/* The cached table for l1_index (now the most recently used), or NULL. */
struct l2_table *l2_cache_lookup(struct l2_cache *c, uint64_t l1_index);

/* Add a table (entries zeroed) and evict clean tables beyond capacity.
 * Returns NULL on allocation failure. */
struct l2_table *l2_cache_insert(struct l2_cache *c, uint64_t l1_index, uint64_t offset);

void l2_cache_set_dirty(struct l2_cache *c, struct l2_table *t, bool dirty);

static inline void l2_table_pin(struct l2_table *t)
{
    t->pins++;
}

/* Drop a pin; a table over the cache's capacity is evicted at the next insert. */
void l2_table_unpin(struct l2_table *t);

/* Call fn for every table (in no particular order); stop on a non-zero return. */
int l2_cache_foreach(struct l2_cache *c, int (*fn)(struct l2_table *t, void *opaque), void *opaque);

/* Drop every table (dirty ones too). */
void l2_cache_clear(struct l2_cache *c);

static inline bool l2_cache_over(const struct l2_cache *c)
{
    return c->dirty * 2 >= c->capacity;
}

#endif
