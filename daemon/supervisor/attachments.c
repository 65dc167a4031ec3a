/* Attachments: the table of attached images, attach and detach.  Each has
 * one worker: its calls are in calls.c, what it says in worker_messages.c,
 * its starts, deaths and restarts in recovery.c. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "attachment_internal.h"
#include "json_read.h"
#include "lock.h"
#include "log.h"

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

void status_to_systemd(const struct supervisor *s)
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
    json_object_object_add(o, "connected",
                           json_object_new_boolean(att->owner || attachment_ring_held_elsewhere(att)));
    if (att->adopted)
        json_object_object_add(o, "adopted", json_object_new_boolean(true));
    if (!full)
        return o;
    copy_field(o, info, "cluster-size");
    copy_field(o, info, "encrypted");
    copy_field(o, info, "chain");
    json_object_object_add(o, "cache", json_object_new_string(att->writeback ? "writeback" : "none"));
    json_object_object_add(o, "poll-us", json_object_new_int((int32_t)att->poll_us));
    json_object_object_add(o, "restarts", json_object_new_int((int32_t)att->restarts));
    json_object_object_add(o, "ring-renewals", json_object_new_int((int32_t)att->ring_renewals));
    json_object_object_add(o, "io-limits", throttling_describe(att));
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
    if (att->io_error)
        json_object_object_add(o, "io-error", json_object_new_string(att->io_error));
    imageops_describe(att, o);
    return o;
}

/* ---- starting workers --------------------------------------------------- */

void fill_spawn_opts(const struct supervisor *s, const struct attachment *att,
                     struct worker_spawn_opts *o, bool adopt)
{
    *o = (struct worker_spawn_opts){
        .worker_path = s->worker_path, .image = att->path, .format = att->format,
        .name = att->name, .read_only = att->read_only, .writeback = att->writeback,
        .key = att->key, .log_level = s->log_level, .stderr_fd = -1,
        .image_fd = att->lock_fd, .caller = att->caller_arg, .worker_user = s->worker_user,
        .backing_dirs = s->backing_dirs,
        .adopt = adopt ? &att->proc.ring : NULL,
        .adopt_journal_fd = att->proc.journal_fd,
        .start_paused = att->paused,
        .poll_us = att->poll_us,
        .ring_order = att->ring_page_order,
        .ring_order_given = att->ring_page_order_given,
        .data_pages = att->data_pages,
        .limits = throttling_for_worker(att),
        .rendezvous_fd = att->rendezvous_fd,
        .orphan_wait_s = att->rendezvous_fd >= 0 ? s->orphan_wait_s : 0,
    };
}

int attachment_launch(struct supervisor *s, struct attachment *att, bool adopt)
{
    struct worker_spawn_opts o;
    struct worker_proc p;
    int r;

    rendezvous_ensure(s, att);
    fill_spawn_opts(s, att, &o, adopt);
    if ((r = worker_launch(&o, &p)) < 0)
        return r;
    att->proc.pid = p.pid;
    att->proc.ctl_fd = p.ctl_fd;
    att->started_ns = mono_ns();
    att->watch = (struct watch){ .kind = WATCH_WORKER, .obj = att };
    return watch_fd(s, p.ctl_fd, &att->watch);
}

/* Our copy of the image's descriptor, and with it the lock once the
 * worker's copy is closed too. */
void attachment_release_image(struct attachment *att)
{
    if (att->lock_fd >= 0)
        close(att->lock_fd);
    att->lock_fd = -1;
}

void attachment_free(struct supervisor *s, struct attachment *att)
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
    imageops_worker_gone(s, att);
    unwatch_fd(s, att->proc.ctl_fd);
    worker_proc_release(&att->proc);
    adoption_unwatch_exit(s, att);
    rendezvous_release(att);
    throttling_release(s, att);
    attachment_release_image(att);
    if (att->key)
        explicit_bzero(att->key, strlen(att->key));
    free(att->key);
    free(att->key_file);
    free(att->path);
    free(att->caller_arg);
    free(att->format);
    free(att->error);
    free(att->io_error);
    json_object_put(att->restore_entry);
    bury(s, &att->watch, att);
    if (att->recorded)
        state_save(s);
    status_to_systemd(s);
}

/* A flush of the image failed: its worker serves reads only, and so does
 * every worker after it (the metadata log remembers).  Kept for query, and
 * announced once. */
void attachment_io_error(struct supervisor *s, struct attachment *att, const char *reason)
{
    json_object *d;

    if (att->io_error)
        return;
    log_error("%s: a flush failed: %s; the image serves reads only", att->name, reason);
    att->io_error = strdup(reason);
    d = json_object_new_object();
    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "reason", json_object_new_string(reason));
    broadcast_event(s, "image-io-error", d);
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
    for (struct attachment *att = s->attachments; att; att = att->next)
        if (att->dev == st->st_dev && att->ino == st->st_ino)
            return true;
    return false;
}

struct attach_args {
    const char *path, *name, *cache, *format, *key, *key_file;
    bool read_only;
    bool fd;                    /* the image's descriptor came with the request */
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
    a->key_file = string_arg(args, "key-file", &bad);
    a->read_only = bool_arg(args, "read-only", &bad);
    a->fd = bool_arg(args, "fd", &bad);
    a->poll_us = uint_arg(args, "poll-us", MAX_POLL_US, &bad);
    a->ring_page_order_given = json_object_object_get_ex(args, "ring-page-order", NULL);
    a->ring_page_order = uint_arg(args, "ring-page-order", QCOWRING_MAX_RING_PAGE_ORDER, &bad);
    a->data_pages = uint_arg(args, "data-pages", MAX_DATA_PAGES, &bad);
    if (json_object_object_get_ex(args, "data-pages", NULL) && a->data_pages < MIN_DATA_PAGES)
        bad = true;
    if (bad || !a->path || !*a->path) {
        client_error(c, id, "InvalidParameter",
                     "attach takes 'path' (string, required), 'name', 'cache', 'format', 'key', "
                     "'key-file' (strings), 'read-only', 'fd' (booleans), 'poll-us' (integer, 0 "
                     "to %d), "
                     "'ring-page-order' (integer, 0 to %u) and 'data-pages' (integer, %u to %u)",
                     MAX_POLL_US, QCOWRING_MAX_RING_PAGE_ORDER, MIN_DATA_PAGES, MAX_DATA_PAGES);
        return false;
    }
    if (a->key_file && a->key_file[0] != '/') {
        client_error(c, id, "InvalidParameter", "'key-file' must be an absolute path");
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
                       const struct attach_args *a)
{
    if (s->stopping) {
        client_error(c, id, "InvalidState", "qcowd is shutting down");
        return false;
    }
    if (attachment_find(s, a->name)) {
        client_error(c, id, "AlreadyExists", "an image is already attached as '%s'", a->name);
        return false;
    }
    return limits_admit_image(s, c, id);
}

/* The image, opened with the rights of who (caller.c); an error reply
 * when that fails.  c is NULL for a restore, which passes no descriptor. */
static int open_for_caller(struct supervisor *s, struct client *c, json_object *id,
                           const struct attach_args *a, const struct identity *who,
                           struct opened_image *img)
{
    int passed = -1, r;

    assert(c || !a->fd);
    if (a->fd && (passed = client_take_fd(c)) < 0) {
        client_error(c, id, "InvalidParameter",
                     "'fd' is true, but no descriptor came with the request");
        return -EINVAL;
    }
    qc_clear_error();
    r = caller_open_image(who, a->path, passed, a->read_only, img);
    if (passed >= 0)
        close(passed);
    if (r < 0) {
        client_error(c, id, error_class_of(r), "%s", qc_error_message(r));
        return r;
    }
    if (same_file_attached(s, &img->st)) {
        client_error(c, id, "AlreadyExists", "%s is already attached", img->path);
        close(img->fd);
        free(img->path);
        return -EEXIST;
    }
    return 0;
}

/* The password in path's first line (as qcowctl reads a --key-file), read
 * with the rights of who.  0, or an error reply. */
static int read_key_file(struct client *c, json_object *id, const struct identity *who,
                         const char *path, char key[static KEY_FILE_MAX + 1])
{
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, fd;
    ssize_t n;
    char *end;

    if (!caller_privileged(who))
        fd = identity_open(who, path, flags);
    else if ((fd = open(path, flags)) < 0)
        fd = -errno;
    if (fd < 0) {
        client_error(c, id, error_class_of(fd), "%s: cannot open the key file: %s", path,
                     strerror(-fd));
        return fd;
    }
    n = read(fd, key, KEY_FILE_MAX + 1);
    close(fd);
    if (n < 0) {
        client_error(c, id, "ImageError", "%s: cannot read the key file: %s", path,
                     strerror(errno));
        return -EIO;
    }
    key[n < KEY_FILE_MAX ? n : KEY_FILE_MAX] = '\0';
    if ((end = memchr(key, '\n', (size_t)n)))
        *end = '\0';
    else if (n > KEY_FILE_MAX)
        key[0] = '\0';         /* longer than qcowctl takes */
    if (key[0] == '\0' || strlen(key) != (size_t)(end ? end - key : n)) {
        explicit_bzero(key, KEY_FILE_MAX + 1);
        client_error(c, id, "InvalidParameter", "%s: the key file holds no password of 1 to %d "
                     "bytes on its first line (or it holds a NUL byte)", path, KEY_FILE_MAX);
        return -EINVAL;
    }
    return 0;
}

/* The new attachment takes over img's descriptor and path. */
static struct attachment *attachment_new(const struct attach_args *a, struct opened_image *img,
                                         const struct identity *who)
{
    struct attachment *att = calloc(1, sizeof *att);
    char caller[32 + 11 * IDENTITY_MAX_GROUPS];

    if (!att)
        return NULL;
    snprintf(att->name, sizeof att->name, "%s", a->name);
    att->path = img->path;
    att->lock_fd = img->fd;
    att->dev = img->st.st_dev;
    att->ino = img->st.st_ino;
    att->caller = *who;
    if (!caller_privileged(who) && identity_format(who, caller, sizeof caller) == 0)
        att->caller_arg = strdup(caller);
    att->format = a->format ? strdup(a->format) : NULL;
    att->key = a->key ? strdup(a->key) : NULL;
    att->key_file = a->key_file ? strdup(a->key_file) : NULL;
    att->read_only = a->read_only;
    att->writeback = a->cache && strcmp(a->cache, "writeback") == 0;
    att->poll_us = a->poll_us;
    att->ring_page_order = a->ring_page_order;
    att->ring_page_order_given = a->ring_page_order_given;
    att->data_pages = a->data_pages;
    att->proc = (struct worker_proc){ .pid = -1, .ctl_fd = -1, .ring = { -1, -1, -1 },
                                      .journal_fd = -1 };
    att->pidfd = -1;
    att->rendezvous_fd = -1;
    return att;
}

/* An attach by who (c NULL: a restore, whose errors go to the log).  The
 * new attachment, or NULL after an error reply. */
static struct attachment *attach_as(struct supervisor *s, struct client *c, json_object *id,
                                    json_object *args, const struct identity *who)
{
    struct attach_args a;
    struct opened_image img;
    struct attachment *att;
    char key[KEY_FILE_MAX + 1];
    int r;

    if (!parse_attach(c, id, args, &a) || !admissible(s, c, id, &a))
        return NULL;
    if (a.key_file && !a.key) {
        if (read_key_file(c, id, who, a.key_file, key) < 0)
            return NULL;
        a.key = key;
    }
    r = open_for_caller(s, c, id, &a, who, &img);
    att = r < 0 ? NULL : attachment_new(&a, &img, who);
    if (a.key == key)
        explicit_bzero(key, sizeof key);
    if (r < 0)
        return NULL;
    if (!att) {
        client_error(c, id, "GenericError", "out of memory");
        close(img.fd);
        free(img.path);
        return NULL;
    }
    att->next = s->attachments;
    s->attachments = att;
    s->nimages++;
    if (throttling_attach(s, att, c, id, args) < 0) {
        attachment_free(s, att);
        return NULL;
    }
    /* Every worker of the attachment gets a copy of the locked descriptor,
     * and the lock lasts while any copy is open. */
    qc_clear_error();
    r = image_lock_fd(att->lock_fd, att->path,
                      att->read_only ? IMAGE_LOCK_READ_ONLY : IMAGE_LOCK_READ_WRITE);
    if (r < 0) {
        client_error(c, id, error_class_of(r), "%s", qc_error_message(r));
        attachment_free(s, att);
        return NULL;
    }
    if ((r = attachment_launch(s, att, false)) < 0) {
        char why[512];
        attachment_release_image(att);
        if (limits_start_error(r, why, sizeof why))
            client_error(c, id, "LimitReached", "%s: %s", att->name, why);
        else
            client_error(c, id, "WorkerError", "%s: cannot run %s: %s", att->name,
                         s->worker_path, strerror(-r));
        attachment_free(s, att);
        return NULL;
    }
    call_push(att, CALL_ATTACH, c, id, "attach");
    log_info("%s: attaching %s (worker pid %d)", att->name, att->path, (int)att->proc.pid);
    return att;
}

int attachment_start(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    return attach_as(s, c, id, args, &c->who) ? 0 : -EINVAL;
}

/* A recorded attachment that cannot be attached again (its file is gone,
 * unreadable, locked by someone else...): it stays listed as failed, with
 * the reason, and recorded as it was, until it is detached. */
static int restore_failed(struct supervisor *s, const struct attach_args *a,
                          const struct identity *who, json_object *entry, const char *why)
{
    struct opened_image none = { .fd = -1, .path = strdup(a->path) };
    struct attachment *att;

    if (!none.path || !(att = attachment_new(a, &none, who))) {
        free(none.path);
        return -ENOMEM;
    }
    att->limits.spawn.group_fd = -1;
    json_object_object_del(entry, "worker-pid");        /* gone; its number may be reused */
    att->restore_entry = json_object_get(entry);
    att->recorded = true;
    att->next = s->attachments;
    s->attachments = att;
    s->nimages++;
    attachment_mark_failed(s, att, why);
    return -EIO;
}

int attachment_restore(struct supervisor *s, json_object *args, const struct identity *who,
                       json_object *entry)
{
    struct attach_args a;
    struct attachment *att;
    bool key_given = false;
    char why[1100];

    if (!parse_attach(NULL, NULL, args, &a))
        return -EINVAL;         /* logged: it names the option */
    if (attachment_find(s, a.name)) {
        log_error("%s: recorded twice in the state file: the second is dropped", a.name);
        return -EEXIST;
    }
    if (json_read_bool(entry, "key-given", &key_given) && key_given && !a.key_file)
        return restore_failed(s, &a, who, entry,
                              "it was attached with a key, which qcowd does not record: "
                              "detach it and attach it again with its key");
    if (!(att = attach_as(s, NULL, NULL, args, who))) {
        snprintf(why, sizeof why, "cannot attach it again: %s", client_unsent_error());
        return restore_failed(s, &a, who, entry, why);
    }
    att->recorded = true;
    att->restoring = true;
    return 0;
}



/* ---- adopting a running worker -------------------------------------------- */

/* The adopted image descriptor must be the file the recorded path names
 * now, opened with the caller's rights (it may have been replaced, or the
 * worker may lie), and open the way the attach wants. */
static int check_adopted_image(const struct attach_args *a, const struct identity *who,
                               const struct adoption *got, struct opened_image *img,
                               char *why, size_t len)
{
    struct stat st;
    int r, mode = fcntl(got->image_fd, F_GETFL);

    qc_clear_error();
    if ((r = caller_open_image(who, a->path, -1, a->read_only, img)) < 0) {
        snprintf(why, len, "%s", qc_error_message(r));
        return r;
    }
    close(img->fd);
    img->fd = -1;
    if (fstat(got->image_fd, &st) < 0 || st.st_dev != img->st.st_dev ||
        st.st_ino != img->st.st_ino) {
        snprintf(why, len, "worker pid %d handed a descriptor of another file than %s",
                 (int)got->pid, img->path);
        r = -EBADF;
    } else if (mode < 0 || (mode & O_ACCMODE) != (a->read_only ? O_RDONLY : O_RDWR)) {
        snprintf(why, len, "worker pid %d handed %s open %s", (int)got->pid, img->path,
                 a->read_only ? "for writing" : "read-only");
        r = -EBADF;
    }
    if (r < 0) {
        free(img->path);
        img->path = NULL;
    }
    return r;
}

static void take_adopted_worker(struct attachment *att, struct adoption *got, const char *path)
{
    att->proc.pid = got->pid;
    att->proc.ctl_fd = got->ctl_fd;
    att->proc.ring = got->ring;
    att->proc.journal_fd = got->journal_fd;
    att->proc.ready = got->info;
    *got = (struct adoption){ .ctl_fd = -1, .image_fd = -1, .journal_fd = -1,
                              .ring = { -1, -1, -1 } };
    att->rendezvous_path = strdup(path);   /* still the worker's: recorded again */
    att->adopted = true;
    att->started_ns = mono_ns();
}

/* The adopted worker's attachment is in the table: watch it, and serve. */
static void adopted_attachment_start(struct supervisor *s, struct attachment *att,
                                     json_object *args)
{
    att->next = s->attachments;
    s->attachments = att;
    s->nimages++;
    att->state = att->paused ? ATT_PAUSED : ATT_RUNNING;
    att->recorded = true;
    att->restoring = true;
    att->watch = (struct watch){ .kind = WATCH_WORKER, .obj = att };
    if (throttling_attach(s, att, NULL, NULL, args) < 0 ||
        watch_fd(s, att->proc.ctl_fd, &att->watch) < 0 || adoption_watch_exit(s, att) < 0) {
        /* It is ours now, whatever happens: gone (or killed, when we
         * cannot watch it) is a crash, and a replacement takes over. */
        log_warning("%s: cannot watch the adopted worker (pid %d): %s", att->name,
                    (int)att->proc.pid, strerror(errno));
        kill(att->proc.pid, SIGKILL);
        attachment_adopted_exited(s, att);
        return;
    }
    attachment_started(s, att);
    throttling_resend(s, att);
}

struct adoption *attachment_adopt_meet(struct supervisor *s, json_object *args,
                                       json_object *entry)
{
    const char *path = json_read_string(entry, "rendezvous");
    _cleanup_(adoption_freep) struct adoption *met = NULL;
    struct attach_args a;
    char why[600], expected[PATH_MAX];
    int64_t pid;

    if (!path || !json_read_int(entry, "worker-pid", 2, INT32_MAX, &pid))
        return NULL;
    if (!parse_attach(NULL, NULL, args, &a) || !admissible(s, NULL, NULL, &a))
        return NULL;
    snprintf(expected, sizeof expected, "%s.rendezvous/%s", s->state_path, a.name);
    if (strcmp(path, expected) != 0) {
        log_error("%s: cannot adopt its worker: its recorded rendezvous %s is not %s; "
                  "attaching it afresh", a.name, path, expected);
        return NULL;
    }
    if (!(met = malloc(sizeof *met))) {
        log_error("%s: cannot adopt its worker: out of memory; attaching it afresh", a.name);
        return NULL;
    }
    if (adoption_connect(path, (pid_t)pid, met, why, sizeof why) < 0) {
        log_error("%s: cannot adopt its worker: %s; attaching it afresh", a.name, why);
        return NULL;
    }
    return TAKE_PTR(met);
}

int attachment_adopt(struct supervisor *s, struct adoption *met, json_object *args,
                     const struct identity *who, json_object *entry, uint64_t deadline_ns)
{
    _cleanup_(adoption_freep) struct adoption *got = met;
    const char *path = json_read_string(entry, "rendezvous");
    struct attach_args a;
    struct opened_image img;
    struct attachment *att;
    bool held = true;
    char why[600];
    int r;

    assert(path);               /* attachment_adopt_meet met the worker there */
    if (!parse_attach(NULL, NULL, args, &a))
        return -EINVAL;
    if ((r = adoption_take_ready(got, deadline_ns, why, sizeof why)) < 0) {
        log_error("%s: cannot adopt its worker: %s; attaching it afresh", a.name, why);
        return r;
    }
    if ((r = check_adopted_image(&a, who, got, &img, why, sizeof why)) < 0) {
        log_error("%s: refused to adopt its worker: %s; it is told to stop, and the image is "
                  "attached afresh", a.name, why);
        adoption_refuse(got);
        return r;
    }
    if (same_file_attached(s, &img.st)) {
        log_error("%s: refused to adopt its worker: %s is already attached; it is told to "
                  "stop", a.name, img.path);
        free(img.path);
        adoption_refuse(got);
        return -EEXIST;
    }
    img.fd = got->image_fd;     /* with the lock; ours now */
    got->image_fd = -1;
    if (!(att = attachment_new(&a, &img, who))) {
        close(img.fd);
        free(img.path);
        adoption_refuse(got);
        return -ENOMEM;
    }
    att->paused = got->paused;
    take_adopted_worker(att, got, path);
    json_read_bool(entry, "ring-held", &held);
    att->ring_held_elsewhere = held;
    held = false;
    json_read_bool(entry, "ring-lock", &held);
    att->ring_lock_elsewhere = held;
    adopted_attachment_start(s, att, args);
    return 0;
}

/* ---- detach and housekeeping -------------------------------------------- */

void attachment_detach(struct supervisor *s, struct attachment *att, struct client *c, json_object *id)
{
    struct call *attach;

    exports_detaching(s, att);
    if (att->state == ATT_FAILED) {
        if (att->proc.pid > 0)
            kill(att->proc.pid, SIGKILL);
        attachment_release_image(att);
        if (c)                  /* NULL: qcowd is stopping */
            client_reply(c, id, NULL);
        attachment_free(s, att);
        return;
    }
    call_push(att, CALL_DETACH, c, id, "detach");
    switch (att->state) {
    case ATT_STOPPING:
        return;
    case ATT_RESTARTING:
        /* The replacement is taking over the journal, where writes that
         * were acknowledged and not flushed live: it is stopped (and
         * flushes) once it serves, see attachment_started. */
        return;
    case ATT_STARTING:
        /* A fresh worker (new image or new ring) holds nothing yet. */
        if ((attach = call_take(att, CALL_ATTACH)))
            call_finish(s, att, attach, NULL, "detached while starting");
        att->state = ATT_STOPPING;
        kill(att->proc.pid, SIGKILL);
        attachment_forget_ctl(s, att);
        return;
    default:
        attachment_stop_worker(att);
    }
}

void attachment_detached(struct supervisor *s, struct attachment *att, const char *error)
{
    struct call *call;
    json_object *d = json_object_new_object();

    /* The worker has closed the image (it said "stopped", or it exited):
     * with our copy closed the lock is gone, before anyone hears "done". */
    attachment_release_image(att);
    while ((call = call_take(att, CALL_DETACH))) {
        if (call->client && !error)
            client_reply(call->client, call->id, NULL);
        else if (call->client)
            client_error(call->client, call->id, "WorkerError", "%s: %s", att->name, error);
        call_free(call);
    }
    json_object_object_add(d, "name", json_object_new_string(att->name));
    broadcast_event(s, "image-detached", d);
    if (error)
        log_warning("%s: detached: %s", att->name, error);
    else
        log_info("%s: detached", att->name);
    attachment_free(s, att);
}

void attachments_stop_all(struct supervisor *s)
{
    state_flush(s);             /* what this round changed; stopping changes nothing */
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
            state_save(s);      /* "ring-held" */
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
        bool late_call = false;
        if (att->proc.ctl_fd < 0)
            continue;           /* given up on already; waiting for its exit */
        if (starting && now - att->started_ns > (uint64_t)WORKER_START_TIMEOUT_MS * 1000000u) {
            char why[64];
            snprintf(why, sizeof why, "the worker did not report within %d s",
                     WORKER_START_TIMEOUT_MS / 1000);
            attachment_start_failed(s, att, -ETIMEDOUT, why);
            continue;
        }
        for (struct call *c = att->calls; c; c = c->next)
            late_call |= c->kind != CALL_ATTACH && c->kind != CALL_DETACH && now > c->deadline_ns;
        if (late_call)
            attachment_kill_worker(s, att, "does not answer");
    }
}
