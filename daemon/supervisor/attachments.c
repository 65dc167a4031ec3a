/* Attachments: one worker per image, started, watched, restarted on the
 * same ring when it dies, asked questions on behalf of clients, stopped. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fdpass.h"
#include "lock.h"
#include "log.h"
#include "supervisor.h"

uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *attachment_state_name(enum attachment_state st)
{
    static const char *const names[] = { "starting", "running", "paused", "restarting",
                                         "stopping", "failed" };
    return names[st];
}

struct attachment *attachment_find(struct supervisor *s, const char *name)
{
    for (struct attachment *att = s->attachments; att; att = att->next)
        if (strcmp(att->name, name) == 0)
            return att;
    return NULL;
}

static void status_to_systemd(const struct supervisor *s)
{
    sd_notifyf(0, "STATUS=%u image(s) attached, %u client(s)", s->nimages, s->nclients);
}

/* ---- describing --------------------------------------------------------- */

static void copy_field(json_object *to, json_object *from, const char *key)
{
    json_object *v;

    if (from && json_object_object_get_ex(from, key, &v))
        json_object_object_add(to, key, json_object_get(v));
}

json_object *attachment_describe(const struct attachment *att, bool full)
{
    json_object *o = json_object_new_object();
    json_object *info = att->proc.ready;

    json_object_object_add(o, "name", json_object_new_string(att->name));
    json_object_object_add(o, "path", json_object_new_string(att->path));
    json_object_object_add(o, "state", json_object_new_string(attachment_state_name(att->state)));
    json_object_object_add(o, "pid", json_object_new_int(att->proc.pid));
    json_object_object_add(o, "read-only", json_object_new_boolean(att->read_only));
    copy_field(o, info, "format");
    copy_field(o, info, "size");
    json_object_object_add(o, "connected", json_object_new_boolean(att->owner != NULL));
    if (!full)
        return o;
    copy_field(o, info, "cluster-size");
    copy_field(o, info, "encrypted");
    copy_field(o, info, "chain");
    json_object_object_add(o, "cache", json_object_new_string(att->writeback ? "writeback" : "none"));
    json_object_object_add(o, "poll-us", json_object_new_int((int32_t)att->poll_us));
    json_object_object_add(o, "restarts", json_object_new_int((int32_t)att->restarts));
    json_object_object_add(o, "ring-renewals", json_object_new_int((int32_t)att->ring_renewals));
    if (info) {
        json_object *ring = json_object_new_object();
        copy_field(ring, info, "ring-page-order");
        copy_field(ring, info, "data-pages");
        copy_field(ring, info, "max-indirect-segments");
        copy_field(ring, info, "capacity-sectors");
        json_object_object_add(o, "ring", ring);
    }
    if (att->error)
        json_object_object_add(o, "error", json_object_new_string(att->error));
    return o;
}

/* ---- calls to workers --------------------------------------------------- */

static struct call *call_push(struct attachment *att, enum call_kind kind, struct client *c,
                              json_object *id, const char *command)
{
    struct call *call = calloc(1, sizeof *call), **pp = &att->calls;

    if (!call)
        return NULL;
    call->kind = kind;
    call->client = c;
    if (c)
        c->busy++;
    call->id = id ? json_object_get(id) : NULL;
    snprintf(call->command, sizeof call->command, "%s", command);
    call->seq = ++att->next_seq;
    call->deadline_ns = mono_ns() + (uint64_t)WORKER_CALL_TIMEOUT_MS * 1000000u;
    while (*pp)
        pp = &(*pp)->next;
    *pp = call;
    return call;
}

static void call_free(struct call *call)
{
    if (call->client && --call->client->busy == 0)
        call->client->resume = true;
    json_object_put(call->id);
    free(call);
}

static int send_command(struct attachment *att, struct call *call)
{
    char buf[96];
    int n = snprintf(buf, sizeof buf, "{\"execute\":\"%s\",\"id\":%llu}", call->command,
                     (unsigned long long)call->seq);

    return fdpass_send(att->proc.ctl_fd, buf, (size_t)n, NULL, 0);
}

static void stats_all_done(struct stats_all *all)
{
    if (all->client)
        client_reply(all->client, all->id, all->result);
    else
        json_object_put(all->result);
    json_object_put(all->id);
    free(all);
}

static void stats_all_answer(struct attachment *att, struct stats_all *all, json_object *ret)
{
    if (ret)
        json_object_object_add(all->result, att->name, json_object_get(ret));
    if (--all->waiting == 0)
        stats_all_done(all);
}

/* A call ended: answer its client (ret is the worker's "return", or NULL
 * with err set). */
static void call_finish(struct supervisor *s, struct attachment *att, struct call *call,
                        json_object *ret, const char *err)
{
    if (call->kind == CALL_STATS_ALL) {
        stats_all_answer(att, call->all, ret);
    } else if (ret && call->kind == CALL_FORWARD) {
        if (strcmp(call->command, "pause") == 0) {
            att->state = ATT_PAUSED;
            att->paused = true;
        } else if (strcmp(call->command, "resume") == 0) {
            att->state = ATT_RUNNING;
            att->paused = false;
        }
        if (call->client)
            client_reply(call->client, call->id, json_object_get(ret));
    } else if (!ret && call->client) {
        client_error(call->client, call->id, "WorkerError", "%s: %s", att->name, err);
    }
    call_free(call);
}

/* Pop the call waiting for the worker's answer with this id (0: any). */
static struct call *pop_answerable(struct attachment *att, uint64_t seq)
{
    for (struct call **pp = &att->calls; *pp; pp = &(*pp)->next) {
        struct call *call = *pp;
        if ((call->kind == CALL_FORWARD || call->kind == CALL_STATS_ALL ||
             call->kind == CALL_INTERNAL) && (seq == 0 || call->seq == seq)) {
            *pp = call->next;
            return call;
        }
    }
    return NULL;
}

static struct call *take_call(struct attachment *att, enum call_kind kind);

static void fail_calls(struct supervisor *s, struct attachment *att, const char *why)
{
    struct call *call;

    while ((call = pop_answerable(att, 0)))
        call_finish(s, att, call, NULL, why);
}

void attachment_forward(struct supervisor *s, struct attachment *att, struct client *c, json_object *id,
                   const char *command)
{
    struct call *call = call_push(att, CALL_FORWARD, c, id, command);

    if (!call) {
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    if (send_command(att, call) < 0)
        call_finish(s, att, pop_answerable(att, call->seq), NULL, "the worker is not answering");
}

void attachments_stats_all(struct supervisor *s, struct client *c, json_object *id)
{
    struct stats_all *all = calloc(1, sizeof *all);

    if (!all) {
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    all->client = c;
    all->id = id ? json_object_get(id) : NULL;
    all->result = json_object_new_object();
    all->waiting = 1;           /* held until every worker is asked */
    for (struct attachment *att = s->attachments; att; att = att->next) {
        if (att->state != ATT_RUNNING && att->state != ATT_PAUSED)
            continue;
        struct call *call = call_push(att, CALL_STATS_ALL, c, NULL, "stats");
        if (!call)
            continue;
        call->all = all;
        all->waiting++;
        if (send_command(att, call) < 0)
            call_finish(s, att, pop_answerable(att, call->seq), NULL, "not answering");
    }
    if (--all->waiting == 0)
        stats_all_done(all);
}

/* ---- starting workers --------------------------------------------------- */

static void fill_spawn_opts(const struct supervisor *s, const struct attachment *att,
                            struct worker_spawn_opts *o, bool adopt)
{
    *o = (struct worker_spawn_opts){
        .worker_path = s->worker_path, .image = att->path, .format = att->format,
        .name = att->name, .read_only = att->read_only, .writeback = att->writeback,
        .key = att->key, .log_level = s->log_level, .stderr_fd = -1,
        .adopt = adopt ? &att->proc.ring : NULL,
        .adopt_journal_fd = att->proc.journal_fd,
        .start_paused = att->paused,
        .poll_us = att->poll_us,
        .ring_order = att->ring_page_order,
        .ring_order_given = att->ring_page_order_given,
        .data_pages = att->data_pages,
    };
}

static int launch(struct supervisor *s, struct attachment *att, bool adopt)
{
    struct worker_spawn_opts o;
    struct worker_proc p;
    int r;

    fill_spawn_opts(s, att, &o, adopt);
    if ((r = worker_launch(&o, &p)) < 0)
        return r;
    att->proc.pid = p.pid;
    att->proc.ctl_fd = p.ctl_fd;
    att->started_ns = mono_ns();
    att->watch = (struct watch){ .kind = WATCH_WORKER, .obj = att };
    return watch_fd(s, p.ctl_fd, &att->watch);
}

static void attachment_free(struct supervisor *s, struct attachment *att)
{
    struct attachment **pp = &s->attachments;

    while (*pp && *pp != att)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = att->next;
        s->nimages--;
    }
    while (att->calls) {
        struct call *call = att->calls;
        att->calls = call->next;
        call_finish(s, att, call, NULL, "detached");
    }
    unwatch_fd(s, att->proc.ctl_fd);
    worker_proc_release(&att->proc);
    if (att->lock_fd >= 0)
        close(att->lock_fd);
    if (att->key)
        explicit_bzero(att->key, strlen(att->key));
    free(att->key);
    free(att->path);
    free(att->format);
    free(att->error);
    bury(s, &att->watch, att);
    status_to_systemd(s);
}

/* ---- attach ------------------------------------------------------------- */

static bool valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > MAX_NAME)
        return false;
    for (const char *p = name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            return false;
    return true;
}

static const char *string_arg(json_object *args, const char *key, bool *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(args, key, &v))
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

static bool bool_arg(json_object *args, const char *key, bool *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(args, key, &v))
        return false;
    if (!json_object_is_type(v, json_type_boolean)) {
        *bad = true;
        return false;
    }
    return json_object_get_boolean(v);
}

/* An optional integer in [0, max]; *bad when present and anything else. */
static unsigned uint_arg(json_object *args, const char *key, unsigned max, bool *bad)
{
    json_object *v;
    int64_t n;

    if (!json_object_object_get_ex(args, key, &v))
        return 0;
    n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < 0 || n > (int64_t)max) {
        *bad = true;
        return 0;
    }
    return (unsigned)n;
}

static bool same_file_attached(struct supervisor *s, const struct stat *st)
{
    for (struct attachment *att = s->attachments; att; att = att->next) {
        struct stat other;
        if (stat(att->path, &other) == 0 && other.st_dev == st->st_dev && other.st_ino == st->st_ino)
            return true;
    }
    return false;
}

struct attach_args {
    const char *path, *name, *cache, *format, *key;
    bool read_only;
    unsigned poll_us;
    unsigned ring_page_order, data_pages;
    bool ring_page_order_given;
};

#define MAX_POLL_US 1000
#define MIN_DATA_PAGES 16
#define MAX_DATA_PAGES (1u << 20)

static bool parse_attach(struct client *c, json_object *id, json_object *args, struct attach_args *a)
{
    bool bad = false;
    const char *slash;

    a->path = string_arg(args, "path", &bad);
    a->name = string_arg(args, "name", &bad);
    a->cache = string_arg(args, "cache", &bad);
    a->format = string_arg(args, "format", &bad);
    a->key = string_arg(args, "key", &bad);
    a->read_only = bool_arg(args, "read-only", &bad);
    a->poll_us = uint_arg(args, "poll-us", MAX_POLL_US, &bad);
    a->ring_page_order_given = json_object_object_get_ex(args, "ring-page-order", NULL);
    a->ring_page_order = uint_arg(args, "ring-page-order", QCOWRING_MAX_RING_PAGE_ORDER, &bad);
    a->data_pages = uint_arg(args, "data-pages", MAX_DATA_PAGES, &bad);
    if (json_object_object_get_ex(args, "data-pages", NULL) && a->data_pages < MIN_DATA_PAGES)
        bad = true;
    if (bad || !a->path || !*a->path) {
        client_error(c, id, "InvalidParameter",
                     "attach takes 'path' (string, required), 'name', 'cache', 'format', 'key' "
                     "(strings), 'read-only' (boolean), 'poll-us' (integer, 0 to %d), "
                     "'ring-page-order' (integer, 0 to %u) and 'data-pages' (integer, %u to %u)",
                     MAX_POLL_US, QCOWRING_MAX_RING_PAGE_ORDER, MIN_DATA_PAGES, MAX_DATA_PAGES);
        return false;
    }
    if (!a->name)
        a->name = (slash = strrchr(a->path, '/')) ? slash + 1 : a->path;
    if (!valid_name(a->name)) {
        client_error(c, id, "InvalidParameter",
                     "'%.80s' is not a valid name (1-64 of A-Z a-z 0-9 . _ -)", a->name);
        return false;
    }
    if (a->cache && strcmp(a->cache, "none") && strcmp(a->cache, "writeback")) {
        client_error(c, id, "InvalidParameter", "'cache' is \"none\" or \"writeback\"");
        return false;
    }
    if (a->format && strcmp(a->format, "auto") && strcmp(a->format, "qcow") &&
        strcmp(a->format, "raw")) {
        client_error(c, id, "InvalidParameter", "'format' is \"auto\", \"qcow\" or \"raw\"");
        return false;
    }
    return true;
}

static bool admissible(struct supervisor *s, struct client *c, json_object *id,
                       const struct attach_args *a, struct stat *st)
{
    if (s->stopping) {
        client_error(c, id, "InvalidState", "qcowd is shutting down");
        return false;
    }
    if (attachment_find(s, a->name)) {
        client_error(c, id, "AlreadyExists", "an image is already attached as '%s'", a->name);
        return false;
    }
    if (!limits_admit_image(s, c, id))
        return false;
    if (stat(a->path, st) < 0) {
        client_error(c, id, "ImageError", "%s: %s", a->path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
        client_error(c, id, "ImageError", "%s: not a regular file or block device", a->path);
        return false;
    }
    if (same_file_attached(s, st)) {
        client_error(c, id, "AlreadyExists", "%s is already attached", a->path);
        return false;
    }
    return true;
}

static struct attachment *attachment_new(const struct attach_args *a)
{
    struct attachment *att = calloc(1, sizeof *att);

    if (!att)
        return NULL;
    snprintf(att->name, sizeof att->name, "%s", a->name);
    att->path = realpath(a->path, NULL);
    att->format = a->format ? strdup(a->format) : NULL;
    att->key = a->key ? strdup(a->key) : NULL;
    att->read_only = a->read_only;
    att->writeback = a->cache && strcmp(a->cache, "writeback") == 0;
    att->poll_us = a->poll_us;
    att->ring_page_order = a->ring_page_order;
    att->ring_page_order_given = a->ring_page_order_given;
    att->data_pages = a->data_pages;
    att->lock_fd = -1;
    att->proc = (struct worker_proc){ .pid = -1, .ctl_fd = -1, .ring = { -1, -1, -1 },
                                      .journal_fd = -1 };
    if (!att->path) {
        free(att->format);
        free(att->key);
        free(att);
        return NULL;
    }
    return att;
}

int attachment_start(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attach_args a;
    struct stat st;
    struct attachment *att;
    int r;

    if (!parse_attach(c, id, args, &a) || !admissible(s, c, id, &a, &st))
        return -EINVAL;
    if (!(att = attachment_new(&a))) {
        client_error(c, id, "ImageError", "%s: %s", a.path, strerror(errno));
        return -ENOMEM;
    }
    att->next = s->attachments;
    s->attachments = att;
    s->nimages++;
    qc_clear_error();
    if ((r = image_lock(att->path, att->read_only, &att->lock_fd)) < 0) {
        client_error(c, id, r == -EBUSY ? "Locked" : "ImageError", "%s", qc_error_message(r));
        attachment_free(s, att);
        return r;
    }
    if ((r = launch(s, att, false)) < 0) {
        char why[512];
        if (limits_start_error(r, why, sizeof why))
            client_error(c, id, "LimitReached", "%s: %s", att->name, why);
        else
            client_error(c, id, "WorkerError", "%s: cannot start a worker: %s", att->name,
                         strerror(-r));
        attachment_free(s, att);
        return r;
    }
    call_push(att, CALL_ATTACH, c, id, "attach");
    log_info("%s: attaching %s (worker pid %d)", att->name, att->path, (int)att->proc.pid);
    return 0;
}

/* ---- worker messages ---------------------------------------------------- */

static struct call *take_call(struct attachment *att, enum call_kind kind)
{
    for (struct call **pp = &att->calls; *pp; pp = &(*pp)->next)
        if ((*pp)->kind == kind) {
            struct call *call = *pp;
            *pp = call->next;
            return call;
        }
    return NULL;
}

static void mark_failed(struct supervisor *s, struct attachment *att, const char *why)
{
    free(att->error);
    att->error = strdup(why);
    att->state = ATT_FAILED;
    json_object *d = json_object_new_object();
    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "error", json_object_new_string(why));
    broadcast_event(s, "image-failed", d);
}

/* Remember the qcowd page of a fresh ring: a client may scribble on it, and
 * the next client must not inherit that (see attachment_ring_released). */
static void snapshot_ring_page(struct attachment *att)
{
    ssize_t n = pread(att->proc.ring.memfd, &att->ring_page, sizeof att->ring_page, 0);

    att->have_ring_page = n == (ssize_t)sizeof att->ring_page;
}

static void started(struct supervisor *s, struct attachment *att)
{
    bool restart = att->state == ATT_RESTARTING;
    struct call *call = take_call(att, CALL_ATTACH);
    json_object *d = json_object_new_object();

    att->state = att->paused ? ATT_PAUSED : ATT_RUNNING;
    if (!restart)
        snapshot_ring_page(att);
    json_object_object_add(d, "name", json_object_new_string(att->name));
    if (att->renewing) {
        att->renewing = false;
        json_object_object_add(d, "pid", json_object_new_int(att->proc.pid));
        broadcast_event(s, "ring-renewed", d);
        log_info("%s: serving a fresh ring (worker pid %d)", att->name, (int)att->proc.pid);
    } else if (restart) {
        json_object_object_add(d, "pid", json_object_new_int(att->proc.pid));
        json_object_object_add(d, "restarts", json_object_new_int((int32_t)att->restarts));
        broadcast_event(s, "worker-restarted", d);
    } else {
        json_object_object_add(d, "path", json_object_new_string(att->path));
        broadcast_event(s, "image-attached", d);
    }
    if (call && call->client)
        client_reply(call->client, call->id, attachment_describe(att, true));
    if (call)
        call_free(call);
    status_to_systemd(s);
}

/* cls: ImageError, or LimitReached when a host limit stopped the worker. */
static void start_failed(struct supervisor *s, struct attachment *att, const char *cls,
                         const char *why)
{
    struct call *call = take_call(att, CALL_ATTACH);

    log_warning("%s: worker failed to start: %s", att->name, why);
    unwatch_fd(s, att->proc.ctl_fd);
    if (call) {
        if (call->client)
            client_error(call->client, call->id, cls, "%s", why);
        call_free(call);
    }
    kill(att->proc.pid, SIGKILL);
    /* The exit is reaped in attachments_reap, which frees a fresh attachment
     * or marks a restarting one failed. */
    free(att->error);
    att->error = strdup(why);
}

static void read_ready(struct supervisor *s, struct attachment *att)
{
    struct worker_spawn_opts o;
    int r;

    fill_spawn_opts(s, att, &o, att->state == ATT_RESTARTING);
    if (att->state == ATT_RESTARTING) {
        /* Keep our copies of the ring; the worker only reports. */
        struct qcowring_fds kept = att->proc.ring;
        int kept_journal = att->proc.journal_fd;
        json_object *old = att->proc.ready;
        att->proc.ready = NULL;
        r = worker_read_ready(&o, &att->proc, 0);
        qcowring_close_fds(&att->proc.ring);
        if (att->proc.journal_fd >= 0 && att->proc.journal_fd != kept_journal)
            close(att->proc.journal_fd);
        att->proc.ring = kept;
        att->proc.journal_fd = kept_journal;
        if (r < 0)
            att->proc.ready = old;
        else
            json_object_put(old);
    } else {
        r = worker_read_ready(&o, &att->proc, 0);
    }
    if (r < 0)
        start_failed(s, att, r == -EAGAIN ? "LimitReached" : "ImageError", qc_error_message(r));
    else
        started(s, att);
}

static void detached(struct supervisor *s, struct attachment *att, int status);

static void remember_exiting(struct supervisor *s, pid_t pid)
{
    if (s->nexiting == s->exiting_cap) {
        unsigned cap = s->exiting_cap ? s->exiting_cap * 2 : 16;
        pid_t *v = realloc(s->exiting, cap * sizeof *v);
        if (!v)
            return;             /* it is still reaped, just not waited for at exit */
        s->exiting = v;
        s->exiting_cap = cap;
    }
    s->exiting[s->nexiting++] = pid;
}

static void forget_exiting(struct supervisor *s, pid_t pid)
{
    for (unsigned i = 0; i < s->nexiting; i++)
        if (s->exiting[i] == pid) {
            s->exiting[i] = s->exiting[--s->nexiting];
            return;
        }
}

/* Ask a serving worker to finish, flush and stop; "stopped" comes back. */
static void stop_worker(struct attachment *att)
{
    struct call *stop;

    att->state = ATT_STOPPING;
    stop = call_push(att, CALL_INTERNAL, NULL, NULL, "stop");
    if (!stop || send_command(att, stop) < 0)
        kill(att->proc.pid, SIGTERM);   /* the worker drains and flushes on SIGTERM too */
}

static bool has_call(const struct attachment *att, enum call_kind kind)
{
    for (const struct call *c = att->calls; c; c = c->next)
        if (c->kind == kind)
            return true;
    return false;
}

/* A renewal stops the worker like a detach; a detach asked meanwhile wins. */
static bool renewal_goes_on(const struct attachment *att)
{
    return att->renewing && !has_call(att, CALL_DETACH);
}

/* The old worker flushed and closed the image: start a new one with a new
 * ring.  The client that broke the old ring keeps only its dead mapping. */
static void relaunch_with_fresh_ring(struct supervisor *s, struct attachment *att)
{
    fail_calls(s, att, "the ring is being renewed");
    unwatch_fd(s, att->proc.ctl_fd);
    worker_proc_release(&att->proc);
    att->proc = (struct worker_proc){ .pid = -1, .ctl_fd = -1, .ring = { -1, -1, -1 },
                                      .journal_fd = -1 };
    att->owner = NULL;
    att->ring_renewals++;
    att->state = ATT_STARTING;
    if (launch(s, att, false) < 0) {
        att->renewing = false;
        mark_failed(s, att, "cannot start a worker for a fresh ring");
    }
}

static void renew_ring(struct attachment *att)
{
    if (att->state == ATT_RUNNING || att->state == ATT_PAUSED) {
        att->renewing = true;
        stop_worker(att);
    }
}

/* The worker only ever writes its server_state there; anything else that
 * changed was the client's doing, and a new client would refuse the ring
 * (or worse, believe it). */
static bool ring_page_damaged(struct attachment *att)
{
    struct qcowring_info now;

    if (!att->have_ring_page ||
        pread(att->proc.ring.memfd, &now, sizeof now, 0) != (ssize_t)sizeof now)
        return false;
    now.server_state = att->ring_page.server_state;
    return memcmp(&now, &att->ring_page, sizeof now) != 0;
}

void attachment_ring_released(struct attachment *att)
{
    if ((att->state == ATT_RUNNING || att->state == ATT_PAUSED) && ring_page_damaged(att)) {
        log_warning("%s: the client that let go of the ring damaged its qcowd page: "
                    "renewing the ring", att->name);
        renew_ring(att);
    }
}

/* The worker reports that its client broke the ring: once the worker has
 * finished what it started and flushed, a new worker gets a new ring, so
 * the next client can connect. */
static bool ring_broken_event(struct supervisor *s, struct attachment *att, json_object *msg)
{
    json_object *ev, *data, *reason = NULL, *d;

    if (!json_object_object_get_ex(msg, "event", &ev) ||
        strcmp(json_object_get_string(ev), "ring-broken") != 0)
        return false;
    json_object_object_get_ex(msg, "data", &data);
    json_object_object_get_ex(data, "reason", &reason);
    log_warning("%s: the client broke the ring (%s): renewing it", att->name,
                reason ? json_object_get_string(reason) : "no reason given");
    d = json_object_new_object();
    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "reason", json_object_new_string(
                                             reason ? json_object_get_string(reason) : ""));
    broadcast_event(s, "ring-broken", d);
    renew_ring(att);
    return true;
}

/* The worker flushed and closed the image: the detach is done, whether or
 * not the process has exited yet (it is reaped whenever it does). */
static bool stopped_event(struct supervisor *s, struct attachment *att, json_object *msg)
{
    json_object *ev, *data, *status;

    if (!json_object_object_get_ex(msg, "event", &ev) ||
        strcmp(json_object_get_string(ev), "stopped") != 0)
        return false;
    json_object_object_get_ex(msg, "data", &data);
    json_object_object_get_ex(data, "status", &status);
    if (att->state == ATT_STOPPING) {
        unwatch_fd(s, att->proc.ctl_fd);
        remember_exiting(s, att->proc.pid);
        int code = status ? json_object_get_int(status) : 1;
        if (renewal_goes_on(att) && code == 0) {
            relaunch_with_fresh_ring(s, att);
        } else if (renewal_goes_on(att)) {
            /* Its last flush failed: what it held is not known to be on
             * disk, so no new worker reads the image behind its back. */
            att->renewing = false;
            mark_failed(s, att, "the worker's flush before renewing the ring failed");
        } else {
            detached(s, att, code);
        }
    }
    return true;
}

static void read_answer(struct supervisor *s, struct attachment *att)
{
    char buf[MAX_LINE];
    int fds[4];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv(att->proc.ctl_fd, buf, sizeof buf - 1, fds, 4, &nfds);
    json_object *msg, *ret = NULL, *err = NULL, *desc = NULL, *id = NULL;
    struct call *call;

    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (n <= 0) {
        /* The worker is gone; its exit is handled when it is reaped. */
        unwatch_fd(s, att->proc.ctl_fd);
        return;
    }
    buf[n] = '\0';
    msg = json_tokener_parse(buf);
    if (stopped_event(s, att, msg) || ring_broken_event(s, att, msg)) {
        json_object_put(msg);
        return;
    }
    json_object_object_get_ex(msg, "id", &id);
    if (!id || !(call = pop_answerable(att, (uint64_t)json_object_get_int64(id)))) {
        log_warning("%s: unexpected message from the worker", att->name);
        json_object_put(msg);
        return;
    }
    json_object_object_get_ex(msg, "return", &ret);
    json_object_object_get_ex(msg, "error", &err);
    json_object_object_get_ex(err, "desc", &desc);
    call_finish(s, att, call, ret, desc ? json_object_get_string(desc) : "bad answer");
    json_object_put(msg);
}

void attachment_worker_readable(struct supervisor *s, struct attachment *att)
{
    if (att->state == ATT_STARTING || att->state == ATT_RESTARTING)
        read_ready(s, att);
    else
        read_answer(s, att);
}

/* ---- worker exits ------------------------------------------------------- */

static void detached(struct supervisor *s, struct attachment *att, int status)
{
    struct call *call;
    json_object *d = json_object_new_object();

    while ((call = take_call(att, CALL_DETACH))) {
        if (call->client) {
            if (status == 0 || !att->proc.ready)
                client_reply(call->client, call->id, NULL);
            else
                client_error(call->client, call->id, "WorkerError",
                             "%s: the worker's final flush failed (exit status %d)", att->name,
                             status);
        }
        call_free(call);
    }
    json_object_object_add(d, "name", json_object_new_string(att->name));
    broadcast_event(s, "image-detached", d);
    log_info("%s: detached", att->name);
    attachment_free(s, att);
}

static bool restart_allowed(struct attachment *att)
{
    uint64_t now = mono_ns(), window = (uint64_t)RESTART_WINDOW_S * 1000000000u;
    unsigned recent = 0;

    for (unsigned i = 0; i < RESTART_LIMIT; i++)
        if (att->restart_times[i] && now - att->restart_times[i] < window)
            recent++;
    if (recent >= RESTART_LIMIT)
        return false;
    memmove(att->restart_times + 1, att->restart_times, sizeof(uint64_t) * (RESTART_LIMIT - 1));
    att->restart_times[0] = now;
    return true;
}

static void died(struct supervisor *s, struct attachment *att, int status)
{
    json_object *d = json_object_new_object();
    char why[128];

    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "pid", json_object_new_int(att->proc.pid));
    json_object_object_add(d, "status", json_object_new_int(status));
    broadcast_event(s, "worker-died", d);
    if (att->proc.ctl_fd >= 0) {
        unwatch_fd(s, att->proc.ctl_fd);
        close(att->proc.ctl_fd);
        att->proc.ctl_fd = -1;
    }
    fail_calls(s, att, "the worker died");
    if (!restart_allowed(att)) {
        snprintf(why, sizeof why, "the worker died %d times within %d s (last status %d)",
                 RESTART_LIMIT, RESTART_WINDOW_S, status);
        mark_failed(s, att, why);
        return;
    }
    att->restarts++;
    att->state = ATT_RESTARTING;
    if (launch(s, att, true) < 0)
        mark_failed(s, att, "cannot start a new worker");
    else
        log_warning("%s: worker died (status %d); restarted as pid %d", att->name, status,
                    (int)att->proc.pid);
}

static void worker_exited(struct supervisor *s, struct attachment *att, int status)
{
    if (att->state == ATT_STOPPING && renewal_goes_on(att) && status == 0) {
        /* A clean exit whose "stopped" we have not read yet. */
        relaunch_with_fresh_ring(s, att);
    } else if (att->state == ATT_STOPPING && renewal_goes_on(att)) {
        /* It died before it flushed: recover on the old ring as after any
         * crash (its journal says broken, so the new worker reports it
         * again and the renewal starts over). */
        att->renewing = false;
        att->state = ATT_RUNNING;
        died(s, att, status);
    } else if (att->state == ATT_STOPPING) {
        detached(s, att, status);
    } else if (att->state == ATT_STARTING && att->renewing) {
        att->renewing = false;
        fail_calls(s, att, "the worker exited");
        mark_failed(s, att, att->error ? att->error : "the worker for a fresh ring exited");
    } else if (att->state == ATT_STARTING) {
        fail_calls(s, att, "the worker exited");
        struct call *call = take_call(att, CALL_ATTACH);
        if (call && call->client)
            client_error(call->client, call->id, "ImageError", "%s",
                         att->error ? att->error : "the worker exited during start-up");
        if (call)
            call_free(call);
        attachment_free(s, att);
    } else if (att->state != ATT_FAILED) {
        died(s, att, status);
    }
}

void attachments_reap(struct supervisor *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        forget_exiting(s, pid);
        if (exports_child_exited(s, pid, code))
            continue;
        for (struct attachment *att = s->attachments; att; att = att->next)
            if (att->proc.pid == pid) {
                worker_exited(s, att, code);
                break;
            }
    }
}

/* ---- detach and housekeeping -------------------------------------------- */

void attachment_detach(struct supervisor *s, struct attachment *att, struct client *c, json_object *id)
{
    exports_detaching(s, att);
    if (att->state == ATT_FAILED) {
        if (att->proc.pid > 0)
            kill(att->proc.pid, SIGKILL);
        client_reply(c, id, NULL);
        attachment_free(s, att);
        return;
    }
    call_push(att, CALL_DETACH, c, id, "detach");
    if (att->state == ATT_STOPPING)
        return;
    if (att->state == ATT_STARTING || att->state == ATT_RESTARTING) {
        /* Not serving yet: no flush to wait for. */
        struct call *attach = take_call(att, CALL_ATTACH);
        if (attach)
            call_finish(s, att, attach, NULL, "detached while starting");
        att->state = ATT_STOPPING;
        kill(att->proc.pid, SIGKILL);
        return;
    }
    stop_worker(att);
}

void attachments_stop_all(struct supervisor *s)
{
    s->stopping = true;
    sd_notify(0, "STOPPING=1");
    for (struct attachment *att = s->attachments, *next; att; att = next) {
        next = att->next;
        if (att->state != ATT_STOPPING)
            attachment_detach(s, att, NULL, NULL);
    }
}

void attachments_forget_client(struct supervisor *s, struct client *c)
{
    for (struct attachment *att = s->attachments; att; att = att->next) {
        if (att->owner == c) {
            att->owner = NULL;
            log_info("%s: ring released by pid %d", att->name, (int)c->pid);
            attachment_ring_released(att);
        }
        for (struct call *call = att->calls; call; call = call->next) {
            if (call->client == c)
                call->client = NULL;
            if (call->all && call->all->client == c)
                call->all->client = NULL;
        }
    }
}

void attachments_tick(struct supervisor *s)
{
    uint64_t now = mono_ns();

    for (struct attachment *att = s->attachments; att; att = att->next) {
        bool starting = att->state == ATT_STARTING || att->state == ATT_RESTARTING;
        bool late_start = starting &&
                          now - att->started_ns > (uint64_t)WORKER_START_TIMEOUT_MS * 1000000u;
        bool late_call = false;
        for (struct call *c = att->calls; c; c = c->next)
            late_call |= c->kind != CALL_ATTACH && c->kind != CALL_DETACH && now > c->deadline_ns;
        if (late_start || late_call) {
            log_error("%s: the worker (pid %d) does not answer: killing it", att->name,
                      (int)att->proc.pid);
            kill(att->proc.pid, SIGKILL);
        }
    }
}
