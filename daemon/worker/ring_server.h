/*
 * ring_server - the back end of a qcowd ring, independent of how I/O is done.
 *
 * The client is untrusted.  The server keeps its indices privately, reads
 * the client's req_prod once per poll, copies every request (and every
 * indirect segment list) out of shared memory before validating the copy,
 * never uses the client's id for anything but echoing it, never reads the
 * qcowd page (its geometry comes from the caller), and caps requests in
 * flight at the ring size.  A valid request becomes a struct ring_io whose
 * iovec points into the data pages; an invalid one is answered at once.
 * A client that corrupts the indices gets the ring marked broken.
 * With a recovery journal (ring_server_config.journal), a server started
 * after another one died on the same ring resumes exactly: the client gets
 * one answer per request, only late.
 *
 * Typical loop (single thread):
 *
 *     on req_eventfd readable (epoll, EPOLLET: the server never reads the
 *     request doorbell, which the client could make blocking and drain):
 *         for (;;) {
 *             n = ring_server_poll_requests(rs, ios, MAX);
 *             if (n < 0) { stop using the ring; break; }
 *             start I/O for ios[0..n)
 *             if (n < MAX && !ring_server_final_check(rs))
 *                 break;
 *         }
 *     on I/O completion of io:
 *         ring_server_respond(rs, io, QCOWRING_RSP_OKAY or _ERROR);
 */
#ifndef QCOWD_RING_SERVER_H
#define QCOWD_RING_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "qcowring.h"

/* The trusted geometry of a ring: what its creator wrote in the qcowd page
 * (qcowring_params in qcowring-client.h carries the same values). */
struct ring_server_geometry {
    uint64_t capacity_sectors;
    uint64_t features;              /* QCOWRING_F_* */
    uint32_t ring_page_order;
    uint32_t data_pages;
    uint32_t max_indirect_segments; /* 0 without QCOWRING_F_INDIRECT */
};

struct ring_server_config {
    void *base;             /* MAP_SHARED read-write mapping of the memfd */
    size_t map_size;        /* bytes mapped: >= qcowring_total_size() */
    struct ring_server_geometry geo;
    uint32_t start_index;   /* where the indices start: 0 for a fresh ring
                             * (Xen's BACK_RING_ATTACH index); ignored when
                             * resuming from a journal */
    /* Optional recovery journal, ring_server_journal_size() bytes of memory
     * the client never sees (e.g. a memfd the supervisor keeps and hands to
     * each worker of the ring).  All zero: a fresh ring, starting at
     * start_index.  Written by an earlier server of the same ring (which
     * died): resume exactly where it stopped.  The responses it wrote are
     * published, and the requests it had consumed but not answered are
     * handed out again, in their original order, by the first calls to
     * ring_server_poll_requests().  Without a journal a server can only
     * start a fresh ring: with requests answered out of order, the ring
     * alone cannot tell which ones were answered. */
    void *journal;
    size_t journal_size;
    int req_eventfd;        /* client -> server doorbell (watched, never read), or -1 */
    int rsp_eventfd;        /* server -> client doorbell (written, never blocking:
                             * doorbell.h), or -1 */
    /* Optional: called with a one-line reason for each rejected request
     * (rate-limited) and when the ring is marked broken. */
    void (*log)(void *opaque, const char *msg);
    void *log_opaque;
};

/* What the worker has to do for one request. */
enum ring_io_op {
    RING_IO_READ,
    RING_IO_WRITE,
    RING_IO_FLUSH,      /* write iov (if any), then make all completed writes
                         * and this one durable */
    RING_IO_BARRIER,    /* as FLUSH, and ordered: starts after every earlier
                         * request completed, later ones start after it */
    RING_IO_DISCARD,    /* length bytes at sector; no iov */
    RING_IO_MAP,        /* describe length bytes at sector into iov[0], the
                         * answer's pages (struct qcowring_map_reply) */
};

struct ring_io {
    enum ring_io_op op;
    uint64_t id;            /* the client's id: echoed, never an index */
    uint8_t rsp_operation;  /* operation byte for the response */
    bool secure;            /* DISCARD with QCOWRING_DISCARD_SECURE honoured */
    uint64_t sector;        /* first 512-byte sector (0 when length is 0) */
    uint64_t length;        /* bytes (sum of iov lengths, or discard size) */
    unsigned iovcnt;        /* 0 for DISCARD and a flush without data */
    struct iovec *iov;      /* into the data pages; adjacent segments merged */
    void *priv;             /* free for the caller (NULL when handed out) */
};

/* Reasons a request is rejected (indices into stats.bad). */
enum ring_bad_reason {
    RING_BAD_OPCODE,        /* unknown operation -> EOPNOTSUPP */
    RING_BAD_UNSUPPORTED,   /* feature not offered -> EOPNOTSUPP */
    RING_BAD_READ_ONLY,     /* write or discard on a read-only ring */
    RING_BAD_SEGMENT_COUNT, /* nr_segments out of range */
    RING_BAD_SECTORS,       /* first_sect > last_sect or last_sect > 7 */
    RING_BAD_PAGE,          /* data or indirect page index out of range */
    RING_BAD_RANGE,         /* beyond capacity or overflowing */
    RING_BAD_INDIRECT,      /* bad indirect_op */
    RING_BAD_DISCARD,       /* bad flag or zero length */
    RING_BAD_MAP,           /* bad flag, zero length or page count */
    RING_BAD__COUNT
};

struct ring_server_stats {
    uint64_t requests;          /* valid requests handed out */
    uint64_t responses;         /* responses written (valid and invalid) */
    uint64_t bad_requests;      /* sum of bad[] */
    uint64_t bad[RING_BAD__COUNT];
    uint64_t notifications;     /* rsp_eventfd writes */
    uint64_t replayed;          /* requests handed out again after a restart */
    bool broken;
};

struct ring_server;

/* Validate the configuration against the mapping and allocate the
 * in-flight pool (ring size entries).  -EINVAL on a bad geometry. */
int ring_server_new(const struct ring_server_config *cfg, struct ring_server **out);
void ring_server_free(struct ring_server *rs);

/* Bytes of recovery journal for a geometry (0 if the geometry is invalid). */
size_t ring_server_journal_size(const struct ring_server_geometry *geo);

/* Map a memfd for a server: checks that it is sealed against shrinking
 * and large enough for geo; *base and *size to munmap() later. */
int ring_server_map(int memfd, const struct ring_server_geometry *geo,
                    void **base, size_t *size);

/* The disk grew to `sectors` (never less than now): accept requests up to
 * there and tell the client through the qcowd page (QCOWRING_F_RESIZE). */
void ring_server_set_capacity(struct ring_server *rs, uint64_t sectors);

/* Take the requests the client published (req_prod read once).  Invalid
 * requests are answered at once; up to max valid ones are returned in out
 * and stay the caller's until ring_server_respond().  Returns how many, or
 * -EPROTO once the ring is broken. */
int ring_server_poll_requests(struct ring_server *rs, struct ring_io **out, unsigned max);

/* Before sleeping: true if requests are pending (poll again); otherwise the
 * event index is armed and the next request rings the doorbell. */
bool ring_server_final_check(struct ring_server *rs);

/* A look without side effects, for a busy-wait: has the client published
 * requests not yet taken?  (req_prod is only compared, never trusted.) */
bool ring_server_requests_pending(const struct ring_server *rs);

/* Answer io (status QCOWRING_RSP_*) and give it back to the pool.
 * ring_server_respond() publishes and notifies at once; the _deferred
 * variant only writes the entry, and ring_server_push_responses()
 * publishes everything written so far (one notification for a batch).
 * Returns 0, or -EPROTO on a broken ring (io is released anyway). */
int ring_server_respond(struct ring_server *rs, struct ring_io *io, int16_t status);
int ring_server_respond_deferred(struct ring_server *rs, struct ring_io *io, int16_t status);
int ring_server_push_responses(struct ring_server *rs);

/* Stop serving: write server_state (QCOWRING_STATE_SHUTDOWN) for the client
 * and wake it.  Requests in flight may still be answered. */
void ring_server_shutdown(struct ring_server *rs);

bool ring_server_is_broken(const struct ring_server *rs);
const char *ring_server_broken_reason(const struct ring_server *rs);
unsigned ring_server_in_flight(const struct ring_server *rs);
unsigned ring_server_ring_size(const struct ring_server *rs);
void ring_server_get_stats(const struct ring_server *rs, struct ring_server_stats *out);
const char *ring_bad_reason_name(enum ring_bad_reason reason);

#endif
