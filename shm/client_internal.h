/* libqcowring internals (not installed). */
#ifndef QCOWRING_CLIENT_INTERNAL_H
#define QCOWRING_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcowring-client.h"
#include "spin.h"

/* qcowd's control socket (client_control.c). */
#define CONTROL_LINE_MAX 65536
/* Connect to socket_path (NULL: the default); the descriptor or -errno. */
int control_dial(const char *socket_path);
/* Descriptors received with the message being read. */
struct control_received {
    int fds[3];
    unsigned n;
};
void control_received_close(struct control_received *got);
/* Optional features a qcowd's greeting lists ("capabilities"). */
#define CONTROL_CAP_HOLD_LOCK 0x1u       /* "hold-lock": connect takes it */
/* The greeting into line (CONTROL_LINE_MAX bytes): 0, -EPROTONOSUPPORT for
 * another protocol, the errno of the refusal sent instead, -EPROTO.  On 0,
 * *caps (unless NULL) has the CONTROL_CAP_* the server offers. */
int control_read_greeting(int fd, char *line, struct control_received *got, unsigned *caps);
/* The reply to a request, past any events: 0 for a return (with its
 * descriptors in got), the errno of an error's class, -EPROTO. */
int control_read_reply(int fd, char *line, struct control_received *got);
bool control_valid_name(const char *name);

/* A first-fit (from a moving cursor) allocator of contiguous page runs over
 * the data area.  One bit per page, 1 = in use. */
struct page_alloc {
    uint64_t *bits;
    uint32_t nr_pages;
    uint32_t nr_free;
    uint32_t cursor;
};

int page_alloc_init(struct page_alloc *pa, uint32_t nr_pages);
void page_alloc_destroy(struct page_alloc *pa);
/* Reserve count contiguous pages; -EAGAIN if no run is free. */
int page_alloc_get(struct page_alloc *pa, uint32_t count, uint32_t *first);
void page_alloc_put(struct page_alloc *pa, uint32_t first, uint32_t count);

enum req_state {
    REQ_FREE,       /* in the ring's free list */
    REQ_OWNED,      /* the caller's: allocated or reaped */
    REQ_IN_FLIGHT,  /* staged or published, no response yet */
    REQ_DONE,       /* response received, not yet handed back */
};

struct qcowring_req {
    uint32_t slot;              /* index in ring->reqs; the wire id */
    enum req_state state;
    bool sync;                  /* owned by a synchronous helper */
    int op;
    int result;
    uint32_t first_page, nr_pages;         /* the buffer */
    uint32_t indirect_first, indirect_pages;
    size_t buf_len;
    void *buf;                  /* data page first_page, NULL if no buffer */
    void *user_data;
    struct qcowring_req *next;  /* done list or a helper's pending list */
};

struct qcowring {
    uint8_t *base;              /* the whole memfd */
    size_t map_size;
    const struct qcowring_info *info;   /* only server_state is re-read */
    struct qcowring_sring *sring;
    uint8_t *data;              /* data page 0 */
    struct qcowring_geometry geo;       /* validated private copy */
    uint32_t mask;              /* ring_entries - 1 */
    int req_fd, rsp_fd;
    int owner_fd;               /* qcowring_connect: the control connection that holds the ring */
    int lock_fd;                /* qcowring_connect: the memfd (a description of our
                                 * own), locked (QCOWRING_CLIENT_LOCK_*) while we hold
                                 * the ring */

    uint32_t req_prod_pvt;      /* next request index to fill */
    uint32_t req_prod_published;
    uint32_t rsp_cons;

    struct qcowring_req *reqs;  /* ring_entries of them */
    uint32_t *free_reqs;
    uint32_t nr_free_reqs;
    unsigned in_flight;
    struct page_alloc pages;

    struct qcowring_req *done_head, *done_tail;
    unsigned nr_done;
    int failed;                 /* sticky: -EPROTO, -ESHUTDOWN, ... */

    struct spin spin;           /* busy-wait before sleeping (client_spin.c) */
};

/* sectors [start, start+count) are on the disk, its capacity read again
 * from the qcowd page when they seem not to be (F_RESIZE). */
bool ring_covers(struct qcowring *r, uint64_t start, uint64_t count);
/* Move responses from the ring to their requests; -errno when the server
 * misbehaved (the ring is then failed). */
int ring_collect_responses(struct qcowring *r);
/* Block until responses may be there (1), timeout (0), or -errno. */
int ring_sleep(struct qcowring *r, int timeout_ms);
/* The default spin; then true when responses arrived within it. */
void ring_spin_init(struct qcowring *r);
bool ring_spin_for_responses(struct qcowring *r);

#endif
