/* The state file: what is attached, so that a qcowd started again (after a
 * restart, an upgrade or a crash) attaches it again.  Each attachment is
 * recorded with its options, its owner and the rights its attach used;
 * never a key.  The file is rewritten whole, atomically, after each
 * change; it is read once, at start, as input that may be damaged.  See
 * doc/restart.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "json_read.h"
#include "log.h"
#include "supervisor.h"

#define STATE_VERSION 1
#define STATE_MAX_BYTES (16u << 20)
#define OLD_WORKERS_WAIT_MS 20000

/* ---- where ------------------------------------------------------------- */

char *state_default_path(void)
{
    const char *base = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char *path = NULL;

    if (geteuid() == 0)
        return strdup("/var/lib/qcowd/attachments.json");
    if (base && base[0] == '/')
        return asprintf(&path, "%s/qcowd/attachments.json", base) < 0 ? NULL : path;
    if (home && home[0] == '/')
        return asprintf(&path, "%s/.local/state/qcowd/attachments.json", home) < 0 ? NULL : path;
    return NULL;
}

/* The directories above path, made as needed (0700: only we read them). */
static void make_parents(const char *path)
{
    char dir[PATH_MAX];

    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return;
    for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* One qcowd per state file: two would attach the same images and write
 * over each other's records.  The lock (on PATH.lock, which the atomic
 * rename never replaces) lasts as long as this qcowd.  false: the file is
 * not ours, and qcowd goes on without one. */
static bool lock_state(const char *path)
{
    char lock[PATH_MAX];
    int fd;

    if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock)
        return false;
    if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
        log_error("%s: cannot open: %s; running without a state file", lock, strerror(errno));
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            log_error("%s: another qcowd uses this state file; running without one", path);
        else
            log_error("%s: cannot lock: %s; running without a state file", lock, strerror(errno));
        close(fd);
        return false;
    }
    return true;                /* fd stays open, with the lock, until we exit */
}

/* ---- writing ------------------------------------------------------------ */

static json_object *identity_to_json(const struct identity *who)
{
    json_object *o = json_object_new_object(), *groups = json_object_new_array();

    json_object_object_add(o, "uid", json_object_new_int64(who->uid));
    json_object_object_add(o, "gid", json_object_new_int64(who->gid));
    for (unsigned i = 0; i < who->ngroups; i++)
        json_object_array_add(groups, json_object_new_int64(who->groups[i]));
    json_object_object_add(o, "groups", groups);
    return o;
}

/* One attachment as an attach would give it again. */
static json_object *entry_of(const struct attachment *att)
{
    json_object *o;

    if (att->restore_entry)         /* never started here: kept as it was read */
        return json_object_get(att->restore_entry);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(att->name));
    json_object_object_add(o, "path", json_object_new_string(att->path));
    json_object_object_add(o, "read-only", json_object_new_boolean(att->read_only));
    json_object_object_add(o, "cache", json_object_new_string(att->writeback ? "writeback" : "none"));
    if (att->format)
        json_object_object_add(o, "format", json_object_new_string(att->format));
    json_object_object_add(o, "poll-us", json_object_new_int64(att->poll_us));
    if (att->ring_page_order_given)
        json_object_object_add(o, "ring-page-order", json_object_new_int64(att->ring_page_order));
    if (att->data_pages)
        json_object_object_add(o, "data-pages", json_object_new_int64(att->data_pages));
    json_object_object_add(o, "io-limits", throttling_describe(att));
    json_object_object_add(o, "caller", identity_to_json(&att->caller));
    if (att->key_file)
        json_object_object_add(o, "key-file", json_object_new_string(att->key_file));
    else if (att->key)
        json_object_object_add(o, "key-given", json_object_new_boolean(true));
    if (att->proc.pid > 0)
        json_object_object_add(o, "worker-pid", json_object_new_int64(att->proc.pid));
    if (att->rendezvous_path && att->proc.pid > 0)
        json_object_object_add(o, "rendezvous", json_object_new_string(att->rendezvous_path));
    json_object_object_add(o, "ring-held",
                           json_object_new_boolean(att->owner || att->ring_held_elsewhere));
    json_object_object_add(o, "ring-lock", json_object_new_boolean(att->owner ? att->owner_locks
                                                                   : att->ring_lock_elsewhere));
    return o;
}

static json_object *state_of(const struct supervisor *s)
{
    json_object *o = json_object_new_object(), *list = json_object_new_array();

    json_object_object_add(o, "qcowd-state", json_object_new_int(STATE_VERSION));
    for (const struct attachment *att = s->attachments; att; att = att->next)
        if (att->recorded)
            json_object_array_add(list, entry_of(att));
    json_object_object_add(o, "attachments", list);
    return o;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    int fd, r = 0;

    snprintf(dir, sizeof dir, "%s", path);
    if (!(slash = strrchr(dir, '/')))
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = '\0';
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

/* text into path, atomically: a temporary file beside it, synced, renamed
 * over it, and the rename synced. */
static int replace_file(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    int fd, r;

    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        return -errno;
    r = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (r == 0)
        r = write_all(fd, text, strlen(text));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_dir_of(path);
}

void state_save(struct supervisor *s)
{
    /* Stopping detaches everything: what was attached stays recorded, to
     * be attached again at the next start. */
    if (s->state_path && !s->stopping)
        s->state_dirty = true;
}

void state_flush(struct supervisor *s)
{
    json_object *state;
    int r;

    if (!s->state_dirty)
        return;
    s->state_dirty = false;
    state = state_of(s);
    make_parents(s->state_path);
    r = replace_file(s->state_path,
                     json_object_to_json_string_ext(state, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(state);
    if (r < 0)
        log_error("%s: cannot write the state file: %s (a restart would not re-attach what "
                  "changed)", s->state_path, strerror(-r));
}

/* ---- reading ------------------------------------------------------------ */

static int check_state_file(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return -errno;
    if (!S_ISREG(st->st_mode))
        return -EINVAL;
    if (st->st_uid != geteuid() || (st->st_mode & 022))
        return -EPERM;          /* someone else could have written it */
    if (st->st_size > STATE_MAX_BYTES)
        return -EFBIG;
    return 0;
}

/* The file's text (*len bytes, and a NUL after them); NULL with *err
 * (-ENOENT: there is none). */
static char *read_state(const char *path, size_t *len, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    char *buf;
    size_t size;
    ssize_t n;

    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    if ((*err = check_state_file(fd, &st)) < 0) {
        close(fd);
        return NULL;
    }
    size = (size_t)st.st_size;
    if (!(buf = malloc(size + 1))) {
        *err = -ENOMEM;
        close(fd);
        return NULL;
    }
    n = pread(fd, buf, size, 0);
    *err = n < 0 ? -errno : 0;
    close(fd);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n < size ? (size_t)n : size;
    buf[*len] = '\0';
    return buf;
}

static bool read_identity(json_object *o, struct identity *who)
{
    json_object *groups = json_read_array(o, "groups");
    int64_t uid, gid, g;
    size_t n;

    if (!json_read_int(o, "uid", 0, UINT32_MAX - 1, &uid) ||
        !json_read_int(o, "gid", 0, UINT32_MAX - 1, &gid) || !groups ||
        (n = json_object_array_length(groups)) > IDENTITY_MAX_GROUPS)
        return false;
    *who = (struct identity){ .uid = (uid_t)uid, .gid = (gid_t)gid, .ngroups = (unsigned)n };
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(groups, i);
        if (!json_object_is_type(v, json_type_int) || (g = json_object_get_int64(v)) < 0 ||
            g >= (int64_t)UINT32_MAX)
            return false;
        who->groups[i] = (gid_t)g;
    }
    return true;
}

/* The attach arguments an entry records: only those, of the types attach
 * takes (attach checks their values again). */
static json_object *attach_args_of(json_object *entry)
{
    static const struct { const char *key; enum json_type type; } keys[] = {
        { "name", json_type_string }, { "path", json_type_string },
        { "read-only", json_type_boolean }, { "cache", json_type_string },
        { "format", json_type_string }, { "poll-us", json_type_int },
        { "ring-page-order", json_type_int }, { "data-pages", json_type_int },
        { "io-limits", json_type_object }, { "key-file", json_type_string },
    };
    json_object *args = json_object_new_object(), *v;

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (!json_object_object_get_ex(entry, keys[i].key, &v))
            continue;
        if (!json_object_is_type(v, keys[i].type)) {
            json_object_put(args);
            return NULL;
        }
        json_object_object_add(args, keys[i].key, json_object_get(v));
    }
    return args;
}

/* Why an entry cannot be used, or NULL. */
static const char *entry_problem(json_object *entry, json_object **args, struct identity *who)
{
    const char *path = json_read_string(entry, "path");

    *args = NULL;
    if (!json_object_is_type(entry, json_type_object))
        return "an entry is not an object";
    if (!json_read_string(entry, "name") || !path || path[0] != '/')
        return "an entry has no 'name', or no absolute 'path'";
    if (!read_identity(json_read_object(entry, "caller"), who))
        return "an entry has no valid 'caller' (uid, gid, groups)";
    if (!(*args = attach_args_of(entry)))
        return "an entry has an option of the wrong type";
    return NULL;
}

/* The file could not be used: it goes aside as PATH.bad (the operator may
 * want it), and qcowd starts with nothing attached. */
static void put_aside(const char *path, const char *why)
{
    char bad[PATH_MAX];

    snprintf(bad, sizeof bad, "%s.bad", path);
    if (rename(path, bad) < 0)
        log_error("%s: %s; nothing is re-attached (cannot move it to %s: %s)", path, why, bad,
                  strerror(errno));
    else
        log_error("%s: %s; nothing is re-attached, the file is kept as %s", path, why, bad);
}

static bool process_gone(pid_t pid)
{
    char stat_path[64], buf[256];
    const char *paren;
    ssize_t n;
    int fd;

    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    /* A zombie has closed everything (and PID 1 may be slow to reap it). */
    snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)pid);
    if ((fd = open(stat_path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* The workers of the qcowd that wrote the file, not adopted, flush and
 * exit (their channel closed, or their wait for adoption ended, or we told
 * them to stop); they hold their image's lock until then.  Wait for them,
 * a bounded time: a pid may have gone to someone else. */
static void wait_for_old_workers(json_object *list, const bool *adopted)
{
    struct timespec pause = { 0, 10 * 1000000 };
    size_t n = json_object_array_length(list);
    int64_t pid;

    for (int waited_ms = 0;; waited_ms += 10) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++)
            any = !adopted[i] &&
                  json_read_int(json_object_array_get_idx(list, i), "worker-pid", 2, INT32_MAX,
                                &pid) && !process_gone((pid_t)pid);
        if (!any)
            return;
        if (waited_ms >= OLD_WORKERS_WAIT_MS) {
            log_warning("workers of the previous qcowd are still running after %d s: "
                        "re-attaching anyway", OLD_WORKERS_WAIT_MS / 1000);
            return;
        }
        nanosleep(&pause, NULL);
    }
}

/* Connect to the running worker an entry names, if any. */
static struct adoption *meet_recorded_worker(struct supervisor *s, json_object *entry)
{
    struct adoption *met;
    json_object *args;
    struct identity who;
    int64_t pid;

    /* Stopped by its qcowd, or its wait for adoption is over. */
    if (!json_read_has(entry, "rendezvous") ||
        !json_read_int(entry, "worker-pid", 2, INT32_MAX, &pid) || process_gone((pid_t)pid))
        return NULL;
    entry_problem(entry, &args, &who);
    met = attachment_adopt_meet(s, args, entry);
    json_object_put(args);
    return met;
}

/* Adopt the running workers the entries name (oldest first, as the table
 * grows); adopted[i] says which were.  All of them are met before any
 * answer is awaited, so that workers that do not answer cost one wait
 * together, not one each. */
static void adopt_workers(struct supervisor *s, json_object *list, bool *adopted)
{
    size_t n = json_object_array_length(list);
    _cleanup_free_ struct adoption **met = calloc(n + 1, sizeof *met);
    uint64_t deadline_ns;

    if (!met) {
        log_error("%s: out of memory: no running worker is adopted", s->state_path);
        return;
    }
    for (size_t i = n; i-- > 0;)
        met[i] = meet_recorded_worker(s, json_object_array_get_idx(list, i));
    deadline_ns = mono_ns() + (uint64_t)ADOPT_ANSWER_MS * 1000000;
    for (size_t i = n; i-- > 0;) {
        json_object *entry = json_object_array_get_idx(list, i), *args;
        struct identity who;
        if (!met[i])
            continue;
        entry_problem(entry, &args, &who);
        adopted[i] = attachment_adopt(s, met[i], args, &who, entry, deadline_ns) == 0;
        json_object_put(args);
    }
}

/* The entries of a state file, checked; NULL (and why) when unusable. */
static json_object *parse_state(const char *text, size_t end, char *why, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_READ_MAX_DEPTH);
    json_object *state, *list;
    enum json_tokener_error e;
    size_t parsed;
    int64_t version;

    while (end > 0 && strchr(" \t\r\n", text[end - 1]))
        end--;
    if (!tok) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    state = json_tokener_parse_ex(tok, text, (int)end);
    e = json_tokener_get_error(tok);
    parsed = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e == json_tokener_success && parsed != end)
        snprintf(why, len, "is not JSON: text after its end at byte %zu", parsed);
    else if (e != json_tokener_success)
        snprintf(why, len, "is not JSON: %s at byte %zu",
                 e == json_tokener_continue ? "it ends too early" : json_tokener_error_desc(e),
                 parsed);
    if (e != json_tokener_success || parsed != end) {
        json_object_put(state);
        return NULL;
    }
    if (!json_read_int(state, "qcowd-state", STATE_VERSION, STATE_VERSION, &version) ||
        !(list = json_read_array(state, "attachments"))) {
        snprintf(why, len, "is not a qcowd state file of version %d", STATE_VERSION);
        json_object_put(state);
        return NULL;
    }
    json_object_get(list);
    json_object_put(state);
    return list;
}

/* Every entry checked before any is used: a damaged file re-attaches
 * nothing rather than part of what it says. */
static bool entries_usable(json_object *list, char *why, size_t len)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct identity who;
        json_object *args;
        const char *problem = entry_problem(json_object_array_get_idx(list, i), &args, &who);
        json_object_put(args);
        if (problem) {
            snprintf(why, len, "entry %zu: %s", i + 1, problem);
            return false;
        }
    }
    return true;
}

void state_restore(struct supervisor *s)
{
    json_object *list;
    char why[256];
    char *text;
    bool *adopted;
    size_t n, len;
    int r;

    if (!s->state_path)
        return;
    make_parents(s->state_path);
    if (!lock_state(s->state_path)) {
        free(s->state_path);
        s->state_path = NULL;
        return;
    }
    if (!(text = read_state(s->state_path, &len, &r))) {
        if (r == -EPERM) {
            snprintf(why, sizeof why, "it must belong to uid %u and be writable by nobody else",
                     (unsigned)geteuid());
            put_aside(s->state_path, why);
        } else if (r != -ENOENT) {
            log_error("%s: cannot read the state file: %s", s->state_path, strerror(-r));
        }
        return;
    }
    list = parse_state(text, len, why, sizeof why);
    free(text);
    if (list && !entries_usable(list, why, sizeof why)) {
        json_object_put(list);
        list = NULL;
    }
    if (!list) {
        put_aside(s->state_path, why);
        return;
    }
    n = json_object_array_length(list);
    if (!(adopted = calloc(n + 1, sizeof *adopted))) {
        log_error("%s: out of memory", s->state_path);
        json_object_put(list);
        return;
    }
    if (n > 0) {
        log_info("%s: re-attaching %zu image(s)", s->state_path, n);
        adopt_workers(s, list, adopted);
        wait_for_old_workers(list, adopted);
    }
    /* Newest first in the file, as in the table: restored oldest first. */
    for (size_t i = n; i-- > 0;) {
        json_object *entry = json_object_array_get_idx(list, i), *args;
        struct identity who;
        if (adopted[i])
            continue;
        entry_problem(entry, &args, &who);
        attachment_restore(s, args, &who, entry);
        json_object_put(args);
    }
    free(adopted);
    json_object_put(list);
    state_save(s);
    state_flush(s);
}
