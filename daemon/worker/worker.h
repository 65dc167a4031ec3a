/* One image's worker: a single-threaded epoll loop over the ring's request
 * doorbell, the libaio completion eventfd, signals and the control channel
 * to the supervisor. */
#ifndef QCOWD_WORKER_H
#define QCOWD_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "aio.h"
#include "exec.h"
#include "image.h"
#include "limiter.h"
#include "metalog.h"
#include "pool.h"
#include "qcowring-client.h"
#include "ring_server.h"
#include "backing.h"
#include "busypoll.h"
#include "first_sector.h"
#include "sandbox.h"

#define METALOG_ENTRIES 65536     /* 1 MiB: allocations between writebacks */

enum worker_state { WORKER_RUNNING, WORKER_PAUSING, WORKER_PAUSED, WORKER_STOPPING };

struct json_object;

/* An image operation (imageops.c) waiting for the worker to be quiet. */
enum worker_op_kind {
    WORKER_OP_NONE, WORKER_OP_RESIZE, WORKER_OP_SNAPSHOT,
    WORKER_OP_COMMIT,           /* a live commit starts (commit.c) */
    WORKER_OP_COMMIT_FINISH,    /* and ends: our own, nobody is answered */
};
struct worker_commit;

struct worker_op {
    enum worker_op_kind kind;
    struct json_object *id;     /* the supervisor's, echoed in the answer */
    struct json_object *args;
    int fds[3];                 /* descriptors that came with it, or -1 */
    bool resume;                /* serving when it came: serve again after */
};

/* One per earlier top of a chain this worker snapshotted: at most the chain. */
#define WORKER_MAX_OLD_LOCKS IMAGE_DEFAULT_MAX_DEPTH

struct worker {
    const char *name;           /* for messages: the image path or attach name */
    struct image *img;
    bool read_only;
    bool guard_first_sector;    /* probed raw: no other format's header at sector 0 */
    struct aio_ctx aio;
    struct pool wreqs;          /* request wrappers, one per ring slot */
    struct executor *x;
    struct ring_server *rs;
    struct qcowring_fds ring_fds;
    struct qcowring_params ring_params;
    void *ring_base;
    size_t ring_size;
    int journal_fd;             /* the ring's recovery journal (never the client's) */
    int lock_fd;                /* the supervisor's image descriptor, with the lock: kept
                                 * until the image is closed, never used for I/O */
    void *journal;
    size_t journal_size;
    struct metalog *metalog;    /* in the journal memory, after the ring's part */
    int epfd;
    int sigfd;
    int ctl_fd;                 /* SOCK_SEQPACKET to the supervisor, or -1 */
    int rendezvous_fd;          /* listening: a new supervisor adopts us there, or -1 */
    unsigned orphan_wait_s;     /* how long to serve without one, waiting for it */
    uid_t supervisor_uid;       /* the only peer taken at the rendezvous */
    uint64_t orphan_deadline_ns;    /* orphaned: stop at this time (0: not orphaned) */
    enum worker_state state;
    bool ring_pending;          /* the ring may hold requests not yet taken */
    bool ring_dead;             /* broken by the client: no more polling */
    bool quiesce_flushing;      /* a pause's flush is running */
    struct blk_req quiesce_flush;
    struct busy_poll poll;
    struct limiter limiter;     /* I/O limits: requests held until their turn */
    struct worker_op op;        /* resize or snapshot, pausing for it */
    struct worker_commit *commit;   /* a live commit under way (commit.c) */
    struct image_open_opts open_opts;   /* how the chain was opened (no key) */
    int old_lock_fds[WORKER_MAX_OLD_LOCKS]; /* earlier tops' lock descriptors (their
                                 * locks now a backing file's): kept like lock_fd */
    unsigned n_old_locks;
    uint64_t started_ns;
    const char *fail_class;     /* why worker_init failed, when not the image's fault */
    char last_error[BLK_ERROR_MAX + 64];        /* the last failed request, and why */
};

struct worker_opts {
    const char *path;
    const char *name;
    struct image_open_opts open;
    bool null_backend;
    bool start_paused;
    unsigned poll_us;           /* busy-poll before sleeping; 0: never */
    uint32_t ring_page_order;
    uint32_t data_pages;
    uint32_t max_indirect;
    int ctl_fd;
    int rendezvous_fd;          /* --rendezvous: where a new supervisor may adopt us */
    unsigned orphan_wait_s;     /* and how long we wait for one when ours goes */
    int image_fd;               /* the image, opened (and locked) by the supervisor; -1: path */
    struct backing_policy backing;  /* how backing files are opened */
    struct sandbox_opts sandbox;    /* what the worker gives up once it serves */
    struct qcowring_fds adopt;  /* an existing ring to serve (fds >= 0) */
    int adopt_journal_fd;       /* and its journal */
    const char *limits;         /* I/O limits (JSON), or NULL */
    int limit_group_fd;         /* their group's page, or -1 */
    int limit_group_slot;       /* and our member slot in it */
};

/* Open the image and make (or adopt) the ring.  Returns 0 or -errno with
 * a message (qc_error_message). */
int worker_init(struct worker *w, const struct worker_opts *o);

/* Serve until told to stop; then drain, flush and close.  Returns 0 or
 * -errno of the final flush. */
int worker_run(struct worker *w);

void worker_destroy(struct worker *w);

/* The ring's MAP operation and the DISCARD_ZEROES feature (map.c). */
void worker_answer_map(struct worker *w, struct ring_io *io);
bool worker_discard_zeroes(const struct worker *w);

/* Control channel (control.c). */
int worker_send_ready(struct worker *w, bool with_fds);
int worker_send_adoption_ready(struct worker *w);
/* cls: the error class qcowd should report (NULL: ImageError). */
int worker_send_failed(int ctl_fd, const char *cls, const char *reason);
/* The class of a failure to start, by its -errno: PermissionDenied for
 * -EACCES and -EPERM (a backing file the caller may not read), Locked for
 * -EBUSY (one someone writes), ImageError otherwise. */
const char *worker_failure_class(int err);
/* The image is flushed and closed: the supervisor need not wait for the
 * process to exit (tearing down a libaio context takes a while). */
int worker_send_stopped(struct worker *w, int status);
/* Tell the supervisor the client broke the ring (it may give the image a
 * fresh one). */
int worker_send_ring_broken(struct worker *w, const char *reason);
/* Tell the supervisor the image is write-failed (executor_flush_error). */
int worker_send_io_error(struct worker *w, const char *reason);
void worker_handle_control(struct worker *w);
/* Orphans (adopt.c): serve on without a supervisor, for a while, and let a
 * new one adopt us at the rendezvous.  worker_orphaned: the channel closed
 * (false: no rendezvous, stop as before). */
bool worker_orphaned(struct worker *w);
void worker_rendezvous_readable(struct worker *w);
/* Stop when nobody adopted us in time. */
void worker_orphan_tick(struct worker *w);
/* The image and ring as "ready" and "query" describe them. */
struct json_object *worker_geometry_json(const struct worker *w);
void worker_reply(struct worker *w, struct json_object *id, struct json_object *ret);
void worker_reply_error(struct worker *w, struct json_object *id, const char *cls,
                        const char *desc);

/* Image operations while serving (imageops.c): resize and snapshot run
 * once nothing is in flight and everything is flushed, with the ring's
 * requests held meanwhile (the client sees a pause).  The first nfds of
 * fds (a snapshot's new top) become the operation's and are set to -1. */
void worker_begin_op(struct worker *w, enum worker_op_kind kind, struct json_object *id,
                     struct json_object *msg, int *fds, unsigned nfds);
/* The worker is quiet: run the waiting operation, answer, serve again.
 * False when none was waiting. */
bool worker_op_quiesced(struct worker *w);
void worker_op_abandon(struct worker *w);
/* An operation of the worker's own (no one to answer): false when another
 * one is waiting (try again later). */
bool worker_begin_internal_op(struct worker *w, enum worker_op_kind kind);
/* Tell the supervisor something (an event object, consumed). */
void worker_send_event(struct worker *w, struct json_object *ev);

/* Live commit (commit.c). */
int worker_commit_start(struct worker *w, int *fds, struct json_object **ret);
void worker_commit_finish(struct worker *w);
/* Copy a few granules, between the loop's rounds. */
void worker_commit_step(struct worker *w);
/* Whether there is copying to do now (the loop must not sleep). */
bool worker_commit_busy(const struct worker *w);
/* A write or discard of [off, off+len) is taken or done. */
void worker_commit_dirty(struct worker *w, uint64_t off, uint64_t len);
void worker_commit_abandon(struct worker *w);
void worker_pause_done(struct worker *w);
/* Pausing: once nothing is in flight, flush, then report paused. */
void worker_quiesce(struct worker *w);

#endif
