/* Synchronous helpers over the asynchronous interface (libqcowring). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "client_internal.h"

/* One synchronous transfer: chunks in flight are chained on pending. */
struct sync_job {
    int op;
    uint8_t *read_buf;          /* destination of a read */
    const uint8_t *write_buf;   /* source of a write */
    uint64_t offset;            /* next chunk's disk offset */
    uint64_t done;              /* bytes already handed to requests */
    uint64_t len;
    uint64_t chunk;             /* largest chunk that always fits */
    struct qcowring_req *pending;
    int error;
};

/* The largest request that fits in the data area when nothing else holds
 * pages: min(max_request_bytes, data pages minus indirect pages). */
static uint64_t sync_chunk_bytes(const struct qcowring *r)
{
    uint32_t pages = r->geo.max_request_bytes / QCOWRING_PAGE_SIZE;

    if (pages > r->geo.data_pages)
        pages = r->geo.data_pages;
    while (pages > QCOWRING_MAX_SEGMENTS &&
           pages + (pages + QCOWRING_SEGMENTS_PER_INDIRECT_PAGE - 1) /
                       QCOWRING_SEGMENTS_PER_INDIRECT_PAGE > r->geo.data_pages)
        pages--;
    return (uint64_t)pages * QCOWRING_PAGE_SIZE;
}

/* Allocate and submit the next chunk; -EAGAIN when the ring is full now. */
static int submit_chunk(struct qcowring *r, struct sync_job *j)
{
    uint64_t len = j->len - j->done < j->chunk ? j->len - j->done : j->chunk;
    struct qcowring_req *q;
    int err = qcowring_req_alloc(r, (size_t)len, &q);

    if (err)
        return err;
    q->sync = true;
    if (j->write_buf)
        memcpy(q->buf, j->write_buf + j->done, (size_t)len);
    err = qcowring_submit(r, q, j->op, j->offset, len,
                          j->read_buf ? j->read_buf + j->done : NULL);
    if (err) {
        qcowring_req_free(r, q);
        return err;
    }
    q->next = j->pending;
    j->pending = q;
    j->offset += len;
    j->done += len;
    return 0;
}

/* Submit as many chunks as the ring takes.  Returns -EAGAIN only when
 * nothing of ours is in flight and nothing could be submitted. */
static int submit_chunks(struct qcowring *r, struct sync_job *j)
{
    int err = 0;

    while (j->done < j->len && !j->error) {
        err = submit_chunk(r, j);
        if (err)
            break;
    }
    if (err == -EAGAIN && j->pending)
        err = 0;
    return err;
}

static void finish_chunk(struct qcowring *r, struct sync_job *j, struct qcowring_req *q)
{
    if (q->result && !j->error)
        j->error = q->result;
    if (!q->result && q->user_data)
        memcpy(q->user_data, q->buf, q->buf_len);
    q->state = REQ_OWNED;
    qcowring_req_free(r, q);
}

/* Unlink and finish every pending chunk that has its response. */
static unsigned finish_done_chunks(struct qcowring *r, struct sync_job *j)
{
    struct qcowring_req **link = &j->pending;
    unsigned finished = 0;

    while (*link) {
        struct qcowring_req *q = *link;
        if (q->state != REQ_DONE) {
            link = &q->next;
            continue;
        }
        *link = q->next;
        finish_chunk(r, j, q);
        finished++;
    }
    return finished;
}

/* Sleep until at least one of our chunks is done. */
static int wait_for_chunks(struct qcowring *r, struct sync_job *j)
{
    int err = qcowring_kick(r);

    while (!err) {
        err = ring_collect_responses(r);
        if (err || finish_done_chunks(r, j))
            break;
        err = ring_sleep(r, -1);
        if (err > 0)
            err = 0;
    }
    return err;
}

static int run_job(struct qcowring *r, struct sync_job *j)
{
    int err = 0;

    if (r->failed)
        return r->failed;
    j->chunk = sync_chunk_bytes(r);
    do {
        err = submit_chunks(r, j);
        if (err && !j->error)
            j->error = err;
        if (!j->pending)
            break;
        err = wait_for_chunks(r, j);
    } while (!err);
    return err ? err : j->error;
}

static int check_io_args(struct qcowring *r, size_t len, uint64_t offset)
{
    if (len % QCOWRING_SECTOR_SIZE || offset % QCOWRING_SECTOR_SIZE)
        return -EINVAL;
    if (!ring_covers(r, offset >> QCOWRING_SECTOR_SHIFT, len >> QCOWRING_SECTOR_SHIFT))
        return -EINVAL;
    return 0;
}

int qcowring_pread(struct qcowring *r, void *buf, size_t len, uint64_t offset)
{
    struct sync_job j = { .op = QCOWRING_OP_READ, .read_buf = buf, .offset = offset,
                          .len = len };
    int err = check_io_args(r, len, offset);

    return err ? err : run_job(r, &j);
}

int qcowring_pwrite(struct qcowring *r, const void *buf, size_t len, uint64_t offset)
{
    struct sync_job j = { .op = QCOWRING_OP_WRITE, .write_buf = buf, .offset = offset,
                          .len = len };
    int err = check_io_args(r, len, offset);

    if (!err && (r->geo.features & QCOWRING_F_READ_ONLY))
        err = -EROFS;
    return err ? err : run_job(r, &j);
}

/* A single request without data (flush) or without buffer (discard). */
static int run_single(struct qcowring *r, int op, uint64_t offset, uint64_t len)
{
    struct sync_job j = { .op = op };
    struct qcowring_req *q;
    int err;

    if (r->failed)
        return r->failed;
    err = qcowring_req_alloc(r, 0, &q);
    if (err)
        return err;
    q->sync = true;
    err = qcowring_submit(r, q, op, offset, len, NULL);
    if (err) {
        qcowring_req_free(r, q);
        return err;
    }
    j.pending = q;
    while (j.pending && !err)
        err = wait_for_chunks(r, &j);
    return err ? err : j.error;
}

int qcowring_flush(struct qcowring *r)
{
    return run_single(r, QCOWRING_OP_FLUSH_DISKCACHE, 0, 0);
}

int qcowring_discard(struct qcowring *r, uint64_t offset, uint64_t len)
{
    return run_single(r, QCOWRING_OP_DISCARD, offset, len);
}
