/* Inside the ring server: its state and what ring_server.c and
 * ring_journal.c share.  Not for anyone else. */
#ifndef QCOWD_RING_SERVER_INTERNAL_H
#define QCOWD_RING_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring_server.h"

struct journal_header;
struct replay_order;

struct ring_server {
    uint8_t *data;                  /* data page 0 */
    struct qcowring_info *info;     /* written (server_state), never read */
    struct qcowring_sring *sring;
    struct ring_server_geometry geo;
    uint32_t size, mask;            /* ring slots */
    unsigned max_segments;          /* per request: 11 or the indirect max */

    /* Private indices: never read back from shared memory. */
    uint32_t req_cons;
    uint32_t rsp_prod_pvt;
    uint32_t rsp_prod_published;

    int req_fd, rsp_fd;
    bool doorbell_dead;             /* the client broke its response doorbell */
    void (*log)(void *opaque, const char *msg);
    void *log_opaque;

    struct ring_io *pool;           /* size entries */
    struct iovec *iov_store;        /* size * max_segments */
    bool *busy;                     /* pool entry handed out */
    struct ring_io **free_ios;
    unsigned nr_free;
    struct qcowring_segment *segs;  /* private copy of indirect segments */
    unsigned segs_copied;           /* descriptors in segs for this request */

    /* Recovery journal (optional): see ring_server_config.journal. */
    struct journal_header *journal;
    size_t journal_stride;
    bool replaying;                 /* parsing a journaled request again */
    struct ring_io **replay;        /* recovered requests to hand out first */
    struct replay_order *replay_order;  /* scratch for sorting them */
    unsigned replay_head, replay_count;

    bool broken;
    char reason[160];
    struct ring_server_stats stats;
};

void ring_log(struct ring_server *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ring_signal_client(struct ring_server *rs);
/* Validate the private copy e (and rs->segs) into io: 0 or a response status. */
int ring_parse_request(struct ring_server *rs, const union qcowring_entry *e, struct ring_io *io);

/* ring_journal.c: a no-op without a journal. */
int ring_journal_setup(struct ring_server *rs, const struct ring_server_config *cfg);
void ring_journal_consumed(struct ring_server *rs, size_t idx, const union qcowring_entry *e);
void ring_journal_answering(struct ring_server *rs, size_t idx);
void ring_journal_answered(struct ring_server *rs, size_t idx);
void ring_journal_mark_broken(struct ring_server *rs);

#endif
