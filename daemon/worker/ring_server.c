/* The back end of a qcowd ring: take requests from an untrusted client,
 * validate private copies, hand out ring_io, write responses. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doorbell.h"
#include "ring_server_internal.h"

#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))


static const char *const bad_reason_names[RING_BAD__COUNT] = {
    [RING_BAD_OPCODE] = "unknown-operation",
    [RING_BAD_UNSUPPORTED] = "unsupported-operation",
    [RING_BAD_READ_ONLY] = "read-only",
    [RING_BAD_SEGMENT_COUNT] = "segment-count",
    [RING_BAD_SECTORS] = "segment-sectors",
    [RING_BAD_PAGE] = "page-index",
    [RING_BAD_RANGE] = "sector-range",
    [RING_BAD_INDIRECT] = "indirect-operation",
    [RING_BAD_DISCARD] = "discard-arguments",
    [RING_BAD_MAP] = "map-arguments",
};

const char *ring_bad_reason_name(enum ring_bad_reason reason)
{
    return (unsigned)reason < RING_BAD__COUNT ? bad_reason_names[reason] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* Logging, broken ring, notifications                                      */
/* ------------------------------------------------------------------------ */

void ring_log(struct ring_server *rs, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (!rs->log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs->log(rs->log_opaque, msg);
}

void ring_server_set_capacity(struct ring_server *rs, uint64_t sectors)
{
    assert(sectors >= rs->geo.capacity_sectors && sectors <= QCOWRING_MAX_CAPACITY_SECTORS);
    rs->geo.capacity_sectors = sectors;
    __atomic_store_n(&rs->info->capacity_sectors, sectors, __ATOMIC_RELEASE);
}

static int mark_broken(struct ring_server *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A client that reads its doorbell never lets the counter near saturation,
 * so a doorbell that cannot be rung at once (doorbell.h) is a client that
 * made it blocking and saturated it, or saturated it: the ring is broken,
 * and the doorbell is never rung again. */
void ring_signal_client(struct ring_server *rs)
{
    int r;

    rs->stats.notifications++;
    if (rs->rsp_fd < 0 || rs->doorbell_dead)
        return;
    if ((r = doorbell_ring(rs->rsp_fd)) < 0) {
        rs->doorbell_dead = true;
        mark_broken(rs, "the response doorbell cannot be rung at once (%s): the client "
                    "saturated its eventfd", strerror(-r));
    }
}

static void set_server_state(struct ring_server *rs, uint32_t state)
{
    __atomic_store_n(&rs->info->server_state, state, __ATOMIC_RELEASE);
    ring_signal_client(rs);
}

static int mark_broken(struct ring_server *rs, const char *fmt, ...)
{
    va_list ap;

    if (rs->broken)
        return -EPROTO;
    va_start(ap, fmt);
    vsnprintf(rs->reason, sizeof(rs->reason), fmt, ap);
    va_end(ap);
    rs->broken = true;
    rs->stats.broken = true;
    ring_journal_mark_broken(rs);
    ring_log(rs, "ring broken: %s", rs->reason);
    set_server_state(rs, QCOWRING_STATE_BROKEN);
    return -EPROTO;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */
/* ------------------------------------------------------------------------ */

static int check_geometry(const struct ring_server_geometry *g, size_t map_size)
{
    bool indirect = (g->features & QCOWRING_F_INDIRECT) != 0;

    if (g->ring_page_order > QCOWRING_MAX_RING_PAGE_ORDER || g->data_pages == 0)
        return -EINVAL;
    if (g->capacity_sectors > QCOWRING_MAX_CAPACITY_SECTORS)
        return -EINVAL;
    if (indirect && (g->max_indirect_segments <= QCOWRING_MAX_SEGMENTS ||
                     g->max_indirect_segments > QCOWRING_MAX_INDIRECT_SEGMENTS))
        return -EINVAL;
    if (qcowring_total_size(g->ring_page_order, g->data_pages) > map_size)
        return -EINVAL;
    return 0;
}

static int alloc_pool(struct ring_server *rs)
{
    rs->pool = calloc(rs->size, sizeof(*rs->pool));
    rs->iov_store = calloc((size_t)rs->size * rs->max_segments, sizeof(*rs->iov_store));
    rs->busy = calloc(rs->size, sizeof(*rs->busy));
    rs->free_ios = calloc(rs->size, sizeof(*rs->free_ios));
    rs->segs = calloc(rs->max_segments, sizeof(*rs->segs));
    rs->replay = calloc(rs->size, sizeof(*rs->replay));
    if (!rs->pool || !rs->iov_store || !rs->busy || !rs->free_ios || !rs->segs || !rs->replay)
        return -ENOMEM;
    for (uint32_t i = 0; i < rs->size; i++) {
        rs->pool[i].iov = &rs->iov_store[(size_t)i * rs->max_segments];
        rs->free_ios[i] = &rs->pool[rs->size - 1 - i];
    }
    rs->nr_free = rs->size;
    return 0;
}

static void init_from_config(struct ring_server *rs, const struct ring_server_config *cfg)
{
    uint8_t *base = cfg->base;
    bool indirect = (cfg->geo.features & QCOWRING_F_INDIRECT) != 0;

    rs->geo = cfg->geo;
    rs->info = (struct qcowring_info *)base;
    rs->sring = (struct qcowring_sring *)(base + QCOWRING_RING_OFFSET);
    rs->data = base + qcowring_data_offset(cfg->geo.ring_page_order);
    rs->size = qcowring_ring_entries(cfg->geo.ring_page_order);
    rs->mask = rs->size - 1;
    rs->max_segments = indirect ? cfg->geo.max_indirect_segments : QCOWRING_MAX_SEGMENTS;
    rs->req_fd = cfg->req_eventfd;
    rs->rsp_fd = cfg->rsp_eventfd;
    rs->log = cfg->log;
    rs->log_opaque = cfg->log_opaque;
    /* A fresh ring starts at 0 (SHARED_RING_INIT by its creator). */
    rs->req_cons = rs->rsp_prod_pvt = rs->rsp_prod_published = cfg->start_index;
}

int ring_server_new(const struct ring_server_config *cfg, struct ring_server **out)
{
    struct ring_server *rs;
    int err;

    if (!cfg->base)
        return -EINVAL;
    err = check_geometry(&cfg->geo, cfg->map_size);
    if (err)
        return err;
    rs = calloc(1, sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    *out = rs;
    init_from_config(rs, cfg);
    err = alloc_pool(rs);
    if (!err)
        err = ring_journal_setup(rs, cfg);
    if (err) {
        ring_server_free(rs);
        *out = NULL;
    }
    return err;
}

void ring_server_free(struct ring_server *rs)
{
    if (!rs)
        return;
    free(rs->pool);
    free(rs->iov_store);
    free(rs->busy);
    free(rs->free_ios);
    free(rs->segs);
    free(rs->replay);
    free(rs->replay_order);
    free(rs);
}

int ring_server_map(int memfd, const struct ring_server_geometry *geo, void **base,
                    size_t *size)
{
    uint64_t need = qcowring_total_size(geo->ring_page_order, geo->data_pages);
    struct stat st;
    int seals;
    void *p;

    if (geo->ring_page_order > QCOWRING_MAX_RING_PAGE_ORDER)
        return -EINVAL;
    if (fstat(memfd, &st) < 0)
        return -errno;
    seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    /* A client able to shrink the memfd could make us fault (SIGBUS). */
    if (!(seals & F_SEAL_SHRINK) || st.st_size < 0 || (uint64_t)st.st_size < need ||
        need > SIZE_MAX)
        return -EINVAL;
    p = mmap(NULL, (size_t)need, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *base = p;
    *size = (size_t)need;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The pool of ring_io                                                      */
/* ------------------------------------------------------------------------ */

static struct ring_io *take_io(struct ring_server *rs)
{
    struct ring_io *io;

    assert(rs->nr_free > 0 && rs->nr_free <= rs->size);
    io = rs->free_ios[--rs->nr_free];
    assert(!rs->busy[io - rs->pool]);
    rs->busy[io - rs->pool] = true;
    io->iovcnt = 0;
    io->length = 0;
    io->secure = false;
    io->priv = NULL;
    return io;
}

/* The caller gives io back: is it one of ours, and handed out? */
static bool io_is_busy(const struct ring_server *rs, const struct ring_io *io)
{
    return io >= rs->pool && io < rs->pool + rs->size && rs->busy[io - rs->pool];
}

static void put_io(struct ring_server *rs, struct ring_io *io)
{
    assert(io_is_busy(rs, io) && rs->nr_free < rs->size);
    rs->busy[io - rs->pool] = false;
    rs->free_ios[rs->nr_free++] = io;
}

/* ------------------------------------------------------------------------ */
/* Validation of a private copy                                             */
/* ------------------------------------------------------------------------ */

/* Count, log (rate-limited) and return the response status for a reject. */
static int reject(struct ring_server *rs, const struct ring_io *io,
                  enum ring_bad_reason reason)
{
    uint64_t n = ++rs->stats.bad_requests;

    rs->stats.bad[reason]++;
    if (n <= 16 || (n & (n - 1)) == 0)
        ring_log(rs, "bad request (id %llu, operation %u): %s [%llu so far]",
                (unsigned long long)io->id, io->rsp_operation,
                ring_bad_reason_name(reason), (unsigned long long)n);
    if (reason == RING_BAD_OPCODE || reason == RING_BAD_UNSUPPORTED)
        return QCOWRING_RSP_EOPNOTSUPP;
    return QCOWRING_RSP_ERROR;
}

static bool has_feature(const struct ring_server *rs, uint64_t f)
{
    return (rs->geo.features & f) != 0;
}

/* sector + count <= capacity, without overflow. */
static bool range_ok(const struct ring_server *rs, uint64_t sector, uint64_t count)
{
    uint64_t cap = rs->geo.capacity_sectors;

    return sector <= cap && count <= cap - sector;
}

static void add_iov(struct ring_io *io, uint8_t *base, size_t len)
{
    struct iovec *last = io->iovcnt ? &io->iov[io->iovcnt - 1] : NULL;

    if (last && (uint8_t *)last->iov_base + last->iov_len == base) {
        last->iov_len += len;
    } else {
        io->iov[io->iovcnt].iov_base = base;
        io->iov[io->iovcnt].iov_len = len;
        io->iovcnt++;
    }
    io->length += len;
}

/* Check segments (a private copy) and turn them into io->iov. */
static int add_segments(struct ring_server *rs, struct ring_io *io,
                        const struct qcowring_segment *seg, unsigned nseg)
{
    for (unsigned i = 0; i < nseg; i++) {
        uint8_t first = seg[i].first_sect, last = seg[i].last_sect;
        uint32_t page = seg[i].page;

        if (first > last || last >= QCOWRING_SECTORS_PER_PAGE)
            return reject(rs, io, RING_BAD_SECTORS);
        if (page >= rs->geo.data_pages)
            return reject(rs, io, RING_BAD_PAGE);
        add_iov(io, rs->data + (size_t)page * QCOWRING_PAGE_SIZE +
                        (size_t)first * QCOWRING_SECTOR_SIZE,
                (size_t)(last - first + 1) * QCOWRING_SECTOR_SIZE);
    }
    return 0;
}

static int check_io_range(struct ring_server *rs, struct ring_io *io)
{
    if (!range_ok(rs, io->sector, io->length >> QCOWRING_SECTOR_SHIFT))
        return reject(rs, io, RING_BAD_RANGE);
    return 0;
}

static enum ring_io_op io_op_of(uint8_t operation)
{
    switch (operation) {
    case QCOWRING_OP_READ: return RING_IO_READ;
    case QCOWRING_OP_WRITE: return RING_IO_WRITE;
    case QCOWRING_OP_FLUSH_DISKCACHE: return RING_IO_FLUSH;
    case QCOWRING_OP_WRITE_BARRIER: return RING_IO_BARRIER;
    default: return RING_IO_DISCARD;
    }
}

/* READ, WRITE (1..11 segments), FLUSH_DISKCACHE, WRITE_BARRIER (0..11). */
static int parse_direct(struct ring_server *rs, const struct qcowring_request *req,
                        struct ring_io *io)
{
    bool data_op = req->operation == QCOWRING_OP_READ || req->operation == QCOWRING_OP_WRITE;
    unsigned nseg = req->nr_segments;
    bool writes = req->operation != QCOWRING_OP_READ && nseg > 0;
    int status;

    if (nseg > QCOWRING_MAX_SEGMENTS || (data_op && nseg == 0))
        return reject(rs, io, RING_BAD_SEGMENT_COUNT);
    if (writes && has_feature(rs, QCOWRING_F_READ_ONLY))
        return reject(rs, io, RING_BAD_READ_ONLY);
    io->op = io_op_of(req->operation);
    io->sector = nseg ? req->sector_number : 0;
    status = add_segments(rs, io, req->seg, nseg);
    if (status == 0 && nseg > 0)
        status = check_io_range(rs, io);
    return status;
}

static int parse_discard(struct ring_server *rs, const struct qcowring_request_discard *d,
                         struct ring_io *io)
{
    if (!has_feature(rs, QCOWRING_F_DISCARD))
        return reject(rs, io, RING_BAD_UNSUPPORTED);
    if (has_feature(rs, QCOWRING_F_READ_ONLY))
        return reject(rs, io, RING_BAD_READ_ONLY);
    if ((d->flag & ~QCOWRING_DISCARD_SECURE) || d->nr_sectors == 0)
        return reject(rs, io, RING_BAD_DISCARD);
    if (!range_ok(rs, d->sector_number, d->nr_sectors))
        return reject(rs, io, RING_BAD_RANGE);
    io->op = RING_IO_DISCARD;
    io->sector = d->sector_number;
    io->length = d->nr_sectors << QCOWRING_SECTOR_SHIFT;
    io->secure = (d->flag & QCOWRING_DISCARD_SECURE) &&
                 has_feature(rs, QCOWRING_F_DISCARD_SECURE);
    return 0;
}

/* MAP: the answer's pages must lie inside the data area. */
static int parse_map(struct ring_server *rs, const struct qcowring_request_map *m,
                     struct ring_io *io)
{
    if (!has_feature(rs, QCOWRING_F_MAP))
        return reject(rs, io, RING_BAD_UNSUPPORTED);
    if (m->flag != 0 || m->nr_sectors == 0 || m->nr_pages == 0 ||
        m->nr_pages > QCOWRING_MAP_MAX_PAGES)
        return reject(rs, io, RING_BAD_MAP);
    if (m->page >= rs->geo.data_pages || m->nr_pages > rs->geo.data_pages - m->page)
        return reject(rs, io, RING_BAD_PAGE);
    if (!range_ok(rs, m->sector_number, m->nr_sectors))
        return reject(rs, io, RING_BAD_RANGE);
    io->op = RING_IO_MAP;
    io->sector = m->sector_number;
    io->length = m->nr_sectors << QCOWRING_SECTOR_SHIFT;
    io->iov[0].iov_base = rs->data + (size_t)m->page * QCOWRING_PAGE_SIZE;
    io->iov[0].iov_len = (size_t)m->nr_pages * QCOWRING_PAGE_SIZE;
    io->iovcnt = 1;
    return 0;
}

/* Copy the segment descriptors out of the (shared) indirect pages into
 * rs->segs; only that copy is looked at afterwards (and journaled). */
static int copy_indirect_segments(struct ring_server *rs,
                                  const struct qcowring_request_indirect *ind,
                                  struct ring_io *io, unsigned nseg)
{
    unsigned npages = DIV_ROUND_UP(nseg, QCOWRING_SEGMENTS_PER_INDIRECT_PAGE);

    for (unsigned i = 0; i < npages; i++) {
        uint32_t page = ind->indirect_pages[i];
        unsigned first = i * QCOWRING_SEGMENTS_PER_INDIRECT_PAGE;
        unsigned count = nseg - first < QCOWRING_SEGMENTS_PER_INDIRECT_PAGE
                             ? nseg - first : QCOWRING_SEGMENTS_PER_INDIRECT_PAGE;
        if (page >= rs->geo.data_pages)
            return reject(rs, io, RING_BAD_PAGE);
        if (!rs->replaying)
            memcpy(&rs->segs[first], rs->data + (size_t)page * QCOWRING_PAGE_SIZE,
                   count * sizeof(struct qcowring_segment));
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    /* Replaying, rs->segs holds the journal's copy of the original list. */
    if (rs->replaying && rs->segs_copied < nseg)
        return reject(rs, io, RING_BAD_INDIRECT);
    rs->segs_copied = nseg;
    return 0;
}

static int parse_indirect(struct ring_server *rs, const struct qcowring_request_indirect *ind,
                          struct ring_io *io)
{
    unsigned nseg = ind->nr_segments;
    int status;

    if (!has_feature(rs, QCOWRING_F_INDIRECT))
        return reject(rs, io, RING_BAD_UNSUPPORTED);
    io->rsp_operation = ind->indirect_op;
    if (ind->indirect_op != QCOWRING_OP_READ && ind->indirect_op != QCOWRING_OP_WRITE)
        return reject(rs, io, RING_BAD_INDIRECT);
    if (nseg == 0 || nseg > rs->geo.max_indirect_segments)
        return reject(rs, io, RING_BAD_SEGMENT_COUNT);
    if (ind->indirect_op == QCOWRING_OP_WRITE && has_feature(rs, QCOWRING_F_READ_ONLY))
        return reject(rs, io, RING_BAD_READ_ONLY);
    io->op = io_op_of(ind->indirect_op);
    io->sector = ind->sector_number;
    status = copy_indirect_segments(rs, ind, io, nseg);
    if (status == 0)
        status = add_segments(rs, io, rs->segs, nseg);
    if (status == 0)
        status = check_io_range(rs, io);
    return status;
}

/* 0 for a valid request (io filled), else the status to answer with. */
int ring_parse_request(struct ring_server *rs, const union qcowring_entry *e, struct ring_io *io)
{
    io->id = e->req.id;
    io->rsp_operation = e->req.operation;
    switch (e->req.operation) {
    case QCOWRING_OP_READ:
    case QCOWRING_OP_WRITE:
        return parse_direct(rs, &e->req, io);
    case QCOWRING_OP_FLUSH_DISKCACHE:
        if (!has_feature(rs, QCOWRING_F_FLUSH))
            return reject(rs, io, RING_BAD_UNSUPPORTED);
        return parse_direct(rs, &e->req, io);
    case QCOWRING_OP_WRITE_BARRIER:
        if (!has_feature(rs, QCOWRING_F_BARRIER))
            return reject(rs, io, RING_BAD_UNSUPPORTED);
        return parse_direct(rs, &e->req, io);
    case QCOWRING_OP_DISCARD:
        return parse_discard(rs, &e->discard, io);
    case QCOWRING_OP_INDIRECT:
        return parse_indirect(rs, &e->indirect, io);
    case QCOWRING_OP_MAP:
        return parse_map(rs, &e->map, io);
    default:
        return reject(rs, io, RING_BAD_OPCODE);
    }
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

/* Only ever called for a consumed, unanswered request, so the slot written
 * holds no request the server has yet to read. */
static void write_response(struct ring_server *rs, uint64_t id, uint8_t operation,
                           int16_t status)
{
    struct qcowring_response rsp = { .id = id, .operation = operation, .status = status };

    memcpy(&rs->sring->ring[rs->rsp_prod_pvt & rs->mask].rsp, &rsp, sizeof(rsp));
    rs->rsp_prod_pvt++;
    rs->stats.responses++;
}

int ring_server_push_responses(struct ring_server *rs)
{
    if (rs->broken)
        return -EPROTO;
    if (rs->rsp_prod_pvt == rs->rsp_prod_published)
        return 0;
    if (qcowring_push_responses_and_check_notify(rs->sring, rs->rsp_prod_published,
                                                 rs->rsp_prod_pvt))
        ring_signal_client(rs);
    rs->rsp_prod_published = rs->rsp_prod_pvt;
    return 0;
}

int ring_server_respond_deferred(struct ring_server *rs, struct ring_io *io, int16_t status)
{
    size_t idx = (size_t)(io - rs->pool);

    if (!io_is_busy(rs, io))
        return -EINVAL;
    if (rs->broken) {
        put_io(rs, io);
        return -EPROTO;
    }
    ring_journal_answering(rs, idx);
    write_response(rs, io->id, io->rsp_operation, status);
    ring_journal_answered(rs, idx);
    put_io(rs, io);
    return 0;
}

int ring_server_respond(struct ring_server *rs, struct ring_io *io, int16_t status)
{
    int err = ring_server_respond_deferred(rs, io, status);

    return err ? err : ring_server_push_responses(rs);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/* A legitimate client never has more than ring-size requests unanswered:
 * prod may lead our consumer, and our responses, by at most the ring size. */
static int check_producer(struct ring_server *rs, uint32_t prod)
{
    uint32_t ahead = prod - rs->req_cons;
    uint32_t unanswered = prod - rs->rsp_prod_pvt;

    if (ahead > rs->size || unanswered > rs->size)
        return mark_broken(rs, "req_prod %u is out of range (consumer %u, responses %u, "
                           "ring size %u)", prod, rs->req_cons, rs->rsp_prod_pvt, rs->size);
    return 0;
}

/* Copy the next request out of the ring, in one go, and validate the copy. */
static struct ring_io *consume_one(struct ring_server *rs, int *status)
{
    union qcowring_entry e;
    struct ring_io *io;

    memcpy(&e, &rs->sring->ring[rs->req_cons & rs->mask], sizeof(e));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    rs->req_cons++;
    io = take_io(rs);
    rs->segs_copied = 0;
    *status = ring_parse_request(rs, &e, io);
    ring_journal_consumed(rs, (size_t)(io - rs->pool), &e);
    return io;
}

static bool may_consume(const struct ring_server *rs, uint32_t prod)
{
    return rs->req_cons != prod && rs->req_cons - rs->rsp_prod_pvt < rs->size &&
           rs->nr_free > 0;
}

/* Requests recovered from the journal go out before new ones. */
static unsigned take_replays(struct ring_server *rs, struct ring_io **out, unsigned max)
{
    unsigned n = 0;

    while (n < max && rs->replay_count) {
        out[n++] = rs->replay[rs->replay_head++];
        rs->replay_count--;
    }
    return n;
}

int ring_server_poll_requests(struct ring_server *rs, struct ring_io **out, unsigned max)
{
    bool rejected = false;
    unsigned n = 0;
    uint32_t prod;

    if (rs->broken)
        return -EPROTO;
    prod = qcowring_load_acquire(&rs->sring->req_prod);
    if (check_producer(rs, prod) < 0)
        return -EPROTO;
    n = take_replays(rs, out, max);
    while (n < max && may_consume(rs, prod)) {
        int status;
        struct ring_io *io = consume_one(rs, &status);
        if (status == 0) {
            rs->stats.requests++;
            out[n++] = io;
            continue;
        }
        ring_server_respond_deferred(rs, io, (int16_t)status);
        rejected = true;
    }
    if (rejected)
        ring_server_push_responses(rs);
    return (int)n;
}

bool ring_server_final_check(struct ring_server *rs)
{
    if (rs->broken)
        return false;
    if (rs->replay_count)
        return true;
    return qcowring_final_check_for_requests(rs->sring, rs->req_cons) != 0;
}

bool ring_server_requests_pending(const struct ring_server *rs)
{
    if (rs->broken)
        return false;
    return rs->replay_count || qcowring_load_acquire(&rs->sring->req_prod) != rs->req_cons;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

void ring_server_shutdown(struct ring_server *rs)
{
    ring_server_push_responses(rs);
    if (!rs->broken)
        set_server_state(rs, QCOWRING_STATE_SHUTDOWN);
}

bool ring_server_is_broken(const struct ring_server *rs)
{
    return rs->broken;
}

const char *ring_server_broken_reason(const struct ring_server *rs)
{
    return rs->broken ? rs->reason : NULL;
}

unsigned ring_server_in_flight(const struct ring_server *rs)
{
    assert(rs->nr_free <= rs->size);
    return rs->size - rs->nr_free;
}

unsigned ring_server_ring_size(const struct ring_server *rs)
{
    return rs->size;
}

void ring_server_get_stats(const struct ring_server *rs, struct ring_server_stats *out)
{
    *out = rs->stats;
}
