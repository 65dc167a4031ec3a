/* Server side: create a ring's memfd and eventfds (libqcowring). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "qcowring-client.h"

#define KNOWN_FEATURES                                                          \
    (QCOWRING_F_READ_ONLY | QCOWRING_F_FLUSH | QCOWRING_F_BARRIER |             \
     QCOWRING_F_DISCARD | QCOWRING_F_INDIRECT | QCOWRING_F_PERSISTENT |         \
     QCOWRING_F_DISCARD_SECURE | QCOWRING_F_MAP | QCOWRING_F_DISCARD_ZEROES |  \
     QCOWRING_F_RESIZE)

static int check_indirect_params(const struct qcowring_params *p)
{
    if (!(p->features & QCOWRING_F_INDIRECT))
        return p->max_indirect_segments == 0 ? 0 : -EINVAL;
    if (p->max_indirect_segments <= QCOWRING_MAX_SEGMENTS ||
        p->max_indirect_segments > QCOWRING_MAX_INDIRECT_SEGMENTS)
        return -EINVAL;
    return 0;
}

static int check_params(const struct qcowring_params *p)
{
    if (p->ring_page_order > QCOWRING_MAX_RING_PAGE_ORDER || p->data_pages == 0)
        return -EINVAL;
    if (p->features & ~KNOWN_FEATURES)
        return -EINVAL;
    if ((p->features & QCOWRING_F_DISCARD_SECURE) && !(p->features & QCOWRING_F_DISCARD))
        return -EINVAL;
    if (p->capacity_sectors > QCOWRING_MAX_CAPACITY_SECTORS)
        return -EINVAL;
    if (p->discard_granularity % QCOWRING_SECTOR_SIZE || p->discard_alignment % QCOWRING_SECTOR_SIZE)
        return -EINVAL;
    return check_indirect_params(p);
}

static void fill_info(struct qcowring_info *info, const struct qcowring_params *p)
{
    memset(info, 0, QCOWRING_PAGE_SIZE);
    memcpy(info->magic, QCOWRING_MAGIC, QCOWRING_MAGIC_LEN);
    info->version_major = QCOWRING_VERSION_MAJOR;
    info->version_minor = QCOWRING_VERSION_MINOR;
    info->info_size = sizeof(*info);
    info->page_size = QCOWRING_PAGE_SIZE;
    info->ring_page_order = p->ring_page_order;
    info->ring_offset = QCOWRING_RING_OFFSET;
    info->ring_entries = qcowring_ring_entries(p->ring_page_order);
    info->sector_size = QCOWRING_SECTOR_SIZE;
    info->capacity_sectors = p->capacity_sectors;
    info->features = p->features | QCOWRING_F_PERSISTENT;
    info->data_offset = qcowring_data_offset(p->ring_page_order);
    info->data_pages = p->data_pages;
    info->max_indirect_segments = p->max_indirect_segments;
    info->discard_granularity = p->discard_granularity;
    info->discard_alignment = p->discard_alignment;
    info->server_state = QCOWRING_STATE_RUNNING;
    info->total_size = qcowring_total_size(p->ring_page_order, p->data_pages);
}

/* Write the qcowd page and SHARED_RING_INIT the ring through a temporary
 * mapping (the memfd is fresh: every other byte is already zero). */
static int init_memory(int memfd, const struct qcowring_params *p, uint64_t total)
{
    void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);

    if (base == MAP_FAILED)
        return -errno;
    fill_info(base, p);
    qcowring_sring_init((struct qcowring_sring *)((char *)base + QCOWRING_RING_OFFSET));
    munmap(base, total);
    return 0;
}

static int make_memfd(const struct qcowring_params *p, int *out)
{
    uint64_t total = qcowring_total_size(p->ring_page_order, p->data_pages);
    _cleanup_close_ int fd = memfd_create("qcowring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int err;

    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)total) < 0)
        return -errno;
    if ((err = init_memory(fd, p, total)) < 0)
        return err;
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return -errno;
    *out = TAKE_FD(fd);
    return 0;
}

void qcowring_close_fds(struct qcowring_fds *fds)
{
    if (fds->memfd >= 0)
        close(fds->memfd);
    if (fds->req_eventfd >= 0)
        close(fds->req_eventfd);
    if (fds->rsp_eventfd >= 0)
        close(fds->rsp_eventfd);
    fds->memfd = fds->req_eventfd = fds->rsp_eventfd = -1;
}

int qcowring_create(const struct qcowring_params *params, struct qcowring_fds *out)
{
    _cleanup_close_ int memfd = -1, req = -1, rsp = -1;
    int err = check_params(params);

    if (err)
        return err;
    if ((err = make_memfd(params, &memfd)) < 0)
        return err;
    if ((req = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        (rsp = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -errno;
    *out = (struct qcowring_fds){ .memfd = TAKE_FD(memfd), .req_eventfd = TAKE_FD(req),
                                  .rsp_eventfd = TAKE_FD(rsp) };
    return 0;
}
