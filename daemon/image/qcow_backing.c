/* Naming another backing file in a qcow header (rebase).
 *
 * A name that fits in the first sector, after the header and before an L1
 * table that follows it, is written there with the header in one sector
 * write.  A longer one is written apart, at the end of the file, and
 * flushed before the header names it (qcow_format.h calls it detached): a
 * crash leaves the old name or the new one, never a mix. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "error.h"
#include "faultpoint.h"
#include "qcow.h"
#include "util.h"

/* Where the name can go in the first sector, or 0. */
static uint64_t place_in_front(const struct qcow_layer *q, size_t len)
{
    uint64_t at = QCOW_HEADER_SIZE + (q->xen.present ? QCOW_XEN_HEADER_SIZE : 0);

    if (at + len > QCOW_SECTOR_SIZE)
        return 0;
    if (!qcow_l1_detached(&q->lay) && q->h.l1_offset < at + len)
        return 0;
    return at;
}

static int write_apart(struct layer *l, struct qcow_layer *q, const char *name, size_t len,
                       uint64_t *at)
{
    uint64_t rest = QCOW_HEADER_SIZE + (q->xen.present ? QCOW_XEN_HEADER_SIZE : 0);
    size_t span = align_up(len, QCOW_SECTOR_SIZE);
    _cleanup_free_ uint8_t *buf = alloc_aligned(4096, span);
    int r;

    if (!buf)
        return -ENOMEM;
    if (!qcow_l1_detached(&q->lay))
        rest = MAX(rest, q->h.l1_offset + q->l1_area_bytes);
    memset(buf, 0, span);
    memcpy(buf, name, len);
    q->alloc_end = MAX(q->alloc_end, qcow_layout_detached_min(rest));
    *at = qcow_reserve(l, q, span, QCOW_SECTOR_SIZE);
    if ((r = write_full_at(l->fd, buf, span, *at)) < 0)
        return qc_fail(r, "%s: cannot write the backing file name: %s", l->path, strerror(-r));
    if ((r = qcow_sync(l)) < 0)
        return r;
    return faultpoint("rebase-name-written");
}

int qcow_set_backing(struct layer *l, const char *name)
{
    struct qcow_layer *q = l->priv;
    size_t len = name ? strlen(name) : 0;
    struct qcow_header nh = q->h;
    struct qcow_geometry ng;
    _cleanup_free_ char *copy = name ? strdup(name) : NULL;
    uint64_t at = 0;
    int r;

    if (name && !copy)
        return -ENOMEM;
    if (q->xen.present)
        return qc_fail(-ENOTSUP, "%s: the image has blktap's Xen header, which blktap reads only "
                       "without a backing file: not changing its backing file", l->path);
    if (len > QCOW_MAX_BACKING_NAME)
        return qc_fail(-ENAMETOOLONG, "%s: backing file name longer than %d bytes", l->path,
                       QCOW_MAX_BACKING_NAME);
    if (len && !(at = place_in_front(q, len)) && (r = write_apart(l, q, name, len, &at)) < 0)
        return r;
    nh.backing_offset = at;
    nh.backing_len = (uint32_t)len;
    if ((r = qcow_header_validate(l->path, &nh, q->xen.present, MAX(q->alloc_end, l->file_size),
                                  &ng)) < 0)
        return r;
    if (at && at < QCOW_SECTOR_SIZE)
        r = qcow_write_first_sector(l, q, &nh, name, (size_t)at, len);
    else
        r = qcow_write_first_sector(l, q, &nh, NULL, 0, 0);
    if (r < 0 || (r = faultpoint("rebase-header-written")) < 0 || (r = qcow_sync(l)) < 0)
        return r;
    if (q->lay.name_end)
        qcow_release_area(l, q, q->lay.name_start, q->lay.name_end);
    q->h = nh;
    qcow_layout_compute(&q->h, q->xen.present, q->l1_area_bytes, &q->lay);
    free(l->backing_name);
    l->backing_name = TAKE_PTR(copy);
    return qcow_load_front(l, q);
}
