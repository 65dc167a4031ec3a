/* Committing an overlay into its backing file: what the top layer holds is
 * copied into the layer below, which then reads the same.  qcowctl commit
 * does it whole (image_commit); a worker's live commit copies piece by
 * piece with image_commit_range() while it serves. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "driver.h"
#include "error.h"
#include "faultpoint.h"
#include "util.h"

#define COMMIT_CHUNK (1u << 20)

/* Copy [off, off+len) of img (all of it in its top layer) into base. */
static int copy_out(struct image *img, struct image *base, uint64_t off, uint64_t len,
                    uint8_t *buf)
{
    for (uint64_t done = 0; done < len;) {
        uint64_t n = MIN(len - done, COMMIT_CHUNK);
        int r = image_read(img, buf, n, off + done);
        if (r < 0 || (r = image_write(base, buf, n, off + done)) < 0)
            return r;
        done += n;
    }
    return 0;
}

int image_commit_range(struct image *img, struct image *base, uint64_t off, uint64_t len,
                       uint64_t *copied)
{
    _cleanup_free_ uint8_t *buf = NULL;
    uint64_t end = MIN(off + len, img->size);
    int r;

    *copied = 0;
    if (end > base->size)
        return qc_fail(-EINVAL, "%s: is smaller than %s above it", base->top->path,
                       img->top->path);
    while (off < end) {
        struct extent e;
        bool allocated;
        if ((r = layer_map(img->top, off, end - off, &e, &allocated)) < 0)
            return r;
        if (e.len == 0)
            return qc_fail(-EIO, "%s: internal error mapping offset %" PRIu64, img->top->path, off);
        if (allocated) {
            if (!buf && !(buf = malloc(COMMIT_CHUNK)))
                return -ENOMEM;
            if ((r = copy_out(img, base, off, e.len, buf)) < 0)
                return r;
            *copied += e.len;
        }
        off += e.len;
    }
    return 0;
}

bool layer_same_file(const struct layer *a, const struct layer *b)
{
    struct stat sa, sb;

    return fstat(a->meta_fd, &sa) == 0 && fstat(b->meta_fd, &sb) == 0 &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int check_base(struct image *img, struct image *base)
{
    if (!img->top->backing)
        return qc_fail(-EINVAL, "%s: has no backing file to commit into", img->top->path);
    if (!layer_same_file(img->top->backing, base->top))
        return qc_fail(-EINVAL, "%s: is not the backing file of %s", base->top->path,
                       img->top->path);
    if (base->top->read_only)
        return qc_fail(-EROFS, "%s: is open read-only", base->top->path);
    return 0;
}

int image_commit(struct image *img, struct image *base, bool empty,
                 struct image_commit_result *res)
{
    int r;

    *res = (struct image_commit_result){ .base_old_size = base->size };
    if ((r = faultpoint("begin-commit")) < 0 || (r = check_base(img, base)) < 0)
        return r;
    /* As qemu-img commit does: the base grows to the overlay's size. */
    if (base->size < img->size && (r = image_set_size(base, img->size, false)) < 0)
        return r;
    if ((r = image_commit_range(img, base, 0, img->size, &res->copied)) < 0 ||
        (r = image_flush(base)) < 0 || (r = faultpoint("commit-copied")) < 0)
        return r;
    if (!empty)
        return 0;
    if ((r = image_make_empty(img)) < 0)
        return r;
    res->emptied = true;
    return 0;
}
