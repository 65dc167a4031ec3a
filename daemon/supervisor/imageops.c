/* Image operations on a served image (doc/protocol.md: resize, snapshot):
 * checked here, run by the worker between requests; its answer, read with
 * suspicion, updates what qcowd tells clients and becomes an event.
 *
 * A snapshot's new top is made here: a sandboxed worker can open no file.
 * qcowd creates it with the rights of the caller that asks (O_EXCL: never
 * an existing file), takes the image's locks on it, and sends the worker
 * descriptors of it; the worker writes the overlay's header and serves it.
 * Only when the worker says it serves the new top does qcowd turn the old
 * top's locks into a backing file's and make the new file the attachment's
 * image (what a restarted worker opens); on any failure the file goes. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attachment_internal.h"
#include "error.h"
#include "json_read.h"
#include "lock.h"
#include "log.h"
#include "qcowring.h"
#include "util.h"

/* A worker's chain is at most this deep (IMAGE_DEFAULT_MAX_DEPTH). */
#define SNAPSHOT_MAX_CHAIN 64

struct snapshot_pending {
    char *path;                 /* canonical */
    char *backing;              /* the name its header stores */
    int lock_fd;                /* created, locked: the attachment's once it serves */
    struct stat st;
    struct identity who;        /* who asked (whose rights remove it) */
    bool existing;              /* resume --image: the operator's file, never removed */
};

static bool operation_pending(const struct attachment *att)
{
    if (att->snapshot || att->commit)
        return true;
    for (const struct call *call = att->calls; call; call = call->next)
        if (strcmp(call->command, "resize") == 0 || strcmp(call->command, "snapshot") == 0)
            return true;
    return false;
}

/* Whether att can take an operation now; if not, the client is told why. */
static bool may_operate(struct client *c, json_object *id, const struct attachment *att)
{
    if (att->state != ATT_RUNNING && att->state != ATT_PAUSED) {
        client_error(c, id, "InvalidState", "'%s' is %s", att->name,
                     attachment_state_name(att->state));
        return false;
    }
    if (att->read_only) {
        client_error(c, id, "ReadOnly", "'%s' is attached read-only", att->name);
        return false;
    }
    if (att->io_error) {
        client_error(c, id, "ImageError", "'%s' serves reads only: %s", att->name, att->io_error);
        return false;
    }
    if (operation_pending(att)) {
        client_error(c, id, "Busy", "'%s': another resize or snapshot is under way", att->name);
        return false;
    }
    return true;
}

static int64_t served_size(const struct attachment *att)
{
    int64_t size = 0;

    json_read_int(att->proc.ready, "size", 0, INT64_MAX, &size);
    return size;
}

void imageops_cmd_resize(struct supervisor *s, struct attachment *att, struct client *c,
                         json_object *id, json_object *args)
{
    int64_t size, now = served_size(att);
    json_object *wargs;

    if (!json_read_int(args, "size", 1, INT64_MAX, &size) || size % QCOWRING_SECTOR_SIZE) {
        client_error(c, id, "InvalidParameter", "'size' must be a positive multiple of 512 bytes");
        return;
    }
    if (!may_operate(c, id, att))
        return;
    if (size < now) {
        client_error(c, id, "InvalidParameter", "'%s': shrinking from %" PRId64 " to %" PRId64
                     " bytes is refused while it is served: detach it, then qcowctl resize "
                     "--shrink %s SIZE", att->name, now, size, att->path);
        return;
    }
    if ((uint64_t)size / QCOWRING_SECTOR_SIZE > QCOWRING_MAX_CAPACITY_SECTORS) {
        client_error(c, id, "InvalidParameter", "'size' %" PRId64 " is too large", size);
        return;
    }
    wargs = json_object_new_object();
    json_object_object_add(wargs, "size", json_object_new_int64(size));
    log_info("%s: resizing from %" PRId64 " to %" PRId64 " bytes (pid %d asks)", att->name, now,
             size, (int)c->pid);
    attachment_call_worker(s, att, c, id, "resize", wargs, -1);
    json_object_put(wargs);
}

/* The new size in what "ready" said (query, list) and in our copy of the
 * qcowd page (the worker wrote the new capacity there: not damage). */
static void note_size(struct attachment *att, int64_t size, int64_t sectors)
{
    json_object *chain = json_read_array(att->proc.ready, "chain");

    json_object_object_add(att->proc.ready, "size", json_object_new_int64(size));
    json_object_object_add(att->proc.ready, "capacity-sectors", json_object_new_int64(sectors));
    if (chain && json_object_array_length(chain) > 0)
        json_object_object_add(json_object_array_get_idx(chain, 0), "virtual-size",
                               json_object_new_int64(size));
    if (att->have_ring_page)
        att->ring_page.capacity_sectors = (uint64_t)sectors;
}

bool imageops_resize_answered(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *ret)
{
    int64_t old_size, size, sectors;
    json_object *reply, *data;

    if (!json_read_int(ret, "old-size", 0, INT64_MAX, &old_size) ||
        !json_read_int(ret, "size", 1, INT64_MAX, &size) ||
        !json_read_int(ret, "capacity-sectors", 1, INT64_MAX, &sectors) ||
        size < old_size || sectors != size / QCOWRING_SECTOR_SIZE || !att->proc.ready)
        return false;
    note_size(att, size, sectors);
    data = json_object_new_object();
    json_object_object_add(data, "name", json_object_new_string(att->name));
    json_object_object_add(data, "old-size", json_object_new_int64(old_size));
    json_object_object_add(data, "size", json_object_new_int64(size));
    json_object_object_add(data, "capacity-sectors", json_object_new_int64(sectors));
    reply = json_object_get(data);
    broadcast_event(s, "image-resized", data);
    if (c)
        client_reply(c, id, reply);
    else
        json_object_put(reply);
    return true;
}

/* A restarted worker serves the image's size now: the page says so too. */
void imageops_worker_restarted(struct attachment *att)
{
    int64_t size, sectors;

    if (json_read_int(att->proc.ready, "size", 1, INT64_MAX, &size) &&
        json_read_int(att->proc.ready, "capacity-sectors", 1, INT64_MAX, &sectors) &&
        att->have_ring_page && (uint64_t)sectors > att->ring_page.capacity_sectors)
        att->ring_page.capacity_sectors = (uint64_t)sectors;
}

/* ---- snapshot ------------------------------------------------------------ */

static bool same_dir(const char *a, const char *b)
{
    _cleanup_free_ char *da = strdup(a), *db = strdup(b);
    const char *dir_a, *dir_b;

    if (!da || !db)
        return false;
    dir_a = dirname(da);
    dir_b = dirname(db);
    return dir_a && dir_b && strcmp(dir_a, dir_b) == 0;
}

/* The name the overlay stores: relative in the same directory, as
 * qemu-img does it, else the old top's canonical path. */
static char *backing_name_for(const char *new_path, const char *old_path)
{
    _cleanup_free_ char *copy = strdup(old_path);

    if (!copy)
        return NULL;
    return strdup(same_dir(new_path, old_path) ? basename(copy) : old_path);
}

/* Remove the half-made file, if it still is the one we made. */
static void remove_new_top(const struct snapshot_pending *p)
{
    struct identity_saved saved;
    bool as_caller = !caller_privileged(&p->who);
    struct stat st;

    if (p->existing)
        return;
    if (as_caller && identity_assume(&p->who, &saved) < 0) {
        log_warning("%s: cannot remove it (cannot take uid %u's rights)", p->path,
                    (unsigned)p->who.uid);
        return;
    }
    if (lstat(p->path, &st) == 0 && st.st_dev == p->st.st_dev && st.st_ino == p->st.st_ino &&
        unlink(p->path) < 0)
        log_warning("%s: cannot remove it: %s", p->path, strerror(errno));
    if (as_caller)
        identity_restore(&saved);
}

static void pending_free(struct snapshot_pending *p)
{
    if (!p)
        return;
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    free(p->path);
    free(p->backing);
    free(p);
}

/* Remove path if it still names the file made (st), with the rights we
 * have now. */
static void remove_made(const char *path, const struct stat *made)
{
    struct stat st;

    if (made->st_ino && lstat(path, &st) == 0 && st.st_dev == made->st_dev &&
        st.st_ino == made->st_ino)
        unlink(path);
}

/* Create path with who's rights (never an existing file) and make it
 * canonical; -errno with a message. */
static int create_new_top(const struct identity *who, const char *path,
                          struct snapshot_pending *p)
{
    struct identity_saved saved;
    bool as_caller = !caller_privileged(who);
    int r = 0;

    if (as_caller && identity_assume(who, &saved) < 0)
        return qc_fail(-EACCES, "%s: qcowd (uid %u) cannot create files with the rights of uid "
                       "%u", path, (unsigned)geteuid(), (unsigned)who->uid);
    p->lock_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
    if (p->lock_fd < 0)
        r = -errno;
    else if (fstat(p->lock_fd, &p->st) < 0 || !(p->path = fd_canonical_path(p->lock_fd)))
        r = -errno;
    if (r < 0 && p->lock_fd >= 0) {
        /* Still with the caller's rights, and only the file we made: the
         * names on the way are the caller's to change meanwhile. */
        remove_made(path, &p->st);
        close(p->lock_fd);
        p->lock_fd = -1;
    }
    if (as_caller)
        identity_restore(&saved);
    return r < 0 ? qc_fail(r, "%s: cannot create: %s", path, strerror(-r)) : 0;
}

/* Our own descriptions of the new file for the worker: one it serves the
 * image through (buffered), and an O_DIRECT one when the image is served
 * so (-1 where the file system has none). */
static int worker_descriptors(const struct attachment *att, const struct snapshot_pending *p,
                              int fds[3])
{
    /* Never a wait: the file is the caller's, who may hold a lease on it. */
    int fd = reopen_fd_nowait(p->lock_fd, O_RDWR | O_CLOEXEC | O_NOCTTY);

    fds[0] = fd >= 0 ? fd : -1;
    fds[1] = p->lock_fd;
    fds[2] = -1;
    if (fd < 0)
        return qc_fail(fd, "%s: cannot open it again: %s", p->path, strerror(-fd));
    if (!att->writeback) {
        int direct = reopen_fd_nowait(p->lock_fd, O_RDWR | O_CLOEXEC | O_NOCTTY | O_DIRECT);
        if (direct < 0 && direct != -EINVAL) {
            close(fds[0]);
            fds[0] = -1;
            return qc_fail(direct, "%s: cannot open it with O_DIRECT: %s", p->path,
                           strerror(-direct));
        }
        fds[2] = direct >= 0 ? direct : -1;
    }
    return 0;
}

static int prepare(struct attachment *att, const struct identity *who, const char *path,
                   struct snapshot_pending *p, int fds[3])
{
    int r;

    if ((r = create_new_top(who, path, p)) < 0)
        return r;
    assert(p->path);            /* create_new_top names what it made */
    if (!(p->backing = backing_name_for(p->path, att->path)))
        return -ENOMEM;
    if ((r = image_lock_fd(p->lock_fd, p->path, IMAGE_LOCK_READ_WRITE)) < 0)
        return r;
    return worker_descriptors(att, p, fds);
}

/* A worker that replaces this one opens the old top as a backing file:
 * only inside the --backing-dir directories, when there are any. */
static bool backing_allowed(const struct supervisor *s, const char *path)
{
    if (!s->backing_dirs[0])
        return true;
    for (unsigned i = 0; s->backing_dirs[i]; i++) {
        size_t len = strlen(s->backing_dirs[i]);
        if (strcmp(s->backing_dirs[i], "/") == 0 ||
            (strncmp(path, s->backing_dirs[i], len) == 0 && path[len] == '/'))
            return true;
    }
    return false;
}

/* What the worker would refuse, said with its own class. */
static bool snapshot_possible(const struct supervisor *s, struct client *c, json_object *id,
                              const struct attachment *att)
{
    json_object *chain = json_read_array(att->proc.ready, "chain");
    bool encrypted = false;

    json_read_bool(att->proc.ready, "encrypted", &encrypted);
    if (encrypted) {
        client_error(c, id, "NotSupported", "'%s' is encrypted: an overlay here would need "
                     "its key", att->name);
        return false;
    }
    if (chain && json_object_array_length(chain) >= SNAPSHOT_MAX_CHAIN) {
        client_error(c, id, "NotSupported", "'%s': its chain has %zu layers, the most a worker "
                     "opens is %d", att->name, json_object_array_length(chain),
                     SNAPSHOT_MAX_CHAIN);
        return false;
    }
    if (!backing_allowed(s, att->path)) {
        client_error(c, id, "PermissionDenied", "'%s': %s would become a backing file, and it "
                     "is outside the directories qcowd opens backing files in (--backing-dir)",
                     att->name, att->path);
        return false;
    }
    return true;
}

static bool snapshot_call_pending(const struct attachment *att)
{
    for (const struct call *call = att->calls; call; call = call->next)
        if (strcmp(call->command, "snapshot") == 0)
            return true;
    return false;
}

static void send_to_worker(struct supervisor *s, struct attachment *att, struct client *c,
                           json_object *id, struct snapshot_pending *p, int fds[3])
{
    json_object *wargs = json_object_new_object();

    att->snapshot = p;
    json_object_object_add(wargs, "path", json_object_new_string(p->path));
    if (p->existing)
        json_object_object_add(wargs, "existing", json_object_new_boolean(true));
    else
        json_object_object_add(wargs, "backing", json_object_new_string(p->backing));
    attachment_call_worker_fds(s, att, c, id, "snapshot", wargs, fds, fds[2] >= 0 ? 3 : 2);
    json_object_put(wargs);
    close(fds[0]);
    if (fds[2] >= 0)
        close(fds[2]);
    /* No call was made (out of memory; the client was told): undo. */
    if (att->snapshot == p && !snapshot_call_pending(att)) {
        att->snapshot = NULL;
        remove_new_top(p);
        pending_free(p);
    }
}

static bool attached_anywhere(struct supervisor *s, const struct stat *st)
{
    for (struct attachment *att = s->attachments; att; att = att->next)
        if (att->dev == st->st_dev && att->ino == st->st_ino)
            return true;
    return false;
}

/* resume --image: the operator paused the image and made an overlay of its
 * top; serve that overlay, then resume.  It is opened like an attach's
 * image, with the caller's rights, and locked. */
void imageops_cmd_resume_onto(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *args)
{
    const char *path = json_read_string(args, "image");
    struct opened_image img;
    struct snapshot_pending *p;
    int fds[3] = { -1, -1, -1 }, r;

    if (!path || path[0] != '/') {
        client_error(c, id, "InvalidParameter", "'image' (an absolute path) is required");
        return;
    }
    if (att->state != ATT_PAUSED) {
        client_error(c, id, "InvalidState", "'%s' is %s, not paused", att->name,
                     attachment_state_name(att->state));
        return;
    }
    if (!may_operate(c, id, att) || !snapshot_possible(s, c, id, att))
        return;
    qc_clear_error();
    if ((r = caller_open_image(&c->who, path, -1, false, &img)) < 0) {
        client_error(c, id, error_class_of(r), "%s", qc_error_message(r));
        return;
    }
    if (!(p = calloc(1, sizeof *p))) {
        client_error(c, id, "GenericError", "out of memory");
        close(img.fd);
        free(img.path);
        return;
    }
    *p = (struct snapshot_pending){ .path = img.path, .lock_fd = img.fd, .st = img.st,
                                    .who = c->who, .existing = true };
    if (attached_anywhere(s, &p->st)) {
        client_error(c, id, "AlreadyExists", "%s is attached already", p->path);
        pending_free(p);
        return;
    }
    if ((r = image_lock_fd(p->lock_fd, p->path, IMAGE_LOCK_READ_WRITE)) < 0 ||
        (r = worker_descriptors(att, p, fds)) < 0) {
        client_error(c, id, error_class_of(r), "%s", qc_error_message(r));
        pending_free(p);
        return;
    }
    log_info("%s: resuming on %s over %s (pid %d asks)", att->name, p->path, att->path,
             (int)c->pid);
    send_to_worker(s, att, c, id, p, fds);
}

void imageops_cmd_snapshot(struct supervisor *s, struct attachment *att, struct client *c,
                           json_object *id, json_object *args)
{
    const char *path = json_read_string(args, "path");
    struct snapshot_pending *p;
    int fds[3] = { -1, -1, -1 }, r;

    if (!path || path[0] != '/') {
        client_error(c, id, "InvalidParameter", "'path' (an absolute path) is required");
        return;
    }
    if (!may_operate(c, id, att) || !snapshot_possible(s, c, id, att))
        return;
    if (!(p = calloc(1, sizeof *p))) {
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    p->lock_fd = -1;
    p->who = c->who;
    qc_clear_error();
    if ((r = prepare(att, &c->who, path, p, fds)) < 0) {
        client_error(c, id, r == -EEXIST ? "AlreadyExists" : error_class_of(r), "%s",
                     qc_error_message(r));
        if (p->path)
            remove_new_top(p);
        pending_free(p);
        return;
    }
    log_info("%s: snapshot: %s over %s (pid %d asks)", att->name, p->path, att->path,
             (int)c->pid);
    send_to_worker(s, att, c, id, p, fds);
}

/* The worker serves the new top: it is the attachment's image from now on
 * (a restarted worker opens it, and its backing file by name); the old
 * top's lock keeps only a backing file's part, held by the worker. */
static bool switch_to(struct attachment *att, struct snapshot_pending *p, json_object *ret)
{
    const char *path = json_read_string(ret, "path"), *backing = json_read_string(ret, "backing");
    json_object *info = worker_checked_info(ret);
    char *format = strdup("qcow");

    if (!info || !format || !path || strcmp(path, p->path) != 0 || !backing ||
        (!p->backing && !(p->backing = strdup(backing)))) {
        json_object_put(info);
        free(format);
        return false;
    }
    if (image_lock_to_backing(att->lock_fd) < 0)
        log_warning("%s: cannot release the write locks of %s: %s", att->name, att->path,
                    strerror(errno));
    close(att->lock_fd);
    att->lock_fd = p->lock_fd;
    p->lock_fd = -1;
    free(att->path);
    att->path = TAKE_PTR(p->path);
    att->dev = p->st.st_dev;
    att->ino = p->st.st_ino;
    free(att->format);
    att->format = format;
    json_object_put(att->proc.ready);
    att->proc.ready = info;
    return true;
}

void imageops_snapshot_answered(struct supervisor *s, struct attachment *att, struct client *c,
                                json_object *id, json_object *ret, const char *err)
{
    struct snapshot_pending *p = TAKE_PTR(att->snapshot);
    json_object *data;

    if (!p) {
        if (c)
            client_error(c, id, "WorkerError", "%s: no snapshot was asked for", att->name);
        return;
    }
    if (!ret || !switch_to(att, p, ret)) {
        log_warning("%s: snapshot %s failed: %s; serving %s still", att->name, p->path,
                    ret ? "the worker's answer is malformed" : err, att->path);
        remove_new_top(p);
        if (c)
            client_error(c, id, ret ? "WorkerError" : "ImageError", "%s: snapshot failed: %s",
                         att->name, ret ? "the worker's answer is malformed" : err);
        if (ret)
            attachment_kill_worker(s, att, "sent a malformed answer to snapshot");
        pending_free(p);
        return;
    }
    data = json_object_new_object();
    json_object_object_add(data, "name", json_object_new_string(att->name));
    json_object_object_add(data, "path", json_object_new_string(att->path));
    json_object_object_add(data, "backing", json_object_new_string(p->backing));
    log_info("%s: serving %s now, over %s", att->name, att->path, p->backing);
    state_save(s);              /* a restart must attach the new top, not the old */
    if (p->existing)
        attachment_forward(s, att, c, id, "resume");    /* its answer is the client's */
    else if (c)
        client_reply(c, id, json_object_get(data));
    broadcast_event(s, "snapshot-taken", data);
    pending_free(p);
}

/* ---- live commit --------------------------------------------------------- */

struct commit_pending {
    char *path;                 /* the backing file, canonical */
    char *overlay;              /* the top */
    int lock_fd;                /* the backing file, locked read-write */
    struct stat st;
    int64_t pass, done, total, copied;
};

static void commit_free(struct commit_pending *p)
{
    if (!p)
        return;
    if (p->lock_fd >= 0)
        close(p->lock_fd);
    free(p->path);
    free(p->overlay);
    free(p);
}

/* The second layer of the chain the worker serves: its path and size. */
static bool chain_below(const struct attachment *att, const char **path, int64_t *size)
{
    json_object *chain = json_read_array(att->proc.ready, "chain");

    if (!chain || json_object_array_length(chain) < 2)
        return false;
    *path = json_read_string(json_object_array_get_idx(chain, 1), "filename");
    return *path && json_read_int(json_object_array_get_idx(chain, 1), "virtual-size", 0,
                                  INT64_MAX, size);
}

/* Another attachment that serves the file st, as its top or a layer of its
 * chain (the chain's names are the worker's, only stat()ed), or NULL. */
static const struct attachment *other_reader(const struct supervisor *s,
                                             const struct attachment *att,
                                             const struct stat *file)
{
    for (const struct attachment *m = s->attachments; m; m = m->next) {
        json_object *chain = json_read_array(m->proc.ready, "chain");
        size_t n = chain ? json_object_array_length(chain) : 0;
        struct stat st;

        if (m == att)
            continue;
        if (m->dev == file->st_dev && m->ino == file->st_ino)
            return m;
        for (size_t i = 1; i < n; i++) {
            const char *name = json_read_string(json_object_array_get_idx(chain, i), "filename");
            if (name && stat(name, &st) == 0 && st.st_dev == file->st_dev &&
                st.st_ino == file->st_ino)
                return m;
        }
    }
    return NULL;
}

/* Not for the top's own worker to refuse: ours to announce. */
static void commit_event(struct supervisor *s, const struct attachment *att, const char *name,
                         json_object *data)
{
    json_object_object_add(data, "name", json_object_new_string(att->name));
    broadcast_event(s, name, data);
}

static int open_base(struct client *c, struct attachment *att, const char *path,
                     struct commit_pending *p, int fds[3])
{
    struct opened_image img;
    struct snapshot_pending tmp = { .lock_fd = -1 };
    int r;

    if ((r = caller_open_image(&c->who, path, -1, false, &img)) < 0)
        return r;
    p->path = img.path;
    p->lock_fd = img.fd;
    p->st = img.st;
    /* Its only holder that does not share writing is our own worker (it
     * holds it as a backing file): take the write locks beside it. */
    if ((r = image_lock_fd_beside_backing(p->lock_fd, p->path)) < 0)
        return r;
    tmp.lock_fd = p->lock_fd;
    tmp.path = p->path;
    return worker_descriptors(att, &tmp, fds);
}

void imageops_cmd_commit(struct supervisor *s, struct attachment *att, struct client *c,
                         json_object *id, json_object *args)
{
    const struct attachment *other;
    struct commit_pending *p;
    const char *below;
    int64_t below_size;
    int fds[3] = { -1, -1, -1 }, r;

    (void)args;
    if (!may_operate(c, id, att))
        return;
    if (att->commit) {
        client_error(c, id, "Busy", "'%s': a commit is under way", att->name);
        return;
    }
    if (!chain_below(att, &below, &below_size)) {
        client_error(c, id, "InvalidParameter", "'%s' has no backing file to commit into",
                     att->name);
        return;
    }
    if (below_size > served_size(att)) {
        client_error(c, id, "NotSupported", "'%s': its backing file is larger than it",
                     att->name);
        return;
    }
    if (!(p = calloc(1, sizeof *p)) || !(p->overlay = strdup(att->path))) {
        client_error(c, id, "GenericError", "out of memory");
        commit_free(p);
        return;
    }
    p->lock_fd = -1;
    qc_clear_error();
    if ((r = open_base(c, att, below, p, fds)) < 0) {
        client_error(c, id, error_class_of(r), "%s", qc_error_message(r));
        commit_free(p);
        return;
    }
    if ((other = other_reader(s, att, &p->st))) {
        /* Its data would change under it: what it reads through its own
         * overlay, or sees of the file itself. */
        client_error(c, id, "Busy", "'%s': its backing file %s is also served by '%s': a "
                     "commit would change that image under it", att->name, p->path,
                     other->name);
        for (int i = 0; i < 3; i += 2)
            if (fds[i] >= 0)
                close(fds[i]);
        commit_free(p);
        return;
    }
    att->commit = p;
    log_info("%s: commit of %s into %s (pid %d asks)", att->name, p->overlay, p->path,
             (int)c->pid);
    attachment_call_worker_fds(s, att, c, id, "commit", NULL, fds, fds[2] >= 0 ? 3 : 2);
    close(fds[0]);
    if (fds[2] >= 0)
        close(fds[2]);
}

/* Our part of the locks on the backing file goes: what the worker keeps
 * holds them, as a backing file's. */
static void commit_ended(struct attachment *att)
{
    struct commit_pending *p = TAKE_PTR(att->commit);

    if (p && p->lock_fd >= 0 && image_lock_to_backing(p->lock_fd) < 0)
        log_warning("%s: cannot drop the write locks of %s", att->name, p->path);
    commit_free(p);
}

void imageops_commit_answered(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *ret, const char *err)
{
    json_object *reply;

    (void)s;
    if (!att->commit)
        return;
    if (!ret) {
        log_warning("%s: commit did not start: %s", att->name, err);
        commit_ended(att);
        if (c)
            client_error(c, id, "ImageError", "%s: commit failed: %s", att->name, err);
        return;
    }
    reply = json_object_new_object();
    json_object_object_add(reply, "name", json_object_new_string(att->name));
    json_object_object_add(reply, "overlay", json_object_new_string(att->commit->overlay));
    json_object_object_add(reply, "path", json_object_new_string(att->commit->path));
    if (c)
        client_reply(c, id, reply);
    else
        json_object_put(reply);
}

static const char *commit_progress(struct supervisor *s, struct attachment *att,
                                   json_object *data)
{
    struct commit_pending *p = att->commit;
    json_object *ev;

    if (!json_read_int(data, "pass", 1, INT32_MAX, &p->pass) ||
        !json_read_int(data, "done", 0, INT64_MAX, &p->done) ||
        !json_read_int(data, "total", 0, INT64_MAX, &p->total) ||
        !json_read_int(data, "copied", 0, INT64_MAX, &p->copied))
        return "a malformed \"commit-progress\" event";
    ev = json_object_new_object();
    json_object_object_add(ev, "pass", json_object_new_int64(p->pass));
    json_object_object_add(ev, "done", json_object_new_int64(p->done));
    json_object_object_add(ev, "total", json_object_new_int64(p->total));
    json_object_object_add(ev, "copied", json_object_new_int64(p->copied));
    commit_event(s, att, "commit-progress", ev);
    return NULL;
}

/* The backing file serves as the top: it is the attachment's image now. */
static const char *commit_completed(struct supervisor *s, struct attachment *att,
                                    json_object *data)
{
    struct commit_pending *p = att->commit;
    const char *path = json_read_string(data, "path");
    json_object *info = worker_checked_info(data), *ev;
    int64_t copied, passes;
    char *format = strdup(json_read_string(data, "format") ? json_read_string(data, "format")
                                                           : "qcow");

    if (!info || !format || !path || strcmp(path, p->path) != 0 ||
        !json_read_int(data, "copied", 0, INT64_MAX, &copied) ||
        !json_read_int(data, "passes", 0, INT32_MAX, &passes)) {
        json_object_put(info);
        free(format);
        return "a malformed \"commit-completed\" event";
    }
    close(att->lock_fd);        /* the overlay's locks go with the worker's copy */
    att->lock_fd = TAKE_FD(p->lock_fd);
    free(att->path);
    att->path = TAKE_PTR(p->path);
    att->dev = p->st.st_dev;
    att->ino = p->st.st_ino;
    free(att->format);
    att->format = format;
    json_object_put(att->proc.ready);
    att->proc.ready = info;
    ev = json_object_new_object();
    json_object_object_add(ev, "overlay", json_object_new_string(p->overlay));
    json_object_object_add(ev, "path", json_object_new_string(att->path));
    json_object_object_add(ev, "copied", json_object_new_int64(copied));
    json_object_object_add(ev, "passes", json_object_new_int64(passes));
    log_info("%s: committed %s; serving %s now", att->name, p->overlay, att->path);
    state_save(s);              /* a restart must attach the backing file now */
    commit_ended(att);
    commit_event(s, att, "commit-completed", ev);
    return NULL;
}

const char *imageops_commit_event(struct supervisor *s, struct attachment *att,
                                  const char *name, json_object *data)
{
    const char *reason;
    json_object *ev;

    if (!att->commit)
        return "a commit event without a commit";
    if (strcmp(name, "commit-progress") == 0)
        return commit_progress(s, att, data);
    if (strcmp(name, "commit-completed") == 0)
        return commit_completed(s, att, data);
    if (!(reason = json_read_string(data, "reason")))
        return "a \"commit-failed\" event without a reason";
    log_warning("%s: commit of %s failed: %s", att->name, att->commit->overlay, reason);
    ev = json_object_new_object();
    json_object_object_add(ev, "error", json_object_new_string(reason));
    commit_ended(att);
    commit_event(s, att, "commit-failed", ev);
    return NULL;
}

void imageops_worker_gone(struct supervisor *s, struct attachment *att)
{
    json_object *ev;

    if (!att->commit)
        return;
    /* The old chain is served again (the top still holds everything); a new
     * worker locks the backing file itself, so ours must go first. */
    if (att->commit->lock_fd >= 0)
        close(att->commit->lock_fd);
    att->commit->lock_fd = -1;
    commit_ended(att);
    ev = json_object_new_object();
    json_object_object_add(ev, "error", json_object_new_string("the worker stopped"));
    commit_event(s, att, "commit-failed", ev);
}

void imageops_describe(const struct attachment *att, json_object *o)
{
    json_object *c;

    if (!att->commit)
        return;
    c = json_object_new_object();
    json_object_object_add(c, "overlay", json_object_new_string(att->commit->overlay));
    json_object_object_add(c, "path", json_object_new_string(att->commit->path));
    json_object_object_add(c, "pass", json_object_new_int64(att->commit->pass));
    json_object_object_add(c, "done", json_object_new_int64(att->commit->done));
    json_object_object_add(c, "total", json_object_new_int64(att->commit->total));
    json_object_object_add(c, "copied", json_object_new_int64(att->commit->copied));
    json_object_object_add(o, "commit", c);
}
