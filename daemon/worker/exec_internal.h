/* What exec.c and writeback.c share (not for other users of the executor). */
#ifndef QCOWD_EXEC_INTERNAL_H
#define QCOWD_EXEC_INTERNAL_H

#include "exec.h"
#include "pool.h"

/* Something that waits for an L2 table (metaread.c) or file space
 * (growth.c): ready() runs once the table is cached or the space is ready
 * (err 0: plan again) or its read or growth failed (err, and why). */
struct meta_waiter {
    struct meta_waiter *next;
    void (*ready)(struct meta_waiter *w, int err, const char *why);
};

struct piece_buf {
    struct write_piece *v;
    size_t cap;
};

struct xreq {
    struct blk_req *req;
    struct executor *x;
    uint64_t lo, hi;            /* conflict range, cluster aligned */
    bool running;
    int pending;                /* outstanding sub-operations */
    int error;
    bool must_flush;            /* the metadata log is full: write back before completing */
    struct write_piece *pieces;
    size_t npieces, cap;
    uint64_t discard_done;      /* DISCARD: bytes from its start already discarded */
    struct xreq *prev, *next;   /* active list, in arrival order */
    struct xreq *flush_next;    /* in a flush batch */
    struct meta_waiter wait;    /* for a table its plan needs */
};

struct executor {
    struct image *img;
    struct aio_ctx *aio;
    struct exec_opts opts;
    uint32_t granule;           /* cluster size; conflicts are tracked per cluster */
    struct xreq *head, *tail;   /* active requests */
    unsigned active;
    bool scheduling, reschedule;
    /* writeback */
    struct xreq *flush_ready;
    bool wb_running, wb_wanted;
    struct meta_writeback wb;
    int wb_phase, wb_pending, wb_err;
    struct xreq *wb_batch;
    uint64_t wb_log_position;   /* the metadata log entries this writeback covers */
    char wb_reason[BLK_ERROR_MAX];      /* why the running writeback failed */
    char failed_reason[BLK_ERROR_MAX];  /* why the image is write-failed */
    struct io_stats stats;
    struct meta_read *meta_reads;       /* L2 tables being read */
    struct growth *growth;              /* the file growing (growth.c), or NULL */
    /* Ready for the hot path (sized by exec_opts.pool_size): no malloc
     * per request once they are warm. */
    struct pool xreqs, xops;
    struct piece_buf *spare_pieces;     /* plan arrays of finished requests */
    size_t nspare, spare_cap;
    struct extent_vec read_map;         /* a read's extents, while it starts */
    struct meta_waiter *space_waiters;  /* plans waiting for it */
};

/* A request is done: answer it, free it, start what waited for it. */
void exec_finish(struct xreq *xr, int status);

/* Record why req failed, unless it has a reason already. */
void exec_note_failure(struct blk_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A flush of the image failed (reason in one line): make it sticky. */
void exec_flush_failed(struct executor *x, int err, const char *reason);

/* 0, or -errno for a failed or (unless short_ok) short transfer. */
int exec_io_result(long res, uint64_t want, bool short_ok);

/* Wait for what x->img->need names (a table, or file space): w->ready()
 * runs when it is there. */
int metaread_wait(struct executor *x, struct meta_waiter *w);

/* Grow the file if the space ready ahead of the allocations runs low. */
void growth_kick(struct executor *x);

/* Wait for the space x->img->need names (growth.c). */
int growth_wait(struct executor *x, struct meta_waiter *w);

/* Complete xr once a writeback has made everything before it durable. */
void writeback_queue(struct executor *x, struct xreq *xr);

/* Start a writeback if flushes wait or metadata piles up, and none runs. */
void writeback_kick(struct executor *x);

#endif
