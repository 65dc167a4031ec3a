/* One qcowd ring shared by every NBD connection of an nbdkit process.
 *
 * Any number of threads submit requests at once (nbdkit's parallel thread
 * model): each waits for its own answer while a completion thread reaps the
 * ring, so NBD queue depth becomes queue depth on the ring.  When the ring
 * goes away (qcowd renewed it, the image was detached and attached again,
 * qcowd restarted) the requests in flight are not failed: the ring is
 * connected again and they are sent once more (reads and writes are
 * idempotent; a flush on the new ring covers what the old worker flushed
 * when it stopped). */
#ifndef QCOWD_NBDKIT_RING_CONN_H
#define QCOWD_NBDKIT_RING_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "qcowring-client.h"

struct ring_waiter;

struct ring_conn {
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* ring replaced, slot freed, or held dropped */
    const char *socket_path;    /* NULL: libqcowring's default */
    const char *name;
    unsigned retry_s;           /* how long to keep reconnecting */
    unsigned spin_us;           /* completion thread: look this long before sleeping */

    struct qcowring *ring;      /* NULL while (re)connecting */
    struct qcowring_geometry geo;       /* of the first ring: the NBD export's */
    uint64_t gen;               /* bumped at every new ring */
    bool lost;                  /* the current ring failed: replace it */
    bool reconnecting;
    uint64_t down_since_ns;     /* when the ring was lost (0: it is up) */
    unsigned held;              /* requests of the current ring in callers' hands */
    unsigned slot_waiters;      /* callers waiting for a free slot or buffer */
    struct ring_waiter *in_flight;
    uint64_t reconnects;

    int wake_fd;                /* eventfd that wakes the completion thread */
    pthread_t reaper;
    bool reaper_running;
    bool stopping;
};

/* Connect to the image's ring (and fail with -errno if that is not
 * possible now).  The descriptors survive a fork. */
int ring_conn_open(struct ring_conn *rc, const char *socket_path, const char *name,
                   unsigned retry_s);
/* Start the completion thread (after nbdkit has forked). */
int ring_conn_start(struct ring_conn *rc);
void ring_conn_close(struct ring_conn *rc);

/* Largest transfer for one ring request. */
uint64_t ring_conn_chunk(const struct ring_conn *rc);

/* One request of at most ring_conn_chunk() bytes: READ into dst, WRITE or
 * FLUSH_DISKCACHE (with or without data) from src, DISCARD.  0 or -errno. */
int ring_conn_io(struct ring_conn *rc, int op, void *dst, const void *src, uint64_t offset,
                 uint64_t len);

/* The allocation of [offset, offset + len): up to max extents into out,
 * the bytes they cover in *covered.  Returns how many, or -errno. */
int ring_conn_map(struct ring_conn *rc, uint64_t offset, uint64_t len,
                  struct qcowring_map_extent *out, unsigned max, uint64_t *covered);

/* strerror() for any thread: untranslated, no locale lock taken (many
 * threads at once; glibc's translation lock has been seen left held at
 * exit under the sanitizers). */
const char *error_text(int err);

#endif
