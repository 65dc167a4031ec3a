/* A live commit: the top layer's data is copied into its backing file while
 * the ring is served, then the backing file takes the top's place.
 *
 * Starting (an operation of imageops.c, so nothing is in flight): the
 * backing layer is opened again for writing, on descriptors qcowd sends.
 * Then, between the loop's rounds, a few granules at a time are copied
 * (image_commit_range: only what the top holds).  A write or discard marks
 * its granules dirty when it is taken and again when it completes (a copy
 * that raced it is redone), so each pass copies what changed during the
 * last; after a pass that found nothing to copy, or after COMMIT_MAX_PASSES,
 * the worker pauses, copies what is still dirty, flushes the base, and
 * drops the top (image_drop_top).  Until that moment the top holds
 * everything, so a crash or failure at any point leaves the old chain
 * readable as it was. */
#include "config.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "faultpoint.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#define COMMIT_MAX_PASSES 8
#define COMMIT_STEP_GRANULES 16
#define COMMIT_MIN_GRANULE (64u << 10)

struct worker_commit {
    struct image *base;         /* the chain from the backing layer down, writable */
    int lock_fd;                /* its lock descriptor (shared with qcowd) */
    char *overlay;              /* the top's path */
    uint8_t *dirty;             /* one bit per granule */
    uint64_t granule, ngranules, cursor, ndirty, copied, done;
    unsigned pass;
    bool finishing;
};

static const char *top_path(const struct image *img)
{
    struct layer_info info;

    layer_get_info(img->top, &info);
    return info.path;
}

static void send_event(struct worker *w, const char *name, json_object *data)
{
    json_object *ev = json_object_new_object();

    json_object_object_add(ev, "event", json_object_new_string(name));
    json_object_object_add(ev, "data", data);
    worker_send_event(w, ev);
}

static bool is_dirty(const struct worker_commit *c, uint64_t g)
{
    return c->dirty[g / 8] & (1u << (g % 8));
}

static void set_dirty(struct worker_commit *c, uint64_t g, bool on)
{
    if (is_dirty(c, g) == on)
        return;
    c->dirty[g / 8] ^= (uint8_t)(1u << (g % 8));
    c->ndirty += on ? 1 : (uint64_t)-1;
}

void worker_commit_dirty(struct worker *w, uint64_t off, uint64_t len)
{
    struct worker_commit *c = w->commit;

    if (!c || len == 0)
        return;
    for (uint64_t g = off / c->granule; g <= (off + len - 1) / c->granule && g < c->ngranules; g++)
        set_dirty(c, g, true);
}

static void commit_free(struct worker_commit *c)
{
    if (!c)
        return;
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    free(c->overlay);
    free(c->dirty);
    free(c->base);              /* the view only: its layers are in the chain */
    free(c);
}

/* Give up: the base stays in the chain, written only where the top holds
 * the data anyway; its lock descriptor stays with us as an old top's. */
static void commit_failed(struct worker *w, int err)
{
    struct worker_commit *c = w->commit;
    /* A copy: the flush below may fail too, and say so in the same place. */
    _cleanup_free_ char *why = strdup(qc_error_message(err));
    json_object *data = json_object_new_object();

    log_error("%s: commit into %s failed: %s", w->name, top_path(c->base), why ? why : "?");
    image_flush(c->base);
    if (w->n_old_locks < WORKER_MAX_OLD_LOCKS) {
        w->old_lock_fds[w->n_old_locks++] = c->lock_fd;
        c->lock_fd = -1;
    }
    json_object_object_add(data, "reason", json_object_new_string(why ? why : "out of memory"));
    send_event(w, "commit-failed", data);
    w->commit = NULL;
    commit_free(c);
    qc_clear_error();
}

static int copy_granule(struct worker *w, uint64_t g)
{
    struct worker_commit *c = w->commit;
    uint64_t off = g * c->granule, copied = 0;
    int r;

    set_dirty(c, g, false);
    r = image_commit_range(w->img, c->base, off, MIN(c->granule, w->img->size - off), &copied);
    c->copied += copied;
    c->done += MIN(c->granule, w->img->size - off);
    return r;
}

static void progress(struct worker *w)
{
    struct worker_commit *c = w->commit;
    json_object *data = json_object_new_object();

    json_object_object_add(data, "pass", json_object_new_int64(c->pass));
    json_object_object_add(data, "done", json_object_new_int64((int64_t)MIN(c->done,
                                                                             w->img->size)));
    json_object_object_add(data, "total", json_object_new_int64((int64_t)w->img->size));
    json_object_object_add(data, "copied", json_object_new_int64((int64_t)c->copied));
    send_event(w, "commit-progress", data);
}

bool worker_commit_busy(const struct worker *w)
{
    return w->commit && !w->commit->finishing && w->state == WORKER_RUNNING;
}

void worker_commit_step(struct worker *w)
{
    struct worker_commit *c = w->commit;
    int r;

    if (!worker_commit_busy(w))
        return;
    for (unsigned n = 0; n < COMMIT_STEP_GRANULES && c->cursor < c->ngranules; c->cursor++) {
        if (!is_dirty(c, c->cursor))
            continue;
        n++;
        if ((r = copy_granule(w, c->cursor)) < 0) {
            commit_failed(w, r);
            return;
        }
    }
    if (c->cursor < c->ngranules)
        return;
    progress(w);
    if (c->ndirty > 0 && c->pass < COMMIT_MAX_PASSES) {
        c->pass++;
        c->cursor = 0;
        c->done = 0;
        return;
    }
    c->finishing = true;
    if (!worker_begin_internal_op(w, WORKER_OP_COMMIT_FINISH))
        c->finishing = false;   /* another operation first: the next round */
}

/* Close lock_fd and every older lock descriptor of the same file (a
 * snapshot left one when the file was a top before). */
static void release_locks_of(struct worker *w, int lock_fd)
{
    struct stat a, b;
    unsigned kept = 0;

    if (lock_fd < 0)
        return;
    if (fstat(lock_fd, &a) == 0)
        for (unsigned i = 0; i < w->n_old_locks; i++) {
            if (fstat(w->old_lock_fds[i], &b) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino)
                close(w->old_lock_fds[i]);
            else
                w->old_lock_fds[kept++] = w->old_lock_fds[i];
        }
    w->n_old_locks = kept;
    close(lock_fd);
}

/* Quiet: the last dirty granules, a flush, and the base takes the top's
 * place. */
void worker_commit_finish(struct worker *w)
{
    struct worker_commit *c = w->commit;
    json_object *data;
    uint64_t passes = c->pass;
    int r = 0;

    r = faultpoint("commit-finishing");
    for (uint64_t g = 0; g < c->ngranules && r == 0 && c->ndirty > 0; g++)
        if (is_dirty(c, g))
            r = copy_granule(w, g);
    if (r < 0 || (r = image_flush(c->base)) < 0 || (r = image_drop_top(w->img, c->base)) < 0) {
        c->finishing = false;
        commit_failed(w, r);
        return;
    }
    c->base = NULL;             /* image_drop_top freed the view */
    executor_top_changed(w->x);
    w->guard_first_sector = image_first_sector_guarded(w->img);
    release_locks_of(w, w->lock_fd);    /* the overlay's locks go */
    w->lock_fd = c->lock_fd;
    c->lock_fd = -1;
    /* Switched and released, qcowd not told yet: only a crash here (a
     * test's hold or crash) says anything; the base holds it all. */
    (void)faultpoint("commit-switched");
    log_info("%s: committed %s into %s (%" PRIu64 " bytes in %" PRIu64 " passes)", w->name,
             c->overlay, top_path(w->img), c->copied, passes);
    data = worker_geometry_json(w);
    json_object_object_add(data, "overlay", json_object_new_string(c->overlay));
    json_object_object_add(data, "path", json_object_new_string(top_path(w->img)));
    json_object_object_add(data, "copied", json_object_new_int64((int64_t)c->copied));
    json_object_object_add(data, "passes", json_object_new_int64((int64_t)passes));
    send_event(w, "commit-completed", data);
    w->commit = NULL;
    commit_free(c);
}

/* The start, once quiet: fds[0] the base for I/O, [1] its lock, [2] an
 * O_DIRECT twin or -1.  The base grows to the top's size if smaller. */
int worker_commit_start(struct worker *w, int *fds, json_object **ret)
{
    struct worker_commit *c;
    struct layer_info info;
    int r;

    if (w->commit)
        return qc_fail(-EBUSY, "%s: a commit is under way", w->name);
    if ((r = faultpoint("begin-commit")) < 0)
        return r;
    if (!layer_backing(w->img->top))
        return qc_fail(-EINVAL, "%s: has no backing file to commit into", w->name);
    if (fds[0] < 0 || fds[1] < 0)
        return qc_fail(-EINVAL, "'commit' takes the backing file's descriptors");
    if (!(c = calloc(1, sizeof *c)))
        return -ENOMEM;
    c->lock_fd = -1;
    layer_get_info(w->img->top, &info);
    c->overlay = strdup(info.path);
    c->granule = MAX(info.cluster_size, COMMIT_MIN_GRANULE);
    c->ngranules = (w->img->size + c->granule - 1) / c->granule;
    c->dirty = malloc((c->ngranules + 7) / 8);
    if (!c->overlay || !c->dirty) {
        commit_free(c);
        return -ENOMEM;
    }
    memset(c->dirty, 0xff, (c->ngranules + 7) / 8);
    c->ndirty = c->ngranules;
    r = image_open_below(w->img, fds[0], fds[2], &w->open_opts, &c->base);
    fds[0] = fds[2] = -1;
    if (r == 0 && c->base->size < w->img->size)
        r = image_resize(c->base, w->img->size, false);
    if (r == 0 && c->base->size != w->img->size)
        r = qc_fail(-ENOTSUP, "%s: the backing file is larger than the image", w->name);
    if (r < 0) {
        commit_free(c);
        return r;
    }
    c->lock_fd = fds[1];
    fds[1] = -1;
    c->pass = 1;
    w->commit = c;
    *ret = json_object_new_object();
    json_object_object_add(*ret, "overlay", json_object_new_string(c->overlay));
    json_object_object_add(*ret, "path", json_object_new_string(top_path(c->base)));
    log_info("%s: committing %s into %s", w->name, c->overlay, top_path(c->base));
    return 0;
}

void worker_commit_abandon(struct worker *w)
{
    if (w->commit && w->commit->base)
        image_flush(w->commit->base);   /* what it allocated stays referenced */
    commit_free(w->commit);
    w->commit = NULL;
}
