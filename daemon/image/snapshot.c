/* External snapshots: a new, empty qcow overlay becomes the top of a chain
 * that is open (a worker's, while it serves).  The caller brings the file,
 * empty and open: a sandboxed worker cannot create or open one. */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "driver.h"
#include "error.h"
#include "faultpoint.h"
#include "util.h"

static unsigned log2_of(uint64_t v)
{
    unsigned n = 0;

    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

/* The overlay's geometry: the top's clusters; 512 bytes over raw, whose
 * discards zero every sector (QEMU's default for an overlay besides). */
static void overlay_opts(const struct image *img, const char *backing_name,
                         struct qcow_create_opts *co)
{
    struct layer_info info;

    layer_get_info(img->top, &info);
    *co = (struct qcow_create_opts){ .size = img->size, .backing_file = backing_name,
                                     .cluster_bits = 9, .l2_bits = 12 };
    if (info.format == IMAGE_FORMAT_QCOW) {
        co->cluster_bits = log2_of(info.cluster_size);
        co->l2_bits = log2_of(info.l2_entries);
    }
}

static int refuse(const struct image *img, const char *path, const struct image_open_opts *o)
{
    struct layer_info info;
    unsigned max = o->max_depth ? o->max_depth : IMAGE_DEFAULT_MAX_DEPTH;

    layer_get_info(img->top, &info);
    if (img->top->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", info.path);
    if (info.encrypted)
        return qc_fail(-ENOTSUP, "%s: an encrypted image gets no snapshot here (the overlay "
                       "would need its key)", info.path);
    if (img->depth >= max)
        return qc_fail(-ELOOP, "%s: the backing chain would be longer than %u layers", path,
                       max);
    if (img->size % IMAGE_SECTOR_SIZE)
        return qc_fail(-EINVAL, "%s: its size is not whole sectors", info.path);
    return 0;
}

int image_snapshot(struct image *img, const char *path, const char *backing_name, int fd,
                   int direct_fd, const struct image_open_opts *o)
{
    _cleanup_close_ int meta = fd, direct = direct_fd;
    struct qcow_create_opts co;
    int r;

    if ((r = faultpoint("begin-snapshot")) < 0 || (r = refuse(img, path, o)) < 0 ||
        (r = image_flush(img)) < 0)
        return r;
    overlay_opts(img, backing_name, &co);
    if ((r = qcow_create_on_fd(meta, path, &co)) < 0 || (r = faultpoint("snapshot-created")) < 0)
        return r;
    return image_push_top(img, path, TAKE_FD(meta), TAKE_FD(direct), o);
}

int image_take_overlay(struct image *img, const char *path, int fd, int direct_fd,
                       const struct image_open_opts *o)
{
    _cleanup_close_ int meta = fd, direct = direct_fd;
    int r;

    if ((r = faultpoint("begin-overlay")) < 0 || (r = refuse(img, path, o)) < 0 ||
        (r = image_flush(img)) < 0)
        return r;
    return image_push_top(img, path, TAKE_FD(meta), TAKE_FD(direct), o);
}
