/* Image operations on a served image: the supervisor's "resize" and
 * "snapshot" run between requests.  The worker stops taking
 * requests from the ring, lets those in flight finish, flushes (the pause
 * of control.c), runs the engine's operation synchronously, then serves
 * again; the ring's client sees a pause.  Requests it posts meanwhile wait
 * in the ring. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <json-c/json.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "worker.h"

static const char *op_name(enum worker_op_kind kind)
{
    return kind == WORKER_OP_RESIZE ? "resize" : kind == WORKER_OP_SNAPSHOT ? "snapshot"
                                                                             : "commit";
}

static void op_clear(struct worker *w)
{
    json_object_put(w->op.id);
    json_object_put(w->op.args);
    for (unsigned i = 0; i < 3; i++)
        if (w->op.fds[i] >= 0)
            close(w->op.fds[i]);
    w->op = (struct worker_op){ .kind = WORKER_OP_NONE, .fds = { -1, -1, -1 } };
}

static const char *error_class(int err)
{
    switch (err) {
    case -EPERM:
    case -EINVAL:
        return "InvalidParameter";
    case -EROFS:
        return "ReadOnly";
    case -ENOTSUP:
    case -ELOOP:
        return "NotSupported";
    case -EBUSY:
        return "Busy";
    default:
        return "ImageError";
    }
}

static void fail(struct worker *w, int err)
{
    const char *why = qc_error_message(err);

    log_warning("%s: %s failed: %s", w->name, op_name(w->op.kind), why);
    worker_reply_error(w, w->op.id, error_class(err), why);
}

/* ---- resize ------------------------------------------------------------- */

/* Refused before anything changed (read-only, a format that cannot), or
 * failed on the way: OperationFailed, saying the size the image has now
 * (the new one once its header was written: a restarted worker serves
 * that; the ring's capacity stays until a retried resize completes). */
static void resize_failed(struct worker *w, int err, uint64_t old_size)
{
    const char *cls = err == -EROFS ? "ReadOnly" : err == -ENOTSUP ? "NotSupported"
                                                                    : "OperationFailed";
    struct layer_info info;
    char desc[1024];

    layer_get_info(w->img->top, &info);
    if (info.size == old_size)
        snprintf(desc, sizeof desc, "%s; the image keeps its size, %" PRIu64 " bytes",
                 qc_error_message(err), old_size);
    else
        snprintf(desc, sizeof desc, "%s; its header says %" PRIu64 " bytes already (a "
                 "restarted worker serves that size; a retried resize completes it)",
                 qc_error_message(err), info.size);
    log_warning("%s: resize failed: %s", w->name, desc);
    worker_reply_error(w, w->op.id, cls, desc);
}

static void run_resize(struct worker *w)
{
    json_object *v, *ret;
    uint64_t old_size = w->img->size, sectors;
    int64_t size;
    int r;

    if (!json_object_object_get_ex(w->op.args, "size", &v) ||
        !json_object_is_type(v, json_type_int) || (size = json_object_get_int64(v)) <= 0) {
        worker_reply_error(w, w->op.id, "InvalidParameter", "'resize' takes 'size' (bytes)");
        return;
    }
    if ((uint64_t)size < old_size) {
        r = qc_fail(-EPERM, "%s: shrinking from %" PRIu64 " to %" PRId64 " bytes is refused "
                    "while the image is served (detach it; then qcowctl resize --shrink)",
                    w->name, old_size, size);
        fail(w, r);
        return;
    }
    if ((uint64_t)size / IMAGE_SECTOR_SIZE > QCOWRING_MAX_CAPACITY_SECTORS) {
        fail(w, qc_fail(-EINVAL, "%s: %" PRId64 " bytes is too large", w->name, size));
        return;
    }
    if ((r = image_resize(w->img, (uint64_t)size, false)) < 0) {
        resize_failed(w, r, old_size);
        return;
    }
    sectors = w->img->size / IMAGE_SECTOR_SIZE;
    w->ring_params.capacity_sectors = sectors;
    ring_server_set_capacity(w->rs, sectors);
    log_info("%s: resized from %" PRIu64 " to %" PRIu64 " bytes", w->name, old_size,
             w->img->size);
    ret = json_object_new_object();
    json_object_object_add(ret, "old-size", json_object_new_int64((int64_t)old_size));
    json_object_object_add(ret, "size", json_object_new_int64((int64_t)w->img->size));
    json_object_object_add(ret, "capacity-sectors", json_object_new_int64((int64_t)sectors));
    worker_reply(w, w->op.id, ret);
}

/* ---- snapshot ------------------------------------------------------------ */

static const char *string_arg(struct worker *w, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(w->op.args, key, &v) ||
        !json_object_is_type(v, json_type_string) || !*json_object_get_string(v))
        return NULL;
    return json_object_get_string(v);
}

/* "existing": resume on an overlay the operator made (image_take_overlay).
 * The new top's descriptors, from the supervisor: [0] to serve it through
 * (buffered), [1] the one that holds its locks (shared with the
 * supervisor), [2] an O_DIRECT twin of [0] or none.  The old top's lock
 * descriptor stays with us: the supervisor turns its locks into a backing
 * file's once we answer. */
static void run_snapshot(struct worker *w)
{
    const char *path = string_arg(w, "path"), *backing = string_arg(w, "backing");
    int meta = w->op.fds[0], lock = w->op.fds[1], direct = w->op.fds[2];
    json_object *ret, *v;
    bool existing = json_object_object_get_ex(w->op.args, "existing", &v) &&
                    json_object_get_boolean(v);
    struct layer_info info;
    int r;

    if (!path || (!backing && !existing) || meta < 0 || lock < 0) {
        worker_reply_error(w, w->op.id, "InvalidParameter",
                           "'snapshot' takes 'path', 'backing' and the new file's descriptors");
        return;
    }
    if (w->lock_fd >= 0 && w->n_old_locks == WORKER_MAX_OLD_LOCKS) {
        fail(w, qc_fail(-ELOOP, "%s: the chain is too long for another snapshot", w->name));
        return;
    }
    w->op.fds[0] = w->op.fds[2] = -1;   /* image_snapshot takes them */
    r = existing ? image_take_overlay(w->img, path, meta, direct, &w->open_opts)
                 : image_snapshot(w->img, path, backing, meta, direct, &w->open_opts);
    if (r < 0) {
        fail(w, r);
        return;
    }
    layer_get_info(w->img->top, &info);
    backing = info.backing_name;
    if (w->lock_fd >= 0)
        w->old_lock_fds[w->n_old_locks++] = w->lock_fd;
    w->lock_fd = lock;
    w->op.fds[1] = -1;
    w->guard_first_sector = image_first_sector_guarded(w->img);
    log_info("%s: serving %s now, over %s", w->name, path, backing);
    ret = worker_geometry_json(w);
    json_object_object_add(ret, "path", json_object_new_string(path));
    json_object_object_add(ret, "backing", json_object_new_string(backing));
    worker_reply(w, w->op.id, ret);
}

/* ---- waiting for quiet --------------------------------------------------- */

static void run_commit(struct worker *w)
{
    json_object *ret = NULL;
    int r = worker_commit_start(w, w->op.fds, &ret);

    if (r < 0)
        fail(w, r);
    else
        worker_reply(w, w->op.id, ret);
}

static void run_op(struct worker *w)
{
    qc_clear_error();
    if (w->op.kind == WORKER_OP_COMMIT_FINISH)
        worker_commit_finish(w);
    else if (w->read_only)
        worker_reply_error(w, w->op.id, "ReadOnly", "the image is served read-only");
    else if (executor_flush_error(w->x))
        worker_reply_error(w, w->op.id, "ImageError", executor_flush_error(w->x));
    else if (w->op.kind == WORKER_OP_RESIZE)
        run_resize(w);
    else if (w->op.kind == WORKER_OP_SNAPSHOT)
        run_snapshot(w);
    else
        run_commit(w);
    qc_clear_error();
    if (w->op.resume) {
        w->state = WORKER_RUNNING;
        w->ring_pending = true;
    } else {
        w->state = WORKER_PAUSED;
    }
    op_clear(w);
}

void worker_begin_op(struct worker *w, enum worker_op_kind kind, json_object *id,
                     json_object *msg, int *fds, unsigned nfds)
{
    json_object *args = NULL;

    if (w->op.kind != WORKER_OP_NONE) {
        worker_reply_error(w, id, "Busy", "another resize or snapshot is under way");
        return;
    }
    if (w->state != WORKER_RUNNING && w->state != WORKER_PAUSED) {
        worker_reply_error(w, id, "InvalidState", "the image is pausing or stopping");
        return;
    }
    json_object_object_get_ex(msg, "arguments", &args);
    w->op = (struct worker_op){ .kind = kind, .id = id ? json_object_get(id) : NULL,
                                .args = args ? json_object_get(args) : json_object_new_object(),
                                .fds = { -1, -1, -1 }, .resume = w->state == WORKER_RUNNING };
    for (unsigned i = 0; i < nfds && i < 3; i++) {
        w->op.fds[i] = fds[i];
        fds[i] = -1;
    }
    if (w->state == WORKER_PAUSED) {
        run_op(w);
        return;
    }
    log_info("%s: pausing for a %s", w->name, op_name(kind));
    w->state = WORKER_PAUSING;
    worker_quiesce(w);
}

bool worker_begin_internal_op(struct worker *w, enum worker_op_kind kind)
{
    if (w->op.kind != WORKER_OP_NONE || (w->state != WORKER_RUNNING && w->state != WORKER_PAUSED))
        return false;
    w->op = (struct worker_op){ .kind = kind, .args = json_object_new_object(),
                                .fds = { -1, -1, -1 }, .resume = w->state == WORKER_RUNNING };
    if (w->state == WORKER_PAUSED) {
        run_op(w);
        return true;
    }
    w->state = WORKER_PAUSING;
    worker_quiesce(w);
    return true;
}

bool worker_op_quiesced(struct worker *w)
{
    if (w->op.kind == WORKER_OP_NONE)
        return false;
    run_op(w);
    return true;
}

void worker_op_abandon(struct worker *w)
{
    if (w->op.kind != WORKER_OP_NONE)
        op_clear(w);
}
