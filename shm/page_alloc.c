/* Contiguous page-run allocator over a ring's data area (libqcowring). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "client_internal.h"

static bool page_used(const struct page_alloc *pa, uint32_t page)
{
    return (pa->bits[page / 64] >> (page % 64)) & 1;
}

static void mark_pages(struct page_alloc *pa, uint32_t first, uint32_t count, bool used)
{
    for (uint32_t p = first; p < first + count; p++) {
        uint64_t bit = 1ull << (p % 64);
        assert(page_used(pa, p) != used);
        if (used)
            pa->bits[p / 64] |= bit;
        else
            pa->bits[p / 64] &= ~bit;
    }
}

int page_alloc_init(struct page_alloc *pa, uint32_t nr_pages)
{
    size_t words = ((size_t)nr_pages + 63) / 64;

    pa->bits = calloc(words ? words : 1, sizeof(uint64_t));
    if (!pa->bits)
        return -ENOMEM;
    pa->nr_pages = nr_pages;
    pa->nr_free = nr_pages;
    pa->cursor = 0;
    return 0;
}

void page_alloc_destroy(struct page_alloc *pa)
{
    free(pa->bits);
    pa->bits = NULL;
}

/* Length of the free run starting at page, capped at want; *next is where
 * to look next when the run is too short. */
static uint32_t free_run(const struct page_alloc *pa, uint32_t page, uint32_t want,
                         uint32_t *next)
{
    uint32_t len = 0;

    while (len < want && page + len < pa->nr_pages) {
        uint32_t p = page + len;
        if (p % 64 == 0 && pa->bits[p / 64] == UINT64_MAX) {
            *next = p + 64;
            return len;
        }
        if (page_used(pa, p)) {
            *next = p + 1;
            return len;
        }
        len++;
    }
    *next = page + len;
    return len;
}

/* First fit in [from, to). */
static int find_run(const struct page_alloc *pa, uint32_t from, uint32_t to,
                    uint32_t count, uint32_t *first)
{
    uint32_t page = from;

    while (page < to && page + count <= pa->nr_pages) {
        uint32_t next;
        if (free_run(pa, page, count, &next) == count) {
            *first = page;
            return 0;
        }
        page = next;
    }
    return -EAGAIN;
}

int page_alloc_get(struct page_alloc *pa, uint32_t count, uint32_t *first)
{
    if (count == 0 || count > pa->nr_free)
        return -EAGAIN;
    if (find_run(pa, pa->cursor, pa->nr_pages, count, first) < 0 &&
        find_run(pa, 0, pa->cursor, count, first) < 0)
        return -EAGAIN;
    mark_pages(pa, *first, count, true);
    pa->nr_free -= count;
    pa->cursor = *first + count < pa->nr_pages ? *first + count : 0;
    return 0;
}

void page_alloc_put(struct page_alloc *pa, uint32_t first, uint32_t count)
{
    assert(first <= pa->nr_pages && count <= pa->nr_pages - first);
    assert(count <= pa->nr_pages - pa->nr_free);
    mark_pages(pa, first, count, false);
    pa->nr_free += count;
}
