/* Resizing an image: its top layer's virtual size.
 *
 * A grown image reads as zeros past its old end, whatever its backing
 * files hold there: once the top layer has its new size, the part of the
 * old end's cluster past the old end is zeroed where it is not zero, and
 * whole clusters past it that would show data (a backing file longer than
 * the old size, or entries a crash left behind a shrink) are discarded,
 * as a discard makes them read as zeros. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>

#include "driver.h"
#include "error.h"
#include "faultpoint.h"
#include "util.h"

#define ZERO_SCAN_CHUNK (64u << 20)

static bool all_zero(const uint8_t *p, size_t len)
{
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static int write_zeros(struct image *img, uint64_t off, uint64_t len)
{
    _cleanup_free_ uint8_t *zeros = calloc(1, (size_t)MIN(len, 1u << 20));
    int r = 0;

    if (!zeros)
        return -ENOMEM;
    for (uint64_t done = 0; done < len && r == 0; done += 1u << 20)
        r = image_write(img, zeros, MIN(len - done, 1u << 20), off + done);
    return r;
}

/* [off, off+len), whole clusters: made to read as zeros. */
static int zero_clusters(struct image *img, uint64_t off, uint64_t len)
{
    uint64_t discarded;

    if (image_discard_granularity(img))
        return image_discard(img, off, len, &discarded);
    return write_zeros(img, off, len);         /* encrypted: zeros, encrypted */
}

/* The part of the old end's cluster past the old end. */
static int zero_head(struct image *img, uint64_t off, uint64_t len)
{
    _cleanup_free_ uint8_t *buf = malloc(len);
    int r;

    if (!buf)
        return -ENOMEM;
    if ((r = image_read(img, buf, len, off)) < 0)
        return r;
    return all_zero(buf, len) ? 0 : image_write(img, memset(buf, 0, len), len, off);
}

/* Only the old table's last span can hold entries past the old end, and
 * only the backing file's size can show data: past both, all reads zeros. */
static uint64_t scan_end(const struct image *img, uint64_t old_size, const struct layer_info *info)
{
    uint64_t span = (uint64_t)info->cluster_size * info->l2_entries;
    uint64_t below = img->top->backing ? img->top->backing->size : 0;

    return MIN(img->size, MAX(align_up(old_size, span), below));
}

static int zero_grown(struct image *img, uint64_t old_size, const struct layer_info *info)
{
    uint32_t cluster = info->cluster_size;
    uint64_t head_end = MIN(align_up(old_size, cluster), img->size);
    uint64_t end = scan_end(img, old_size, info);
    struct extent_vec ev = { 0 };
    int r = 0;

    if (head_end > old_size && (r = zero_head(img, old_size, head_end - old_size)) < 0)
        return r;
    for (uint64_t off = head_end; off < end && r == 0; off += ZERO_SCAN_CHUNK) {
        uint64_t len = MIN(end - off, ZERO_SCAN_CHUNK);
        extent_vec_reset(&ev);
        if ((r = image_map(img, off, len, &ev)) < 0)
            break;
        for (size_t i = 0; i < ev.n && r == 0; i++) {
            const struct extent *e = &ev.v[i];
            uint64_t lo = align_down(e->guest_off, cluster);
            uint64_t hi = MIN(align_up(e->guest_off + e->len, cluster), img->size);
            if (e->kind != EXTENT_ZERO)
                r = zero_clusters(img, lo, hi - lo);
        }
    }
    extent_vec_free(&ev);
    return r;
}

int image_resize(struct image *img, uint64_t new_size, bool allow_shrink)
{
    int r = faultpoint("begin-resize");

    return r < 0 ? r : image_set_size(img, new_size, allow_shrink);
}

int image_set_size(struct image *img, uint64_t new_size, bool allow_shrink)
{
    struct layer *l = img->top;
    uint64_t old_size = img->size;
    struct layer_info info;
    int r;

    if (l->read_only)
        return qc_fail(-EROFS, "%s: image is open read-only", l->path);
    if (new_size == 0 || !is_aligned(new_size, IMAGE_SECTOR_SIZE))
        return qc_fail(-EINVAL, "%s: new size %" PRIu64 " is not a positive multiple of 512",
                       l->path, new_size);
    if (!l->ops->resize)
        return qc_fail(-ENOTSUP, "%s: %s images cannot be resized", l->path,
                       image_format_name(l->ops->format));
    if (new_size == old_size)
        return 0;
    if (new_size < old_size && !allow_shrink)
        return qc_fail(-EPERM, "%s: shrinking from %" PRIu64 " to %" PRIu64 " bytes would cut "
                       "off the end of the disk: refused (offline, qcowctl resize --shrink does "
                       "it)", l->path, old_size, new_size);
    if ((r = image_flush(img)) < 0 || (r = l->ops->resize(l, new_size)) < 0)
        return r;
    img->size = l->size;
    layer_get_info(l, &info);
    if (new_size > old_size && info.cluster_size &&
        ((r = faultpoint("resize-zeroing")) < 0 ||
         (r = zero_grown(img, old_size, &info)) < 0))
        return r;
    return image_flush(img);
}
