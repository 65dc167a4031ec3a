/* Open a ring from its descriptors: validate the qcowd page, map (libqcowring). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "client_internal.h"

/* Size of the memfd, which must be sealed against shrinking: a server that
 * could shrink it under our mapping could make us crash with SIGBUS. */
static int memfd_size(int memfd, uint64_t *size)
{
    struct stat st;
    int seals;

    if (fstat(memfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)QCOWRING_PAGE_SIZE)
        return -EINVAL;
    seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0)
        return -errno;
    if (!(seals & F_SEAL_SHRINK))
        return -EINVAL;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int check_identity(const struct qcowring_info *i)
{
    if (memcmp(i->magic, QCOWRING_MAGIC, QCOWRING_MAGIC_LEN) != 0)
        return -EINVAL;
    if (i->version_major != QCOWRING_VERSION_MAJOR)
        return -EPROTONOSUPPORT;
    if (i->info_size < sizeof(struct qcowring_info) || i->info_size > QCOWRING_PAGE_SIZE)
        return -EINVAL;
    if (i->page_size != QCOWRING_PAGE_SIZE || i->sector_size != QCOWRING_SECTOR_SIZE)
        return -EINVAL;
    return 0;
}

static int check_ring(const struct qcowring_info *i)
{
    if (i->ring_page_order > QCOWRING_MAX_RING_PAGE_ORDER)
        return -EINVAL;
    if (i->ring_offset != QCOWRING_RING_OFFSET)
        return -EINVAL;
    if (i->ring_entries != qcowring_ring_entries(i->ring_page_order))
        return -EINVAL;
    return 0;
}

/* The data area lies after the ring, page aligned, inside the memfd. */
static int check_data_area(const struct qcowring_info *i, uint64_t memfd_bytes)
{
    uint64_t ring_end = qcowring_data_offset(i->ring_page_order);

    if (i->data_offset < ring_end || i->data_offset % QCOWRING_PAGE_SIZE)
        return -EINVAL;
    if (i->data_offset > memfd_bytes || i->data_pages == 0 || i->data_pages > UINT32_MAX)
        return -EINVAL;
    if (i->data_pages > (memfd_bytes - i->data_offset) / QCOWRING_PAGE_SIZE)
        return -EINVAL;
    return 0;
}

static int check_disk(const struct qcowring_info *i)
{
    bool indirect = (i->features & QCOWRING_F_INDIRECT) != 0;

    if (i->capacity_sectors > QCOWRING_MAX_CAPACITY_SECTORS)
        return -EINVAL;
    if (indirect && (i->max_indirect_segments <= QCOWRING_MAX_SEGMENTS ||
                     i->max_indirect_segments > QCOWRING_MAX_INDIRECT_SEGMENTS))
        return -EINVAL;
    if (i->server_state != QCOWRING_STATE_RUNNING)
        return -ESHUTDOWN;
    return 0;
}

static int validate_info(const struct qcowring_info *i, uint64_t memfd_bytes)
{
    int err = check_identity(i);

    if (!err)
        err = check_ring(i);
    if (!err)
        err = check_data_area(i, memfd_bytes);
    if (!err)
        err = check_disk(i);
    return err;
}

static void fill_geometry(struct qcowring_geometry *g, const struct qcowring_info *i)
{
    bool indirect = (i->features & QCOWRING_F_INDIRECT) != 0;
    uint32_t max_segs = indirect ? i->max_indirect_segments : QCOWRING_MAX_SEGMENTS;

    memset(g, 0, sizeof(*g));
    g->capacity_sectors = i->capacity_sectors;
    g->features = i->features;
    g->sector_size = QCOWRING_SECTOR_SIZE;
    g->ring_entries = i->ring_entries;
    g->data_pages = (uint32_t)i->data_pages;
    g->max_indirect_segments = indirect ? i->max_indirect_segments : 0;
    g->max_request_bytes = max_segs * QCOWRING_PAGE_SIZE;
    g->discard_granularity = i->discard_granularity;
    g->discard_alignment = i->discard_alignment;
    g->version_major = i->version_major;
    g->version_minor = i->version_minor;
}

static int map_and_validate(struct qcowring *r, int memfd, struct qcowring_info *copy)
{
    uint64_t bytes = 0;
    int err = memfd_size(memfd, &bytes);

    if (err)
        return err;
    if (bytes > SIZE_MAX)
        return -EFBIG;
    r->map_size = (size_t)bytes;
    r->base = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        return -errno;
    }
    /* One private copy of the page; only the copy is validated and used. */
    memcpy(copy, r->base, sizeof(*copy));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return validate_info(copy, bytes);
}

static int dup_eventfds(struct qcowring *r, int req_eventfd, int rsp_eventfd)
{
    int flags;

    r->req_fd = fcntl(req_eventfd, F_DUPFD_CLOEXEC, 3);
    if (r->req_fd < 0)
        return -errno;
    r->rsp_fd = fcntl(rsp_eventfd, F_DUPFD_CLOEXEC, 3);
    if (r->rsp_fd < 0)
        return -errno;
    flags = fcntl(r->rsp_fd, F_GETFL);
    if (flags < 0 || fcntl(r->rsp_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int init_requests(struct qcowring *r)
{
    uint32_t n = r->geo.ring_entries;

    r->reqs = calloc(n, sizeof(*r->reqs));
    r->free_reqs = calloc(n, sizeof(*r->free_reqs));
    if (!r->reqs || !r->free_reqs)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        r->reqs[i].slot = i;
        r->reqs[i].state = REQ_FREE;
        r->free_reqs[i] = n - 1 - i;
    }
    r->nr_free_reqs = n;
    return page_alloc_init(&r->pages, r->geo.data_pages);
}

/* Start from the shared indices (0 on a fresh ring; elsewhere when a
 * previous client used the ring).  Taking over is only possible when the
 * ring is idle: every published request has its response. */
static int adopt_indices(struct qcowring *r)
{
    uint32_t req = qcowring_load_acquire(&r->sring->req_prod);
    uint32_t rsp = qcowring_load_acquire(&r->sring->rsp_prod);

    if (req != rsp)
        return -EBUSY;
    r->req_prod_pvt = r->req_prod_published = r->rsp_cons = rsp;
    __atomic_store_n(&r->sring->rsp_event, rsp + 1, __ATOMIC_RELAXED);
    qcowring_full_fence();
    return 0;
}

static int setup(struct qcowring *r, int memfd, int req_eventfd, int rsp_eventfd)
{
    struct qcowring_info info = { .version_major = 0 };
    int err = map_and_validate(r, memfd, &info);

    if (err)
        return err;
    fill_geometry(&r->geo, &info);
    r->info = (const struct qcowring_info *)r->base;
    r->sring = (struct qcowring_sring *)(r->base + QCOWRING_RING_OFFSET);
    r->data = r->base + info.data_offset;
    r->mask = r->geo.ring_entries - 1;
    err = adopt_indices(r);
    if (!err)
        err = dup_eventfds(r, req_eventfd, rsp_eventfd);
    if (!err)
        err = init_requests(r);
    return err;
}

DEFINE_POINTER_CLEANUP(qcowring_close, struct qcowring)

int qcowring_open_fds(int memfd, int req_eventfd, int rsp_eventfd, struct qcowring **out)
{
    _cleanup_(qcowring_closep) struct qcowring *r = calloc(1, sizeof(*r));
    int err;

    if (!r)
        return -ENOMEM;
    r->req_fd = r->rsp_fd = r->owner_fd = r->lock_fd = -1;
    ring_spin_init(r);
    if ((err = setup(r, memfd, req_eventfd, rsp_eventfd)) < 0)
        return err;
    *out = TAKE_PTR(r);
    return 0;
}

void qcowring_close(struct qcowring *r)
{
    if (!r)
        return;
    if (r->base)
        munmap(r->base, r->map_size);
    if (r->req_fd >= 0)
        close(r->req_fd);
    if (r->rsp_fd >= 0)
        close(r->rsp_fd);
    if (r->owner_fd >= 0)
        close(r->owner_fd);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    page_alloc_destroy(&r->pages);
    free(r->reqs);
    free(r->free_reqs);
    free(r);
}

void qcowring_get_geometry(const struct qcowring *r, struct qcowring_geometry *out)
{
    *out = r->geo;
}

/* The page is the server's to write and ours to doubt: a capacity that
 * shrank or cannot be is not taken. */
int qcowring_refresh_capacity(struct qcowring *r)
{
    uint64_t now;

    if (!(r->geo.features & QCOWRING_F_RESIZE))
        return 0;
    now = __atomic_load_n(&r->info->capacity_sectors, __ATOMIC_ACQUIRE);
    if (now < r->geo.capacity_sectors || now > QCOWRING_MAX_CAPACITY_SECTORS)
        return -EPROTO;
    if (now == r->geo.capacity_sectors)
        return 0;
    r->geo.capacity_sectors = now;
    return 1;
}

bool ring_covers(struct qcowring *r, uint64_t start, uint64_t count)
{
    for (int pass = 0; pass < 2; pass++) {
        uint64_t cap = r->geo.capacity_sectors;
        if (start <= cap && count <= cap - start)
            return true;
        if (pass == 0 && qcowring_refresh_capacity(r) != 1)
            break;
    }
    return false;
}

int qcowring_fd(const struct qcowring *r)
{
    return r->rsp_fd;
}

unsigned qcowring_in_flight(const struct qcowring *r)
{
    return r->in_flight;
}
