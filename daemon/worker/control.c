/* The worker's control channel to the supervisor: a SOCK_SEQPACKET socket,
 * one JSON object per message.  The worker announces itself with a "ready"
 * event (carrying the ring's descriptors when it made the ring) or a
 * "failed" event, then answers commands:
 *   {"execute": "stats" | "query" | "pause" | "resume" | "stop", "id": ...}
 *   {"execute": "limit", "arguments": {"io-limits": {...}, "group-slot": N}, "id": ...}
 *       (with the limit group's page as a descriptor when they name one)
 *   {"execute": "resize", "arguments": {"size": BYTES}, "id": ...} (imageops.c)
 *   {"execute": "snapshot", "arguments": {"path", "backing"}, "id": ...}
 *       (with the new top's descriptors: imageops.c)
 *   {"execute": "commit", "id": ...} (with the backing file's descriptors:
 *       commit.c, then the events commit-progress, -completed or -failed)
 * with {"return": {...}, "id": ...} or {"error": {"class", "desc"}, "id"}. */
#include "config.h"

#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "fdpass.h"
#include "log.h"
#include "worker.h"

#define CTL_MAX_MESSAGE 65536
/* The id of a question the supervisor that is gone asked: its answer would
 * puzzle the one that adopts us (a supervisor's ids are numbers). */
#define LOST_QUESTION "asked by a supervisor that is gone"

static json_object *pending_pause_id;

static int send_json(int fd, json_object *obj, const int *fds, unsigned nfds)
{
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int r = fdpass_send(fd, text, strlen(text), fds, nfds);

    json_object_put(obj);
    return r;
}

json_object *worker_geometry_json(const struct worker *w)
{
    json_object *o = json_object_new_object();
    struct layer_info info;
    json_object *chain = json_object_new_array();

    for (struct layer *l = w->img->top; l; l = layer_backing(l)) {
        json_object *e = json_object_new_object();
        layer_get_info(l, &info);
        json_object_object_add(e, "filename", json_object_new_string(info.path));
        json_object_object_add(e, "format", json_object_new_string(image_format_name(info.format)));
        json_object_object_add(e, "virtual-size", json_object_new_int64((int64_t)info.size));
        json_object_array_add(chain, e);
    }
    layer_get_info(w->img->top, &info);
    json_object_object_add(o, "size", json_object_new_int64((int64_t)w->img->size));
    json_object_object_add(o, "format", json_object_new_string(image_format_name(info.format)));
    json_object_object_add(o, "cluster-size", json_object_new_int64(info.cluster_size));
    json_object_object_add(o, "encrypted", json_object_new_boolean(info.encrypted));
    json_object_object_add(o, "read-only", json_object_new_boolean(w->read_only));
    json_object_object_add(o, "chain", chain);
    json_object_object_add(o, "capacity-sectors",
                           json_object_new_int64((int64_t)w->ring_params.capacity_sectors));
    json_object_object_add(o, "features", json_object_new_int64((int64_t)w->ring_params.features));
    json_object_object_add(o, "ring-page-order", json_object_new_int(
                               (int32_t)w->ring_params.ring_page_order));
    json_object_object_add(o, "data-pages", json_object_new_int((int32_t)w->ring_params.data_pages));
    json_object_object_add(o, "max-indirect-segments", json_object_new_int(
                               (int32_t)w->ring_params.max_indirect_segments));
    return o;
}

int worker_send_ready(struct worker *w, bool with_fds)
{
    json_object *ev = json_object_new_object();
    int fds[4] = { w->ring_fds.memfd, w->ring_fds.req_eventfd, w->ring_fds.rsp_eventfd,
                   w->journal_fd };

    if (w->ctl_fd < 0)
        return 0;
    json_object_object_add(ev, "event", json_object_new_string("ready"));
    json_object_object_add(ev, "data", worker_geometry_json(w));
    return send_json(w->ctl_fd, ev, fds, with_fds ? 4 : 0);
}

/* To a supervisor that adopts us: "ready" again, with everything it keeps
 * of ours, the image's locked descriptor too (adopt.c). */
int worker_send_adoption_ready(struct worker *w)
{
    json_object *ev = json_object_new_object(), *data = worker_geometry_json(w);
    int fds[5] = { w->ring_fds.memfd, w->ring_fds.req_eventfd, w->ring_fds.rsp_eventfd,
                   w->journal_fd, w->lock_fd };

    json_object_object_add(data, "paused", json_object_new_boolean(w->state == WORKER_PAUSED ||
                                                                   w->state == WORKER_PAUSING));
    json_object_object_add(ev, "event", json_object_new_string("ready"));
    json_object_object_add(ev, "data", data);
    return send_json(w->ctl_fd, ev, fds, w->lock_fd >= 0 ? 5 : 4);
}

const char *worker_failure_class(int err)
{
    if (err == -EACCES || err == -EPERM)
        return "PermissionDenied";
    return err == -EBUSY ? "Locked" : "ImageError";
}

int worker_send_failed(int ctl_fd, const char *cls, const char *reason)
{
    json_object *ev, *data;

    if (ctl_fd < 0)
        return 0;
    ev = json_object_new_object();
    data = json_object_new_object();
    json_object_object_add(data, "desc", json_object_new_string(reason));
    if (cls)
        json_object_object_add(data, "class", json_object_new_string(cls));
    json_object_object_add(ev, "event", json_object_new_string("failed"));
    json_object_object_add(ev, "data", data);
    return send_json(ctl_fd, ev, NULL, 0);
}

void worker_send_event(struct worker *w, json_object *ev)
{
    if (w->ctl_fd < 0 || send_json(w->ctl_fd, ev, NULL, 0) < 0)
        log_warning("%s: cannot tell the supervisor", w->name);
    if (w->ctl_fd < 0)
        json_object_put(ev);
}

int worker_send_ring_broken(struct worker *w, const char *reason)
{
    json_object *ev, *data;

    if (w->ctl_fd < 0)
        return 0;
    ev = json_object_new_object();
    data = json_object_new_object();
    json_object_object_add(data, "reason", json_object_new_string(reason ? reason : "unknown"));
    json_object_object_add(ev, "event", json_object_new_string("ring-broken"));
    json_object_object_add(ev, "data", data);
    return send_json(w->ctl_fd, ev, NULL, 0);
}

int worker_send_io_error(struct worker *w, const char *reason)
{
    json_object *ev, *data;

    if (w->ctl_fd < 0)
        return 0;
    ev = json_object_new_object();
    data = json_object_new_object();
    json_object_object_add(data, "reason", json_object_new_string(reason));
    json_object_object_add(ev, "event", json_object_new_string("io-error"));
    json_object_object_add(ev, "data", data);
    return send_json(w->ctl_fd, ev, NULL, 0);
}

int worker_send_stopped(struct worker *w, int status)
{
    json_object *ev = json_object_new_object(), *data = json_object_new_object();

    if (w->ctl_fd < 0) {
        json_object_put(ev);
        json_object_put(data);
        return 0;
    }
    json_object_object_add(data, "status", json_object_new_int(status < 0 ? 1 : 0));
    json_object_object_add(ev, "event", json_object_new_string("stopped"));
    json_object_object_add(ev, "data", data);
    return send_json(w->ctl_fd, ev, NULL, 0);
}

static void add_io_error(const struct worker *w, json_object *o)
{
    const char *failed = executor_flush_error(w->x);

    if (failed)
        json_object_object_add(o, "io-error", json_object_new_string(failed));
}

static json_object *op_stats_json(const struct io_stats *s, enum blk_op op)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "ops", json_object_new_int64((int64_t)s->ops[op]));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)s->bytes[op]));
    json_object_object_add(o, "errors", json_object_new_int64((int64_t)s->errors[op]));
    json_object_object_add(o, "latency-p50-us",
                           json_object_new_int64((int64_t)stats_quantile_us(s, op, 0.50)));
    json_object_object_add(o, "latency-p99-us",
                           json_object_new_int64((int64_t)stats_quantile_us(s, op, 0.99)));
    return o;
}

/* The kernel AIO depth: what the worker holds, what it would take, and
 * how often the host's budget gave it less (aio.h). */
static json_object *aio_json(const struct aio_ctx *a)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "depth", json_object_new_int64(a->depth));
    json_object_object_add(o, "min-depth", json_object_new_int64(a->min_depth));
    json_object_object_add(o, "max-depth", json_object_new_int64(a->max_depth));
    json_object_object_add(o, "peak-depth", json_object_new_int64(a->stats.peak));
    json_object_object_add(o, "in-flight", json_object_new_int64(a->inflight));
    json_object_object_add(o, "contexts", json_object_new_int64(a->nkctx));
    json_object_object_add(o, "grown", json_object_new_int64((int64_t)a->stats.grown));
    json_object_object_add(o, "released", json_object_new_int64((int64_t)a->stats.released));
    json_object_object_add(o, "limited", json_object_new_int64((int64_t)a->stats.limited));
    return o;
}

static json_object *stats_json(const struct worker *w)
{
    const struct io_stats *s = executor_stats(w->x);
    struct ring_server_stats rs;
    json_object *o = json_object_new_object();

    ring_server_get_stats(w->rs, &rs);
    for (enum blk_op op = BLK_READ; op <= BLK_DISCARD; op++)
        json_object_object_add(o, blk_op_name(op), op_stats_json(s, op));
    json_object_object_add(o, "in-flight", json_object_new_int64((int64_t)s->inflight));
    json_object_object_add(o, "bad-requests", json_object_new_int64((int64_t)rs.bad_requests));
    json_object_object_add(o, "ring-broken", json_object_new_boolean(rs.broken));
    json_object_object_add(o, "busy-poll-hits", json_object_new_int64((int64_t)w->poll.spin.hits));
    json_object_object_add(o, "aio", aio_json(&w->aio));
    json_object_object_add(o, "throttle", limiter_stats_json(&w->limiter, now_ns()));
    json_object_object_add(o, "uptime-ms",
                           json_object_new_int64((int64_t)((now_ns() - w->started_ns) / 1000000)));
    if (w->last_error[0])
        json_object_object_add(o, "last-error", json_object_new_string(w->last_error));
    add_io_error(w, o);
    return o;
}

static const char *state_name(enum worker_state s)
{
    static const char *const names[] = { "running", "pausing", "paused", "stopping" };
    return names[s];
}

static bool question_lost(json_object *id)
{
    return id && json_object_is_type(id, json_type_string) &&
           strcmp(json_object_get_string(id), LOST_QUESTION) == 0;
}

static void forget_question(json_object **id)
{
    if (!*id)
        return;
    json_object_put(*id);
    *id = json_object_new_string(LOST_QUESTION);
}

void worker_reply(struct worker *w, json_object *id, json_object *ret)
{
    json_object *msg;

    if (question_lost(id)) {
        json_object_put(ret);
        return;
    }
    msg = json_object_new_object();

    json_object_object_add(msg, "return", ret ? ret : json_object_new_object());
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    if (send_json(w->ctl_fd, msg, NULL, 0) < 0)
        log_warning("%s: cannot answer the supervisor", w->name);
}

void worker_reply_error(struct worker *w, json_object *id, const char *cls, const char *desc)
{
    json_object *msg, *err;

    if (question_lost(id))
        return;
    msg = json_object_new_object();
    err = json_object_new_object();

    json_object_object_add(err, "class", json_object_new_string(cls));
    json_object_object_add(err, "desc", json_object_new_string(desc));
    json_object_object_add(msg, "error", err);
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    send_json(w->ctl_fd, msg, NULL, 0);
}

void worker_pause_done(struct worker *w)
{
    if (worker_op_quiesced(w))
        return;
    w->state = WORKER_PAUSED;
    log_info("%s: paused", w->name);
    worker_reply(w, pending_pause_id, NULL);
    json_object_put(pending_pause_id);
    pending_pause_id = NULL;
}

static void do_pause(struct worker *w, json_object *id)
{
    if (w->state != WORKER_RUNNING) {
        worker_reply_error(w, id, "InvalidState", "the image is not running");
        return;
    }
    w->state = WORKER_PAUSING;
    json_object_put(pending_pause_id);
    pending_pause_id = id ? json_object_get(id) : NULL;
    worker_quiesce(w);
}

static void do_resume(struct worker *w, json_object *id)
{
    if (w->state != WORKER_PAUSED && w->state != WORKER_PAUSING) {
        worker_reply_error(w, id, "InvalidState", "the image is not paused");
        return;
    }
    w->state = WORKER_RUNNING;
    w->ring_pending = true;
    log_info("%s: resumed", w->name);
    worker_reply(w, id, NULL);
}

/* New limits from the supervisor (it checked them; so do we). */
static void do_limit(struct worker *w, json_object *msg, json_object *id, int group_fd)
{
    json_object *args = NULL, *limits = NULL, *slot = NULL;
    char why[160];

    json_object_object_get_ex(msg, "arguments", &args);
    if (!json_object_object_get_ex(args, "io-limits", &limits)) {
        worker_reply_error(w, id, "InvalidParameter", "'limit' takes 'io-limits'");
        return;
    }
    json_object_object_get_ex(args, "group-slot", &slot);
    if (limiter_set(&w->limiter, limits, group_fd, slot ? json_object_get_int(slot) : -1, now_ns(),
                    why, sizeof why) < 0) {
        worker_reply_error(w, id, "InvalidParameter", why);
        return;
    }
    log_info("%s: I/O limits now %s", w->name,
             json_object_to_json_string_ext(limits, JSON_C_TO_STRING_PLAIN));
    worker_reply(w, id, io_limits_to_json(&w->limiter.limits));
}

static void handle_command(struct worker *w, const char *cmd, json_object *msg, json_object *id,
                           int *fds, unsigned nfds)
{
    if (strcmp(cmd, "stats") == 0) {
        worker_reply(w, id, stats_json(w));
    } else if (strcmp(cmd, "query") == 0) {
        json_object *q = worker_geometry_json(w);
        json_object_object_add(q, "state", json_object_new_string(state_name(w->state)));
        add_io_error(w, q);
        worker_reply(w, id, q);
    } else if (strcmp(cmd, "pause") == 0) {
        do_pause(w, id);
    } else if (strcmp(cmd, "resume") == 0) {
        do_resume(w, id);
    } else if (strcmp(cmd, "stop") == 0) {
        w->state = WORKER_STOPPING;
        worker_reply(w, id, NULL);
    } else if (strcmp(cmd, "limit") == 0) {
        do_limit(w, msg, id, fds[0]);
    } else if (strcmp(cmd, "resize") == 0) {
        worker_begin_op(w, WORKER_OP_RESIZE, id, msg, fds, 0);
    } else if (strcmp(cmd, "snapshot") == 0) {
        worker_begin_op(w, WORKER_OP_SNAPSHOT, id, msg, fds, nfds);
    } else if (strcmp(cmd, "commit") == 0) {
        worker_begin_op(w, WORKER_OP_COMMIT, id, msg, fds, nfds);
    } else {
        worker_reply_error(w, id, "CommandNotFound", "unknown worker command");
    }
}

static void close_all(int *fds, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

void worker_handle_control(struct worker *w)
{
    char buf[CTL_MAX_MESSAGE];
    int fds[FDPASS_MAX];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv(w->ctl_fd, buf, sizeof buf - 1, fds, FDPASS_MAX, &nfds);
    json_object *msg, *cmd, *id = NULL;

    /* "limit" takes one descriptor, "snapshot" up to three (imageops.c);
     * those a command does not take are closed here. */
    for (unsigned i = nfds; i < FDPASS_MAX; i++)
        fds[i] = -1;
    if (n <= 0) {
        close_all(fds, nfds);
        if (n < 0 && n != -EAGAIN)
            log_warning("%s: control channel: %s", w->name, strerror((int)-n));
        if (n == 0 || n != -EAGAIN) {
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->ctl_fd, NULL);
            close(w->ctl_fd);
            w->ctl_fd = -1;
            forget_question(&pending_pause_id);
            forget_question(&w->op.id);
            if (!worker_orphaned(w)) {
                log_info("%s: supervisor went away: stopping", w->name);
                w->state = WORKER_STOPPING;
            }
        }
        return;
    }
    buf[n] = '\0';
    msg = json_tokener_parse(buf);
    json_object_object_get_ex(msg, "id", &id);
    if (!msg || !json_object_object_get_ex(msg, "execute", &cmd) ||
        !json_object_is_type(cmd, json_type_string))
        worker_reply_error(w, id, "GenericError", "expected {\"execute\": COMMAND}");
    else
        handle_command(w, json_object_get_string(cmd), msg, id, fds, nfds);
    close_all(fds, nfds);
    json_object_put(msg);
}
