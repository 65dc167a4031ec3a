/* libFuzzer target: ring_server_poll_requests() over arbitrary ring memory.
 *
 * The input chooses a geometry, the indices and the contents of the shared
 * ring and data pages; the memory is a heap block of exactly the mapping's
 * size, so AddressSanitizer catches any access outside it.  Every ring_io
 * handed out is checked: iovecs inside the data area, lengths consistent,
 * sectors within capacity, in-flight requests within the ring size.
 * Optionally the server has a recovery journal (fresh, or with contents
 * from the input) and is restarted on it half-way. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/worker/ring_server.h"

#define ROUNDS 4

struct header {
    uint64_t capacity;
    uint32_t start_index;
    uint32_t prod_steps[ROUNDS];   /* req_prod += step, per round */
    uint16_t max_indirect;
    uint8_t features;
    uint8_t data_pages;
    uint8_t respond_mask;          /* which requests are answered at once */
    uint8_t batch;                 /* max per poll */
    uint8_t journal_mode;          /* 0 none, 1 fresh, 2 contents from the input */
    uint8_t pad[7];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void geometry_from(const struct header *h, struct ring_server_geometry *g)
{
    memset(g, 0, sizeof(*g));
    g->capacity_sectors = h->capacity % (1ull << 40);
    if (h->features & 0x80)
        g->capacity_sectors = QCOWRING_MAX_CAPACITY_SECTORS - (h->capacity & 0xffff);
    g->features = h->features & 0x7f;
    g->ring_page_order = 0;
    g->data_pages = 1 + h->data_pages % 8;
    if (g->features & QCOWRING_F_INDIRECT)
        g->max_indirect_segments = QCOWRING_MAX_SEGMENTS + 1 + h->max_indirect % 1100;
}

static void check_io(const struct ring_io *io, const uint8_t *area, size_t area_len,
                     const struct ring_server_geometry *g)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < io->iovcnt; i++) {
        const uint8_t *b = io->iov[i].iov_base;
        check(b >= area && io->iov[i].iov_len <= area_len &&
              (size_t)(b - area) <= area_len - io->iov[i].iov_len);
        check(io->iov[i].iov_len % QCOWRING_SECTOR_SIZE == 0 && io->iov[i].iov_len > 0);
        total += io->iov[i].iov_len;
    }
    if (io->op != RING_IO_DISCARD && io->op != RING_IO_MAP)
        check(total == io->length);
    check(io->length % QCOWRING_SECTOR_SIZE == 0);
    check(io->sector <= g->capacity_sectors &&
          io->length / QCOWRING_SECTOR_SIZE <= g->capacity_sectors - io->sector);
}

/* Poll, check, answer some at once and the rest at the end (unless the
 * server is about to "die" with them). */
static void run_rounds(struct ring_server *rs, struct qcowring_sring *s, const struct header *h,
                       const struct ring_server_geometry *g, const uint8_t *area, size_t area_len,
                       bool dies)
{
    struct ring_io *held[64];
    unsigned nheld = 0;

    for (unsigned r = 0; r < ROUNDS; r++) {
        struct ring_io *ios[32];
        unsigned max = 1 + h->batch % 32;
        int n;
        uint32_t prod = __atomic_load_n(&s->req_prod, __ATOMIC_RELAXED);
        __atomic_store_n(&s->req_prod, prod + h->prod_steps[r], __ATOMIC_RELEASE);
        n = ring_server_poll_requests(rs, ios, max);
        if (n < 0)
            break;
        check((unsigned)n <= max && ring_server_in_flight(rs) <= ring_server_ring_size(rs));
        for (int i = 0; i < n; i++) {
            check_io(ios[i], area, area_len, g);
            if ((h->respond_mask >> (i % 8)) & 1 || nheld == 64)
                ring_server_respond(rs, ios[i], QCOWRING_RSP_OKAY);
            else
                held[nheld++] = ios[i];
        }
        (void)ring_server_final_check(rs);
    }
    while (nheld && !dies)
        ring_server_respond_deferred(rs, held[--nheld], QCOWRING_RSP_ERROR);
    ring_server_push_responses(rs);
}

/* Answer whatever is still to be handed out (requests replayed from a
 * journal); afterwards nothing may be left in flight. */
static void drain(struct ring_server *rs, const struct ring_server_geometry *g,
                  const uint8_t *area, size_t area_len)
{
    struct ring_io *ios[32];
    int n;

    while ((n = ring_server_poll_requests(rs, ios, 32)) > 0)
        for (int i = 0; i < n; i++) {
            check_io(ios[i], area, area_len, g);
            ring_server_respond(rs, ios[i], QCOWRING_RSP_OKAY);
        }
    check(ring_server_is_broken(rs) || ring_server_in_flight(rs) == 0);
}

/* A journal as a previous server would have left it, but with contents
 * from the input (the header names this geometry, so it is resumed). */
static void *input_journal(const struct header *h, const struct ring_server_geometry *g,
                           const uint8_t *data, size_t size, size_t *jsize)
{
    uint8_t *j;

    *jsize = ring_server_journal_size(g);
    j = calloc(1, *jsize);
    if (!j || h->journal_mode != 2)
        return j;
    memcpy(j, data, size < *jsize ? size : *jsize);
    memcpy(j, "QCRJRNL1", 8);
    uint32_t entries = qcowring_ring_entries(0);
    uint32_t max_segs = (g->features & QCOWRING_F_INDIRECT) ? g->max_indirect_segments : 0;
    memcpy(j + 8, &entries, 4);
    memcpy(j + 12, &max_segs, 4);
    return j;
}

/* The shared memory: exactly the mapping's size, ring and data from the
 * input (the qcowd page stays zero: the server never reads it). */
static uint8_t *input_memory(const struct header *h, const struct ring_server_geometry *g,
                             const uint8_t *body, size_t body_len, size_t *total)
{
    uint8_t *mem;

    *total = qcowring_total_size(0, g->data_pages);
    mem = aligned_alloc(QCOWRING_PAGE_SIZE, *total);
    if (!mem)
        return NULL;
    memset(mem, 0, *total);
    if (body_len > *total - QCOWRING_RING_OFFSET)
        body_len = *total - QCOWRING_RING_OFFSET;
    memcpy(mem + QCOWRING_RING_OFFSET, body, body_len);
    ((struct qcowring_sring *)(mem + QCOWRING_RING_OFFSET))->req_prod = h->start_index;
    return mem;
}

/* Serve; with a journal, let the server die and a new one take over. */
static void serve_input(struct ring_server_config *cfg, const struct header *h)
{
    uint8_t *mem = cfg->base;
    size_t data_off = qcowring_data_offset(0), area_len = cfg->map_size - data_off;
    struct qcowring_sring *s = (struct qcowring_sring *)(mem + QCOWRING_RING_OFFSET);
    struct ring_server *rs;

    if (ring_server_new(cfg, &rs) != 0)
        return;
    run_rounds(rs, s, h, &cfg->geo, mem + data_off, area_len, cfg->journal != NULL);
    if (cfg->journal) {
        ring_server_free(rs);
        if (ring_server_new(cfg, &rs) != 0)
            return;
        run_rounds(rs, s, h, &cfg->geo, mem + data_off, area_len, false);
    }
    drain(rs, &cfg->geo, mem + data_off, area_len);
    ring_server_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ring_server_config cfg;
    struct header h;

    if (size < sizeof(h))
        return 0;
    memcpy(&h, data, sizeof(h));
    memset(&cfg, 0, sizeof(cfg));
    geometry_from(&h, &cfg.geo);
    cfg.base = input_memory(&h, &cfg.geo, data + sizeof(h), size - sizeof(h), &cfg.map_size);
    cfg.start_index = h.start_index;
    cfg.req_eventfd = cfg.rsp_eventfd = -1;
    /* The journal takes the same input bytes as the ring: both are "anything". */
    if (h.journal_mode == 1 || h.journal_mode == 2)
        cfg.journal = input_journal(&h, &cfg.geo, data + sizeof(h), size - sizeof(h),
                                    &cfg.journal_size);
    if (cfg.base && (cfg.journal || h.journal_mode < 1 || h.journal_mode > 2))
        serve_input(&cfg, &h);
    free(cfg.journal);
    free(cfg.base);
    return 0;
}
