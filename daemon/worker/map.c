/* The ring's MAP operation (a qcowd extension, doc/ring.md): which sectors
 * of the image hold data and which are holes that read as zeros, answered
 * from the engine's own map (the same one `qcowctl map` prints).  And the
 * other feature a client needs to serve NBD: whether a discard reads back
 * as zeros. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "util.h"
#include "worker.h"

/* image_map() is asked in steps, so a fragmented image costs bounded
 * memory; one request looks at no more than MAP_MAX_BYTES. */
#define MAP_STEP_BYTES (UINT64_C(16) << 20)
#define MAP_MAX_BYTES (UINT64_C(1) << 30)
#define MAP_MAX_EXTENTS \
    ((QCOWRING_MAP_MAX_PAGES * QCOWRING_PAGE_SIZE - sizeof(struct qcowring_map_reply)) / \
     sizeof(struct qcowring_map_extent))

/* The answer, built in private memory and copied out in one go. */
struct map_answer {
    struct qcowring_map_reply head;
    struct qcowring_map_extent ext[MAP_MAX_EXTENTS];
    uint32_t cap;               /* extents that fit in the client's pages */
    bool full;
};

static uint32_t map_flags(const struct extent *e)
{
    return e->kind == EXTENT_ZERO ? QCOWRING_MAP_HOLE | QCOWRING_MAP_ZERO : 0;
}

/* Append a run, merged with the previous one when it is of the same kind;
 * false once the pages are full. */
static bool answer_add(struct map_answer *a, uint64_t len, uint32_t flags)
{
    uint32_t n = a->head.nr_extents;

    if (n && a->ext[n - 1].flags == flags) {
        a->ext[n - 1].nr_sectors += len / IMAGE_SECTOR_SIZE;
    } else if (n == a->cap) {
        a->full = true;
        return false;
    } else {
        a->ext[n] = (struct qcowring_map_extent){ .nr_sectors = len / IMAGE_SECTOR_SIZE,
                                                  .flags = flags };
        a->head.nr_extents++;
    }
    a->head.nr_sectors += len / IMAGE_SECTOR_SIZE;
    return true;
}

static int answer_range(struct image *img, uint64_t off, uint64_t len, struct map_answer *a)
{
    struct extent_vec ev = { 0 };
    int r = 0;

    len = MIN(len, MAP_MAX_BYTES);
    for (uint64_t done = 0; done < len && !a->full && r == 0; done += MAP_STEP_BYTES) {
        extent_vec_reset(&ev);
        r = image_map(img, off + done, MIN(MAP_STEP_BYTES, len - done), &ev);
        for (size_t i = 0; r == 0 && i < ev.n; i++)
            if (!answer_add(a, ev.v[i].len, map_flags(&ev.v[i])))
                break;
    }
    extent_vec_free(&ev);
    return r;
}

void worker_answer_map(struct worker *w, struct ring_io *io)
{
    static struct map_answer a;     /* large: one request at a time */
    size_t pages_bytes = io->iov[0].iov_len;
    int r;

    memset(&a.head, 0, sizeof a.head);
    a.full = false;
    a.cap = (uint32_t)MIN((pages_bytes - sizeof a.head) / sizeof a.ext[0], MAP_MAX_EXTENTS);
    r = answer_range(w->img, io->sector * IMAGE_SECTOR_SIZE, io->length, &a);
    if (r < 0) {
        log_warning("%s: map of %" PRIu64 " bytes at %" PRIu64 " failed: %s", w->name,
                    io->length, io->sector * IMAGE_SECTOR_SIZE, qc_error_message(r));
        ring_server_respond_deferred(w->rs, io, QCOWRING_RSP_ERROR);
        return;
    }
    memcpy(io->iov[0].iov_base, &a.head, sizeof a.head);
    memcpy((uint8_t *)io->iov[0].iov_base + sizeof a.head, a.ext,
           a.head.nr_extents * sizeof a.ext[0]);
    ring_server_respond_deferred(w->rs, io, QCOWRING_RSP_OKAY);
}

/* A raw image's discard punches a hole in its file, which then reads as
 * zeros, if the file system can punch: ask it, beyond the end of the file
 * where punching changes nothing.  (A qcow image's discard zeroes only the
 * whole clusters of its range, so it does not offer this.) */
bool worker_discard_zeroes(const struct worker *w)
{
    struct layer_info info;
    struct stat st;
    int fd;

    if (w->read_only)
        return false;
    layer_get_info(w->img->top, &info);
    fd = layer_fd(w->img->top, false);
    if (info.format != IMAGE_FORMAT_RAW || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     (off_t)align_up((uint64_t)st.st_size, 4096), 4096) == 0;
}
