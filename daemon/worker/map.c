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

/* The answer, built in private memory and copied out in one go.  The
 * engine's extents are in bytes (a raw backing file may end mid-sector);
 * the answer is in sectors: a run of one kind is added once it ends. */
struct map_answer {
    struct qcowring_map_reply head;
    struct qcowring_map_extent ext[MAP_MAX_EXTENTS];
    uint32_t cap;               /* extents that fit in the client's pages */
    bool full;
    bool have_run;
    uint32_t run_flags;         /* the run not yet added */
    uint64_t run_end;           /* where it ends, in bytes from the request's start */
};

static uint32_t map_flags(const struct extent *e)
{
    return e->kind == EXTENT_ZERO ? QCOWRING_MAP_HOLE | QCOWRING_MAP_ZERO : 0;
}

/* Append the sectors up to end_sector as flags, merged with the previous
 * extent when it is of the same kind; false once the pages are full. */
static bool answer_add_sectors(struct map_answer *a, uint64_t end_sector, uint32_t flags)
{
    uint32_t n = a->head.nr_extents;
    uint64_t sectors;

    if (end_sector <= a->head.nr_sectors)
        return true;
    sectors = end_sector - a->head.nr_sectors;
    if (n && a->ext[n - 1].flags == flags) {
        a->ext[n - 1].nr_sectors += sectors;
    } else if (n == a->cap) {
        a->full = true;
        return false;
    } else {
        a->ext[n] = (struct qcowring_map_extent){ .nr_sectors = sectors, .flags = flags };
        a->head.nr_extents++;
    }
    a->head.nr_sectors = end_sector;
    return true;
}

/* The run ended: add its sectors.  A sector with any byte of data in it is
 * data (a hole there would have a client skip or zero that byte), so a data
 * run takes the sector it ends in, and a hole only its whole sectors. */
static bool answer_close_run(struct map_answer *a)
{
    uint64_t end = a->run_flags & QCOWRING_MAP_ZERO ? a->run_end / IMAGE_SECTOR_SIZE
                                                    : align_up(a->run_end, IMAGE_SECTOR_SIZE) /
                                                          IMAGE_SECTOR_SIZE;

    a->have_run = false;
    return answer_add_sectors(a, end, a->run_flags);
}

/* The next len bytes are of the kind flags; false once the pages are full. */
static bool answer_add(struct map_answer *a, uint64_t len, uint32_t flags)
{
    if (a->have_run && a->run_flags != flags && !answer_close_run(a))
        return false;
    a->have_run = true;
    a->run_flags = flags;
    a->run_end += len;
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
    if (r == 0 && a->have_run && !a->full)
        answer_close_run(a);
    return r;
}

void worker_answer_map(struct worker *w, struct ring_io *io)
{
    static struct map_answer a;     /* large: one request at a time */
    size_t pages_bytes = io->iov[0].iov_len;
    int r;

    memset(&a.head, 0, sizeof a.head);
    a.full = false;
    a.have_run = false;
    a.run_end = 0;
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
