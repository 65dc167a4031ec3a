/* The executor: block requests in, I/O pieces through libaio, ordering
 * between overlapping requests.  Metadata writeback is in writeback.c. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec.h"
#include "exec_internal.h"
#include "util.h"

/* The rest of a cluster being read before an allocating write. */
struct fill {
    struct xreq *xr;
    const struct write_piece *p;
    uint8_t *cluster;
    int pending;
    int error;
    struct meta_waiter wait;    /* for a table the fill's map needs */
};

/* A ring request has at most 11 segments (more only with indirect ones). */
#define XOP_INLINE_IOV 16
/* Plan arrays kept ready for writes: a request of 16 clusters. */
#define SPARE_PIECES 16
#define DEFAULT_POOL_SIZE 64

struct xop;
typedef int (*xop_finish_fn)(struct xop *op, long res);

struct xop {
    struct aio_op aio;
    struct xreq *xr;
    struct fill *fill;          /* set for the reads of a fill */
    struct layer *layer;        /* whose file the I/O goes to */
    xop_finish_fn finish;
    struct extent ext;
    struct iovec *iov;          /* the request's buffers this op reads into */
    int niov;
    struct iovec inline_iov[XOP_INLINE_IOV];    /* iov, when that is enough */
    uint8_t *bounce;
    uint8_t *stream;            /* compressed data */
    uint64_t len;
    struct iovec one;
};

static void sub_done(struct xreq *xr, int err);
static void schedule(struct executor *x);

/* ---- why a request failed ---------------------------------------------- */

void exec_note_failure(struct blk_req *req, const char *fmt, ...)
{
    va_list ap;

    if (req->error[0])
        return;                 /* the first failure is the reason */
    va_start(ap, fmt);
    vsnprintf(req->error, sizeof req->error, fmt, ap);
    va_end(ap);
}

/* The engine (image.c, qcow.c) words its failures with qc_fail(): take the
 * words at once, while they are this call's (the caller cleared them with
 * qc_clear_error() just before the call).  Returns r. */
static int engine_result(struct blk_req *req, int r)
{
    if (r < 0)
        exec_note_failure(req, "%s", qc_error_message(r));
    return r;
}

static const char *layer_path(const struct layer *l)
{
    struct layer_info info;

    layer_get_info(l, &info);
    return info.path;
}

static uint64_t iocb_bytes(const struct iocb *cb)
{
    const struct iovec *iov = cb->u.c.buf;
    uint64_t n = 0;

    for (unsigned long i = 0; i < cb->u.c.nbytes; i++)
        n += iov[i].iov_len;
    return n;
}

/* The I/O of op ended with res and its finish step said err. */
static void note_op_failure(struct blk_req *req, const struct xop *op, long res, int err)
{
    const struct iocb *cb = &op->aio.iocb;
    const char *what = cb->aio_lio_opcode == IO_CMD_PWRITEV ? "write" : "read";

    if (res < 0)
        exec_note_failure(req, "%s: %s of %" PRIu64 " bytes at offset %lld failed: %s",
                          layer_path(op->layer), what, iocb_bytes(cb), cb->u.c.offset,
                          strerror((int)-res));
    else
        exec_note_failure(req, "%s: %s of %" PRIu64 " bytes at offset %lld: %s",
                          layer_path(op->layer), what, iocb_bytes(cb), cb->u.c.offset,
                          qc_error_message(err));
}

/* ---- iovec helpers ----------------------------------------------------- */

/* The part [skip, skip+len) of iov as an array: in room (of room_n) when
 * it fits, else a new one (the caller frees *out unless it is room). */
static int iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
                     struct iovec *room, unsigned room_n, struct iovec **out, int *nout)
{
    struct iovec *v = n <= room_n ? room : malloc(sizeof *v * (n ? n : 1));
    int k = 0;

    if (!v)
        return -ENOMEM;
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        uint64_t take = MIN(iov[i].iov_len - skip, len);
        v[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
        v[k++].iov_len = take;
        len -= take;
        skip = 0;
    }
    *out = v;
    *nout = k;
    return 0;
}

static void iov_from_buf(const struct iovec *iov, int n, const uint8_t *src, uint64_t skip)
{
    for (int i = 0; i < n; i++) {
        memcpy(iov[i].iov_base, src + skip, iov[i].iov_len);
        skip += iov[i].iov_len;
    }
}

static void iov_to_buf(const struct iovec *iov, int n, uint8_t *dst)
{
    for (int i = 0; i < n; i++) {
        memcpy(dst, iov[i].iov_base, iov[i].iov_len);
        dst += iov[i].iov_len;
    }
}

/* Zero bytes [from, end) of iov. */
static void iov_zero_from(const struct iovec *iov, int n, uint64_t from)
{
    for (int i = 0; i < n; i++) {
        if (from < iov[i].iov_len)
            memset((uint8_t *)iov[i].iov_base + from, 0, iov[i].iov_len - from);
        from = from > iov[i].iov_len ? from - iov[i].iov_len : 0;
    }
}

static bool iov_aligned(const struct iovec *iov, int n, uint64_t a)
{
    for (int i = 0; i < n; i++)
        if (!is_aligned((uintptr_t)iov[i].iov_base | iov[i].iov_len, a))
            return false;
    return true;
}

/* ---- sub-operations ---------------------------------------------------- */

static struct xop *xop_new(struct xreq *xr, struct fill *f)
{
    struct xop *op = pool_get(&xr->x->xops);

    if (op) {
        op->xr = xr;
        op->fill = f;
    }
    return op;
}

static void xop_free(struct xop *op)
{
    if (op->iov != op->inline_iov)
        free(op->iov);
    free(op->bounce);
    free(op->stream);
    pool_put(&op->xr->x->xops, op);
}

/* op->iov: the part [skip, skip+len) of the request's buffers. */
static int xop_slice(struct xop *op, const struct iovec *iov, unsigned n, uint64_t skip,
                     uint64_t len)
{
    return iov_slice(iov, n, skip, len, op->inline_iov, XOP_INLINE_IOV, &op->iov, &op->niov);
}

static void fill_op_done(struct fill *f, int err);

static void xop_done(struct aio_op *a, long res)
{
    struct xop *op = (struct xop *)((char *)a - offsetof(struct xop, aio));
    struct xreq *xr = op->xr;
    struct fill *f = op->fill;
    int err;

    qc_clear_error();
    if ((err = op->finish(op, res)) < 0)
        note_op_failure(xr->req, op, res, err);
    xop_free(op);
    if (f)
        fill_op_done(f, err);
    else
        sub_done(xr, err);
}

static void xop_issue(struct executor *x, struct xop *op)
{
    op->aio.done = xop_done;
    if (op->fill)
        op->fill->pending++;
    else
        op->xr->pending++;
    aio_queue(x->aio, &op->aio);
}

int exec_io_result(long res, uint64_t want, bool short_ok)
{
    if (res < 0)
        return (int)res;
    if ((uint64_t)res < want && !short_ok)
        return qc_fail(-EIO, "short transfer (%ld of %" PRIu64 " bytes)", res, want);
    return 0;
}

/* The descriptor to use: O_DIRECT only when everything is aligned. */
static int pick_fd(struct executor *x, int direct_fd, struct layer *l, uint64_t off, uint64_t len,
                   const struct iovec *iov, int n)
{
    uint64_t a = x->opts.dio_align ? x->opts.dio_align : 512;

    if (layer_is_direct(l) && is_aligned(off | len, a) && iov_aligned(iov, n, a))
        return direct_fd;
    return layer_fd(l, false);
}

/* ---- reading extents --------------------------------------------------- */

static int finish_plain_read(struct xop *op, long res)
{
    int r = exec_io_result(res, op->len, true);

    if (r == 0 && (uint64_t)res < op->len)
        iov_zero_from(op->iov, op->niov, (uint64_t)res);   /* past end of file */
    return r;
}

static int finish_bounce_read(struct xop *op, long res)
{
    int r = exec_io_result(res, op->len, true);

    if (r < 0)
        return r;
    if ((uint64_t)res < op->len)
        memset(op->bounce + res, 0, op->len - (uint64_t)res);
    if ((r = extent_decrypt(&op->ext, op->ext.guest_off, op->bounce, op->len)) < 0)
        return r;
    iov_from_buf(op->iov, op->niov, op->bounce, 0);
    return 0;
}

static int finish_compressed_read(struct xop *op, long res)
{
    uint64_t skip = op->ext.host_off - align_down(op->ext.host_off, IMAGE_SECTOR_SIZE);
    int r = exec_io_result(res, skip + op->ext.comp_len, false);

    if (r < 0)
        return r == -EIO ? qc_fail(-EIO, "compressed cluster is truncated") : r;
    if ((r = extent_inflate(&op->ext, op->stream + skip, op->bounce)) < 0)
        return r;
    iov_from_buf(op->iov, op->niov, op->bounce, 0);
    return 0;
}

static int read_plain(struct executor *x, struct xop *op)
{
    const struct extent *e = &op->ext;
    int fd = pick_fd(x, e->fd, e->layer, e->host_off, e->len, op->iov, op->niov);

    op->finish = finish_plain_read;
    aio_prep_readv(&op->aio, fd, op->iov, op->niov, e->host_off);
    return 0;
}

static int read_through_bounce(struct executor *x, struct xop *op)
{
    const struct extent *e = &op->ext;

    if (!(op->bounce = alloc_aligned(4096, e->len)))
        return -ENOMEM;
    op->one = (struct iovec){ op->bounce, e->len };
    op->finish = finish_bounce_read;
    aio_prep_readv(&op->aio, pick_fd(x, e->fd, e->layer, e->host_off, e->len, &op->one, 1),
                   &op->one, 1, e->host_off);
    return 0;
}

/* Returns 1 when the data came from the inflate cache (no I/O needed). */
static int read_compressed(struct executor *x, struct xop *op)
{
    const struct extent *e = &op->ext;

    if (!(op->bounce = malloc(e->len)))
        return -ENOMEM;
    if (extent_inflate(e, NULL, op->bounce) == 0) {
        iov_from_buf(op->iov, op->niov, op->bounce, 0);
        return 1;
    }
    /* Whole sectors, so the read can go through O_DIRECT like everything
     * else on this file (buffered I/O beside direct writes breaks). */
    uint64_t first = align_down(e->host_off, IMAGE_SECTOR_SIZE);
    uint64_t len = align_up(e->host_off + e->comp_len, IMAGE_SECTOR_SIZE) - first;
    if (!(op->stream = alloc_aligned(4096, len)))
        return -ENOMEM;
    op->one = (struct iovec){ op->stream, len };
    op->finish = finish_compressed_read;
    aio_prep_readv(&op->aio, pick_fd(x, e->fd, e->layer, first, len, &op->one, 1), &op->one, 1,
                   first);
    return 0;
}

/* Bytes [skip, skip+e->len) of iov read as zeros. */
static int zero_extent(const struct extent *e, const struct iovec *iov, unsigned niov,
                       uint64_t skip)
{
    struct iovec room[XOP_INLINE_IOV], *target;
    int ntarget, r;

    if ((r = iov_slice(iov, niov, skip, e->len, room, XOP_INLINE_IOV, &target, &ntarget)) < 0)
        return r;
    iov_zero_from(target, ntarget, 0);
    if (target != room)
        free(target);
    return 0;
}

/* Read extent e into bytes [skip, skip+e->len) of iov. */
static int read_extent(struct executor *x, struct xreq *xr, struct fill *f, const struct extent *e,
                       const struct iovec *iov, unsigned niov, uint64_t skip)
{
    struct xop *op;
    int r;

    if (e->kind == EXTENT_ZERO)
        return zero_extent(e, iov, niov, skip);
    if (!(op = xop_new(xr, f)))
        return -ENOMEM;
    op->ext = *e;
    op->layer = e->layer;
    op->len = e->len;
    if ((r = xop_slice(op, iov, niov, skip, e->len)) < 0) {
        xop_free(op);
        return r;
    }
    if (e->kind == EXTENT_COMPRESSED)
        r = read_compressed(x, op);
    else if (e->encrypted)
        r = read_through_bounce(x, op);
    else
        r = read_plain(x, op);
    if (r != 0) {
        xop_free(op);
        return r < 0 ? r : 0;
    }
    xop_issue(x, op);
    return 0;
}

static int read_extents(struct executor *x, struct xreq *xr, struct fill *f,
                        const struct extent_vec *ev, const struct iovec *iov, unsigned niov,
                        uint64_t base)
{
    for (size_t i = 0; i < ev->n; i++) {
        int r = read_extent(x, xr, f, &ev->v[i], iov, niov, ev->v[i].guest_off - base);
        if (r < 0)
            return r;
    }
    return 0;
}

static int start_read(struct executor *x, struct xreq *xr)
{
    struct blk_req *req = xr->req;
    struct extent_vec *ev = &x->read_map;       /* kept: no malloc once warm */
    int r;

    extent_vec_reset(ev);
    image_defer_meta(x->img, true);     /* for the plans only: see image.h */
    r = image_map(x->img, req->off, req->len, ev);
    image_defer_meta(x->img, false);

    if (r == 0)
        r = read_extents(x, xr, NULL, ev, req->iov, req->niov, req->off);
    extent_vec_reset(ev);
    return r;
}

/* ---- writing pieces ---------------------------------------------------- */

static int finish_write(struct xop *op, long res)
{
    return exec_io_result(res, op->len, false);
}

/* Write len bytes from src (or from op->bounce when src is NULL). */
static int write_out(struct executor *x, struct xop *op, const struct write_piece *p,
                     uint64_t host_off)
{
    struct iovec *src = op->iov;
    int n = op->niov;

    if (op->bounce) {
        op->one = (struct iovec){ op->bounce, op->len };
        src = &op->one;
        n = 1;
    }
    op->finish = finish_write;
    op->layer = p->layer;
    aio_prep_writev(&op->aio, pick_fd(x, p->fd, p->layer, host_off, op->len, src, n), src, n,
                    host_off);
    xop_issue(x, op);
    return 0;
}

/* Pieces [p, p+n) are contiguous in the guest and on the host: one write. */
static int write_direct_run(struct executor *x, struct xreq *xr, const struct write_piece *p,
                            size_t n)
{
    struct blk_req *req = xr->req;
    struct xop *op = xop_new(xr, NULL);
    int r;

    if (!op)
        return -ENOMEM;
    op->len = p[n - 1].guest_off + p[n - 1].len - p->guest_off;
    if ((r = xop_slice(op, req->iov, req->niov, p->guest_off - req->off, op->len)) < 0)
        goto fail;
    if (p->encrypted) {
        /* Never encrypt in the client's pages: copy first. */
        if (!(op->bounce = alloc_aligned(4096, op->len))) {
            r = -ENOMEM;
            goto fail;
        }
        iov_to_buf(op->iov, op->niov, op->bounce);
        if ((r = piece_encrypt(p, p->guest_off, op->bounce, op->len)) < 0)
            goto fail;
    }
    return write_out(x, op, p, p->host_off);
fail:
    xop_free(op);
    return r;
}

static bool needs_fill(const struct write_piece *p)
{
    return p->kind == WRITE_ALLOC && p->fill != FILL_NONE;
}

/* How many pieces from p on can go out as one write. */
static size_t run_length(const struct write_piece *p, size_t left)
{
    size_t n = 1;

    while (n < left && !needs_fill(&p[n]) && p[n].fd == p->fd &&
           p[n].guest_off == p[n - 1].guest_off + p[n - 1].len &&
           p[n].host_off == p[n - 1].host_off + p[n - 1].len)
        n++;
    return n;
}

static void fill_free(struct fill *f)
{
    free(f->cluster);
    free(f);
}

/* All of the fill is read: lay the new bytes over it and write the cluster. */
static int write_filled(struct executor *x, struct fill *f)
{
    const struct write_piece *p = f->p;
    struct blk_req *req = f->xr->req;
    struct iovec room[XOP_INLINE_IOV], *src;
    struct xop *op;
    int nsrc, r;

    if ((r = iov_slice(req->iov, req->niov, p->guest_off - req->off, p->len, room,
                       XOP_INLINE_IOV, &src, &nsrc)) < 0)
        return r;
    iov_to_buf(src, nsrc, f->cluster + (p->guest_off - p->cluster_guest_off));
    if (src != room)
        free(src);
    if ((r = piece_encrypt(p, p->cluster_guest_off, f->cluster, p->cluster_size)) < 0)
        return r;
    if (!(op = xop_new(f->xr, NULL)))
        return -ENOMEM;
    op->bounce = f->cluster;
    op->len = p->cluster_size;
    f->cluster = NULL;
    return write_out(x, op, p, p->host_off);
}

static void fill_op_done(struct fill *f, int err)
{
    struct xreq *xr = f->xr;

    if (err && !f->error)
        f->error = err;
    if (--f->pending > 0)
        return;
    if (!f->error) {
        qc_clear_error();
        f->error = engine_result(xr->req, write_filled(xr->x, f));
    }
    err = f->error;
    fill_free(f);
    sub_done(xr, err);          /* the fill's own hold on the request */
}

static void fill_table_ready(struct meta_waiter *w, int err, const char *why);

/* Map the fill and read it; the setup hold is dropped when all is issued,
 * or kept while a table the map needs is read. */
static void fill_map_and_read(struct executor *x, struct fill *f)
{
    struct xreq *xr = f->xr;
    const struct write_piece *p = f->p;
    struct extent_vec ev = { 0 };
    struct iovec whole = { f->cluster, p->cluster_size };
    int r;

    qc_clear_error();
    image_defer_meta(x->img, true);
    r = image_map_fill(x->img, p, &ev);
    image_defer_meta(x->img, false);
    if (r == IMAGE_NEED_META) {
        extent_vec_free(&ev);
        f->wait.ready = fill_table_ready;
        if ((r = metaread_wait(x, &f->wait)) == 0)
            return;
    }
    if (r == 0)
        r = read_extents(x, xr, f, &ev, &whole, 1, p->cluster_guest_off);
    extent_vec_free(&ev);
    fill_op_done(f, engine_result(xr->req, r));     /* drop the setup hold */
}

static void fill_table_ready(struct meta_waiter *w, int err, const char *why)
{
    struct fill *f = (struct fill *)((char *)w - offsetof(struct fill, wait));

    if (err) {
        exec_note_failure(f->xr->req, "%s", why);
        fill_op_done(f, err);
        return;
    }
    fill_map_and_read(f->xr->x, f);
}

static int start_fill(struct executor *x, struct xreq *xr, const struct write_piece *p)
{
    struct fill *f = calloc(1, sizeof *f);

    if (!f)
        return -ENOMEM;
    *f = (struct fill){ .xr = xr, .p = p, .pending = 1 };
    if (!(f->cluster = alloc_aligned(4096, p->cluster_size))) {
        fill_free(f);
        return -ENOMEM;
    }
    xr->pending++;              /* released by fill_op_done */
    fill_map_and_read(x, f);
    return 0;
}

static int start_write(struct executor *x, struct xreq *xr)
{
    struct blk_req *req = xr->req;
    int r;

    if (!xr->pieces && x->nspare) {
        struct piece_buf b = x->spare_pieces[--x->nspare];
        xr->pieces = b.v;
        xr->cap = b.cap;
    }
    image_defer_meta(x->img, true);
    r = image_plan_write(x->img, req->off, req->len, &xr->pieces, &xr->npieces, &xr->cap);
    image_defer_meta(x->img, false);

    for (size_t i = 0, n; r == 0 && i < xr->npieces; i += n) {
        const struct write_piece *p = &xr->pieces[i];
        n = 1;
        if (needs_fill(p))
            r = start_fill(x, xr, p);
        else
            r = write_direct_run(x, xr, p, n = run_length(p, xr->npieces - i));
    }
    return r;
}

static int commit_pieces(struct executor *x, struct xreq *xr)
{
    struct metalog *log = x->opts.metalog;

    for (size_t i = 0; i < xr->npieces; i++) {
        const struct write_piece *p = &xr->pieces[i];
        int r = image_commit_write(x->img, p);
        if (r < 0)
            return r;
        if (log && p->kind == WRITE_ALLOC &&
            metalog_append(log, p->cluster_guest_off, p->host_off) == -ENOSPC)
            xr->must_flush = true;
    }
    if (image_meta_pressure(x->img) || (log && metalog_wants_writeback(log)))
        x->wb_wanted = true;
    return 0;
}

/* Discards run synchronously (a hole punch is one quick system call); a
 * cluster pointed at a fresh zero cluster is committed and logged like an
 * allocating write, and reaches the disk at the next writeback. */
static int do_discard(struct executor *x, struct xreq *xr)
{
    struct blk_req *req = xr->req;
    struct metalog *log = x->opts.metalog;
    struct discard_piece *v = NULL;
    size_t n = 0, cap = 0;
    int r = 0;

    /* A plan at a time (a bounded span of tables); a plan that needs a
     * table returns IMAGE_NEED_META, and the request starts again here,
     * from where the plans before it went. */
    while (r == 0 && xr->discard_done < req->len) {
        image_defer_meta(x->img, true);
        r = image_plan_discard(x->img, req->off + xr->discard_done,
                               req->len - xr->discard_done, &v, &n, &cap);
        image_defer_meta(x->img, false);
        for (size_t i = 0; r == 0 && i < n; i++) {
            r = image_run_discard_piece(x->img, &v[i]);
            if (r == 0 && log && v[i].kind == DISCARD_REPLACE &&
                metalog_append(log, v[i].cluster_guest_off, v[i].host_off) == -ENOSPC)
                xr->must_flush = true;
        }
        if (r == 0)
            xr->discard_done += image_discard_planned(v, n);
    }
    free(v);
    if (image_meta_pressure(x->img) || (log && metalog_wants_writeback(log)))
        x->wb_wanted = true;
    return r;
}

/* ---- requests ---------------------------------------------------------- */

static bool is_write(const struct xreq *xr)
{
    return xr->req->op == BLK_WRITE || xr->req->op == BLK_DISCARD;
}

static bool conflicts(const struct xreq *earlier, const struct xreq *later)
{
    if (earlier->req->barrier || later->req->barrier)
        return true;
    if (later->req->op == BLK_FLUSH)
        return is_write(earlier);
    if (earlier->req->op == BLK_FLUSH)
        return false;
    if (!is_write(earlier) && !is_write(later))
        return false;
    return earlier->lo < later->hi && later->lo < earlier->hi;
}

static bool blocked(const struct executor *x, const struct xreq *xr)
{
    for (const struct xreq *e = x->head; e && e != xr; e = e->next)
        if (conflicts(e, xr))
            return true;
    return false;
}

static void unlink_req(struct executor *x, struct xreq *xr)
{
    if (xr->prev)
        xr->prev->next = xr->next;
    else
        x->head = xr->next;
    if (xr->next)
        xr->next->prev = xr->prev;
    else
        x->tail = xr->prev;
    x->active--;
}

/* The image is write-failed: what is not a read fails (see exec.h). */
static int refuse(struct executor *x, struct blk_req *req)
{
    exec_note_failure(req, "refused: an earlier flush of the image failed (%s)",
                      x->failed_reason);
    return x->img->flush_error;
}

void exec_flush_failed(struct executor *x, int err, const char *reason)
{
    if (x->img->flush_error)
        return;
    image_flush_failed(x->img, err);
    snprintf(x->failed_reason, sizeof x->failed_reason, "%s", reason);
    if (x->opts.metalog)
        metalog_mark_flush_failed(x->opts.metalog, err);
    if (x->opts.flush_failed)
        x->opts.flush_failed(x->opts.opaque, x->failed_reason);
}

void exec_finish(struct xreq *xr, int status)
{
    struct executor *x = xr->x;
    struct blk_req *req = xr->req;

    /* Writes still running when a flush failed: their data is not durable
     * and what they allocated will never be published. */
    if (status == 0 && req->op != BLK_READ && x->img->flush_error)
        status = refuse(x, req);
    if (status < 0)
        exec_note_failure(req, "%s", strerror(-status));
    unlink_req(x, xr);
    x->stats.inflight = x->active;
    stats_record(&x->stats, req->op, req->len, status, now_ns() - req->start_ns);
    for (size_t i = 0; i < xr->npieces; i++)
        image_end_write(x->img, &xr->pieces[i]);
    if (xr->pieces && x->nspare < x->spare_cap)
        x->spare_pieces[x->nspare++] = (struct piece_buf){ xr->pieces, xr->cap };
    else
        free(xr->pieces);
    pool_put(&x->xreqs, xr);
    req->complete(req, status);
    schedule(x);
}

/* All I/O of the request is done. */
static void io_done(struct xreq *xr)
{
    struct executor *x = xr->x;

    if (xr->req->op == BLK_WRITE && xr->error == 0) {
        qc_clear_error();
        xr->error = engine_result(xr->req, commit_pieces(x, xr));
    }
    if ((xr->req->flush || xr->req->barrier || xr->must_flush) && xr->error == 0) {
        writeback_queue(x, xr);     /* durable before it completes */
        return;
    }
    exec_finish(xr, xr->error);
    if (x->wb_wanted)
        writeback_kick(x);
}

static void sub_done(struct xreq *xr, int err)
{
    if (err && !xr->error)
        xr->error = err;
    if (--xr->pending == 0)
        io_done(xr);
}

static void table_ready(struct meta_waiter *w, int err, const char *why);

/* Plan and issue the request's I/O.  A plan that needs an L2 table has
 * done nothing yet: the request waits for the table (still holding its
 * place against conflicting requests) and starts again when it is read. */
static void start(struct executor *x, struct xreq *xr)
{
    int r = 0;

    xr->running = true;
    xr->pending = 1;            /* held until every sub-operation is issued */
    qc_clear_error();
    switch (xr->req->op) {
    case BLK_READ: r = start_read(x, xr); break;
    case BLK_WRITE: r = start_write(x, xr); break;
    case BLK_DISCARD: r = do_discard(x, xr); break;
    case BLK_FLUSH:
        writeback_queue(x, xr);
        return;
    }
    if (xr->req->op != BLK_READ)
        growth_kick(x);         /* keep space ready ahead of the allocations */
    if (r == IMAGE_NEED_META) {
        xr->wait.ready = table_ready;
        if ((r = metaread_wait(x, &xr->wait)) == 0)
            return;
    }
    sub_done(xr, engine_result(xr->req, r));
}

static void table_ready(struct meta_waiter *w, int err, const char *why)
{
    struct xreq *xr = (struct xreq *)((char *)w - offsetof(struct xreq, wait));

    if (err) {
        exec_note_failure(xr->req, "%s", why);
        sub_done(xr, err);
        return;
    }
    start(xr->x, xr);
}

static void schedule(struct executor *x)
{
    if (x->scheduling) {
        x->reschedule = true;
        return;
    }
    x->scheduling = true;
    do {
        x->reschedule = false;
        for (struct xreq *xr = x->head, *next; xr; xr = next) {
            next = xr->next;
            if (!xr->running && !blocked(x, xr))
                start(x, xr);
        }
    } while (x->reschedule);
    x->scheduling = false;
}

static int validate(const struct executor *x, const struct blk_req *req)
{
    uint64_t end = align_up(x->img->size, IMAGE_SECTOR_SIZE);
    uint64_t sum = 0;

    if (req->op == BLK_FLUSH)
        return 0;
    if (!is_aligned(req->off | req->len, IMAGE_SECTOR_SIZE) || req->off > end ||
        req->len > end - req->off)
        return -EINVAL;
    if (req->op == BLK_DISCARD)
        return 0;
    for (unsigned i = 0; i < req->niov; i++)
        sum += req->iov[i].iov_len;
    return sum == req->len ? 0 : -EINVAL;
}

void executor_submit(struct executor *x, struct blk_req *req)
{
    struct xreq *xr;
    int r;

    req->start_ns = now_ns();
    req->error[0] = '\0';
    if ((r = validate(x, req)) < 0)
        exec_note_failure(req, "not sector aligned, or past the end of the image (%" PRIu64
                          " bytes)", x->img->size);
    else if (req->op != BLK_READ && x->img->flush_error && !x->opts.null_backend)
        r = refuse(x, req);
    if (r < 0 || x->opts.null_backend) {
        stats_record(&x->stats, req->op, req->len, r, 0);
        req->complete(req, r);
        return;
    }
    if (!(xr = pool_get(&x->xreqs))) {
        exec_note_failure(req, "out of memory");
        req->complete(req, -ENOMEM);
        return;
    }
    xr->req = req;
    xr->x = x;
    xr->lo = align_down(req->off, x->granule);
    xr->hi = align_up(req->off + req->len, x->granule);
    xr->prev = x->tail;
    if (x->tail)
        x->tail->next = xr;
    else
        x->head = xr;
    x->tail = xr;
    x->active++;
    x->stats.inflight = x->active;
    if (x->scheduling)
        x->reschedule = true;
    else if (!blocked(x, xr))
        start(x, xr);
}

/* ---- lifetime ---------------------------------------------------------- */

/* The pools and spare plan arrays for n requests in flight. */
static int make_pools(struct executor *x, size_t n)
{
    int r;

    if ((r = pool_init(&x->xreqs, sizeof(struct xreq), n)) < 0 ||
        (r = pool_init(&x->xops, sizeof(struct xop), 2 * n)) < 0)
        return r;
    if (!(x->spare_pieces = calloc(n, sizeof *x->spare_pieces)))
        return -ENOMEM;
    x->spare_cap = n;
    for (; x->nspare < n; x->nspare++) {
        struct piece_buf *b = &x->spare_pieces[x->nspare];
        if (!(b->v = malloc(SPARE_PIECES * sizeof *b->v)))
            return -ENOMEM;
        b->cap = SPARE_PIECES;
    }
    return 0;
}

int executor_new(struct image *img, struct aio_ctx *aio, const struct exec_opts *o,
                 struct executor **out)
{
    struct executor *x = calloc(1, sizeof *x);
    struct layer_info info;
    int r;

    if (!x)
        return -ENOMEM;
    if ((r = make_pools(x, o->pool_size ? o->pool_size : DEFAULT_POOL_SIZE)) < 0) {
        executor_free(x);
        return r;
    }
    x->img = img;
    x->aio = aio;
    x->opts = *o;
    layer_get_info(img->top, &info);
    x->granule = info.cluster_size ? info.cluster_size : 4096;
    x->wb.fd = -1;
    if (o->metalog && (r = metalog_flush_error(o->metalog)) < 0) {
        image_flush_failed(img, r);
        snprintf(x->failed_reason, sizeof x->failed_reason,
                 "a flush failed in an earlier worker of this image: %s", strerror(-r));
    }
    *out = x;
    return 0;
}

void executor_top_changed(struct executor *x)
{
    struct layer_info info;

    assert(executor_idle(x));
    layer_get_info(x->img->top, &info);
    x->granule = info.cluster_size ? info.cluster_size : 4096;
}

void executor_free(struct executor *x)
{
    while (x->nspare)
        free(x->spare_pieces[--x->nspare].v);
    free(x->spare_pieces);
    pool_destroy(&x->xreqs);
    pool_destroy(&x->xops);
    extent_vec_free(&x->read_map);
    free(x);
}

const char *executor_flush_error(const struct executor *x)
{
    return x->img->flush_error ? x->failed_reason : NULL;
}

bool executor_idle(const struct executor *x)
{
    return x->head == NULL && !x->wb_running && x->flush_ready == NULL && x->growth == NULL;
}

const struct io_stats *executor_stats(const struct executor *x)
{
    return &x->stats;
}

struct io_stats *executor_stats_mut(struct executor *x)
{
    return &x->stats;
}
