/* The ring's recovery journal: a private copy of every request in flight,
 * kept in memory that outlives the worker, so that a new worker on the same
 * ring answers every request exactly once (see ring_server_config.journal). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring_server_internal.h"

/*
 * The recovery journal: memory the client cannot see, kept across workers.
 * Entry i mirrors pool entry i.  Every step is one store, made in program
 * order (a dying process loses nothing it stored; only the compiler could
 * reorder, hence the signal fences):
 *   consume:  entry = copy of the request (+ indirect segments), IN_FLIGHT;
 *             then indices = (req_cons + 1, rsp_prod)
 *   answer:   response written to the ring; entry.rsp_index = rsp_prod,
 *             ANSWERING; then indices = (req_cons, rsp_prod + 1); then FREE
 *   publish:  rsp_prod in shared memory (never ahead of the journal)
 * A new server takes both indices from the journal, publishes rsp_prod, and
 * hands out again every entry consumed (req_index < req_cons) and not
 * answered (not ANSWERING with rsp_index < rsp_prod).
 */
#define JOURNAL_MAGIC "QCRJRNL1"

enum journal_state { J_FREE = 0, J_IN_FLIGHT = 1, J_ANSWERING = 2 };

struct replay_order {
    uint32_t age;                   /* req_cons - 1 - req_index */
    uint32_t idx;
};

struct journal_header {
    uint8_t magic[8];
    uint32_t ring_entries;
    uint32_t max_segments;
    uint64_t indices;               /* req_cons | (u64)rsp_prod << 32 */
    uint32_t broken;
    uint32_t pad;
};

struct journal_entry {
    uint32_t state;
    uint32_t req_index;             /* ring index it was consumed at */
    uint32_t rsp_index;             /* ANSWERING: index of its response */
    uint32_t nsegs;                 /* indirect descriptors saved after it */
    union qcowring_entry req;
};

/* ------------------------------------------------------------------------ */
/* Recording each step                                                      */
/* ------------------------------------------------------------------------ */

static size_t journal_stride_for(const struct ring_server_geometry *g)
{
    size_t segs = (g->features & QCOWRING_F_INDIRECT) ? g->max_indirect_segments : 0;

    return sizeof(struct journal_entry) + segs * sizeof(struct qcowring_segment);
}

size_t ring_server_journal_size(const struct ring_server_geometry *geo)
{
    if (geo->ring_page_order > QCOWRING_MAX_RING_PAGE_ORDER)
        return 0;
    return sizeof(struct journal_header) +
           (size_t)qcowring_ring_entries(geo->ring_page_order) * journal_stride_for(geo);
}

static struct journal_entry *journal_entry(const struct ring_server *rs, size_t idx)
{
    return (struct journal_entry *)((uint8_t *)(rs->journal + 1) + idx * rs->journal_stride);
}

static struct qcowring_segment *journal_segs(struct journal_entry *je)
{
    return (struct qcowring_segment *)(je + 1);
}

#ifdef RING_SERVER_CRASH_TEST
/* Tests only: called at every journal step, where a crash may happen. */
void (*ring_server_crash_hook)(void);
#define CRASH_POINT() do { if (ring_server_crash_hook) ring_server_crash_hook(); } while (0)
#else
#define CRASH_POINT() do { } while (0)
#endif

/* Keep the compiler from moving journal stores across each other. */
static void journal_step(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    CRASH_POINT();
}

static void journal_set_state(struct ring_server *rs, size_t idx, uint32_t state)
{
    journal_step();
    __atomic_store_n(&journal_entry(rs, idx)->state, state, __ATOMIC_RELAXED);
    journal_step();
}

/* Both indices in one store. */
static void journal_commit_indices(struct ring_server *rs)
{
    uint64_t v = rs->req_cons | (uint64_t)rs->rsp_prod_pvt << 32;

    if (!rs->journal)
        return;
    journal_step();
    __atomic_store_n(&rs->journal->indices, v, __ATOMIC_RELAXED);
    journal_step();
}

/* After consuming pool entry idx's request (req_cons already advanced). */
void ring_journal_consumed(struct ring_server *rs, size_t idx, const union qcowring_entry *e)
{
    struct journal_entry *je;

    if (!rs->journal || rs->replaying)
        return;
    je = journal_entry(rs, idx);
    je->req = *e;
    je->req_index = rs->req_cons - 1;
    je->nsegs = rs->segs_copied;
    memcpy(journal_segs(je), rs->segs, rs->segs_copied * sizeof(*rs->segs));
    journal_set_state(rs, idx, J_IN_FLIGHT);
    journal_commit_indices(rs);
}

/* Around writing the response of pool entry idx at rsp_prod_pvt. */
void ring_journal_answering(struct ring_server *rs, size_t idx)
{
    if (!rs->journal)
        return;
    journal_entry(rs, idx)->rsp_index = rs->rsp_prod_pvt;
    journal_set_state(rs, idx, J_ANSWERING);
}

void ring_journal_answered(struct ring_server *rs, size_t idx)
{
    if (!rs->journal)
        return;
    journal_commit_indices(rs);
    journal_set_state(rs, idx, J_FREE);
}

void ring_journal_mark_broken(struct ring_server *rs)
{
    if (rs->journal)
        rs->journal->broken = 1;
}

/* ------------------------------------------------------------------------ */
/* Resuming from the journal                                                */
/* ------------------------------------------------------------------------ */

static uint32_t journal_max_segments(const struct ring_server_geometry *g)
{
    return (g->features & QCOWRING_F_INDIRECT) ? g->max_indirect_segments : 0;
}

/* A journal without our magic is fresh, and a fresh one is all zero (the
 * contract in ring_server.h): only the header is written, so an idle
 * image's journal costs no memory (touching its entries would cost about
 * 270 KiB with the default geometry, per worker). */
static void journal_init_fresh(struct ring_server *rs)
{
    struct journal_header *jh = rs->journal;

    memset(jh, 0, sizeof *jh);
    jh->ring_entries = rs->size;
    jh->max_segments = journal_max_segments(&rs->geo);
    jh->indices = rs->req_cons | (uint64_t)rs->rsp_prod_pvt << 32;
    journal_step();
    memcpy(jh->magic, JOURNAL_MAGIC, sizeof(jh->magic));
}

/* Consumed and not answered.  A request can stay in flight for any number
 * of later ones, but only the one being consumed when the server died can
 * carry req_index == req_cons (not committed: it is read again from the
 * ring).  An answer counts once rsp_index < rsp_prod (at most ring-size
 * responses are written past an unanswered entry's own). */
static bool needs_replay(const struct ring_server *rs, const struct journal_entry *je)
{
    if (je->state != J_IN_FLIGHT && je->state != J_ANSWERING)
        return false;
    if (je->req_index == rs->req_cons)
        return false;
    return !(je->state == J_ANSWERING &&
             (uint32_t)(rs->rsp_prod_pvt - je->rsp_index - 1) < rs->size);
}

/* Parse a journaled request again (from its copies) and queue it. */
static void replay_one(struct ring_server *rs, size_t idx)
{
    struct journal_entry *je = journal_entry(rs, idx);
    struct ring_io *io = &rs->pool[idx];
    unsigned nsegs = je->nsegs < rs->max_segments ? je->nsegs : rs->max_segments;
    int status;

    io->iovcnt = 0;
    io->length = 0;
    io->secure = false;
    io->priv = NULL;
    memcpy(rs->segs, journal_segs(je), nsegs * sizeof(*rs->segs));
    rs->segs_copied = nsegs;
    rs->replaying = true;
    status = ring_parse_request(rs, &je->req, io);
    rs->replaying = false;
    if (status != 0) {
        ring_server_respond_deferred(rs, io, (int16_t)status);
        return;
    }
    rs->replay[rs->replay_head + rs->replay_count++] = io;
    rs->stats.replayed++;
}

static int older_first(const void *a, const void *b)
{
    const struct replay_order *x = a, *y = b;

    return x->age > y->age ? -1 : x->age < y->age;
}

/* Pool entries to replay, oldest first (the order they were consumed). */
static unsigned collect_replays(struct ring_server *rs, struct replay_order *order)
{
    unsigned count = 0;

    for (uint32_t i = 0; i < rs->size; i++) {
        struct journal_entry *je = journal_entry(rs, i);
        if (!needs_replay(rs, je)) {
            journal_set_state(rs, i, J_FREE);
            continue;
        }
        /* An answer that did not commit: the request is in flight again. */
        if (je->state == J_ANSWERING)
            journal_set_state(rs, i, J_IN_FLIGHT);
        order[count].age = rs->req_cons - 1 - je->req_index;
        order[count++].idx = i;
        rs->busy[i] = true;
    }
    qsort(order, count, sizeof(*order), older_first);
    rs->nr_free = 0;
    for (uint32_t i = rs->size; i-- > 0;)
        if (!rs->busy[i])
            rs->free_ios[rs->nr_free++] = &rs->pool[i];
    return count;
}

static int journal_resume(struct ring_server *rs)
{
    uint64_t v = rs->journal->indices;
    struct replay_order *order = rs->replay_order;
    unsigned count;

    rs->req_cons = (uint32_t)v;
    rs->rsp_prod_pvt = rs->rsp_prod_published = (uint32_t)(v >> 32);
    if (rs->req_cons - rs->rsp_prod_pvt > rs->size)
        return -EINVAL;
    count = collect_replays(rs, order);
    if (count != rs->req_cons - rs->rsp_prod_pvt)
        ring_log(rs, "journal: %u requests to redo, %u unanswered", count,
                rs->req_cons - rs->rsp_prod_pvt);
    for (unsigned i = 0; i < count; i++)
        replay_one(rs, order[i].idx);
    /* Responses the journal counts may not have been published yet. */
    qcowring_store_release(&rs->sring->rsp_prod, rs->rsp_prod_pvt);
    rs->rsp_prod_published = rs->rsp_prod_pvt;
    ring_signal_client(rs);
    return 0;
}

int ring_journal_setup(struct ring_server *rs, const struct ring_server_config *cfg)
{
    struct journal_header *jh = cfg->journal;

    if (!jh)
        return 0;
    if (cfg->journal_size < ring_server_journal_size(&cfg->geo))
        return -EINVAL;
    if (!(rs->replay_order = calloc(rs->size, sizeof(*rs->replay_order))))
        return -ENOMEM;
    rs->journal = jh;
    rs->journal_stride = journal_stride_for(&cfg->geo);
    if (memcmp(jh->magic, JOURNAL_MAGIC, sizeof(jh->magic)) != 0) {
        journal_init_fresh(rs);
        return 0;
    }
    if (jh->ring_entries != rs->size || jh->max_segments != journal_max_segments(&cfg->geo))
        return -EINVAL;
    if (jh->broken) {
        rs->broken = rs->stats.broken = true;
        snprintf(rs->reason, sizeof(rs->reason), "broken before the server restarted");
        return 0;
    }
    return journal_resume(rs);
}
