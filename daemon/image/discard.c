/* Discards: planned per cluster by the top layer's driver, run here.  A
 * whole cluster is made to read as zeros: its data gets a hole punched in
 * it (the L2 entry stays, so a backing file never shows through), or, when
 * it has no data of its own to punch (compressed, or unallocated over a
 * backing file), it is pointed at a fresh cluster that reads as zeros. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>

#include "driver.h"
#include "error.h"
#include "util.h"
#include "daemon/common/vec.h"

/* Clusters next to each other in the file are punched in one go: a file
 * system frees only the whole blocks a hole covers, and clusters may be
 * smaller than a block. */
static bool extends(const struct discard_piece *a, const struct discard_piece *b)
{
    return a->kind == DISCARD_ZERO && b->kind == DISCARD_ZERO && a->keep_blocks == b->keep_blocks &&
           a->guest_off + a->len == b->guest_off && a->host_off + a->host_len == b->host_off;
}

/* Planning needs every L2 table of its range cached at once, and the cache
 * keeps a bounded number: one plan covers at most this many tables' span,
 * or a discard of a whole disk would evict its own first tables for ever
 * (and hold a piece for each of its clusters). */
#define DISCARD_PLAN_TABLES 64

static uint64_t plan_span(struct layer *l, uint64_t len)
{
    struct layer_info info;

    layer_get_info(l, &info);
    if (!info.cluster_size || !info.l2_entries)
        return len;
    return MIN(len, (uint64_t)info.cluster_size * info.l2_entries * DISCARD_PLAN_TABLES);
}

uint64_t image_discard_planned(const struct discard_piece *pieces, size_t n)
{
    uint64_t len = 0;

    for (size_t i = 0; i < n; i++)
        len += pieces[i].len;
    return len;
}

int image_plan_discard(struct image *img, uint64_t off, uint64_t len,
                       struct discard_piece **pieces, size_t *n, size_t *cap)
{
    struct layer *l = img->top;

    if (l->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", l->path);
    if (!l->ops->plan_discard)
        return qc_fail(-EOPNOTSUPP, "%s: %s images cannot discard", l->path,
                       image_format_name(l->ops->format));
    len = plan_span(l, len);
    /* Every table first (see image_plan_write). */
    if (l->need && l->ops->need_tables) {
        int r = l->ops->need_tables(l, off, len);
        if (r < 0)
            return r;
    }
    if (l->need && l->ops->need_space) {
        int r = l->ops->need_space(l, off, len, true);
        if (r < 0)
            return r;
    }
    *n = 0;
    while (len > 0) {
        struct discard_piece p;
        int r = l->ops->plan_discard(l, off, len, &p);
        if (r < 0)
            return r;
        off += p.len;
        len -= p.len;
        if (*n && extends(&(*pieces)[*n - 1], &p)) {
            (*pieces)[*n - 1].len += p.len;
            (*pieces)[*n - 1].host_len += p.host_len;
            continue;
        }
        if ((r = array_reserve(*pieces, *cap, *n, 1)) < 0)
            return r;
        (*pieces)[(*n)++] = p;
    }
    return 0;
}

/* Zeros written the slow way, where the file system has no better. */
static int write_zeros(int fd, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[64 << 10];
    int r = 0;

    for (uint64_t n; len > 0 && r == 0; off += n, len -= n) {
        n = MIN(len, sizeof zeros);
        r = write_full_at(fd, zeros, (size_t)n, off);
    }
    return r;
}

/* Punch a hole (or, for a file that is not to be sparse, zero the range
 * in place); fall back to zeroing, then to writing zeros. */
static int zero_range(const struct discard_piece *p)
{
    int fd = p->layer->meta_fd, r;

    if (!p->keep_blocks &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)p->host_off,
                  (off_t)p->host_len) == 0)
        return 0;
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)p->host_off,
                  (off_t)p->host_len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != EINVAL)
        r = -errno;
    else
        r = write_zeros(fd, p->host_off, p->host_len);
    if (r < 0)
        return qc_fail(r, "%s: cannot discard %" PRIu64 " bytes at %#" PRIx64 ": %s",
                       p->layer->path, p->host_len, p->host_off, strerror(-r));
    return 0;
}

int image_run_discard_piece(struct image *img, const struct discard_piece *p)
{
    switch (p->kind) {
    case DISCARD_KEEP:
    case DISCARD_NOTHING:
        return 0;
    case DISCARD_ZERO:
        return zero_range(p);
    case DISCARD_REPLACE:
        return p->layer->ops->commit_discard(p->layer, p);
    }
    return -EINVAL;
}

uint32_t image_discard_granularity(const struct image *img)
{
    const struct layer *l = img->top;

    return l->ops->discard_granularity ? l->ops->discard_granularity(l) : 0;
}

int image_discard(struct image *img, uint64_t off, uint64_t len, uint64_t *discarded)
{
    struct discard_piece *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    *discarded = 0;
    if (!is_aligned(off | len, IMAGE_SECTOR_SIZE) || off > img->size || len > img->size - off) {
        r = qc_fail(-EINVAL, "%s: discard of %" PRIu64 " bytes at %" PRIu64 " is not sector "
                    "aligned or beyond the end of the image (%" PRIu64 " bytes)",
                    img->top->path, len, off, img->size);
        return r;
    }
    for (uint64_t done = 0; r == 0 && done < len;) {
        r = image_plan_discard(img, off + done, len - done, &v, &n, &cap);
        for (size_t i = 0; r == 0 && i < n; i++) {
            r = image_run_discard_piece(img, &v[i]);
            if (v[i].kind != DISCARD_KEEP)
                *discarded += v[i].len;
            if (r == 0 && image_meta_pressure(img))
                r = image_flush(img);
        }
        if (r == 0) {
            uint64_t planned = image_discard_planned(v, n);
            assert(planned > 0);        /* every plan goes forward */
            done += planned;
        }
    }
    free(v);
    return r;
}
