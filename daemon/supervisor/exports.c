/* Supervised NBD exports: for an attached image, qcowd binds the NBD
 * address itself and runs nbdkit with nbdkit-qcowd-plugin on it (socket
 * activation), which takes the image's ring.  nbdkit is watched like a
 * worker: restarted when it dies (on the same listening socket, so clients
 * only wait), marked failed when it dies too often, stopped at detach. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_listen.h"
#include "identity.h"
#include "log.h"
#include "spawn.h"
#include "supervisor.h"

#define NBDKIT_THREADS "64"             /* NBD requests in flight per connection */
#define EXPORT_START_TIMEOUT_MS 30000   /* nbdkit must take the ring by then */
#define EXPORT_STOP_TIMEOUT_MS 10000    /* SIGTERM, then SIGKILL */

enum export_state { EXPORT_STARTING, EXPORT_RUNNING, EXPORT_STOPPING, EXPORT_FAILED };

struct export {
    char name[MAX_NAME + 1];    /* the attachment's */
    enum export_state state;
    struct export_listen listen;
    char *tls_dir;
    bool read_only;
    pid_t pid;                  /* nbdkit, or -1 */
    unsigned restarts;
    uint64_t restart_times[RESTART_LIMIT];
    uint64_t since_ns;          /* when the current state began */
    struct client *waiter;      /* an export-add or export-remove to answer */
    json_object *waiter_id;
    char *error;
    struct export *next;
};

static const char *state_name(enum export_state st)
{
    static const char *const names[] = { "starting", "running", "stopping", "failed" };
    return names[st];
}

static struct export *find_export(struct supervisor *s, const char *name)
{
    for (struct export *e = s->exports; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static json_object *describe(const struct export *e)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "name", json_object_new_string(e->name));
    json_object_object_add(o, "nbd", json_object_new_string(e->listen.address));
    json_object_object_add(o, "uri", json_object_new_string(e->listen.uri));
    json_object_object_add(o, "state", json_object_new_string(state_name(e->state)));
    json_object_object_add(o, "pid", json_object_new_int(e->pid));
    json_object_object_add(o, "read-only", json_object_new_boolean(e->read_only));
    json_object_object_add(o, "tls", json_object_new_boolean(e->tls_dir != NULL));
    json_object_object_add(o, "restarts", json_object_new_int((int32_t)e->restarts));
    if (e->error)
        json_object_object_add(o, "error", json_object_new_string(e->error));
    return o;
}

static void event(struct supervisor *s, const char *name, const struct export *e,
                  const char *key, json_object *value)
{
    json_object *d = json_object_new_object();

    json_object_object_add(d, "name", json_object_new_string(e->name));
    if (key)
        json_object_object_add(d, key, value);
    broadcast_event(s, name, d);
}

/* ---- answering a waiting client ------------------------------------------- */

static void hold(struct export *e, struct client *c, json_object *id)
{
    e->waiter = c;
    e->waiter_id = id ? json_object_get(id) : NULL;
    c->busy++;                  /* its next request waits for this answer */
}

static void release_waiter(struct export *e)
{
    if (e->waiter && --e->waiter->busy == 0)
        e->waiter->resume = true;
    e->waiter = NULL;
    json_object_put(e->waiter_id);
    e->waiter_id = NULL;
}

static void answer(struct export *e, json_object *ret)
{
    if (e->waiter)
        client_reply(e->waiter, e->waiter_id, ret);
    else
        json_object_put(ret);
    release_waiter(e);
}

static void answer_error(struct export *e, const char *cls, const char *desc)
{
    if (e->waiter)
        client_error(e->waiter, e->waiter_id, cls, "%s", desc);
    release_waiter(e);
}

/* ---- nbdkit ------------------------------------------------------------------ */

struct nbdkit_args {
    const char *argv[16];
    char name_arg[MAX_NAME + 8], socket_arg[PATH_MAX + 8], tls_arg[PATH_MAX + 24];
};

static void nbdkit_argv(const struct supervisor *s, const struct export *e, struct nbdkit_args *a)
{
    unsigned n = 0;

    snprintf(a->name_arg, sizeof a->name_arg, "name=%s", e->name);
    snprintf(a->socket_arg, sizeof a->socket_arg, "socket=%s", s->socket_path);
    a->argv[n++] = s->nbdkit_path;
    a->argv[n++] = "--foreground";
    a->argv[n++] = "--exit-with-parent";
    a->argv[n++] = "--threads=" NBDKIT_THREADS;
    if (e->read_only)
        a->argv[n++] = "--readonly";
    if (e->tls_dir) {
        snprintf(a->tls_arg, sizeof a->tls_arg, "--tls-certificates=%s", e->tls_dir);
        a->argv[n++] = "--tls=require";
        a->argv[n++] = a->tls_arg;
    }
    a->argv[n++] = s->nbdkit_plugin;
    a->argv[n++] = a->name_arg;
    a->argv[n++] = a->socket_arg;
    a->argv[n] = NULL;
}

/* In the child: the listening socket is fd 3 for socket activation
 * (sd_listen_fds(3)), which nbdkit supports. */
static void socket_activation(void *opaque)
{
    char pid[24];

    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    unsetenv("LISTEN_FDNAMES");
    signal(SIGPIPE, SIG_DFL);
}

static int spawn(struct supervisor *s, struct export *e)
{
    struct nbdkit_args a;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct spawn_fd fds[] = { { e->listen.fd, 3 }, { devnull, STDIN_FILENO } };
    struct spawn_opts so = { .argv = (char *const *)a.argv, .fds = fds,
                             .nfds = devnull >= 0 ? 2 : 1, .prepare = socket_activation };
    pid_t pid;

    nbdkit_argv(s, e, &a);
    so.path = a.argv[0];
    pid = spawn_clean(&so);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0) {
        log_error("%s: cannot run %s: %s", e->name, s->nbdkit_path, strerror((int)-pid));
        return (int)pid;
    }
    e->pid = pid;
    e->state = EXPORT_STARTING;
    e->since_ns = mono_ns();
    log_info("%s: nbdkit (pid %d) serving %s", e->name, (int)pid, e->listen.address);
    return 0;
}

static void export_free(struct supervisor *s, struct export *e)
{
    for (struct export **pp = &s->exports; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    release_waiter(e);
    export_listen_close(&e->listen);
    free(e->tls_dir);
    free(e->error);
    free(e);
}

/* Stop serving: no new NBD connections from now; nbdkit is asked to go. */
static void stop(struct supervisor *s, struct export *e)
{
    export_listen_close(&e->listen);
    if (e->pid <= 0) {
        answer(e, NULL);
        export_free(s, e);
        return;
    }
    kill(e->pid, SIGTERM);
    e->state = EXPORT_STOPPING;
    e->since_ns = mono_ns();
}

static void fail_export(struct supervisor *s, struct export *e, const char *why)
{
    log_error("%s: NBD export failed: %s", e->name, why);
    free(e->error);
    e->error = strdup(why);
    e->state = EXPORT_FAILED;
    e->since_ns = mono_ns();
    export_listen_close(&e->listen);    /* clients are refused, not left waiting */
    event(s, "export-failed", e, "error", json_object_new_string(why));
}

static bool restart_allowed(struct export *e)
{
    uint64_t now = mono_ns(), window = (uint64_t)RESTART_WINDOW_S * 1000000000u;
    unsigned recent = 0;

    for (unsigned i = 0; i < RESTART_LIMIT; i++)
        if (e->restart_times[i] && now - e->restart_times[i] < window)
            recent++;
    if (recent >= RESTART_LIMIT)
        return false;
    memmove(e->restart_times + 1, e->restart_times, sizeof(uint64_t) * (RESTART_LIMIT - 1));
    e->restart_times[0] = now;
    return true;
}

static void restart(struct supervisor *s, struct export *e, int status)
{
    char why[160];

    if (!restart_allowed(e)) {
        snprintf(why, sizeof why, "nbdkit died %d times within %d s (last status %d)",
                 RESTART_LIMIT, RESTART_WINDOW_S, status);
        fail_export(s, e, why);
        return;
    }
    e->restarts++;
    if (spawn(s, e) < 0) {
        fail_export(s, e, "cannot start nbdkit again");
        return;
    }
    log_warning("%s: nbdkit died (status %d); restarted as pid %d", e->name, status,
                (int)e->pid);
    event(s, "export-restarted", e, "pid", json_object_new_int(e->pid));
}

/* ---- hooks for the rest of the supervisor ------------------------------------------ */

bool exports_child_exited(struct supervisor *s, pid_t pid, int status)
{
    struct export *e;
    char why[192];

    for (e = s->exports; e && e->pid != pid; e = e->next)
        ;
    if (!e)
        return false;
    e->pid = -1;
    if (e->state == EXPORT_STOPPING) {
        log_info("%s: NBD export removed", e->name);
        answer(e, NULL);
        export_free(s, e);
    } else if (e->state == EXPORT_STARTING && e->waiter) {
        /* Its first start: the operator is waiting for the verdict. */
        snprintf(why, sizeof why, "%s: nbdkit exited with status %d before it served the "
                 "image (its messages are in qcowd's log)", e->name, status);
        log_error("%s", why);
        answer_error(e, "ExportError", why);
        export_free(s, e);
    } else if (e->state != EXPORT_FAILED) {
        restart(s, e, status);
    }
    return true;
}

void exports_ring_taken(struct supervisor *s, const struct attachment *att, pid_t pid)
{
    struct export *e = find_export(s, att->name);

    if (!e || e->pid != pid || e->state != EXPORT_STARTING)
        return;
    e->state = EXPORT_RUNNING;
    e->since_ns = mono_ns();
    if (e->waiter) {
        answer(e, describe(e));
        event(s, "export-added", e, "uri", json_object_new_string(e->listen.uri));
    }
}

void exports_detaching(struct supervisor *s, const struct attachment *att)
{
    struct export *e = find_export(s, att->name);

    if (!e || e->state == EXPORT_STOPPING)
        return;
    answer_error(e, "NotFound", "the image is being detached");
    event(s, "export-removed", e, NULL, NULL);
    stop(s, e);
}

void exports_forget_client(struct supervisor *s, const struct client *c)
{
    for (struct export *e = s->exports; e; e = e->next)
        if (e->waiter == c) {
            e->waiter = NULL;
            json_object_put(e->waiter_id);
            e->waiter_id = NULL;
        }
}

void exports_tick(struct supervisor *s)
{
    uint64_t now = mono_ns();

    for (struct export *e = s->exports, *next; e; e = next) {
        uint64_t ms = (now - e->since_ns) / 1000000u;
        next = e->next;
        if (e->state == EXPORT_STARTING && ms > EXPORT_START_TIMEOUT_MS && e->pid > 0) {
            log_error("%s: nbdkit (pid %d) did not take the ring in time: killing it",
                      e->name, (int)e->pid);
            kill(e->pid, SIGKILL);
        } else if (e->state == EXPORT_STOPPING && ms > EXPORT_STOP_TIMEOUT_MS && e->pid > 0) {
            kill(e->pid, SIGKILL);
        } else if (e->state != EXPORT_STOPPING && !attachment_find(s, e->name)) {
            stop(s, e);     /* its image is gone (e.g. it failed and was detached) */
        }
    }
}

json_object *exports_describe_for(struct supervisor *s, const struct attachment *att)
{
    struct export *e = find_export(s, att->name);

    return e ? describe(e) : NULL;
}

void exports_free_all(struct supervisor *s)
{
    while (s->exports) {
        if (s->exports->pid > 0)
            kill(s->exports->pid, SIGTERM);
        export_free(s, s->exports);
    }
}

/* ---- commands ---------------------------------------------------------------------- */

static const char *string_arg(json_object *args, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A bool argument: default when absent; -1 when it is not a bool. */
static int bool_arg(json_object *args, const char *key, bool def)
{
    json_object *v;

    if (!json_object_object_get_ex(args, key, &v))
        return def;
    return json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : -1;
}

static bool check_add_args(struct client *c, json_object *id, json_object *args,
                           const char **name, const char **nbd, const char **tls, int *ro,
                           int *insecure)
{
    json_object *v;

    *name = string_arg(args, "name");
    *nbd = string_arg(args, "nbd");
    *tls = string_arg(args, "tls-certs");
    *ro = bool_arg(args, "read-only", false);
    *insecure = bool_arg(args, "insecure", false);
    if (!*name || !*nbd) {
        client_error(c, id, "InvalidParameter", "'name' and 'nbd' (strings) are required");
        return false;
    }
    if (*ro < 0 || *insecure < 0 ||
        (json_object_object_get_ex(args, "tls-certs", &v) && !*tls)) {
        client_error(c, id, "InvalidParameter",
                     "'read-only' and 'insecure' are booleans, 'tls-certs' a string");
        return false;
    }
    return true;
}

/* nbdkit reads the key with qcowd's rights: a caller may name only a key
 * it can read itself. */
static bool tls_dir_usable(struct client *c, json_object *id, const char *dir)
{
    char key[PATH_MAX];
    struct stat st;
    int fd;

    if (dir[0] != '/' || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        client_error(c, id, "InvalidParameter", "tls-certs %s: not an absolute path to a "
                     "directory", dir);
        return false;
    }
    if (caller_privileged(&c->who))
        return true;
    snprintf(key, sizeof key, "%s/server-key.pem", dir);
    if ((fd = identity_open(&c->who, key, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) >= 0) {
        close(fd);
        return true;
    }
    client_error(c, id, "PermissionDenied", "tls-certs %s: uid %u cannot read %s: %s", dir,
                 (unsigned)c->who.uid, key, strerror(-fd));
    return false;
}

/* The image must be served and its ring free: nbdkit is about to take it. */
static struct attachment *exportable(struct supervisor *s, struct client *c, json_object *id,
                                     const char *name)
{
    struct attachment *att = attachment_find(s, name);

    if (!att) {
        client_error(c, id, "NotFound", "no image is attached as '%s'", name);
    } else if (!caller_may_use(c, att)) {
        client_error(c, id, "PermissionDenied", "'%s' was attached by another user (uid %u)",
                     name, (unsigned)att->caller.uid);
        att = NULL;
    } else if (find_export(s, name)) {
        client_error(c, id, "AlreadyExists", "'%s' is exported already", name);
        att = NULL;
    } else if (att->state != ATT_RUNNING && att->state != ATT_PAUSED) {
        client_error(c, id, "InvalidState", "'%s' is %s", name, attachment_state_name(att->state));
        att = NULL;
    } else if (att->owner) {
        client_error(c, id, "Busy", "'%s' is connected to another client (pid %d)", name,
                     (int)att->owner->pid);
        att = NULL;
    } else if (s->stopping) {
        client_error(c, id, "InvalidState", "qcowd is shutting down");
        att = NULL;
    }
    return att;
}

void exports_cmd_add(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    const char *name, *nbd, *tls;
    int ro, insecure, r;
    char why[512];
    struct export *e;
    struct attachment *att;

    if (!check_add_args(c, id, args, &name, &nbd, &tls, &ro, &insecure) ||
        (tls && !tls_dir_usable(c, id, tls)) || !(att = exportable(s, c, id, name)))
        return;
    if (!(e = calloc(1, sizeof *e)) || (tls && !(e->tls_dir = strdup(tls)))) {
        free(e);
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    struct export_listen_opts lo = { .spec = nbd, .tls = tls != NULL, .insecure = insecure,
                                     .group = s->group,
                                     .as = caller_privileged(&c->who) ? NULL : &c->who };
    if ((r = export_listen_open(&lo, &e->listen, why, sizeof why)) < 0) {
        client_error(c, id, r == -EADDRINUSE || r == -EEXIST ? "AlreadyExists"
                            : r == -EACCES ? "PermissionDenied" : "InvalidParameter", "%s", why);
        free(e->tls_dir);
        free(e);
        return;
    }
    snprintf(e->name, sizeof e->name, "%s", att->name);
    e->read_only = ro || att->read_only;
    e->pid = -1;
    e->next = s->exports;
    s->exports = e;
    if ((r = spawn(s, e)) < 0) {
        client_error(c, id, "GenericError", "cannot start nbdkit: %s", strerror(-r));
        export_free(s, e);
        return;
    }
    hold(e, c, id);     /* answered when nbdkit has taken the ring, or has exited */
}

/* An export belongs to whoever may use its attachment. */
static bool export_visible(struct supervisor *s, const struct client *c, const struct export *e)
{
    const struct attachment *att = attachment_find(s, e->name);

    return att ? caller_may_use(c, att) : caller_privileged(&c->who);
}

void exports_cmd_remove(struct supervisor *s, struct client *c, json_object *id,
                        json_object *args)
{
    const char *name = string_arg(args, "name");
    struct export *e;

    if (!name) {
        client_error(c, id, "InvalidParameter", "'name' (a string) is required");
        return;
    }
    if (!(e = find_export(s, name)) || e->state == EXPORT_STOPPING) {
        client_error(c, id, "NotFound", "'%s' is not exported", name);
        return;
    }
    if (!export_visible(s, c, e)) {
        client_error(c, id, "PermissionDenied", "'%s' is another user's export", name);
        return;
    }
    answer_error(e, "NotFound", "the export was removed meanwhile");
    event(s, "export-removed", e, NULL, NULL);
    hold(e, c, id);     /* answered when nbdkit has exited */
    stop(s, e);
}

void exports_cmd_list(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    json_object *list = json_object_new_array();

    for (struct export *e = s->exports; e; e = e->next)
        if (e->state != EXPORT_STOPPING && export_visible(s, c, e))
            json_object_array_add(list, describe(e));
    client_reply(c, id, list);
}
