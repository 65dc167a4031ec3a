/* The asynchronous client interface: slots, submit, kick, reap (libqcowring). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"

#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

static int fail(struct qcowring *r, int err)
{
    if (!r->failed)
        r->failed = err;
    return r->failed;
}

static uint32_t pages_for(uint64_t bytes)
{
    return (uint32_t)DIV_ROUND_UP(bytes, QCOWRING_PAGE_SIZE);
}

static uint8_t *data_page(const struct qcowring *r, uint32_t page)
{
    return r->data + (size_t)page * QCOWRING_PAGE_SIZE;
}

/* ------------------------------------------------------------------------ */
/* Slots and buffers                                                        */
/* ------------------------------------------------------------------------ */

static int reserve_pages(struct qcowring *r, struct qcowring_req *q, size_t buf_len)
{
    uint32_t pages = pages_for(buf_len);
    uint32_t indirect = pages > QCOWRING_MAX_SEGMENTS
                            ? DIV_ROUND_UP(pages, QCOWRING_SEGMENTS_PER_INDIRECT_PAGE) : 0;

    q->first_page = q->indirect_first = 0;
    q->nr_pages = q->indirect_pages = 0;
    if (pages && page_alloc_get(&r->pages, pages, &q->first_page) < 0)
        return -EAGAIN;
    if (indirect && page_alloc_get(&r->pages, indirect, &q->indirect_first) < 0) {
        page_alloc_put(&r->pages, q->first_page, pages);
        return -EAGAIN;
    }
    q->nr_pages = pages;
    q->indirect_pages = indirect;
    return 0;
}

int qcowring_req_alloc(struct qcowring *r, size_t buf_len, struct qcowring_req **out)
{
    struct qcowring_req *q;
    int err;

    if (r->failed)
        return r->failed;
    if (buf_len > r->geo.max_request_bytes)
        return -E2BIG;
    if (r->nr_free_reqs == 0)
        return -EAGAIN;
    q = &r->reqs[r->free_reqs[r->nr_free_reqs - 1]];
    err = reserve_pages(r, q, buf_len);
    if (err)
        return err;
    r->nr_free_reqs--;
    q->state = REQ_OWNED;
    q->sync = false;
    q->buf_len = buf_len;
    q->buf = buf_len ? data_page(r, q->first_page) : NULL;
    q->user_data = NULL;
    q->next = NULL;
    *out = q;
    return 0;
}

void *qcowring_req_buf(const struct qcowring_req *q)
{
    return q->buf;
}

size_t qcowring_req_buf_len(const struct qcowring_req *q)
{
    return q->buf_len;
}

void qcowring_req_free(struct qcowring *r, struct qcowring_req *q)
{
    if (!q || q->state != REQ_OWNED)
        return;
    if (q->nr_pages)
        page_alloc_put(&r->pages, q->first_page, q->nr_pages);
    if (q->indirect_pages)
        page_alloc_put(&r->pages, q->indirect_first, q->indirect_pages);
    q->nr_pages = q->indirect_pages = 0;
    q->state = REQ_FREE;
    assert(r->nr_free_reqs < r->geo.ring_entries);
    r->free_reqs[r->nr_free_reqs++] = q->slot;
}

/* ------------------------------------------------------------------------ */
/* Submitting                                                               */
/* ------------------------------------------------------------------------ */

static int check_range(struct qcowring *r, uint64_t offset, uint64_t len)
{
    if (offset % QCOWRING_SECTOR_SIZE || len % QCOWRING_SECTOR_SIZE)
        return -EINVAL;
    if (!ring_covers(r, offset >> QCOWRING_SECTOR_SHIFT, len >> QCOWRING_SECTOR_SHIFT))
        return -EINVAL;
    return 0;
}

static bool has_feature(const struct qcowring *r, uint64_t f)
{
    return (r->geo.features & f) != 0;
}

static int check_data_op(const struct qcowring *r, const struct qcowring_req *q,
                         bool writes, uint64_t len)
{
    if (len > q->buf_len)
        return -EINVAL;
    if (writes && has_feature(r, QCOWRING_F_READ_ONLY))
        return -EROFS;
    return 0;
}

/* Flush and barrier carry at most 11 segments of data (never indirect). */
static int check_flush_op(const struct qcowring *r, const struct qcowring_req *q,
                          uint64_t feature, uint64_t len)
{
    if (!has_feature(r, feature))
        return -EOPNOTSUPP;
    if (pages_for(len) > QCOWRING_MAX_SEGMENTS)
        return -E2BIG;
    return check_data_op(r, q, len > 0, len);
}

static int check_op(const struct qcowring *r, const struct qcowring_req *q, int op,
                    uint64_t len)
{
    switch (op) {
    case QCOWRING_OP_READ:
        return len ? check_data_op(r, q, false, len) : -EINVAL;
    case QCOWRING_OP_WRITE:
        return len ? check_data_op(r, q, true, len) : -EINVAL;
    case QCOWRING_OP_FLUSH_DISKCACHE:
        return check_flush_op(r, q, QCOWRING_F_FLUSH, len);
    case QCOWRING_OP_WRITE_BARRIER:
        return check_flush_op(r, q, QCOWRING_F_BARRIER, len);
    case QCOWRING_OP_MAP:
        if (!has_feature(r, QCOWRING_F_MAP))
            return -EOPNOTSUPP;
        return len && q->buf_len >= QCOWRING_PAGE_SIZE ? 0 : -EINVAL;
    case QCOWRING_OP_DISCARD:
        if (!has_feature(r, QCOWRING_F_DISCARD))
            return -EOPNOTSUPP;
        if (has_feature(r, QCOWRING_F_READ_ONLY))
            return -EROFS;
        return len ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

/* Segment i covers data page first_page + i; all but the last are full. */
static void fill_segments(struct qcowring_segment *seg, uint32_t first_page, uint64_t len)
{
    uint32_t n = pages_for(len);

    for (uint32_t i = 0; i < n; i++) {
        uint64_t left = len - (uint64_t)i * QCOWRING_PAGE_SIZE;
        uint64_t sectors = left >= QCOWRING_PAGE_SIZE ? QCOWRING_SECTORS_PER_PAGE
                                                      : left >> QCOWRING_SECTOR_SHIFT;
        struct qcowring_segment s = { .page = first_page + i, .first_sect = 0,
                                      .last_sect = (uint8_t)(sectors - 1), .pad = 0 };
        memcpy(&seg[i], &s, sizeof(s));
    }
}

static void build_indirect(struct qcowring *r, const struct qcowring_req *q, int op,
                           uint64_t len, union qcowring_entry *e)
{
    uint32_t nseg = pages_for(len);
    uint32_t npages = DIV_ROUND_UP(nseg, QCOWRING_SEGMENTS_PER_INDIRECT_PAGE);

    e->indirect.operation = QCOWRING_OP_INDIRECT;
    e->indirect.indirect_op = (uint8_t)op;
    e->indirect.nr_segments = (uint16_t)nseg;
    for (uint32_t i = 0; i < npages; i++)
        e->indirect.indirect_pages[i] = q->indirect_first + i;
    /* The descriptors are consecutive across the contiguous indirect pages. */
    fill_segments((struct qcowring_segment *)data_page(r, q->indirect_first),
                  q->first_page, len);
}

static void build_request(struct qcowring *r, const struct qcowring_req *q, int op,
                          uint64_t offset, uint64_t len, union qcowring_entry *e)
{
    uint64_t sector = offset >> QCOWRING_SECTOR_SHIFT;

    memset(e, 0, sizeof(*e));
    if (op == QCOWRING_OP_MAP) {
        uint32_t pages = q->nr_pages;
        e->map.operation = QCOWRING_OP_MAP;
        e->map.id = q->slot;
        e->map.sector_number = sector;
        e->map.nr_sectors = len >> QCOWRING_SECTOR_SHIFT;
        e->map.page = q->first_page;
        e->map.nr_pages = pages < QCOWRING_MAP_MAX_PAGES ? pages : QCOWRING_MAP_MAX_PAGES;
        return;
    }
    if (op == QCOWRING_OP_DISCARD) {
        e->discard.operation = QCOWRING_OP_DISCARD;
        e->discard.id = q->slot;
        e->discard.sector_number = sector;
        e->discard.nr_sectors = len >> QCOWRING_SECTOR_SHIFT;
        return;
    }
    if (pages_for(len) > QCOWRING_MAX_SEGMENTS) {
        build_indirect(r, q, op, len, e);
        e->indirect.id = q->slot;
        e->indirect.sector_number = sector;
        return;
    }
    e->req.operation = (uint8_t)op;
    e->req.nr_segments = (uint8_t)pages_for(len);
    e->req.id = q->slot;
    e->req.sector_number = sector;
    fill_segments(e->req.seg, q->first_page, len);
}

int qcowring_submit(struct qcowring *r, struct qcowring_req *q, int op,
                    uint64_t offset, uint64_t len, void *user_data)
{
    union qcowring_entry e;
    int err;

    if (r->failed)
        return r->failed;
    if (!q || q->state != REQ_OWNED)
        return -EINVAL;
    err = check_range(r, offset, len);
    if (!err)
        err = check_op(r, q, op, len);
    if (err)
        return err;
    build_request(r, q, op, offset, len, &e);
    memcpy(&r->sring->ring[r->req_prod_pvt & r->mask], &e, sizeof(e));
    r->req_prod_pvt++;
    q->op = op;
    q->user_data = user_data;
    q->state = REQ_IN_FLIGHT;
    assert(r->in_flight < r->geo.ring_entries);
    r->in_flight++;
    return 0;
}

int qcowring_publish(struct qcowring *r)
{
    int notify;

    if (r->failed)
        return r->failed;
    if (r->req_prod_pvt == r->req_prod_published)
        return 0;
    notify = qcowring_push_requests_and_check_notify(r->sring, r->req_prod_published,
                                                     r->req_prod_pvt);
    r->req_prod_published = r->req_prod_pvt;
    return notify ? 1 : 0;
}

/* Reads nothing but the descriptor, fixed for the handle's life: safe
 * alongside another thread's use of the ring. */
int qcowring_ring_doorbell(const struct qcowring *r)
{
    uint64_t one = 1;

    if (write(r->req_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

int qcowring_kick(struct qcowring *r)
{
    int notify = qcowring_publish(r);

    return notify > 0 ? qcowring_ring_doorbell(r) : notify;
}

/* ------------------------------------------------------------------------ */
/* Completions                                                              */
/* ------------------------------------------------------------------------ */

static int status_to_result(int16_t status)
{
    if (status == QCOWRING_RSP_OKAY)
        return 0;
    if (status == QCOWRING_RSP_EOPNOTSUPP)
        return -EOPNOTSUPP;
    return -EIO;
}

static void push_done(struct qcowring *r, struct qcowring_req *q)
{
    q->next = NULL;
    if (r->done_tail)
        r->done_tail->next = q;
    else
        r->done_head = q;
    r->done_tail = q;
    r->nr_done++;
}

/* The id is ours (a slot number), but it comes back through shared memory:
 * check it before use. */
static int complete_one(struct qcowring *r, const struct qcowring_response *rsp)
{
    struct qcowring_req *q;

    if (rsp->id >= r->geo.ring_entries)
        return fail(r, -EPROTO);
    q = &r->reqs[rsp->id];
    if (q->state != REQ_IN_FLIGHT)
        return fail(r, -EPROTO);
    q->result = status_to_result(rsp->status);
    q->state = REQ_DONE;
    assert(r->in_flight > 0);
    r->in_flight--;
    if (!q->sync)
        push_done(r, q);
    return 0;
}

int ring_collect_responses(struct qcowring *r)
{
    uint32_t prod;

    if (r->failed)
        return r->failed;
    prod = qcowring_load_acquire(&r->sring->rsp_prod);
    /* More responses than requests published is a broken server. */
    if ((uint32_t)(prod - r->rsp_cons) > (uint32_t)(r->req_prod_published - r->rsp_cons))
        return fail(r, -EPROTO);
    while (r->rsp_cons != prod) {
        struct qcowring_response rsp;
        memcpy(&rsp, &r->sring->ring[r->rsp_cons & r->mask].rsp, sizeof(rsp));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        r->rsp_cons++;
        if (complete_one(r, &rsp) < 0)
            return r->failed;
    }
    return 0;
}

static int check_server_state(struct qcowring *r)
{
    uint32_t state = __atomic_load_n(&r->info->server_state, __ATOMIC_ACQUIRE);

    if (state == QCOWRING_STATE_RUNNING)
        return 0;
    return fail(r, state == QCOWRING_STATE_BROKEN ? -EPROTO : -ESHUTDOWN);
}

static void drain_doorbell(int fd)
{
    uint64_t count;

    if (read(fd, &count, sizeof(count)) < 0) {
        /* EAGAIN: nothing pending; anything else: poll() will tell again. */
    }
}

/* A server that stops for good (qcowd gave up on the image) cannot ring the
 * doorbell; the state in the qcowd page says so, and a sleeper looks at it
 * this often. */
#define STATE_CHECK_MS 1000

int ring_sleep(struct qcowring *r, int timeout_ms)
{
    struct pollfd pfd = { .fd = r->rsp_fd, .events = POLLIN };
    int n;

    if (qcowring_final_check_for_responses(r->sring, r->rsp_cons))
        return 1;
    n = check_server_state(r);
    if (n)
        return n;
    if (timeout_ms != 0 && ring_spin_for_responses(r))
        return 1;
    for (;;) {
        int slice = timeout_ms < 0 || timeout_ms > STATE_CHECK_MS ? STATE_CHECK_MS : timeout_ms;

        n = poll(&pfd, 1, slice);
        if (n < 0)
            return errno == EINTR ? 1 : -errno;
        if (n > 0)
            break;
        if (timeout_ms >= 0 && (timeout_ms -= slice) <= 0)
            return 0;
        if ((n = check_server_state(r)))
            return n;
        if (qcowring_final_check_for_responses(r->sring, r->rsp_cons))
            return 1;
    }
    drain_doorbell(r->rsp_fd);
    return 1;
}

static unsigned pop_done(struct qcowring *r, struct qcowring_completion *out, unsigned max)
{
    unsigned n = 0;

    while (n < max && r->done_head) {
        struct qcowring_req *q = r->done_head;
        r->done_head = q->next;
        if (!r->done_head)
            r->done_tail = NULL;
        r->nr_done--;
        q->next = NULL;
        q->state = REQ_OWNED;
        out[n++] = (struct qcowring_completion){ .req = q, .user_data = q->user_data,
                                                 .op = q->op, .result = q->result };
    }
    return n;
}

/* Collect, and when nothing is there arm the event index and look again. */
static int collect_until_armed(struct qcowring *r)
{
    int err = ring_collect_responses(r);

    while (!err && r->nr_done == 0 &&
           qcowring_final_check_for_responses(r->sring, r->rsp_cons))
        err = ring_collect_responses(r);
    if (!err && r->nr_done == 0 && r->in_flight)
        err = check_server_state(r);
    return err;
}

int qcowring_reap(struct qcowring *r, struct qcowring_completion *out, unsigned max)
{
    int err = qcowring_kick(r);

    drain_doorbell(r->rsp_fd);
    if (!err)
        err = collect_until_armed(r);
    if (r->nr_done)
        return (int)pop_done(r, out, max);
    return err;
}

int qcowring_reap_cb(struct qcowring *r, qcowring_completion_fn fn, void *opaque)
{
    struct qcowring_completion batch[16];
    int total = 0, n;

    do {
        n = qcowring_reap(r, batch, 16);
        for (int i = 0; i < n; i++)
            fn(opaque, &batch[i]);
        if (n > 0)
            total += n;
    } while (n == 16);
    return n < 0 && total == 0 ? n : total;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int timeout_ms, int64_t deadline)
{
    int64_t left;

    if (timeout_ms < 0)
        return -1;
    left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

int qcowring_wait(struct qcowring *r, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int err = qcowring_kick(r);

    while (!err) {
        err = ring_collect_responses(r);
        if (r->nr_done)
            return (int)r->nr_done;
        if (err || r->in_flight == 0)
            break;
        err = ring_sleep(r, remaining_ms(timeout_ms, deadline));
        if (err == 0)
            return 0;
        if (err > 0)
            err = 0;
    }
    return err;
}
