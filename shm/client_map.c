/* Reading the answer of a MAP request (libqcowring).  The answer comes from
 * shared memory: it is copied once and checked against the request. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "client_internal.h"

static uint32_t answer_capacity(const struct qcowring_req *q)
{
    uint32_t pages = q->nr_pages < QCOWRING_MAP_MAX_PAGES ? q->nr_pages : QCOWRING_MAP_MAX_PAGES;

    return (uint32_t)(((size_t)pages * QCOWRING_PAGE_SIZE - sizeof(struct qcowring_map_reply)) /
                      sizeof(struct qcowring_map_extent));
}

int qcowring_map_answer(const struct qcowring_req *q, uint64_t asked_len,
                        struct qcowring_map_extent *out, unsigned max, uint64_t *covered)
{
    const uint8_t *buf = q->buf;
    struct qcowring_map_reply head;
    uint64_t asked = asked_len >> QCOWRING_SECTOR_SHIFT, sum = 0, taken = 0;
    unsigned n = 0;

    if (!buf || q->op != QCOWRING_OP_MAP || q->result != 0 || max == 0)
        return -EINVAL;
    memcpy(&head, buf, sizeof head);
    if (head.nr_extents == 0 || head.nr_extents > answer_capacity(q) ||
        head.nr_sectors == 0 || head.nr_sectors > asked)
        return -EPROTO;
    for (uint32_t i = 0; i < head.nr_extents; i++) {
        struct qcowring_map_extent e;
        memcpy(&e, buf + sizeof head + (size_t)i * sizeof e, sizeof e);
        if (e.nr_sectors == 0 || e.nr_sectors > asked - sum)
            return -EPROTO;
        sum += e.nr_sectors;
        if (n < max) {
            e.flags &= QCOWRING_MAP_HOLE | QCOWRING_MAP_ZERO;
            e.pad0 = 0;
            out[n++] = e;
            taken = sum;
        }
    }
    if (sum != head.nr_sectors)
        return -EPROTO;
    *covered = taken << QCOWRING_SECTOR_SHIFT;
    return (int)n;
}
