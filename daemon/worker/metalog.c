#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metalog.h"

#define METALOG_MAGIC UINT64_C(0x514d4c4f47303031) /* "QMLOG001" */

struct metalog_header {
    uint64_t magic;
    uint64_t capacity;
    _Atomic uint64_t head;      /* first entry not yet written back */
    _Atomic uint64_t tail;      /* next entry to fill */
    _Atomic int64_t flush_error;        /* sticky: a flush failed (-errno) */
};

struct metalog_entry {
    uint64_t guest;
    uint64_t host;
};

struct metalog {
    struct metalog_header *h;
    struct metalog_entry *e;
    uint64_t capacity;
};

size_t metalog_size(uint32_t entries)
{
    return sizeof(struct metalog_header) + (size_t)entries * sizeof(struct metalog_entry);
}

static bool all_zero(const void *mem, size_t n)
{
    const uint8_t *p = mem;

    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int metalog_attach(void *mem, size_t size, struct metalog **out)
{
    struct metalog_header *h = mem;
    uint64_t capacity = (size - sizeof *h) / sizeof(struct metalog_entry);
    struct metalog *log;

    if (size < metalog_size(1))
        return -EINVAL;
    if (all_zero(h, sizeof *h)) {
        h->capacity = capacity;
        h->magic = METALOG_MAGIC;
    } else if (h->magic != METALOG_MAGIC || h->capacity != capacity ||
               atomic_load(&h->tail) - atomic_load(&h->head) > capacity) {
        return -EINVAL;
    }
    if (!(log = malloc(sizeof *log)))
        return -ENOMEM;
    *log = (struct metalog){ .h = h, .e = (struct metalog_entry *)(h + 1), .capacity = capacity };
    *out = log;
    return 0;
}

void metalog_free(struct metalog *log)
{
    free(log);
}

int metalog_append(struct metalog *log, uint64_t guest, uint64_t host)
{
    uint64_t tail = atomic_load_explicit(&log->h->tail, memory_order_relaxed);

    if (tail - atomic_load_explicit(&log->h->head, memory_order_relaxed) >= log->capacity)
        return -ENOSPC;
    log->e[tail % log->capacity] = (struct metalog_entry){ guest, host };
    /* The entry is complete before the tail counts it. */
    atomic_store_explicit(&log->h->tail, tail + 1, memory_order_release);
    return 0;
}

bool metalog_wants_writeback(const struct metalog *log)
{
    return (atomic_load(&log->h->tail) - atomic_load(&log->h->head)) * 4 > log->capacity;
}

uint64_t metalog_position(const struct metalog *log)
{
    return atomic_load(&log->h->tail);
}

void metalog_release(struct metalog *log, uint64_t position)
{
    if (position > atomic_load(&log->h->head))
        atomic_store_explicit(&log->h->head, position, memory_order_release);
}

void metalog_mark_flush_failed(struct metalog *log, int err)
{
    int64_t none = 0;

    atomic_compare_exchange_strong(&log->h->flush_error, &none, err < 0 ? err : -EIO);
}

int metalog_flush_error(const struct metalog *log)
{
    int64_t err = atomic_load(&log->h->flush_error);

    return err < 0 && err >= -4095 ? (int)err : 0;
}

int metalog_replay(struct metalog *log, int (*fn)(void *opaque, uint64_t guest, uint64_t host),
                   void *opaque)
{
    uint64_t tail = atomic_load_explicit(&log->h->tail, memory_order_acquire);

    for (uint64_t i = atomic_load(&log->h->head); i < tail; i++) {
        const struct metalog_entry *e = &log->e[i % log->capacity];
        int r = fn(opaque, e->guest, e->host);
        if (r < 0)
            return r;
    }
    return 0;
}
