/* Starting a qcowd-worker and talking to it over its control channel.
 * Used by the supervisor, and by tests and benchmarks that drive a worker
 * without one. */
#ifndef QCOWD_WORKER_SPAWN_H
#define QCOWD_WORKER_SPAWN_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qcowring-client.h"

/* I/O limits for a worker: --io-limits and --limit-group. */
struct worker_limits {
    const char *json;           /* the limits object's text */
    int group_fd;               /* the page of their limit group, or -1 */
    int group_slot;             /* the worker's member slot in the group */
};

struct worker_spawn_opts {
    const char *worker_path;    /* the qcowd-worker binary */
    const char *image;
    const char *format;         /* NULL: auto */
    const char *name;           /* NULL: the image path */
    bool read_only;
    bool writeback;             /* page cache instead of O_DIRECT */
    bool null_backend;
    const char *key;            /* encryption password, or NULL */
    const char *log_level;      /* NULL: info */
    unsigned ring_order;        /* ring pages = 2^ring_order, when ring_order_given */
    bool ring_order_given;      /* else the worker's default (unless adopting) */
    unsigned data_pages;        /* 0: the worker's default */
    unsigned max_indirect;
    const struct qcowring_fds *adopt; /* serve this existing ring */
    int adopt_journal_fd;       /* with its journal */
    bool start_paused;          /* take no request until told to resume */
    unsigned poll_us;           /* busy-poll before sleeping (0: the worker's default) */
    uint64_t l2_cache_bytes;    /* L2 cache per qcow layer (0: the worker's default) */
    int stderr_fd;              /* -1: inherit */
    const struct worker_limits *limits; /* NULL: none */
    int image_fd;               /* the image, already open (and locked); -1: the worker
                                 * opens `image` itself */
    const char *caller;         /* "UID:GID[:GROUPS]": open backing files with these rights */
    const char *worker_user;    /* "UID:GID" to drop to once the files are open */
    const char *const *backing_dirs; /* NULL-terminated: where backing files may be */
    unsigned orphan_wait_s;     /* > 0: serve on that long when the supervisor goes, */
    int rendezvous_fd;          /* waiting to be adopted at this bound socket */
};

struct worker_proc {
    pid_t pid;
    int ctl_fd;
    struct qcowring_fds ring;   /* received with "ready" (adopting: the caller's) */
    int journal_fd;             /* the ring's recovery journal, likewise */
    json_object *ready;         /* the "data" of the ready event, checked */
};

/* A worker's description of its image and ring ("ready", or the answer to
 * "snapshot"), copied field by field with each type checked; NULL when
 * anything is missing or mistyped. */
json_object *worker_checked_info(json_object *data);

/* Start a worker without waiting: pid and ctl_fd are set.  The worker's
 * first message (worker_read_ready) says whether it serves. */
int worker_launch(const struct worker_spawn_opts *o, struct worker_proc *out);

/* Read the worker's first message (waiting up to timeout_ms): 0 when it is
 * ready (ring and ready are set; when adopting a ring, p's ring and journal
 * are left as they are); when it failed, its reason with -EACCES
 * (PermissionDenied: a backing file the caller may not read), -EBUSY
 * (Locked), -EAGAIN (LimitReached: a host limit stopped it, e.g. no kernel
 * AIO slots left) or -EIO (anything else); other -errno when it vanished or
 * said something unexpected (each field of the message is checked: a worker
 * parses hostile images and is not trusted). */
int worker_read_ready(const struct worker_spawn_opts *o, struct worker_proc *p, int timeout_ms);

/* Start a worker and wait (up to timeout_ms) for it to report.  On "failed"
 * returns -EIO with the worker's reason in qc_error_message(); the process
 * is reaped either way on failure. */
int worker_spawn(const struct worker_spawn_opts *o, int timeout_ms, struct worker_proc *out);

/* Send {"execute": cmd} and wait for the answer: 0 with *ret (the "return"
 * object, caller puts it) or -EIO with the error's text recorded. */
int worker_call(struct worker_proc *p, const char *cmd, int timeout_ms, json_object **ret);

/* Ask the worker to stop and wait for it to exit; returns its exit status
 * (0 clean) or -errno. Closes everything. */
int worker_stop(struct worker_proc *p, int timeout_ms);

/* Forget the worker without stopping it (after it died): close the fds. */
void worker_proc_release(struct worker_proc *p);

#endif
