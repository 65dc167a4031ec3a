/* A hostile client against ring_server: adversarial and random ring
 * contents.  The server must answer errors (or mark the ring broken when the
 * indices are corrupt), keep serving valid requests on a ring that is not
 * broken, and never touch memory outside the mapping: its mapping sits
 * between PROT_NONE guard pages (and the sanitizer build watches too). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/worker/doorbell.h"
#include "qcowring-client.h"
#include "ring_test.h"
#include "serve.h"
#include "../lib/xorshift.h"

#define DATA_PAGES 64
#define CAPACITY 1000

struct rig {
    struct qcowring_params p;
    struct qcowring_fds fds;
    uint8_t *region;            /* guard page, server mapping, guard page */
    size_t region_size;
    uint8_t *srv;               /* the server's mapping */
    uint8_t *cli;               /* the attacker's mapping */
    size_t size;
    struct qcowring_sring *ring;        /* attacker's view */
    uint8_t *data;                      /* attacker's view */
    uint8_t info_copy[4096];
    struct ring_server *rs;
    struct fake_disk disk;
    uint32_t req_prod, rsp_cons, entries;
    unsigned logs;
    char last_log[256];
    struct ring_io last_io;     /* the last valid request served */
};

static void capture_log(void *opaque, const char *msg)
{
    struct rig *r = opaque;

    r->logs++;
    snprintf(r->last_log, sizeof(r->last_log), "%s", msg);
}

static void map_with_guards(struct rig *r)
{
    long page = sysconf(_SC_PAGESIZE);

    r->region_size = r->size + 2 * (size_t)page;
    r->region = mmap(NULL, r->region_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r->region != MAP_FAILED);
    r->srv = mmap(r->region + page, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                  r->fds.memfd, 0);
    CHECK(r->srv == r->region + page);
}

static void rig_open(struct rig *r, uint64_t features, uint32_t max_indirect)
{
    struct ring_server_config cfg;

    memset(r, 0, sizeof(*r));
    r->p = (struct qcowring_params){ .capacity_sectors = CAPACITY, .ring_page_order = 0,
                                     .data_pages = DATA_PAGES, .features = features,
                                     .max_indirect_segments = max_indirect };
    CHECK_EQ(qcowring_create(&r->p, &r->fds), 0);
    r->size = qcowring_total_size(0, DATA_PAGES);
    map_with_guards(r);
    r->cli = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fds.memfd, 0);
    CHECK(r->cli != MAP_FAILED);
    memcpy(r->info_copy, r->cli, 4096);
    r->ring = (struct qcowring_sring *)(r->cli + QCOWRING_RING_OFFSET);
    r->data = r->cli + qcowring_data_offset(0);
    r->entries = qcowring_ring_entries(0);
    memset(&cfg, 0, sizeof(cfg));
    test_geometry_from_params(&cfg.geo, &r->p);
    cfg.base = r->srv;
    cfg.map_size = r->size;
    cfg.req_eventfd = r->fds.req_eventfd;
    cfg.rsp_eventfd = r->fds.rsp_eventfd;
    cfg.log = capture_log;
    cfg.log_opaque = r;
    CHECK_EQ(ring_server_new(&cfg, &r->rs), 0);
    CHECK_EQ(fake_disk_init(&r->disk, CAPACITY * 512, 3), 0);
}

/* The qcowd page is never written by the server except server_state. */
static void check_info_page(const struct rig *r)
{
    uint8_t now[4096];

    memcpy(now, r->cli, sizeof(now));
    memcpy(now + offsetof(struct qcowring_info, server_state),
           r->info_copy + offsetof(struct qcowring_info, server_state), 4);
    CHECK(memcmp(now, r->info_copy, sizeof(now)) == 0);
}

static void rig_close(struct rig *r)
{
    check_info_page(r);
    ring_server_free(r->rs);
    fake_disk_destroy(&r->disk);
    munmap(r->cli, r->size);
    munmap(r->region, r->region_size);
    qcowring_close_fds(&r->fds);
}

/* ------------------------------------------------------------------------ */
/* The attacker's side                                                      */
/* ------------------------------------------------------------------------ */

static void post(struct rig *r, const void *entry, size_t len)
{
    union qcowring_entry *slot = &r->ring->ring[r->req_prod & (r->entries - 1)];

    memset(slot, 0, sizeof(*slot));
    memcpy(slot, entry, len);
    r->req_prod++;
    qcowring_store_release(&r->ring->req_prod, r->req_prod);
}

static struct qcowring_request rw(uint8_t op, uint64_t id, uint64_t sector, uint8_t nseg)
{
    struct qcowring_request q;

    memset(&q, 0, sizeof(q));
    q.operation = op;
    q.nr_segments = nseg;
    q.id = id;
    q.sector_number = sector;
    for (unsigned i = 0; i < QCOWRING_MAX_SEGMENTS; i++)
        q.seg[i] = (struct qcowring_segment){ .page = i, .first_sect = 0, .last_sect = 7 };
    return q;
}

static void post_rw(struct rig *r, struct qcowring_request q)
{
    post(r, &q, sizeof(q));
}

static void post_discard(struct rig *r, uint64_t id, uint64_t sector, uint64_t n, uint8_t flag)
{
    struct qcowring_request_discard d = { .operation = QCOWRING_OP_DISCARD, .flag = flag,
                                          .id = id, .sector_number = sector, .nr_sectors = n };
    post(r, &d, sizeof(d));
}

static void post_indirect(struct rig *r, uint64_t id, uint8_t iop, uint16_t nseg,
                          uint64_t sector, uint32_t ind_page)
{
    struct qcowring_request_indirect q = { .operation = QCOWRING_OP_INDIRECT,
                                           .indirect_op = iop, .nr_segments = nseg, .id = id,
                                           .sector_number = sector };
    for (unsigned i = 0; i < QCOWRING_MAX_INDIRECT_PAGES; i++)
        q.indirect_pages[i] = i == 0 ? ind_page : 0xdead0000u + i;  /* unused refs: junk */
    post(r, &q, sizeof(q));
}

static void post_map(struct rig *r, uint64_t id, uint64_t sector, uint64_t n, uint32_t page,
                     uint32_t npages, uint8_t flag)
{
    struct qcowring_request_map m = { .operation = QCOWRING_OP_MAP, .flag = flag, .id = id,
                                      .sector_number = sector, .nr_sectors = n, .page = page,
                                      .nr_pages = npages };
    post(r, &m, sizeof(m));
}

/* Segment descriptors in an indirect page (attacker's view). */
static struct qcowring_segment *indirect_segs(struct rig *r, uint32_t page)
{
    return (struct qcowring_segment *)(r->data + (size_t)page * QCOWRING_PAGE_SIZE);
}

/* ------------------------------------------------------------------------ */
/* The server's side                                                        */
/* ------------------------------------------------------------------------ */

/* Serve everything posted, in order; returns the number served or -EPROTO. */
static int serve(struct rig *r)
{
    struct ring_io *ios[64];
    int total = 0, n;

    do {
        n = ring_server_poll_requests(r->rs, ios, 64);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            r->last_io = *ios[i];
            CHECK_EQ(ring_server_respond(r->rs, ios[i], fake_disk_serve(&r->disk, ios[i])), 0);
        }
        total += n;
    } while (n > 0 || ring_server_final_check(r->rs));
    return total;
}

static struct qcowring_response next_response(struct rig *r)
{
    struct qcowring_response rsp;

    CHECK(qcowring_load_acquire(&r->ring->rsp_prod) != r->rsp_cons);
    memcpy(&rsp, &r->ring->ring[r->rsp_cons & (r->entries - 1)].rsp, sizeof(rsp));
    r->rsp_cons++;
    return rsp;
}

static void expect(struct rig *r, uint64_t id, uint8_t op, int16_t status)
{
    struct qcowring_response rsp = next_response(r);

    if (rsp.id != id || rsp.status != status || rsp.operation != op)
        fprintf(stderr, "response id %llx op %u status %d, wanted id %llx op %u status %d\n",
                (unsigned long long)rsp.id, rsp.operation, rsp.status,
                (unsigned long long)id, op, status);
    CHECK(rsp.id == id && rsp.status == status && rsp.operation == op);
}

static void expect_no_response(struct rig *r)
{
    CHECK_EQ(qcowring_load_acquire(&r->ring->rsp_prod), r->rsp_cons);
}

/* A write then a read of the same sectors through the ring: it still works. */
static void valid_roundtrip(struct rig *r)
{
    struct qcowring_request q = rw(QCOWRING_OP_WRITE, 1001, 17, 2);

    memset(r->data, 0x5a, 2 * QCOWRING_PAGE_SIZE);
    post_rw(r, q);
    q = rw(QCOWRING_OP_READ, 1002, 17, 2);
    q.seg[0].page = 10;
    q.seg[1].page = 11;
    memset(r->data + 10 * QCOWRING_PAGE_SIZE, 0, 2 * QCOWRING_PAGE_SIZE);
    post_rw(r, q);
    CHECK_EQ(serve(r), 2);
    expect(r, 1001, QCOWRING_OP_WRITE, QCOWRING_RSP_OKAY);
    expect(r, 1002, QCOWRING_OP_READ, QCOWRING_RSP_OKAY);
    CHECK(memcmp(r->data + 10 * QCOWRING_PAGE_SIZE, r->data, 2 * QCOWRING_PAGE_SIZE) == 0);
    CHECK(!ring_server_is_broken(r->rs));
}

/* ------------------------------------------------------------------------ */
/* Malformed requests                                                       */
/* ------------------------------------------------------------------------ */

static void test_bad_opcodes(struct rig *r)
{
    static const uint8_t ops[] = { 4, 7, 100, 255 };

    for (unsigned i = 0; i < sizeof(ops); i++)
        post_rw(r, rw(ops[i], UINT64_MAX - i, 0, 1));
    CHECK_EQ(serve(r), 0);
    for (unsigned i = 0; i < sizeof(ops); i++)
        expect(r, UINT64_MAX - i, ops[i], QCOWRING_RSP_EOPNOTSUPP);
    valid_roundtrip(r);
}

static void test_segment_counts(struct rig *r)
{
    post_rw(r, rw(QCOWRING_OP_READ, 1, 0, 0));
    post_rw(r, rw(QCOWRING_OP_READ, 2, 0, 12));
    post_rw(r, rw(QCOWRING_OP_READ, 3, 0, 255));
    post_rw(r, rw(QCOWRING_OP_WRITE, 4, 0, 0));
    post_rw(r, rw(QCOWRING_OP_FLUSH_DISKCACHE, 5, 0, 12));
    post_rw(r, rw(QCOWRING_OP_FLUSH_DISKCACHE, 6, UINT64_MAX, 0));  /* sector ignored */
    post_rw(r, rw(QCOWRING_OP_WRITE_BARRIER, 7, 0, 0));
    post_rw(r, rw(QCOWRING_OP_READ, 8, 0, 11));
    CHECK_EQ(serve(r), 3);
    for (uint64_t id = 1; id <= 5; id++)
        expect(r, id, id == 4 ? QCOWRING_OP_WRITE : id == 5 ? QCOWRING_OP_FLUSH_DISKCACHE
                                                            : QCOWRING_OP_READ,
               QCOWRING_RSP_ERROR);
    expect(r, 6, QCOWRING_OP_FLUSH_DISKCACHE, QCOWRING_RSP_OKAY);
    expect(r, 7, QCOWRING_OP_WRITE_BARRIER, QCOWRING_RSP_OKAY);
    expect(r, 8, QCOWRING_OP_READ, QCOWRING_RSP_OKAY);
    valid_roundtrip(r);
}

static void test_segments(struct rig *r)
{
    struct qcowring_request q;

    q = rw(QCOWRING_OP_READ, 1, 0, 1);
    q.seg[0].first_sect = 5, q.seg[0].last_sect = 4;
    post_rw(r, q);
    q = rw(QCOWRING_OP_READ, 2, 0, 1);
    q.seg[0].last_sect = 8;
    post_rw(r, q);
    q = rw(QCOWRING_OP_WRITE, 3, 0, 2);
    q.seg[1].page = DATA_PAGES;
    post_rw(r, q);
    q = rw(QCOWRING_OP_READ, 4, 0, 1);
    q.seg[0].page = UINT32_MAX;
    post_rw(r, q);
    q = rw(QCOWRING_OP_READ, 5, 0, 1);
    q.seg[0].first_sect = q.seg[0].last_sect = 7;
    q.seg[0].page = DATA_PAGES - 1;
    q.handle = 0xffff, q.pad0 = 0xdeadbeef, q.seg[0].pad = 0x1234;   /* ignored */
    post_rw(r, q);
    CHECK_EQ(serve(r), 1);
    expect(r, 1, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 2, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 3, QCOWRING_OP_WRITE, QCOWRING_RSP_ERROR);
    expect(r, 4, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 5, QCOWRING_OP_READ, QCOWRING_RSP_OKAY);
    CHECK(r->last_io.iovcnt == 1 && r->last_io.length == 512);
    CHECK(r->last_io.iov[0].iov_base ==
          r->srv + qcowring_data_offset(0) + (DATA_PAGES - 1) * 4096 + 7 * 512);
    valid_roundtrip(r);
}

static void test_sector_ranges(struct rig *r)
{
    struct qcowring_request q;

    post_rw(r, rw(QCOWRING_OP_READ, 1, CAPACITY, 1));
    q = rw(QCOWRING_OP_READ, 2, CAPACITY - 1, 1);
    q.seg[0].last_sect = 0;
    post_rw(r, q);                                          /* the last sector: fine */
    q.id = 3, q.seg[0].last_sect = 1;
    post_rw(r, q);                                          /* one past the end */
    post_rw(r, rw(QCOWRING_OP_WRITE, 4, UINT64_MAX - 3, 1)); /* wraps around */
    post_rw(r, rw(QCOWRING_OP_READ, 5, UINT64_MAX, 11));
    post_rw(r, rw(QCOWRING_OP_WRITE_BARRIER, 6, CAPACITY - 4, 1));
    CHECK_EQ(serve(r), 1);
    expect(r, 1, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 3, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 4, QCOWRING_OP_WRITE, QCOWRING_RSP_ERROR);
    expect(r, 5, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 6, QCOWRING_OP_WRITE_BARRIER, QCOWRING_RSP_ERROR);
    expect(r, 2, QCOWRING_OP_READ, QCOWRING_RSP_OKAY);
    valid_roundtrip(r);
}

static void test_discards(struct rig *r)
{
    post_discard(r, 1, 0, 0, 0);
    post_discard(r, 2, 0, 8, 0x02);
    post_discard(r, 3, CAPACITY - 10, 20, 0);
    post_discard(r, 4, 8, UINT64_MAX, 0);
    post_discard(r, 5, UINT64_MAX, 2, 0);
    post_discard(r, 6, 100, 8, QCOWRING_DISCARD_SECURE);
    CHECK_EQ(serve(r), 1);
    for (uint64_t id = 1; id <= 5; id++)
        expect(r, id, QCOWRING_OP_DISCARD, QCOWRING_RSP_ERROR);
    expect(r, 6, QCOWRING_OP_DISCARD, QCOWRING_RSP_OKAY);
    CHECK(r->last_io.op == RING_IO_DISCARD && r->last_io.secure && r->last_io.length == 4096);
    CHECK(r->last_io.sector == 100 && r->last_io.iovcnt == 0);
    valid_roundtrip(r);
}

static void test_indirect(struct rig *r)
{
    struct qcowring_segment *segs = indirect_segs(r, 40);

    for (unsigned i = 0; i < 20; i++)
        segs[i] = (struct qcowring_segment){ .page = i, .first_sect = 0, .last_sect = 7 };
    post_indirect(r, 1, QCOWRING_OP_FLUSH_DISKCACHE, 4, 0, 40);
    post_indirect(r, 2, QCOWRING_OP_INDIRECT, 4, 0, 40);
    post_indirect(r, 3, QCOWRING_OP_READ, 0, 0, 40);
    post_indirect(r, 4, QCOWRING_OP_READ, 65, 0, 40);
    post_indirect(r, 5, QCOWRING_OP_READ, 65535, 0, 40);
    post_indirect(r, 6, QCOWRING_OP_READ, 4, 0, DATA_PAGES);
    post_indirect(r, 7, QCOWRING_OP_READ, 4, 0, UINT32_MAX);
    post_indirect(r, 8, QCOWRING_OP_WRITE, 20, CAPACITY - 8 * 19, 40);  /* past the end */
    post_indirect(r, 9, QCOWRING_OP_WRITE, 20, 8, 40);                  /* fine */
    CHECK_EQ(serve(r), 1);
    expect(r, 1, QCOWRING_OP_FLUSH_DISKCACHE, QCOWRING_RSP_ERROR);
    expect(r, 2, QCOWRING_OP_INDIRECT, QCOWRING_RSP_ERROR);
    for (uint64_t id = 3; id <= 7; id++)
        expect(r, id, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    expect(r, 8, QCOWRING_OP_WRITE, QCOWRING_RSP_ERROR);
    expect(r, 9, QCOWRING_OP_WRITE, QCOWRING_RSP_OKAY);
    CHECK(r->last_io.op == RING_IO_WRITE && r->last_io.iovcnt == 1 &&
          r->last_io.length == 20 * 4096);   /* contiguous pages merged */
    CHECK(memcmp(r->disk.bytes + 8 * 512, r->data, 20 * 4096) == 0);

    segs[3].page = DATA_PAGES + 5;           /* bad descriptor inside the page */
    post_indirect(r, 10, QCOWRING_OP_READ, 20, 0, 40);
    CHECK_EQ(serve(r), 0);
    expect(r, 10, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    segs[3] = (struct qcowring_segment){ .page = 3, .first_sect = 6, .last_sect = 2 };
    post_indirect(r, 11, QCOWRING_OP_READ, 20, 0, 40);
    CHECK_EQ(serve(r), 0);
    expect(r, 11, QCOWRING_OP_READ, QCOWRING_RSP_ERROR);
    valid_roundtrip(r);
}

static void test_malformed(void)
{
    struct rig r;
    struct ring_server_stats st;

    rig_open(&r, QCOWRING_F_FLUSH | QCOWRING_F_BARRIER | QCOWRING_F_DISCARD |
                 QCOWRING_F_DISCARD_SECURE | QCOWRING_F_INDIRECT, 64);
    test_bad_opcodes(&r);
    test_segment_counts(&r);
    test_segments(&r);
    test_sector_ranges(&r);
    test_discards(&r);
    test_indirect(&r);
    ring_server_get_stats(r.rs, &st);
    CHECK_EQ(st.bad[RING_BAD_OPCODE], 4);
    CHECK_EQ(st.bad[RING_BAD_SEGMENT_COUNT], 5 + 3);
    CHECK_EQ(st.bad[RING_BAD_SECTORS], 2 + 1);
    CHECK_EQ(st.bad[RING_BAD_PAGE], 2 + 3);
    CHECK_EQ(st.bad[RING_BAD_RANGE], 5 + 3 + 1);
    CHECK_EQ(st.bad[RING_BAD_DISCARD], 2);
    CHECK_EQ(st.bad[RING_BAD_INDIRECT], 2);
    CHECK_EQ(st.bad_requests, 4 + 8 + 3 + 5 + 9 + 2 + 2);
    CHECK_EQ(st.responses, st.requests + st.bad_requests);
    CHECK(r.logs > 0 && !st.broken);
    rig_close(&r);
}

/* MAP (qcowd's own operation): its answer pages must lie in the data
 * area, and it is allowed on a read-only ring. */
static void test_maps(void)
{
    struct rig r;
    struct ring_server_stats st;

    rig_open(&r, QCOWRING_F_READ_ONLY | QCOWRING_F_MAP, 0);
    post_map(&r, 1, 0, 0, 0, 1, 0);                     /* no sectors */
    post_map(&r, 2, 0, 8, 0, 1, 1);                     /* a flag */
    post_map(&r, 3, 0, 8, 0, 0, 0);                     /* no pages */
    post_map(&r, 4, 0, 8, 0, QCOWRING_MAP_MAX_PAGES + 1, 0);
    post_map(&r, 5, 0, 8, DATA_PAGES - 1, 2, 0);        /* past the data area */
    post_map(&r, 6, 0, 8, UINT32_MAX, 2, 0);            /* wrapping */
    post_map(&r, 7, CAPACITY - 4, 8, 0, 1, 0);          /* past the disk */
    post_map(&r, 8, 16, 64, DATA_PAGES - 2, 2, 0);      /* fine */
    CHECK_EQ(serve(&r), 1);
    for (uint64_t id = 1; id <= 7; id++)
        expect(&r, id, QCOWRING_OP_MAP, QCOWRING_RSP_ERROR);
    expect(&r, 8, QCOWRING_OP_MAP, QCOWRING_RSP_OKAY);
    CHECK(r.last_io.op == RING_IO_MAP && r.last_io.sector == 16 && r.last_io.length == 64 * 512);
    CHECK(r.last_io.iovcnt == 1 && r.last_io.iov[0].iov_len == 2 * 4096);
    ring_server_get_stats(r.rs, &st);
    CHECK_EQ(st.bad[RING_BAD_MAP], 4);
    CHECK_EQ(st.bad[RING_BAD_PAGE], 2);
    CHECK_EQ(st.bad[RING_BAD_RANGE], 1);
    rig_close(&r);

    rig_open(&r, QCOWRING_F_FLUSH, 0);
    post_map(&r, 1, 0, 8, 0, 1, 0);
    CHECK_EQ(serve(&r), 0);
    expect(&r, 1, QCOWRING_OP_MAP, QCOWRING_RSP_EOPNOTSUPP);
    rig_close(&r);
}

static void test_feature_gates(void)
{
    struct rig r;

    rig_open(&r, 0, 0);
    post_rw(&r, rw(QCOWRING_OP_FLUSH_DISKCACHE, 1, 0, 0));
    post_rw(&r, rw(QCOWRING_OP_WRITE_BARRIER, 2, 0, 0));
    post_discard(&r, 3, 0, 8, 0);
    post_indirect(&r, 4, QCOWRING_OP_READ, 4, 0, 1);
    post_discard(&r, 5, 0, 8, QCOWRING_DISCARD_SECURE);
    CHECK_EQ(serve(&r), 0);
    expect(&r, 1, QCOWRING_OP_FLUSH_DISKCACHE, QCOWRING_RSP_EOPNOTSUPP);
    expect(&r, 2, QCOWRING_OP_WRITE_BARRIER, QCOWRING_RSP_EOPNOTSUPP);
    expect(&r, 3, QCOWRING_OP_DISCARD, QCOWRING_RSP_EOPNOTSUPP);
    expect(&r, 4, QCOWRING_OP_INDIRECT, QCOWRING_RSP_EOPNOTSUPP);
    expect(&r, 5, QCOWRING_OP_DISCARD, QCOWRING_RSP_EOPNOTSUPP);
    valid_roundtrip(&r);
    rig_close(&r);

    rig_open(&r, QCOWRING_F_READ_ONLY | QCOWRING_F_FLUSH | QCOWRING_F_DISCARD |
                 QCOWRING_F_INDIRECT, 32);
    post_rw(&r, rw(QCOWRING_OP_WRITE, 1, 0, 1));
    post_discard(&r, 2, 0, 8, 0);
    post_indirect(&r, 3, QCOWRING_OP_WRITE, 16, 0, 1);
    post_rw(&r, rw(QCOWRING_OP_FLUSH_DISKCACHE, 4, 0, 1));   /* a flush with data */
    post_rw(&r, rw(QCOWRING_OP_FLUSH_DISKCACHE, 5, 0, 0));
    post_rw(&r, rw(QCOWRING_OP_READ, 6, 0, 11));
    CHECK_EQ(serve(&r), 2);
    expect(&r, 1, QCOWRING_OP_WRITE, QCOWRING_RSP_ERROR);
    expect(&r, 2, QCOWRING_OP_DISCARD, QCOWRING_RSP_ERROR);
    expect(&r, 3, QCOWRING_OP_WRITE, QCOWRING_RSP_ERROR);
    expect(&r, 4, QCOWRING_OP_FLUSH_DISKCACHE, QCOWRING_RSP_ERROR);
    expect(&r, 5, QCOWRING_OP_FLUSH_DISKCACHE, QCOWRING_RSP_OKAY);
    expect(&r, 6, QCOWRING_OP_READ, QCOWRING_RSP_OKAY);
    rig_close(&r);
}

/* ------------------------------------------------------------------------ */
/* Corrupt indices                                                          */
/* ------------------------------------------------------------------------ */

static void check_broken(struct rig *r)
{
    struct ring_io *ios[4];
    uint64_t count = 0;

    CHECK(ring_server_is_broken(r->rs));
    CHECK(ring_server_broken_reason(r->rs) != NULL);
    CHECK(strstr(r->last_log, "broken") != NULL);
    CHECK_EQ(ring_server_poll_requests(r->rs, ios, 4), -EPROTO);
    CHECK(!ring_server_final_check(r->rs));
    CHECK_EQ(((struct qcowring_info *)r->cli)->server_state, QCOWRING_STATE_BROKEN);
    CHECK_EQ(read(r->fds.rsp_eventfd, &count, sizeof(count)), sizeof(count));
    CHECK(count > 0);
}

static void set_req_prod(struct rig *r, uint32_t value)
{
    r->req_prod = value;
    qcowring_store_release(&r->ring->req_prod, value);
}

static void test_index_far_ahead(void)
{
    struct rig r;

    rig_open(&r, 0, 0);
    set_req_prod(&r, r.entries + 1);
    CHECK_EQ(serve(&r), -EPROTO);
    check_broken(&r);
    expect_no_response(&r);
    rig_close(&r);

    rig_open(&r, 0, 0);
    set_req_prod(&r, 0x80000000u);
    CHECK_EQ(serve(&r), -EPROTO);
    check_broken(&r);
    rig_close(&r);
}

static void test_index_behind(void)
{
    struct rig r;

    rig_open(&r, 0, 0);
    for (int i = 0; i < 5; i++)
        post_rw(&r, rw(QCOWRING_OP_READ, (uint64_t)i, 0, 1));
    CHECK_EQ(serve(&r), 5);
    set_req_prod(&r, 3);
    CHECK_EQ(serve(&r), -EPROTO);
    check_broken(&r);
    rig_close(&r);

    rig_open(&r, 0, 0);
    set_req_prod(&r, UINT32_MAX);
    CHECK_EQ(serve(&r), -EPROTO);
    check_broken(&r);
    rig_close(&r);
}

/* Requests in flight are capped at the ring size: a client that posts more
 * than the ring holds before the responses come back is broken. */
/* ------------------------------------------------------------------------ */
/* Doorbells the client shares                                               */
/* ------------------------------------------------------------------------ */

/* The client saturates its response doorbell (and, with blocking, makes it
 * blocking: O_NONBLOCK belongs to the open file description both hold).
 * Answering must not block the server; the ring is broken instead, with the
 * answer published. */
static void test_wedged_response_doorbell(bool blocking)
{
    uint64_t most = UINT64_C(0xfffffffffffffffe);
    struct rig r;
    int flags;

    rig_open(&r, 0, 0);
    flags = fcntl(r.fds.rsp_eventfd, F_GETFL);
    CHECK(flags >= 0);
    if (blocking)
        CHECK_EQ(fcntl(r.fds.rsp_eventfd, F_SETFL, flags & ~O_NONBLOCK), 0);
    CHECK_EQ(write(r.fds.rsp_eventfd, &most, sizeof(most)), sizeof(most));
    qcowring_store_release(&r.ring->rsp_event, 1);      /* wake me at the first answer */
    post_rw(&r, rw(QCOWRING_OP_READ, 7, 0, 1));
    CHECK_EQ(serve(&r), -EPROTO);
    CHECK(ring_server_is_broken(r.rs));
    CHECK(strstr(ring_server_broken_reason(r.rs), "doorbell") != NULL);
    CHECK_EQ(((struct qcowring_info *)r.cli)->server_state, QCOWRING_STATE_BROKEN);
    CHECK_EQ(qcowring_load_acquire(&r.ring->rsp_prod), 1);
    CHECK_EQ(next_response(&r).id, 7);
    /* Blocking, the write slept and the guard's tick cut it short. */
    CHECK_EQ(doorbell_interrupted(), blocking ? 1 : 0);
    rig_close(&r);
}

static void test_in_flight_cap(void)
{
    struct ring_io *ios[64];
    struct ring_io *one;
    struct rig r;
    int n;

    rig_open(&r, 0, 0);
    for (uint32_t i = 0; i < r.entries; i++)
        post_rw(&r, rw(QCOWRING_OP_READ, i, 0, 1));
    CHECK_EQ(ring_server_poll_requests(r.rs, ios, 3), 3);
    n = ring_server_poll_requests(r.rs, ios + 3, 64);
    CHECK_EQ(n, (int)r.entries - 3);
    CHECK_EQ(ring_server_in_flight(r.rs), r.entries);
    CHECK(!ring_server_final_check(r.rs));
    CHECK_EQ(ring_server_respond(r.rs, ios[0], QCOWRING_RSP_OKAY), 0);
    CHECK_EQ(ring_server_respond(r.rs, ios[0], QCOWRING_RSP_OKAY), -EINVAL);   /* twice */
    post_rw(&r, rw(QCOWRING_OP_READ, 100, 0, 1));    /* one slot was freed: fine */
    CHECK_EQ(ring_server_poll_requests(r.rs, &one, 1), 1);
    ios[0] = one;
    post_rw(&r, rw(QCOWRING_OP_READ, 101, 0, 1));    /* ring size + 1 unanswered */
    CHECK_EQ(ring_server_poll_requests(r.rs, &one, 1), -EPROTO);
    check_broken(&r);
    for (uint32_t i = 0; i < r.entries; i++)
        CHECK_EQ(ring_server_respond(r.rs, ios[i], QCOWRING_RSP_OKAY), -EPROTO);
    CHECK_EQ(ring_server_in_flight(r.rs), 0);
    rig_close(&r);
}

/* ------------------------------------------------------------------------ */
/* Random rings                                                             */
/* ------------------------------------------------------------------------ */

/* Mostly plausible values, sometimes anything. */
static void random_entry(uint64_t *s, union qcowring_entry *e)
{
    static const uint8_t ops[] = { 0, 1, 2, 3, 4, 5, 6, 7, 255 };
    uint8_t *b = (uint8_t *)e;

    for (size_t i = 0; i < sizeof(*e); i++)
        b[i] = (uint8_t)xorshift64(s);
    e->req.operation = xorshift64(s) % 8 ? ops[xorshift64(s) % sizeof(ops)] : (uint8_t)xorshift64(s);
    if (xorshift64(s) % 4) {
        e->req.nr_segments = (uint8_t)(xorshift64(s) % 13);
        e->indirect.indirect_op = (uint8_t)(xorshift64(s) % 3);
    }
    if (xorshift64(s) % 2)
        e->req.sector_number = xorshift64(s) % (CAPACITY + 20);
    for (unsigned i = 0; i < QCOWRING_MAX_SEGMENTS && xorshift64(s) % 4; i++) {
        e->req.seg[i].page = (uint32_t)(xorshift64(s) % (DATA_PAGES + 4));
        e->req.seg[i].first_sect = (uint8_t)(xorshift64(s) % 9);
        e->req.seg[i].last_sect = (uint8_t)(xorshift64(s) % 9);
    }
    if (e->req.operation == QCOWRING_OP_INDIRECT && xorshift64(s) % 2) {
        e->indirect.nr_segments = (uint16_t)(xorshift64(s) % 80);
        e->indirect.indirect_pages[0] = (uint32_t)(xorshift64(s) % (DATA_PAGES + 2));
    }
}

/* Indirect pages and data: random descriptors, mostly in range. */
static void scribble_data(struct rig *r, uint64_t *s)
{
    for (unsigned k = 0; k < 64; k++) {
        struct qcowring_segment *seg = indirect_segs(r, (uint32_t)(xorshift64(s) % DATA_PAGES));
        unsigned i = (unsigned)(xorshift64(s) % QCOWRING_SEGMENTS_PER_INDIRECT_PAGE);
        seg[i].page = (uint32_t)(xorshift64(s) % (DATA_PAGES + 2));
        seg[i].first_sect = (uint8_t)(xorshift64(s) % 9);
        seg[i].last_sect = (uint8_t)(xorshift64(s) % 9);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One round: k random requests; every one must be answered, ids echoed. */
static bool random_round(struct rig *r, uint64_t *s)
{
    uint64_t posted[64], answered[64];
    uint32_t k = (uint32_t)(xorshift64(s) % (r->entries + 1));

    scribble_data(r, s);
    for (uint32_t i = 0; i < k; i++) {
        union qcowring_entry e;
        random_entry(s, &e);
        posted[i] = e.req.id;
        post(r, &e, sizeof(e));
    }
    if (xorshift64(s) % 16 == 0)
        set_req_prod(r, r->req_prod + (uint32_t)xorshift64(s));  /* a wild index */
    r->ring->rsp_event = (uint32_t)xorshift64(s);               /* junk the server must survive */
    if (serve(r) < 0)
        return false;
    for (uint32_t i = 0; i < k; i++)
        answered[i] = next_response(r).id;
    expect_no_response(r);
    qsort(posted, k, sizeof(posted[0]), cmp_u64);
    qsort(answered, k, sizeof(answered[0]), cmp_u64);
    CHECK(memcmp(posted, answered, k * sizeof(posted[0])) == 0);
    return true;
}

static void test_random(unsigned rounds)
{
    uint64_t seed = 0x1234567887654321ull;
    unsigned broken = 0, fine = 0;
    struct rig r;

    rig_open(&r, QCOWRING_F_FLUSH | QCOWRING_F_BARRIER | QCOWRING_F_DISCARD |
                 QCOWRING_F_INDIRECT, 64);
    for (unsigned i = 0; i < rounds; i++) {
        if (random_round(&r, &seed)) {
            valid_roundtrip(&r);
            fine++;
            continue;
        }
        check_broken(&r);
        broken++;
        rig_close(&r);
        rig_open(&r, QCOWRING_F_FLUSH | QCOWRING_F_BARRIER | QCOWRING_F_DISCARD |
                     QCOWRING_F_INDIRECT, 64);
    }
    rig_close(&r);
    fprintf(stderr, "random rounds: %u served, %u broke the ring\n", fine, broken);
    CHECK(fine > 0 && broken > 0);
}

/* ------------------------------------------------------------------------ */
/* A client rewriting the ring while the server reads it                    */
/* ------------------------------------------------------------------------ */

struct flipper {
    struct rig *r;
    atomic_bool stop;
};

/* Rewrites request slots and indirect pages (not the indices) at random. */
static void *flip(void *arg)
{
    struct flipper *f = arg;
    uint64_t s = 42;
    uint8_t *ring = (uint8_t *)f->r->ring->ring;
    size_t ring_bytes = f->r->entries * sizeof(union qcowring_entry);
    size_t data_bytes = (size_t)DATA_PAGES * QCOWRING_PAGE_SIZE;

    while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
        uint64_t v = xorshift64(&s);
        uint8_t *p = v % 2 ? ring + (v >> 8) % ring_bytes : f->r->data + (v >> 8) % data_bytes;
        __atomic_store_n(p, (uint8_t)(v >> 1) % (v % 5 ? 8 : 255), __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_concurrent_rewrites(unsigned rounds)
{
    struct flipper f;
    pthread_t t;
    struct rig r;
    uint64_t seed = 99;

    rig_open(&r, QCOWRING_F_FLUSH | QCOWRING_F_DISCARD | QCOWRING_F_INDIRECT, 64);
    f.r = &r;
    atomic_init(&f.stop, false);
    CHECK_EQ(pthread_create(&t, NULL, flip, &f), 0);
    for (unsigned i = 0; i < rounds; i++) {
        uint32_t k = 1 + (uint32_t)(xorshift64(&seed) % r.entries);
        for (uint32_t j = 0; j < k; j++) {
            union qcowring_entry e;
            random_entry(&seed, &e);
            post(&r, &e, sizeof(e));
        }
        CHECK(serve(&r) >= 0);
        for (uint32_t j = 0; j < k; j++)
            next_response(&r);
    }
    atomic_store(&f.stop, true);
    pthread_join(t, NULL);
    CHECK(!ring_server_is_broken(r.rs));
    valid_roundtrip(&r);
    rig_close(&r);
}

int main(void)
{
    /* A server that blocks on the client's doorbell would hang here. */
    alarm(30);
    test_wedged_response_doorbell(false);
    test_wedged_response_doorbell(true);
    alarm(300);
    test_malformed();
    test_maps();
    test_feature_gates();
    test_index_far_ahead();
    test_index_behind();
    test_in_flight_cap();
    test_random(20000);
    test_concurrent_rewrites(10000);
    return 0;
}
