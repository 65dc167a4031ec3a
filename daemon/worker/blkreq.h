/* A block request as the executor sees it, whatever transport brought it
 * (the shared-memory ring, a test harness). */
#ifndef QCOWD_BLKREQ_H
#define QCOWD_BLKREQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_ERROR_MAX 256

enum blk_op {
    BLK_READ,
    BLK_WRITE,
    BLK_FLUSH,                  /* completed writes become durable */
    BLK_DISCARD,                /* advisory */
};

struct blk_req {
    enum blk_op op;
    bool barrier;               /* earlier requests finish first, later ones wait */
    bool flush;                 /* WRITE: durable (with all completed writes) on completion */
    uint64_t off;               /* bytes, sector aligned */
    uint64_t len;
    struct iovec *iov;          /* READ/WRITE buffers, summing to len */
    unsigned niov;
    /* Called once, when the request is finished: status 0 or -errno. */
    void (*complete)(struct blk_req *req, int status);
    void *opaque;
    uint64_t start_ns;          /* set by the executor for latency stats */
    /* With a status < 0: why, in one line (what failed, in which file, at
     * which offset, and the error), filled by the executor.  Each request
     * carries its own reason: there is no "last error" to go stale. */
    char error[BLK_ERROR_MAX];
};

#endif
