/* Rebasing: an overlay names another backing file.  The safe way (as
 * qemu-img rebase) first copies into the overlay every cluster it leaves to
 * its backing chain whose contents the new chain would change, so the
 * guest reads the same afterwards; the unsafe way only changes the name. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>

#include "driver.h"
#include "error.h"
#include "faultpoint.h"
#include "util.h"

#define REBASE_CHUNK (1u << 20)

struct rebaser {
    struct image *img;          /* the overlay and its old chain */
    struct image *next;         /* the new backing chain, or NULL */
    uint32_t cluster;
    uint8_t *old_buf, *new_buf;
    struct extent_vec ev;
    struct image_rebase_result *res;
};

static bool maps_to_zeros(struct image *img, uint64_t off, uint64_t len, struct extent_vec *ev)
{
    extent_vec_reset(ev);
    if (image_map(img, off, len, ev) < 0)
        return false;
    for (size_t i = 0; i < ev->n; i++)
        if (ev->v[i].kind != EXTENT_ZERO)
            return false;
    return true;
}

/* What the new chain shows at [off, off+len): zeros past its end. */
static int read_next(struct rebaser *rb, uint64_t off, uint64_t len)
{
    uint64_t have = rb->next && off < rb->next->size ? MIN(len, rb->next->size - off) : 0;
    int r;

    memset(rb->new_buf + have, 0, len - have);
    if (have && (r = image_read(rb->next, rb->new_buf, have, off)) < 0)
        return r;
    return 0;
}

static bool next_is_zeros(struct rebaser *rb, uint64_t off, uint64_t len)
{
    if (!rb->next || off >= rb->next->size)
        return true;
    return maps_to_zeros(rb->next, off, MIN(len, rb->next->size - off), &rb->ev);
}

/* [off, off+len) is left to the backing chain by the overlay: keep in the
 * overlay every cluster whose contents would change. */
static int keep_range(struct rebaser *rb, uint64_t off, uint64_t len)
{
    int r;

    if (maps_to_zeros(rb->img, off, len, &rb->ev) && next_is_zeros(rb, off, len))
        return 0;
    if ((r = image_read(rb->img, rb->old_buf, len, off)) < 0 || (r = read_next(rb, off, len)) < 0)
        return r;
    for (uint64_t at = 0; at < len;) {
        uint64_t n = MIN(len - at, rb->cluster - ((off + at) & (rb->cluster - 1)));
        if (memcmp(rb->old_buf + at, rb->new_buf + at, n) != 0) {
            if ((r = image_write(rb->img, rb->old_buf + at, n, off + at)) < 0)
                return r;
            rb->res->copied += n;
        }
        at += n;
    }
    return 0;
}

static int keep_chunk(struct rebaser *rb, uint64_t off, uint64_t len)
{
    while (len > 0) {
        struct extent e;
        bool allocated;
        int r = layer_map(rb->img->top, off, len, &e, &allocated);
        if (r < 0)
            return r;
        if (e.len == 0 || e.len > len)
            return qc_fail(-EIO, "%s: internal error mapping offset %" PRIu64,
                           rb->img->top->path, off);
        if (!allocated && (r = keep_range(rb, off, e.len)) < 0)
            return r;
        off += e.len;
        len -= e.len;
    }
    return 0;
}

static int copy_differences(struct image *img, struct image *next,
                            struct image_rebase_result *res)
{
    struct layer_info info;
    struct rebaser rb = { .img = img, .next = next, .res = res };
    int r = 0;

    layer_get_info(img->top, &info);
    rb.cluster = info.cluster_size;
    rb.old_buf = malloc(REBASE_CHUNK);
    rb.new_buf = malloc(REBASE_CHUNK);
    if (!rb.old_buf || !rb.new_buf)
        r = -ENOMEM;
    for (uint64_t off = 0; off < img->size && r == 0; off += REBASE_CHUNK)
        r = keep_chunk(&rb, off, MIN(img->size - off, REBASE_CHUNK));
    extent_vec_free(&rb.ev);
    free(rb.old_buf);
    free(rb.new_buf);
    return r;
}

int image_rebase(struct image *img, struct image *next, const char *name, bool unsafe,
                 struct image_rebase_result *res)
{
    struct layer *l = img->top;
    char *resolved = NULL;
    int r;

    *res = (struct image_rebase_result){ 0 };
    if ((r = faultpoint("begin-rebase")) < 0)
        return r;
    if (l->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", l->path);
    if (!l->ops->set_backing)
        return qc_fail(-ENOTSUP, "%s: %s images have no backing file", l->path,
                       image_format_name(l->ops->format));
    /* A name qcowd could not open later is refused now. */
    if (name && (r = image_resolve_backing(l->path, name, &resolved)) < 0)
        return r;
    free(resolved);
    if (!unsafe && ((r = copy_differences(img, next, res)) < 0 || (r = image_flush(img)) < 0 ||
                    (r = faultpoint("rebase-copied")) < 0))
        return r;
    return l->ops->set_backing(l, name);
}
