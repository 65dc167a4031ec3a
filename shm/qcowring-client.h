/*
 * qcowring-client.h - libqcowring, the client side of a qcowd ring.
 *
 * Thread-compatible: one ring handle may be used by one thread at a time
 * (serialise calls yourself); distinct handles are independent.  Every
 * function returns 0 (or a count) on success and a negative errno on
 * failure; nothing here aborts on bad data from the server.
 * See libqcowring(3) and doc/ring.md.
 */
#ifndef QCOWRING_CLIENT_H
#define QCOWRING_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "qcowring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Server side: creating a ring                                             */
/* ------------------------------------------------------------------------ */

/* The geometry a server chooses for a new ring. */
struct qcowring_params {
    uint64_t capacity_sectors;      /* disk size in 512-byte sectors */
    uint64_t features;              /* QCOWRING_F_* (PERSISTENT is implied) */
    uint32_t ring_page_order;       /* 0..QCOWRING_MAX_RING_PAGE_ORDER */
    uint32_t data_pages;            /* >= 1 */
    uint32_t max_indirect_segments; /* 12..4096 with F_INDIRECT, else 0 */
    uint32_t discard_granularity;   /* bytes (0 = one sector) */
    uint32_t discard_alignment;     /* bytes */
};

/* The three descriptors of a ring, in the order they are passed over a
 * unix socket (SCM_RIGHTS). */
struct qcowring_fds {
    int memfd;        /* the shared memory, sealed against resizing */
    int req_eventfd;  /* doorbell client -> server ("requests posted") */
    int rsp_eventfd;  /* doorbell server -> client ("responses posted") */
};

/* Make a ring: a sealed memfd laid out as [qcowd page][ring][data] with the
 * qcowd page and the shared ring initialised, and two non-blocking eventfds.
 * All three are close-on-exec and belong to the caller. */
int qcowring_create(const struct qcowring_params *params, struct qcowring_fds *out);

/* Close the three descriptors (those >= 0) and set them to -1. */
void qcowring_close_fds(struct qcowring_fds *fds);

/* ------------------------------------------------------------------------ */
/* Client side: opening a ring                                              */
/* ------------------------------------------------------------------------ */

struct qcowring;
struct qcowring_req;

/* Map and validate a ring.  The descriptors stay the caller's: the library
 * keeps duplicates of the eventfds (and only the mapping of the memfd). */
int qcowring_open_fds(int memfd, int req_eventfd, int rsp_eventfd,
                      struct qcowring **out);

/* Ask the qcowd listening on socket_path (NULL: $QCOWD_SOCKET, else
 * /run/qcowd/qcowd.sock as root and $XDG_RUNTIME_DIR/qcowd.sock otherwise)
 * for the ring of the image attached as `name`, and open it.  The control
 * connection stays open inside the handle: it is what holds the ring, and
 * qcowring_close() gives it back.  The memfd carries the ring's presence
 * lock (qcowring.h) for as long as the ring stays mapped: a qcowd that
 * adopts the worker after this one dies can tell when we are gone.  (When
 * qcowd offers "hold-lock", the handle takes the lock itself too, as a
 * qcowd older than its own lock needs.)
 * -ENOENT: no such image; -EBUSY: another client holds it; -EACCES: not
 * authorised; -EPROTO: not a qcowd; fcntl's errno when the lock cannot be
 * taken. */
int qcowring_connect(const char *socket_path, const char *name, struct qcowring **out);

/* Ask qcowd to attach the image at `path` as `name` (NULL: the file name).
 * The image is opened here, with the calling process's own rights, and its
 * descriptor passed to qcowd (SCM_RIGHTS); qcowd opens its backing files
 * with those rights too.  format: NULL (probe), "auto", "qcow" or "raw".
 * Returns once the image is served (then qcowring_connect() by name), or
 * -errno: -EACCES (the file cannot be opened so, or qcowd refuses: not
 * authorised, a backing file the caller cannot read), -EBUSY (locked by
 * another program), -EEXIST (the name or the image is attached already),
 * -EINVAL, -ENOSPC (too many images), -EIO (any other refusal, such as a
 * malformed image), or the errno of a failed connection. */
#define QCOWRING_ATTACH_READ_ONLY 1u
int qcowring_attach(const char *socket_path, const char *path, const char *name,
                    const char *format, unsigned flags);

/* Ask qcowd to detach the image attached as `name`: returns once it is
 * flushed, closed and unlocked.  -ENOENT: no such image; -EACCES: another
 * user's. */
int qcowring_detach(const char *socket_path, const char *name);

/* Unmap and free.  Requests still in flight are abandoned. */
void qcowring_close(struct qcowring *ring);

/* What the server offers, copied from the validated qcowd page. */
struct qcowring_geometry {
    uint64_t capacity_sectors;
    uint64_t features;              /* QCOWRING_F_* */
    uint32_t sector_size;           /* 512 */
    uint32_t ring_entries;          /* maximum requests in flight */
    uint32_t data_pages;
    uint32_t max_indirect_segments; /* 0 without F_INDIRECT */
    uint32_t max_request_bytes;     /* largest read/write in one request */
    uint32_t discard_granularity;
    uint32_t discard_alignment;
    uint16_t version_major;
    uint16_t version_minor;
};
void qcowring_get_geometry(const struct qcowring *ring, struct qcowring_geometry *out);

/* With QCOWRING_F_RESIZE the server may grow the disk while it serves (qcowd
 * then also sends the event "image-resized"): take the capacity again from
 * the qcowd page into the geometry.  A request past the known end does this
 * by itself before it is refused.  1: it grew; 0: unchanged (or no
 * F_RESIZE); -EPROTO: the page claims a smaller or impossible capacity,
 * which is not taken. */
int qcowring_refresh_capacity(struct qcowring *ring);

/* The response eventfd: readable when responses may have arrived.  Watch it
 * for POLLIN; call qcowring_reap() when it fires. */
int qcowring_fd(const struct qcowring *ring);

/* ------------------------------------------------------------------------ */
/* Asynchronous interface                                                   */
/* ------------------------------------------------------------------------ */

/* Reserve a request slot and buf_len bytes (rounded up to 4 KiB) of
 * contiguous buffer in the data area.  -EAGAIN: no slot or no pages free
 * now (reap completions, free requests, retry); -E2BIG: larger than
 * max_request_bytes. */
int qcowring_req_alloc(struct qcowring *ring, size_t buf_len, struct qcowring_req **out);

/* The request's buffer in shared memory (NULL when buf_len was 0) and its
 * size.  Valid until qcowring_req_free(). */
void *qcowring_req_buf(const struct qcowring_req *req);
size_t qcowring_req_buf_len(const struct qcowring_req *req);

/* Give back a request that is not in flight (allocated, or reaped). */
void qcowring_req_free(struct qcowring *ring, struct qcowring_req *req);

/* Stage an operation.  op is QCOWRING_OP_READ, _WRITE, _WRITE_BARRIER,
 * _FLUSH_DISKCACHE, _DISCARD or _MAP; offset and len are bytes, multiples of
 * 512.  READ/WRITE: 0 < len <= buf_len.  FLUSH/WRITE_BARRIER: len may be 0
 * (pure flush/barrier) or carry data to write.  DISCARD: len > 0, no buffer
 * used.  MAP: the range asked about (len > 0); the answer lands in the
 * buffer (at least 4 KiB; at most QCOWRING_MAP_MAX_PAGES pages are used):
 * read it with qcowring_map_answer() once the request completes.
 * The request reaches the server at the next qcowring_kick() (also done by
 * qcowring_reap(), qcowring_wait() and the synchronous helpers). */
int qcowring_submit(struct qcowring *ring, struct qcowring_req *req, int op,
                    uint64_t offset, uint64_t len, void *user_data);

/* The answer of a completed MAP request, checked: at most max extents
 * into out (they start at the offset asked about and are contiguous),
 * and the bytes they cover in *covered.  Returns how many, or -EPROTO for
 * an answer that does not fit the request. */
int qcowring_map_answer(const struct qcowring_req *req, uint64_t asked_len,
                        struct qcowring_map_extent *out, unsigned max, uint64_t *covered);

/* Publish staged requests; ring the server's doorbell only if it asked. */
int qcowring_kick(struct qcowring *ring);

/* qcowring_kick() in two steps, for threads that share a handle under a
 * lock: qcowring_publish() (under the lock) returns 1 when the doorbell
 * must be rung, 0 when not, or -errno; qcowring_ring_doorbell() rings it
 * and may be called without the lock, as long as the handle stays open. */
int qcowring_publish(struct qcowring *ring);
int qcowring_ring_doorbell(const struct qcowring *ring);

struct qcowring_completion {
    struct qcowring_req *req;  /* owned by the caller again: reuse or free */
    void *user_data;           /* as given to qcowring_submit() */
    int op;                    /* QCOWRING_OP_* as submitted */
    int result;                /* 0, -EIO, -EOPNOTSUPP */
};

/* Collect up to max completions into out.  Returns the number collected.
 * When it returns 0 the ring is armed: the response eventfd will fire for
 * the next response, so it is safe to sleep on qcowring_fd(). */
int qcowring_reap(struct qcowring *ring, struct qcowring_completion *out, unsigned max);

/* Same, calling fn for every completion; returns the number of calls. */
typedef void (*qcowring_completion_fn)(void *opaque, const struct qcowring_completion *c);
int qcowring_reap_cb(struct qcowring *ring, qcowring_completion_fn fn, void *opaque);

/* Kick, then sleep until a completion is ready or timeout_ms passes (-1:
 * forever).  Returns the number of completions ready (> 0), 0 on timeout
 * or when nothing is in flight, or -errno. */
int qcowring_wait(struct qcowring *ring, int timeout_ms);

/* Requests submitted and not yet completed. */
unsigned qcowring_in_flight(const struct qcowring *ring);

/* How long qcowring_wait() and the synchronous helpers busy-wait for a
 * response before they sleep on the eventfd, in microseconds (default 50;
 * 0: always sleep at once).  Across CPUs a sleep costs a wake-up that is
 * often slower than the answer itself.  The spin yields the CPU on every
 * round and backs off by itself while it keeps missing.  -EINVAL above
 * 1 s. */
int qcowring_set_spin(struct qcowring *ring, unsigned usec);

/* ------------------------------------------------------------------------ */
/* Synchronous helpers                                                      */
/* ------------------------------------------------------------------------ */

/* Byte offsets and lengths are multiples of 512.  Large transfers are split
 * into requests (indirect ones when the server offers them) that run in
 * parallel through the ring; the call returns when all are done.  Returns 0
 * or the first error. */
int qcowring_pread(struct qcowring *ring, void *buf, size_t len, uint64_t offset);
int qcowring_pwrite(struct qcowring *ring, const void *buf, size_t len, uint64_t offset);
int qcowring_flush(struct qcowring *ring);
int qcowring_discard(struct qcowring *ring, uint64_t offset, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* QCOWRING_CLIENT_H */
