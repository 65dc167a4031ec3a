/*
 * A blkfront-style client written only against Xen's public headers
 * (xen/io/ring.h, xen/io/blkif.h from libxen-dev) and doc/ring.md: it finds
 * the ring through the qcowd page by raw offsets, drives it with Xen's own
 * macros (FRONT_RING_ATTACH, RING_GET_REQUEST, RING_PUSH_REQUESTS_AND_CHECK_NOTIFY,
 * RING_COPY_RESPONSE, RING_FINAL_CHECK_FOR_RESPONSES) and checks the data
 * against a shadow copy of the disk.  No qcowd header is included here.
 */
#include "config.h"

#include "xen_client.h"
#include "../lib/xorshift.h"

#ifdef HAVE_XEN_IO_BLKIF_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * ring.h uses xen_mb()/xen_rmb()/xen_wmb(); for interface versions before
 * 0x00030208 it maps them to mb()/rmb()/wmb().  Ask for a current interface
 * and give it C11 fences.
 */
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#define xen_mb() atomic_thread_fence(memory_order_seq_cst)
#define xen_rmb() atomic_thread_fence(memory_order_acquire)
#define xen_wmb() atomic_thread_fence(memory_order_release)
#include <xen/io/ring.h>
#include <xen/io/blkif.h>

#define FAIL() return __LINE__
#define EXPECT(cond) do { if (!(cond)) FAIL(); } while (0)
#define TRY(expr) do { int e_ = (expr); if (e_) return e_; } while (0)

/* qcowd page offsets and feature bits (doc/ring.md). */
#define INFO_RING_PAGE_ORDER 20
#define INFO_CAPACITY 40
#define INFO_FEATURES 48
#define INFO_DATA_OFFSET 56
#define INFO_DATA_PAGES 64
#define INFO_MAX_INDIRECT 72
#define FEATURE_INDIRECT (1u << 4)
#define RING_OFFSET 4096
#define PAGE 4096
#define SECTOR 512

#define MAX_BATCH 256

struct posted {
    uint64_t id;
    uint8_t rsp_op;            /* expected response operation */
    int16_t want;              /* expected status */
    int got;
    int is_read;
    uint64_t sector;
    unsigned nseg;
    struct blkif_request_segment *segs;
};

struct xc {
    const struct xen_env *env;
    blkif_front_ring_t front;
    uint8_t *data;
    uint32_t data_pages;
    uint64_t capacity;         /* sectors */
    uint32_t max_indirect;
    uint8_t *shadow;           /* what the disk must contain */
    uint64_t next_id;
    uint64_t rng;
    struct posted batch[MAX_BATCH];
    unsigned nbatch;
};

static uint64_t get_u64(const uint8_t *p, size_t off)
{
    uint64_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static uint32_t get_u32(const uint8_t *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static uint64_t rnd(struct xc *c)
{
    return xorshift64(&c->rng);
}

static uint8_t *seg_mem(struct xc *c, const struct blkif_request_segment *s)
{
    return c->data + (size_t)s->gref * PAGE + (size_t)s->first_sect * SECTOR;
}

static size_t seg_len(const struct blkif_request_segment *s)
{
    return (size_t)(s->last_sect - s->first_sect + 1) * SECTOR;
}

/* ------------------------------------------------------------------------ */
/* Posting                                                                  */
/* ------------------------------------------------------------------------ */

/* Fill a write's pages with fresh bytes and apply them to the shadow. */
static void prepare_write(struct xc *c, uint64_t sector,
                          const struct blkif_request_segment *segs, unsigned nseg)
{
    uint64_t off = sector * SECTOR;

    for (unsigned i = 0; i < nseg; i++) {
        uint8_t *m = seg_mem(c, &segs[i]);
        for (size_t b = 0; b < seg_len(&segs[i]); b++)
            m[b] = (uint8_t)rnd(c);
        memcpy(c->shadow + off, m, seg_len(&segs[i]));
        off += seg_len(&segs[i]);
    }
}

static struct posted *record(struct xc *c, uint64_t id, uint8_t rsp_op, int16_t want)
{
    struct posted *p = &c->batch[c->nbatch++];

    memset(p, 0, sizeof(*p));
    p->id = id;
    p->rsp_op = rsp_op;
    p->want = want;
    return p;
}

static void record_data(struct posted *p, int is_read, uint64_t sector,
                        const struct blkif_request_segment *segs, unsigned nseg)
{
    p->is_read = is_read;
    p->sector = sector;
    p->nseg = nseg;
    p->segs = malloc(nseg * sizeof(*segs));
    if (p->segs)
        memcpy(p->segs, segs, nseg * sizeof(*segs));
}

static uint64_t new_id(struct xc *c)
{
    /* Large, sparse ids: the server must only echo them. */
    return 0xfeed000000000000ull + (c->next_id++ << 20) + 7;
}

static void post_rw(struct xc *c, uint8_t op, uint64_t sector,
                    const struct blkif_request_segment *segs, unsigned nseg, int16_t want)
{
    blkif_request_t *req = RING_GET_REQUEST(&c->front, c->front.req_prod_pvt);
    uint64_t id = new_id(c);

    if (op != BLKIF_OP_READ && want == BLKIF_RSP_OKAY)
        prepare_write(c, sector, segs, nseg);
    req->operation = op;
    req->nr_segments = (uint8_t)nseg;
    req->handle = 0;
    req->id = id;
    req->sector_number = sector;
    for (unsigned i = 0; i < nseg && i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
        req->seg[i] = segs[i];
    c->front.req_prod_pvt++;
    record_data(record(c, id, op, want), op == BLKIF_OP_READ, sector, segs,
                nseg < BLKIF_MAX_SEGMENTS_PER_REQUEST ? nseg : BLKIF_MAX_SEGMENTS_PER_REQUEST);
}

/* Indirect: the descriptors go into the indirect pages (512 per page). */
static void post_indirect(struct xc *c, uint8_t op, uint64_t sector,
                          const struct blkif_request_segment *segs, unsigned nseg,
                          const uint32_t *ind_pages)
{
    blkif_request_indirect_t *req =
        (blkif_request_indirect_t *)RING_GET_REQUEST(&c->front, c->front.req_prod_pvt);
    const unsigned per_page = PAGE / sizeof(struct blkif_request_segment);
    uint64_t id = new_id(c);

    if (op == BLKIF_OP_WRITE)
        prepare_write(c, sector, segs, nseg);
    for (unsigned i = 0; i < nseg; i++) {
        struct blkif_request_segment *dst =
            (struct blkif_request_segment *)(c->data + (size_t)ind_pages[i / per_page] * PAGE);
        dst[i % per_page] = segs[i];
    }
    memset(req, 0, sizeof(*req));
    req->operation = BLKIF_OP_INDIRECT;
    req->indirect_op = op;
    req->nr_segments = (uint16_t)nseg;
    req->id = id;
    req->sector_number = sector;
    for (unsigned i = 0; i * per_page < nseg; i++)
        req->indirect_grefs[i] = ind_pages[i];
    c->front.req_prod_pvt++;
    record_data(record(c, id, op, BLKIF_RSP_OKAY), op == BLKIF_OP_READ, sector, segs, nseg);
}

static void post_discard(struct xc *c, uint64_t sector, uint64_t nr_sectors)
{
    blkif_request_discard_t *req =
        (blkif_request_discard_t *)RING_GET_REQUEST(&c->front, c->front.req_prod_pvt);
    uint64_t id = new_id(c);

    memset(req, 0, sizeof(*req));
    req->operation = BLKIF_OP_DISCARD;
    req->id = id;
    req->sector_number = sector;
    req->nr_sectors = nr_sectors;
    c->front.req_prod_pvt++;
    memset(c->shadow + sector * SECTOR, 0, nr_sectors * SECTOR);
    record(c, id, BLKIF_OP_DISCARD, BLKIF_RSP_OKAY);
}

/* Returns whether the server had to be notified. */
static int push(struct xc *c)
{
    uint64_t one = 1;
    int notify;

    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&c->front, notify);
    if (notify && write(c->env->req_fd, &one, sizeof(one)) != sizeof(one))
        return -1;
    return notify;
}

/* ------------------------------------------------------------------------ */
/* Completing                                                               */
/* ------------------------------------------------------------------------ */

static struct posted *find_posted(struct xc *c, uint64_t id)
{
    for (unsigned i = 0; i < c->nbatch; i++)
        if (c->batch[i].id == id)
            return &c->batch[i];
    return NULL;
}

static int take_response(struct xc *c, const blkif_response_t *rsp)
{
    struct posted *p = find_posted(c, rsp->id);

    EXPECT(p && !p->got);
    EXPECT(rsp->operation == p->rsp_op);
    EXPECT(rsp->status == p->want);
    p->got = 1;
    return 0;
}

/* The classic front-end loop: consume, final check, repeat. */
static int reap(struct xc *c)
{
    int more;

    do {
        RING_IDX rp = c->front.sring->rsp_prod;
        xen_rmb();
        EXPECT(rp - c->front.rsp_cons <= RING_SIZE(&c->front));
        while (c->front.rsp_cons != rp) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&c->front, c->front.rsp_cons, &rsp);
            c->front.rsp_cons++;
            TRY(take_response(c, &rsp));
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&c->front, more);
    } while (more);
    return 0;
}

static int check_read(struct xc *c, const struct posted *p)
{
    uint64_t off = p->sector * SECTOR;

    for (unsigned i = 0; i < p->nseg; i++) {
        EXPECT(memcmp(seg_mem(c, &p->segs[i]), c->shadow + off, seg_len(&p->segs[i])) == 0);
        off += seg_len(&p->segs[i]);
    }
    return 0;
}

static int rsp_doorbell_rang(struct xc *c)
{
    uint64_t count = 0;

    return read(c->env->rsp_fd, &count, sizeof(count)) == sizeof(count) && count > 0;
}

/* Let the server run, collect every response, check reads. */
static int complete_batch(struct xc *c)
{
    int err = 0;

    EXPECT(c->env->serve(c->env->opaque) >= 0);
    /* Our last final check armed rsp_event: responses must ring. */
    EXPECT(rsp_doorbell_rang(c));
    TRY(reap(c));
    for (unsigned i = 0; i < c->nbatch; i++) {
        struct posted *p = &c->batch[i];
        if (!err && !p->got)
            err = __LINE__;
        if (!err && p->is_read && p->want == BLKIF_RSP_OKAY)
            err = check_read(c, p);
        free(p->segs);
    }
    c->nbatch = 0;
    return err;
}

/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

/* nseg whole pages starting at first_page. */
static void whole_pages(struct blkif_request_segment *segs, unsigned nseg, uint32_t first_page)
{
    for (unsigned i = 0; i < nseg; i++) {
        segs[i].gref = first_page + i;
        segs[i].first_sect = 0;
        segs[i].last_sect = 7;
    }
}

static int indirect_roundtrip(struct xc *c, uint64_t sector, unsigned nseg)
{
    struct blkif_request_segment *segs = calloc(nseg, sizeof(*segs));
    uint32_t ind_w[8], ind_r[8];
    int err;

    if (!segs)
        FAIL();
    for (unsigned i = 0; i < 8; i++) {
        ind_w[i] = c->data_pages - 16 + i;
        ind_r[i] = c->data_pages - 8 + i;
    }
    whole_pages(segs, nseg, 0);
    post_indirect(c, BLKIF_OP_WRITE, sector, segs, nseg, ind_w);
    err = push(c) == 1 ? complete_batch(c) : __LINE__;
    whole_pages(segs, nseg, (c->data_pages - 16 - nseg));
    if (!err) {
        post_indirect(c, BLKIF_OP_READ, sector, segs, nseg, ind_r);
        err = push(c) == 1 ? complete_batch(c) : __LINE__;
    }
    free(segs);
    return err;
}

/* Up to 11 random segments with random sector ranges in private pages. */
static unsigned random_segments(struct xc *c, struct blkif_request_segment *segs,
                                uint32_t first_page, unsigned max_sectors)
{
    unsigned nseg = 1 + rnd(c) % BLKIF_MAX_SEGMENTS_PER_REQUEST, total = 0, i;

    for (i = 0; i < nseg; i++) {
        uint8_t first = (uint8_t)(rnd(c) % 8);
        uint8_t last = (uint8_t)(first + rnd(c) % (8 - first));
        if (total + (last - first + 1u) > max_sectors)
            break;
        segs[i].gref = first_page + i;
        segs[i].first_sect = first;
        segs[i].last_sect = last;
        total += last - first + 1u;
    }
    if (i == 0) {   /* not even the first fits: one sector */
        segs[0] = (struct blkif_request_segment){ .gref = first_page };
        i = 1;
    }
    return i;
}

/* A batch of random reads and writes on disjoint disk ranges and pages,
 * pushed in two halves: the second push must not notify. */
static int random_batch(struct xc *c, unsigned count)
{
    uint64_t span = c->capacity / count;
    unsigned max_sectors = span < 88 ? (unsigned)span : 88;

    for (unsigned k = 0; k < count; k++) {
        struct blkif_request_segment segs[BLKIF_MAX_SEGMENTS_PER_REQUEST];
        unsigned nseg = random_segments(c, segs, k * BLKIF_MAX_SEGMENTS_PER_REQUEST, max_sectors);
        uint64_t sectors = 0;
        for (unsigned i = 0; i < nseg; i++)
            sectors += segs[i].last_sect - segs[i].first_sect + 1u;
        uint64_t sector = k * span + rnd(c) % (span - sectors + 1);
        post_rw(c, rnd(c) % 2 ? BLKIF_OP_READ : BLKIF_OP_WRITE, sector, segs, nseg,
                BLKIF_RSP_OKAY);
        if (k == count / 2 - 1)
            EXPECT(push(c) == 1);
    }
    EXPECT(push(c) == (count == 1 ? 1 : 0));
    return complete_batch(c);
}

static int control_requests(struct xc *c)
{
    struct blkif_request_segment segs[2];
    struct blkif_request_segment none[1] = { { 0, 0, 0 } };

    post_rw(c, BLKIF_OP_FLUSH_DISKCACHE, 0, none, 0, BLKIF_RSP_OKAY);
    whole_pages(segs, 2, 5);
    post_rw(c, BLKIF_OP_WRITE_BARRIER, 64, segs, 2, BLKIF_RSP_OKAY);
    post_discard(c, 200, 16);
    post_rw(c, BLKIF_OP_RESERVED_1, 0, none, 0, BLKIF_RSP_EOPNOTSUPP);
    post_rw(c, 200, 0, none, 0, BLKIF_RSP_EOPNOTSUPP);
    whole_pages(segs, 1, 9);
    post_rw(c, BLKIF_OP_READ, c->capacity - 4, segs, 1, BLKIF_RSP_ERROR);
    post_rw(c, BLKIF_OP_READ, 0, segs, 0, BLKIF_RSP_ERROR);
    segs[0].gref = c->data_pages;
    post_rw(c, BLKIF_OP_WRITE, 0, segs, 1, BLKIF_RSP_ERROR);
    EXPECT(push(c) == 1);
    return complete_batch(c);
}

/* Read the whole disk back with indirect requests and compare. */
static int verify_disk(struct xc *c)
{
    const unsigned pages_per_req = c->max_indirect < 512 ? c->max_indirect : 512;
    const uint64_t sectors_per_req = pages_per_req * (PAGE / SECTOR);
    struct blkif_request_segment *segs = calloc(pages_per_req, sizeof(*segs));
    uint32_t ind[8] = { c->data_pages - 1 };
    int err = 0;

    if (!segs)
        FAIL();
    whole_pages(segs, pages_per_req, 0);
    for (uint64_t s = 0; !err && s + sectors_per_req <= c->capacity; s += sectors_per_req) {
        post_indirect(c, BLKIF_OP_READ, s, segs, pages_per_req, ind);
        err = push(c) == 1 ? complete_batch(c) : __LINE__;
    }
    free(segs);
    return err;
}

static int attach(struct xc *c, const struct xen_env *env)
{
    uint32_t order = get_u32(env->mem, INFO_RING_PAGE_ORDER);
    blkif_sring_t *sring = (blkif_sring_t *)(env->mem + RING_OFFSET);

    EXPECT(memcmp(env->mem, "QCOWRING", 8) == 0);
    EXPECT(get_u64(env->mem, INFO_FEATURES) & FEATURE_INDIRECT);
    c->env = env;
    c->capacity = get_u64(env->mem, INFO_CAPACITY);
    c->data = env->mem + get_u64(env->mem, INFO_DATA_OFFSET);
    c->data_pages = (uint32_t)get_u64(env->mem, INFO_DATA_PAGES);
    c->max_indirect = get_u32(env->mem, INFO_MAX_INDIRECT);
    c->rng = 0x9e3779b97f4a7c15ull ^ env->start_index;
    /* The server side did SHARED_RING_INIT (at start_index). */
    EXPECT(sring->req_prod == env->start_index && sring->rsp_prod == env->start_index);
    EXPECT(sring->req_event == env->start_index + 1 && sring->rsp_event == env->start_index + 1);
    FRONT_RING_ATTACH(&c->front, sring, env->start_index, (unsigned)(PAGE << order));
    EXPECT(RING_SIZE(&c->front) == 32u << order);
    EXPECT(c->data_pages >= 16 + 2 * 600 && c->max_indirect >= 600);
    c->shadow = calloc(c->capacity, SECTOR);
    return c->shadow ? 0 : __LINE__;
}

static int run_scenarios(struct xc *c)
{
    unsigned size = RING_SIZE(&c->front);

    /* Fill the disk with known bytes (indirect, two indirect pages). */
    for (uint64_t s = 0; s + 600 * 8 <= c->capacity; s += 600 * 8)
        TRY(indirect_roundtrip(c, s, 600));
    TRY(indirect_roundtrip(c, c->capacity - 600 * 8, 600));
    TRY(control_requests(c));
    for (unsigned r = 0; r < c->env->rounds; r++)
        TRY(random_batch(c, 1 + (unsigned)(rnd(c) % size)));
    TRY(random_batch(c, size));
    TRY(random_batch(c, 1));
    return verify_disk(c);
}

int xen_client_run(const struct xen_env *env)
{
    struct xc *c = calloc(1, sizeof(*c));
    int err;

    if (!c)
        FAIL();
    err = attach(c, env);
    if (!err)
        err = run_scenarios(c);
    free(c->shadow);
    free(c);
    return err;
}

#else /* !HAVE_XEN_IO_BLKIF_H */

int xen_client_run(const struct xen_env *env)
{
    (void)env;
    return -1;
}

#endif
