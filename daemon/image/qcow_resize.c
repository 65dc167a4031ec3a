/* Resizing a qcow layer: the header's size, and the L1 table when its
 * number of entries changes.  The caller (resize.c) has written the
 * metadata back and runs no I/O meanwhile.
 *
 * Growing within the L1 table's entries rewrites the header alone.  A
 * longer L1 table is written whole at the end of the file, apart from the
 * front (qcow_format.h), and flushed; only then does the header name it and
 * the new size, in one sector write, flushed.  A crash leaves the old size
 * with the old table, or the new size with the new one; the other table is
 * unreferenced space.  The old table's whole sectors then become a hole.
 *
 * Shrinking rewrites the header first (what lies past the new end is then
 * outside the image), then zeroes the L1 entries the shorter table no
 * longer has and clears the entries of the last L2 table past the new end:
 * what they pointed at is leaked space, which qcowctl gives back. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#include "error.h"
#include "faultpoint.h"
#include "qcow.h"
#include "util.h"

int qcow_sync(struct layer *l)
{
    if (fdatasync(l->meta_fd) < 0)
        return qc_fail(-errno, "%s: fdatasync: %s", l->path, strerror(errno));
    return 0;
}

int qcow_write_first_sector(struct layer *l, struct qcow_layer *q, const struct qcow_header *h,
                            const void *bytes, size_t off, size_t len)
{
    _cleanup_free_ uint8_t *sec = alloc_aligned(4096, QCOW_SECTOR_SIZE);
    ssize_t n;
    int r;

    assert(off + len <= QCOW_SECTOR_SIZE);
    if (!sec)
        return -ENOMEM;
    if (q->front_off == 0) {
        memcpy(sec, q->front, QCOW_SECTOR_SIZE);
    } else if ((n = read_full_at(l->fd, sec, QCOW_SECTOR_SIZE, 0)) != QCOW_SECTOR_SIZE) {
        return qc_fail(n < 0 ? (int)n : -EIO, "%s: cannot read the header", l->path);
    }
    qcow_header_encode(h, sec);
    if (len)
        memcpy(sec + off, bytes, len);
    if ((r = write_full_at(l->fd, sec, QCOW_SECTOR_SIZE, 0)) < 0)
        return qc_fail(r, "%s: cannot write the header: %s", l->path, strerror(-r));
    if (q->front_off == 0)
        memcpy(q->front, sec, QCOW_SECTOR_SIZE);
    return 0;
}

static int write_header(struct layer *l, struct qcow_layer *q, const struct qcow_header *h)
{
    return qcow_write_first_sector(l, q, h, NULL, 0, 0);
}

uint64_t qcow_rest_of_front(const struct qcow_layer *q)
{
    uint64_t end = QCOW_HEADER_SIZE + (q->xen.present ? QCOW_XEN_HEADER_SIZE : 0);

    if (q->h.backing_offset && !q->lay.name_end)
        end = MAX(end, q->h.backing_offset + q->h.backing_len);
    return end;
}

/* Where a longer L1 table goes: after everything allocated, and past the
 * 4 KiB boundary after the header and backing name, so that readers take
 * it for detached (qcow_format.h), not for part of the front. */
static uint64_t new_l1_offset(const struct qcow_layer *q)
{
    return align_up(MAX(q->alloc_end, qcow_layout_detached_min(qcow_rest_of_front(q))),
                    QCOW_SECTOR_SIZE);
}

/* The header for new_size, checked like any header read from a file; a
 * grown L1 table at its new place. */
static int new_header(struct layer *l, struct qcow_layer *q, uint64_t new_size,
                      struct qcow_header *nh, struct qcow_geometry *ng)
{
    int r;

    *nh = q->h;
    nh->size = new_size;
    if (new_size > q->h.size) {
        nh->l1_offset = new_l1_offset(q);
        if ((r = qcow_header_validate(l->path, nh, q->xen.present, UINT64_MAX, ng)) < 0 ||
            ng->l1_entries > q->g.l1_entries)
            return r;
        nh->l1_offset = q->h.l1_offset;
    }
    return qcow_header_validate(l->path, nh, q->xen.present, UINT64_MAX, ng);
}

/* Arrays of n entries holding the table's first `keep` entries, then zeros. */
static int resize_tables(struct qcow_layer *q, uint64_t n, uint64_t **l1, uint64_t **l1_disk)
{
    uint64_t keep = MIN(n, q->g.l1_entries);

    *l1 = calloc(n ? n : 1, sizeof **l1);
    *l1_disk = calloc(n ? n : 1, sizeof **l1_disk);
    if (!*l1 || !*l1_disk) {
        free(*l1);
        free(*l1_disk);
        return -ENOMEM;
    }
    memcpy(*l1, q->l1, keep * sizeof **l1);
    memcpy(*l1_disk, q->l1_disk, keep * sizeof **l1_disk);
    return 0;
}

/* The header now says nh: the layer follows it. */
static int take_header(struct layer *l, struct qcow_layer *q, const struct qcow_header *nh,
                       const struct qcow_geometry *ng, uint64_t *l1, uint64_t *l1_disk)
{
    free(q->l1);
    free(q->l1_disk);
    q->l1 = l1;
    q->l1_disk = l1_disk;
    q->h = *nh;
    q->g = *ng;
    q->l1_area_bytes = ng->l1_bytes;
    qcow_layout_compute(&q->h, q->xen.present, q->l1_area_bytes, &q->lay);
    l->size = qcow_virtual_size(&q->h);
    return qcow_load_front(l, q);
}

static void punch(struct layer *l, uint64_t off, uint64_t len)
{
    if (len)
        fallocate(l->meta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

/* A sector that [start, end) covers in part: its bytes in the range are
 * zeroed, and the sector becomes a hole if it holds nothing else (a hole
 * reads as zeros: nothing that may share it changes).  Through the data
 * descriptor, whole: see qcow_load_front. */
static void release_sector(struct layer *l, uint64_t sec, uint64_t start, uint64_t end)
{
    _cleanup_free_ uint8_t *buf = alloc_aligned(4096, QCOW_SECTOR_SIZE);
    uint64_t lo = MAX(sec, start), hi = MIN(sec + QCOW_SECTOR_SIZE, end);

    if (!buf || read_full_at(l->fd, buf, QCOW_SECTOR_SIZE, sec) != QCOW_SECTOR_SIZE)
        return;
    if (hi > lo)
        memset(buf + (lo - sec), 0, hi - lo);
    if (all_zero(buf, QCOW_SECTOR_SIZE))
        punch(l, sec, QCOW_SECTOR_SIZE);
    else if (hi > lo)
        write_full_at(l->fd, buf, QCOW_SECTOR_SIZE, sec);
}

void qcow_release_area(struct layer *l, struct qcow_layer *q, uint64_t start, uint64_t end)
{
    /* QEMU writes a table in whole sectors from its start: the padding
     * after it was written too. */
    uint64_t pad_end = start + align_up(end - start, QCOW_SECTOR_SIZE);
    uint64_t first = align_up(MAX(start, qcow_rest_of_front(q)), QCOW_SECTOR_SIZE);
    uint64_t whole_end = MAX(first, align_down(end, QCOW_SECTOR_SIZE));

    if (align_up(pad_end, QCOW_SECTOR_SIZE) >= q->alloc_end && start >= qcow_rest_of_front(q)) {
        q->alloc_end = start;           /* at the end: cut off when the layer closes */
        return;
    }
    punch(l, first, whole_end - first);
    for (uint64_t sec = whole_end; sec < pad_end; sec += QCOW_SECTOR_SIZE)
        release_sector(l, sec, start, end);
}

/* The table as it is on disk, then zeros, at off (new_l1_offset()). */
static int write_new_l1(struct layer *l, struct qcow_layer *q, uint64_t n, uint64_t off)
{
    uint64_t len = align_up(n * 8, QCOW_SECTOR_SIZE);
    _cleanup_free_ uint8_t *buf = alloc_aligned(4096, len);
    int r;

    if (!buf)
        return -ENOMEM;
    memset(buf, 0, len);
    for (uint64_t i = 0; i < q->g.l1_entries; i++)
        store_be64(buf + i * 8, q->l1_disk[i]);
    q->alloc_end = off;
    (void)qcow_reserve(l, q, len, QCOW_SECTOR_SIZE);
    if ((r = write_full_at(l->fd, buf, len, off)) < 0)
        return qc_fail(r, "%s: cannot write the new L1 table: %s", l->path, strerror(-r));
    return 0;
}

/* The header says nh now (in the file, if not yet on the disk): whatever
 * fails from here, the layer follows it, as a reader of the file would.
 * Kept on the old table, it would write new L2 tables' places into the
 * table the header no longer names, and lose them at the next open. */
static int header_written(struct layer *l, struct qcow_layer *q, const struct qcow_header *nh,
                          const struct qcow_geometry *ng, uint64_t *l1, uint64_t *l1_disk)
{
    int r = faultpoint("resize-header-written"), t;

    if (r == 0)
        r = qcow_sync(l);
    t = take_header(l, q, nh, ng, l1, l1_disk);
    return r < 0 ? r : t;
}

static int grow_l1(struct layer *l, struct qcow_layer *q, struct qcow_header *nh,
                   const struct qcow_geometry *ng)
{
    uint64_t old_start = q->h.l1_offset, old_end = old_start + q->l1_area_bytes;
    uint64_t *l1, *l1_disk;
    int r;

    if (l->block_device)
        return qc_fail(-ENOSPC, "%s: on a block device the L1 table cannot grow (it needs "
                       "space after the end of the image's data)", l->path);
    if ((r = resize_tables(q, ng->l1_entries, &l1, &l1_disk)) < 0)
        return r;
    if ((r = write_new_l1(l, q, ng->l1_entries, nh->l1_offset)) < 0 ||
        (r = qcow_sync(l)) < 0 || (r = faultpoint("resize-l1-written")) < 0 ||
        (r = write_header(l, q, nh)) < 0) {
        free(l1);
        free(l1_disk);
        return r;
    }
    if ((r = header_written(l, q, nh, ng, l1, l1_disk)) < 0 ||
        (r = faultpoint("resize-l1-moved")) < 0)
        return r;
    qcow_release_area(l, q, old_start, old_end);
    return 0;
}

static int grow(struct layer *l, struct qcow_layer *q, struct qcow_header *nh,
                const struct qcow_geometry *ng)
{
    uint64_t *l1, *l1_disk;
    int r;

    if (ng->l1_entries > q->g.l1_entries)
        return grow_l1(l, q, nh, ng);
    if ((r = resize_tables(q, ng->l1_entries, &l1, &l1_disk)) < 0)
        return r;
    if ((r = write_header(l, q, nh)) < 0) {
        free(l1);
        free(l1_disk);
        return r;
    }
    return header_written(l, q, nh, ng, l1, l1_disk);
}

/* The entries a shorter L1 table no longer has are zeroed on disk, so that
 * no later reader finds them again. */
static int zero_dropped_l1(struct layer *l, struct qcow_layer *q, uint64_t keep)
{
    uint64_t n = q->g.l1_entries - keep;
    _cleanup_free_ uint8_t *zeros = calloc(n ? n : 1, 8);
    int r;

    if (!zeros)
        return -ENOMEM;
    if (n && (r = write_full_at(l->meta_fd, zeros, n * 8, q->h.l1_offset + keep * 8)) < 0)
        return qc_fail(r, "%s: cannot write the L1 table: %s", l->path, strerror(-r));
    return 0;
}

static int shrink(struct layer *l, struct qcow_layer *q, struct qcow_header *nh,
                  const struct qcow_geometry *ng)
{
    uint64_t cut = align_up(nh->size, q->g.cluster_size), *l1, *l1_disk;
    int r;

    if ((r = resize_tables(q, ng->l1_entries, &l1, &l1_disk)) < 0)
        return r;
    if ((r = write_header(l, q, nh)) < 0 || (r = faultpoint("resize-header-written")) < 0 ||
        (r = qcow_sync(l)) < 0 || (r = zero_dropped_l1(l, q, ng->l1_entries)) < 0) {
        free(l1);
        free(l1_disk);
        return r;
    }
    l2_cache_clear(&q->cache);
    q->zcluster_entry = 0;
    if ((r = take_header(l, q, nh, ng, l1, l1_disk)) < 0)
        return r;
    return cut < (ng->l1_entries << ng->shift) ? qcow_clear_entries_from(l, cut) : 0;
}

int qcow_resize(struct layer *l, uint64_t new_size)
{
    struct qcow_layer *q = l->priv;
    struct qcow_header nh;
    struct qcow_geometry ng;
    int r;

    if (q->xen.present)
        return qc_fail(-ENOTSUP, "%s: the image has blktap's Xen header: blktap sizes its L1 "
                       "table from the disk size and could not open it resized (convert it to "
                       "an image without the header first)", l->path);
    if (new_size == q->h.size)
        return 0;               /* a resize that failed after the header: done */
    if ((r = new_header(l, q, new_size, &nh, &ng)) < 0)
        return r;
    if (new_size > q->h.size)
        return grow(l, q, &nh, &ng);
    return shrink(l, q, &nh, &ng);
}
