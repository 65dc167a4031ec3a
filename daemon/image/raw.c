/* The raw driver: guest offset = file offset, everything allocated. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>

#include "driver.h"
#include "error.h"
#include "util.h"

static int raw_open(struct layer *l, const struct image_open_opts *o)
{
    l->size = l->file_size;
    return 0;
}

static void raw_close(struct layer *l)
{
}

static int raw_map(struct layer *l, uint64_t off, uint64_t len, struct extent *e, bool *allocated)
{
    *allocated = true;
    *e = (struct extent){ .kind = EXTENT_DATA, .layer = l, .fd = l->fd, .guest_off = off,
                          .len = len, .host_off = off };
    return 0;
}

static int raw_plan_write(struct layer *l, uint64_t off, uint64_t len, struct write_piece *p)
{
    *p = (struct write_piece){ .kind = WRITE_IN_PLACE, .layer = l, .fd = l->fd, .guest_off = off,
                               .len = len, .host_off = off, .cluster_guest_off = off };
    return 0;
}

static int raw_commit_write(struct layer *l, const struct write_piece *p)
{
    return 0;
}

/* The file system zeroes the parts of blocks a hole only partly covers:
 * all of the range reads as zeros. */
static int raw_plan_discard(struct layer *l, uint64_t off, uint64_t len, struct discard_piece *p)
{
    *p = (struct discard_piece){ .kind = DISCARD_ZERO, .layer = l, .guest_off = off, .len = len,
                                 .host_off = off, .host_len = len };
    return 0;
}

static uint32_t raw_discard_granularity(const struct layer *l)
{
    return IMAGE_SECTOR_SIZE;
}

static int raw_meta_prepare(struct layer *l, struct meta_writeback *wb)
{
    *wb = (struct meta_writeback){ .fd = l->meta_fd };
    return 0;
}

static void raw_meta_finish(struct layer *l, struct meta_writeback *wb, int err)
{
    *wb = (struct meta_writeback){ .fd = -1 };
}

static bool raw_meta_pressure(const struct layer *l)
{
    return false;
}

static int raw_make_empty(struct layer *l)
{
    if (fallocate(l->meta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)l->size) < 0)
        return qc_fail(-errno, "%s: cannot discard the contents: %s", l->path, strerror(errno));
    return 0;
}

/* New bytes of a file read as zeros. */
static int raw_resize(struct layer *l, uint64_t new_size)
{
    if (l->block_device)
        return qc_fail(-ENOTSUP, "%s: a block device has the size it has", l->path);
    if (ftruncate(l->meta_fd, (off_t)new_size) < 0)
        return qc_fail(-errno, "%s: cannot set the size: %s", l->path, strerror(errno));
    if (fsync(l->meta_fd) < 0)
        return qc_fail(-errno, "%s: fsync: %s", l->path, strerror(errno));
    l->size = l->file_size = new_size;
    return 0;
}

static void raw_info(const struct layer *l, struct layer_info *info)
{
}

const struct layer_ops raw_ops = {
    .format = IMAGE_FORMAT_RAW,
    .open = raw_open,
    .close = raw_close,
    .map = raw_map,
    .plan_write = raw_plan_write,
    .commit_write = raw_commit_write,
    .plan_discard = raw_plan_discard,
    .discard_granularity = raw_discard_granularity,
    .meta_prepare = raw_meta_prepare,
    .meta_finish = raw_meta_finish,
    .meta_pressure = raw_meta_pressure,
    .make_empty = raw_make_empty,
    .resize = raw_resize,
    .info = raw_info,
};

int raw_create(const char *path, uint64_t size, enum prealloc_mode prealloc)
{
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        return qc_fail(-errno, "%s: cannot create: %s", path, strerror(errno));
    if (ftruncate(fd, (off_t)size) < 0)
        return qc_fail(-errno, "%s: cannot set the size: %s", path, strerror(errno));
    if (prealloc == PREALLOC_FULL && size &&
        fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
        return qc_fail(-errno, "%s: cannot preallocate: %s", path, strerror(errno));
    if (fsync(fd) < 0)
        return qc_fail(-errno, "%s: fsync: %s", path, strerror(errno));
    return 0;
}
