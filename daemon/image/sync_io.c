/* The synchronous executor: runs read extents and write pieces with
 * pread/pwrite, for qcowctl and tests.  The worker runs the same plans with
 * libaio. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>

#include "driver.h"
#include "error.h"
#include "util.h"

#define SYNC_CHUNK (4u << 20)

static int io_error(const struct layer *l, const char *what, uint64_t off, int r)
{
    return qc_fail(r, "%s: %s at offset %" PRIu64 " failed: %s", l->path, what, off, strerror(-r));
}

static int read_data(const struct extent *e, uint8_t *dst)
{
    ssize_t n = read_full_at(e->layer->meta_fd, dst, e->len, e->host_off);

    if (n < 0)
        return io_error(e->layer, "read", e->host_off, (int)n);
    /* Past the end of the file the data reads as zeros. */
    memset(dst + n, 0, e->len - (uint64_t)n);
    return extent_decrypt(e, e->guest_off, dst, e->len);
}

static int read_compressed(const struct extent *e, uint8_t *dst)
{
    _cleanup_free_ uint8_t *stream = NULL;
    ssize_t n;
    int r = extent_inflate(e, NULL, dst);

    if (r != -EAGAIN)
        return r;
    if (!(stream = malloc(e->comp_len)))
        return -ENOMEM;
    n = read_full_at(e->layer->meta_fd, stream, e->comp_len, e->host_off);
    if (n < 0)
        return io_error(e->layer, "read", e->host_off, (int)n);
    if ((size_t)n != e->comp_len)
        return qc_fail(-EIO, "%s: compressed cluster at %#" PRIx64 " is truncated",
                       e->layer->path, e->host_off);
    return extent_inflate(e, stream, dst);
}

/* Run extents that cover [base, base+len) into buf. */
static int run_extents(const struct extent_vec *ev, uint8_t *buf, uint64_t base)
{
    for (size_t i = 0; i < ev->n; i++) {
        const struct extent *e = &ev->v[i];
        uint8_t *dst = buf + (e->guest_off - base);
        int r = 0;

        switch (e->kind) {
        case EXTENT_ZERO: memset(dst, 0, e->len); break;
        case EXTENT_DATA: r = read_data(e, dst); break;
        case EXTENT_COMPRESSED: r = read_compressed(e, dst); break;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_request(struct image *img, uint64_t len, uint64_t off)
{
    uint64_t end = align_up(img->size, IMAGE_SECTOR_SIZE);

    if (!is_aligned(off, IMAGE_SECTOR_SIZE) || !is_aligned(len, IMAGE_SECTOR_SIZE))
        return qc_fail(-EINVAL, "%s: request at %" PRIu64 " of %" PRIu64
                       " bytes is not sector aligned", img->top->path, off, len);
    if (off > end || len > end - off)
        return qc_fail(-EINVAL, "%s: request at %" PRIu64 " of %" PRIu64
                       " bytes is beyond the end of the image (%" PRIu64 " bytes)",
                       img->top->path, off, len, img->size);
    return 0;
}

int image_read(struct image *img, void *buf, uint64_t len, uint64_t off)
{
    struct extent_vec ev = { 0 };
    int r;

    if ((r = check_request(img, len, off)) < 0)
        return r;
    for (uint64_t done = 0; done < len && r == 0; done += SYNC_CHUNK) {
        uint64_t n = MIN(len - done, SYNC_CHUNK);
        extent_vec_reset(&ev);
        if ((r = image_map(img, off + done, n, &ev)) == 0)
            r = run_extents(&ev, (uint8_t *)buf + done, off + done);
    }
    extent_vec_free(&ev);
    return r;
}

static int write_bytes(const struct write_piece *p, const uint8_t *src, uint64_t len,
                       uint64_t host_off, uint64_t guest_off)
{
    _cleanup_free_ uint8_t *tmp = NULL;
    int r;

    if (p->encrypted) {
        if (!(tmp = malloc(len)))
            return -ENOMEM;
        memcpy(tmp, src, len);
        if ((r = piece_encrypt(p, guest_off, tmp, len)) < 0)
            return r;
        src = tmp;
    }
    if ((r = write_full_at(p->layer->meta_fd, src, len, host_off)) < 0)
        return io_error(p->layer, "write", host_off, r);
    return 0;
}

/* An allocating write of part of a cluster: base content + new bytes. */
static int write_filled_cluster(struct image *img, const struct write_piece *p, const uint8_t *src)
{
    _cleanup_free_ uint8_t *cluster = malloc(p->cluster_size);
    struct extent_vec ev = { 0 };
    int r;

    if (!cluster)
        return -ENOMEM;
    if ((r = image_map_fill(img, p, &ev)) == 0)
        r = run_extents(&ev, cluster, p->cluster_guest_off);
    extent_vec_free(&ev);
    if (r < 0)
        return r;
    memcpy(cluster + (p->guest_off - p->cluster_guest_off), src, p->len);
    return write_bytes(p, cluster, p->cluster_size, p->host_off, p->cluster_guest_off);
}

static int run_piece(struct image *img, const struct write_piece *p, const uint8_t *src)
{
    int r;

    if (p->kind == WRITE_ALLOC && p->fill != FILL_NONE)
        r = write_filled_cluster(img, p, src);
    else
        r = write_bytes(p, src, p->len, p->host_off, p->guest_off);
    return r < 0 ? r : image_commit_write(img, p);
}

int image_write(struct image *img, const void *buf, uint64_t len, uint64_t off)
{
    struct write_piece *pieces = NULL;
    size_t n = 0, cap = 0;
    int r;

    if ((r = check_request(img, len, off)) < 0)
        return r;
    if (img->flush_error)
        return qc_fail(img->flush_error, "%s: an earlier flush failed (%s): no more writes",
                       img->top->path, strerror(-img->flush_error));
    for (uint64_t done = 0; done < len && r == 0; done += SYNC_CHUNK) {
        uint64_t chunk = MIN(len - done, SYNC_CHUNK);
        const uint8_t *src = (const uint8_t *)buf + done;
        if ((r = image_plan_write(img, off + done, chunk, &pieces, &n, &cap)) < 0)
            break;
        for (size_t i = 0; i < n && r == 0; i++)
            r = run_piece(img, &pieces[i], src + (pieces[i].guest_off - (off + done)));
        if (r == 0 && image_meta_pressure(img))
            r = image_flush(img);
    }
    free(pieces);
    return r;
}

static int run_meta_writes(const struct meta_write *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = write_full_at(w[i].fd, w[i].buf, w[i].len, w[i].off);
        if (r < 0)
            return qc_fail(r, "metadata write at offset %" PRIu64 " failed: %s", w[i].off,
                           strerror(-r));
    }
    return 0;
}

static int sync_file(struct image *img, int fd)
{
    int err;

    if (fdatasync(fd) < 0) {
        err = -errno;
        image_flush_failed(img, err);
        return qc_fail(err, "%s: fdatasync: %s", img->top->path, strerror(-err));
    }
    return 0;
}

int image_flush(struct image *img)
{
    struct meta_writeback wb;
    int r;

    if (img->top->read_only)
        return 0;
    if ((r = image_meta_prepare(img, &wb)) < 0)
        return r;
    /* New L2 tables and the data they point at become durable first; only
     * then may existing tables and the L1 point at them. */
    if ((r = run_meta_writes(wb.phase1, wb.n1)) == 0 && (r = sync_file(img, wb.fd)) == 0 &&
        wb.n2 > 0 && (r = run_meta_writes(wb.phase2, wb.n2)) == 0)
        r = sync_file(img, wb.fd);
    image_meta_finish(img, &wb, r);
    return r;
}

/* Byte-granular access: widen to whole sectors, merging for writes. */
static void sector_span(uint64_t len, uint64_t off, uint64_t *start, uint64_t *span)
{
    *start = align_down(off, IMAGE_SECTOR_SIZE);
    *span = align_up(off + len, IMAGE_SECTOR_SIZE) - *start;
}

static int check_bytes(struct image *img, uint64_t len, uint64_t off)
{
    if (off > img->size || len > img->size - off)
        return qc_fail(-EINVAL, "%s: range at %" PRIu64 " of %" PRIu64
                       " bytes is beyond the end of the image (%" PRIu64 " bytes)",
                       img->top->path, off, len, img->size);
    return 0;
}

int image_pread(struct image *img, void *buf, uint64_t len, uint64_t off)
{
    uint64_t start, span;
    _cleanup_free_ uint8_t *tmp = NULL;
    int r;

    if ((r = check_bytes(img, len, off)) < 0)
        return r;
    if (is_aligned(off | len, IMAGE_SECTOR_SIZE))
        return image_read(img, buf, len, off);
    sector_span(len, off, &start, &span);
    if (!(tmp = malloc(span)))
        return -ENOMEM;
    if ((r = image_read(img, tmp, span, start)) < 0)
        return r;
    memcpy(buf, tmp + (off - start), len);
    return 0;
}

int image_pwrite(struct image *img, const void *buf, uint64_t len, uint64_t off)
{
    uint64_t start, span;
    _cleanup_free_ uint8_t *tmp = NULL;
    int r;

    if ((r = check_bytes(img, len, off)) < 0)
        return r;
    if (is_aligned(off | len, IMAGE_SECTOR_SIZE))
        return image_write(img, buf, len, off);
    sector_span(len, off, &start, &span);
    if (!(tmp = malloc(span)))
        return -ENOMEM;
    /* Only the first and last sectors hold bytes we must keep. */
    if ((r = image_read(img, tmp, IMAGE_SECTOR_SIZE, start)) < 0 ||
        (r = image_read(img, tmp + span - IMAGE_SECTOR_SIZE, IMAGE_SECTOR_SIZE,
                        start + span - IMAGE_SECTOR_SIZE)) < 0)
        return r;
    memcpy(tmp + (off - start), buf, len);
    return image_write(img, tmp, span, start);
}
