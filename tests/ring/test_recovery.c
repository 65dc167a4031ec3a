/* Recovery: a server "dies" at a random journal step (ring_server.c built
 * with RING_SERVER_CRASH_TEST; the hook longjmps out), a new server starts
 * on the same ring and journal, and the client must see every request
 * answered exactly once, with no unknown or duplicate ids, and the writes on
 * the disk, across thousands of crashes, out-of-order completions, deferred
 * publications and index wrap-around.  Crashes also hit the recovery itself. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qcowring-client.h"
#include "ring_test.h"
#include "serve.h"

extern void (*ring_server_crash_hook)(void);

#define DATA_PAGES 64
#define MAX_IDS 200000

static jmp_buf crash_jump;
static long crash_countdown;      /* < 0: no crash armed */
static unsigned crashes;

static void crash_hook(void)
{
    if (crash_countdown >= 0 && crash_countdown-- == 0) {
        crashes++;
        longjmp(crash_jump, 1);
    }
}

struct client {
    uint8_t *mem;
    struct qcowring_sring *ring;
    uint8_t *data;
    uint32_t entries, req_prod, rsp_cons;
    uint64_t next_id;
    uint8_t *outstanding;         /* by id: 0 none, 1 valid, 2 invalid */
    uint8_t *is_write;            /* by id: a valid write */
    int32_t page_of[MAX_IDS];
    int32_t indirect_page_of[MAX_IDS];
    uint32_t free_pages[DATA_PAGES];
    unsigned nr_free_pages;
    uint64_t answered;
};

struct server {
    struct ring_server_config cfg;
    struct ring_server *rs;
    struct fake_disk *disk;
    struct ring_io *held[256];
    unsigned nheld;
    unsigned seed;
};

/* ------------------------------------------------------------------------ */

/* Every fifth request is an indirect write: its one descriptor sits in a
 * second page, so a replay must use the journal's copy of the list. */
static void fill_indirect(struct client *c, uint64_t id, uint32_t page,
                          union qcowring_entry *e)
{
    uint32_t ind = c->free_pages[--c->nr_free_pages];
    struct qcowring_segment seg = { .page = page, .first_sect = 0, .last_sect = 0 };

    memcpy(c->data + (size_t)ind * 4096, &seg, sizeof(seg));
    c->indirect_page_of[id] = (int32_t)ind;
    memset(e, 0, sizeof(*e));
    e->indirect.operation = QCOWRING_OP_INDIRECT;
    e->indirect.indirect_op = QCOWRING_OP_WRITE;
    e->indirect.nr_segments = 1;
    e->indirect.id = id;
    e->indirect.sector_number = id;
    e->indirect.indirect_pages[0] = ind;
}

static void post(struct client *c, bool invalid)
{
    union qcowring_entry e;
    struct qcowring_request q;
    uint64_t id = c->next_id++;
    uint32_t page = c->free_pages[--c->nr_free_pages];

    CHECK(id < MAX_IDS);
    memset(&q, 0, sizeof(q));
    q.operation = invalid ? 200 : (id % 3 ? QCOWRING_OP_WRITE : QCOWRING_OP_READ);
    q.nr_segments = 1;
    q.id = id;
    q.sector_number = id;                 /* one sector of its own */
    q.seg[0] = (struct qcowring_segment){ .page = page, .first_sect = 0, .last_sect = 0 };
    memset(c->data + (size_t)page * 4096, (int)(id * 7 + 1), 512);
    e.req = q;
    c->indirect_page_of[id] = -1;
    if (!invalid && id % 5 == 4) {
        fill_indirect(c, id, page, &e);
        q.operation = QCOWRING_OP_WRITE;
    }
    memcpy(&c->ring->ring[c->req_prod & (c->entries - 1)], &e, sizeof(e));
    c->req_prod++;
    c->outstanding[id] = invalid ? 2 : 1;
    c->is_write[id] = q.operation == QCOWRING_OP_WRITE;
    c->page_of[id] = (int32_t)page;
    qcowring_store_release(&c->ring->req_prod, c->req_prod);
}

static void collect(struct client *c)
{
    uint32_t prod = qcowring_load_acquire(&c->ring->rsp_prod);

    CHECK((uint32_t)(prod - c->rsp_cons) <= (uint32_t)(c->req_prod - c->rsp_cons));
    while (c->rsp_cons != prod) {
        struct qcowring_response rsp;
        memcpy(&rsp, &c->ring->ring[c->rsp_cons & (c->entries - 1)].rsp, sizeof(rsp));
        c->rsp_cons++;
        CHECK(rsp.id < c->next_id);
        CHECK(c->outstanding[rsp.id] != 0);   /* never twice, never unknown */
        CHECK_EQ(rsp.status, c->outstanding[rsp.id] == 2 ? QCOWRING_RSP_EOPNOTSUPP
                                                          : QCOWRING_RSP_OKAY);
        c->outstanding[rsp.id] = 0;
        c->free_pages[c->nr_free_pages++] = (uint32_t)c->page_of[rsp.id];
        if (c->indirect_page_of[rsp.id] >= 0)
            c->free_pages[c->nr_free_pages++] = (uint32_t)c->indirect_page_of[rsp.id];
        c->answered++;
    }
}

static unsigned room(const struct client *c)
{
    unsigned ring_room = c->entries - (c->req_prod - c->rsp_cons);

    return ring_room < c->nr_free_pages / 2 ? ring_room : c->nr_free_pages / 2;
}

/* ------------------------------------------------------------------------ */

static void serve_step(struct server *s)
{
    struct ring_io *ios[64];
    int n = ring_server_poll_requests(s->rs, ios, 1 + (unsigned)rand_r(&s->seed) % 64);

    CHECK(n >= 0);
    for (int i = 0; i < n; i++)
        s->held[s->nheld++] = ios[i];
    /* Answer a random subset in a random order; publish only sometimes. */
    for (unsigned k = (unsigned)rand_r(&s->seed) % (s->nheld + 1); k > 0; k--) {
        unsigned j = (unsigned)rand_r(&s->seed) % s->nheld;
        struct ring_io *io = s->held[j];
        s->held[j] = s->held[--s->nheld];
        CHECK_EQ(ring_server_respond_deferred(s->rs, io, fake_disk_serve(s->disk, io)), 0);
    }
    if (rand_r(&s->seed) % 2)
        CHECK_EQ(ring_server_push_responses(s->rs), 0);
}

/* Start a new server on the journal after a crash; crashes may hit the
 * recovery too (ring_server_new() sets *out first, so a server that died
 * while starting is freed on the next try). */
static void recover(struct server *s)
{
    for (;;) {
        crash_countdown = rand_r(&s->seed) % 4 ? -1 : rand_r(&s->seed) % 20;
        if (setjmp(crash_jump) == 0) {
            s->nheld = 0;
            ring_server_free(s->rs);
            s->rs = NULL;
            CHECK_EQ(ring_server_new(&s->cfg, &s->rs), 0);
            return;
        }
    }
}

/* The server logs a mismatch between its journal and its indices. */
static void no_journal_complaints(void *opaque, const char *msg)
{
    (void)opaque;
    if (strncmp(msg, "journal", 7) == 0) {
        fprintf(stderr, "%s\n", msg);
        exit(1);
    }
}

static const struct qcowring_params params = {
    .capacity_sectors = MAX_IDS, .ring_page_order = 0, .data_pages = DATA_PAGES,
    .max_indirect_segments = 16, .features = QCOWRING_F_FLUSH | QCOWRING_F_INDIRECT,
};

/* A well-behaved client written against qcowring.h, indices from start. */
static void client_open(struct client *c, int memfd, uint32_t start)
{
    size_t size = qcowring_total_size(0, DATA_PAGES);

    memset(c, 0, sizeof(*c));
    c->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    CHECK(c->mem != MAP_FAILED);
    c->ring = (struct qcowring_sring *)(c->mem + QCOWRING_RING_OFFSET);
    c->data = c->mem + qcowring_data_offset(0);
    c->entries = qcowring_ring_entries(0);
    c->outstanding = calloc(MAX_IDS, 1);
    c->is_write = calloc(MAX_IDS, 1);
    CHECK(c->outstanding && c->is_write);
    for (uint32_t i = 0; i < DATA_PAGES; i++)
        c->free_pages[c->nr_free_pages++] = i;
    c->ring->req_prod = c->ring->rsp_prod = c->req_prod = c->rsp_cons = start;
    c->ring->req_event = c->ring->rsp_event = start + 1;
}

static void client_close(struct client *c)
{
    munmap(c->mem, qcowring_total_size(0, DATA_PAGES));
    free(c->outstanding);
    free(c->is_write);
}

/* A server with a fresh journal (anonymous shared memory). */
static void server_open(struct server *s, const struct qcowring_fds *fds,
                        struct fake_disk *disk, uint32_t start)
{
    size_t jsize;

    memset(s, 0, sizeof(*s));
    test_geometry_from_params(&s->cfg.geo, &params);
    CHECK_EQ(ring_server_map(fds->memfd, &s->cfg.geo, &s->cfg.base, &s->cfg.map_size), 0);
    s->cfg.req_eventfd = fds->req_eventfd;
    s->cfg.rsp_eventfd = fds->rsp_eventfd;
    s->cfg.start_index = start;
    s->cfg.log = no_journal_complaints;
    jsize = ring_server_journal_size(&s->cfg.geo);
    CHECK(jsize > 0);
    s->cfg.journal = mmap(NULL, jsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
    CHECK(s->cfg.journal != MAP_FAILED);
    s->cfg.journal_size = jsize - 1;
    CHECK_EQ(ring_server_new(&s->cfg, &s->rs), -EINVAL);   /* too small */
    s->cfg.journal_size = jsize;
    s->disk = disk;
    s->seed = start ^ 5;
    CHECK_EQ(ring_server_new(&s->cfg, &s->rs), 0);
}

static void server_close(struct server *s)
{
    CHECK(!ring_server_is_broken(s->rs));
    ring_server_free(s->rs);
    munmap(s->cfg.journal, s->cfg.journal_size);
    munmap(s->cfg.base, s->cfg.map_size);
}

/* Random traffic; the server dies at random journal steps. */
static void crash_often(struct client *c, struct server *s, unsigned iterations)
{
    ring_server_crash_hook = crash_hook;
    for (unsigned it = 0; it < iterations; it++) {
        unsigned k = room(c) ? (unsigned)rand_r(&s->seed) % (room(c) + 1) : 0;
        while (k--)
            post(c, rand_r(&s->seed) % 10 == 0);
        crash_countdown = rand_r(&s->seed) % 3 ? rand_r(&s->seed) % 40 : -1;
        if (setjmp(crash_jump) == 0)
            serve_step(s);
        else
            recover(s);
        crash_countdown = -1;
        collect(c);
    }
    ring_server_crash_hook = NULL;
}

/* No more crashes: everything gets answered, every write is on the disk. */
static void finish(struct client *c, struct server *s)
{
    while (c->answered < c->next_id) {
        serve_step(s);
        while (s->nheld) {
            struct ring_io *io = s->held[--s->nheld];
            CHECK_EQ(ring_server_respond_deferred(s->rs, io, fake_disk_serve(s->disk, io)), 0);
        }
        CHECK_EQ(ring_server_push_responses(s->rs), 0);
        collect(c);
    }
    CHECK_EQ(ring_server_in_flight(s->rs), 0);
    for (uint64_t id = 0; id < c->next_id; id++) {
        uint8_t want[512];
        memset(want, (int)(id * 7 + 1), sizeof(want));
        if (c->is_write[id])
            CHECK(memcmp(s->disk->bytes + id * 512, want, 512) == 0);
    }
}

static void run(unsigned iterations, uint32_t start)
{
    static struct client c;
    static struct server s;
    struct qcowring_fds fds;
    struct fake_disk disk;

    CHECK_EQ(qcowring_create(&params, &fds), 0);
    CHECK_EQ(fake_disk_init(&disk, MAX_IDS * 512ull, 0), 0);
    client_open(&c, fds.memfd, start);
    server_open(&s, &fds, &disk, start);
    crash_often(&c, &s, iterations);
    finish(&c, &s);
    fprintf(stderr, "start %08x: %llu requests, %u crashes\n", start,
            (unsigned long long)c.next_id, crashes);
    server_close(&s);
    client_close(&c);
    fake_disk_destroy(&disk);
    qcowring_close_fds(&fds);
}

int main(void)
{
    alarm(300);
    run(20000, 0);
    run(20000, 0xfffff000u);
    CHECK(crashes > 1000);
    return 0;
}
