#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fdpass.h"
#include "json_read.h"
#include "spawn.h"
#include "worker_spawn.h"

#define MAX_ARGS 48
#define WORKER_PROC_NONE \
    (struct worker_proc){ .pid = -1, .ctl_fd = -1, .ring = { -1, -1, -1 }, .journal_fd = -1 }
#define MESSAGE_MAX 65536
#define CHAIN_MAX 64

/* argv for the worker; numbers are formatted into `store`. */
static void build_argv(const struct worker_spawn_opts *o, int ctl_fd, int key_fd,
                       char store[][64], const char **argv)
{
    int n = 0, s = 0;

    argv[n++] = o->worker_path;
#define ARG_NUM(flag, fmt, ...) \
    (snprintf(store[s], 64, flag "=" fmt, __VA_ARGS__), argv[n++] = store[s++])
    ARG_NUM("--control-fd", "%d", ctl_fd);
    if (o->image_fd >= 0)
        ARG_NUM("--image-fd", "%d", o->image_fd);
    if (key_fd >= 0)
        ARG_NUM("--key-fd", "%d", key_fd);
    if (o->ring_order_given)
        ARG_NUM("--ring-order", "%u", o->ring_order);
    if (o->data_pages)
        ARG_NUM("--data-pages", "%u", o->data_pages);
    if (o->max_indirect)
        ARG_NUM("--max-indirect", "%u", o->max_indirect);
    if (o->poll_us)
        ARG_NUM("--poll-us", "%u", o->poll_us);
    if (o->l2_cache_bytes)
        ARG_NUM("--l2-cache", "%" PRIu64, o->l2_cache_bytes);
    if (o->adopt)
        ARG_NUM("--ring-fds", "%d,%d,%d,%d", o->adopt->memfd, o->adopt->req_eventfd,
                o->adopt->rsp_eventfd, o->adopt_journal_fd);
    if (o->limits && o->limits->group_fd >= 0)
        ARG_NUM("--limit-group", "%d,%d", o->limits->group_fd, o->limits->group_slot);
    if (o->orphan_wait_s > 0)
        ARG_NUM("--rendezvous", "%d,%u", o->rendezvous_fd, o->orphan_wait_s);
#undef ARG_NUM
#define ARG_STR(flag, value) (argv[n++] = flag, argv[n++] = value)
    if (o->format)
        ARG_STR("--format", o->format);
    if (o->name)
        ARG_STR("--name", o->name);
    if (o->log_level)
        ARG_STR("--log-level", o->log_level);
    if (o->limits)
        ARG_STR("--io-limits", o->limits->json);
    if (o->caller)
        ARG_STR("--caller", o->caller);
    if (o->worker_user)
        ARG_STR("--user", o->worker_user);
    for (const char *const *dir = o->backing_dirs; dir && *dir; dir++)
        ARG_STR("--backing-dir", *dir);
#undef ARG_STR
    if (o->read_only)
        argv[n++] = "--read-only";
    if (o->writeback)
        argv[n++] = "--cache=writeback";
    if (o->null_backend)
        argv[n++] = "--null";
    if (o->start_paused)
        argv[n++] = "--paused";
    argv[n++] = "--";
    argv[n++] = o->image;
    argv[n] = NULL;
}

/* The descriptors the worker gets, at the numbers its argv names; it keeps
 * no other of ours (spawn.h: not even for a moment, or it would hold other
 * images' locks). */
static unsigned worker_fds(const struct worker_spawn_opts *o, int ctl_fd, int key_fd,
                           struct spawn_fd *out)
{
    int fds[] = { ctl_fd, key_fd, o->image_fd,
                  o->adopt ? o->adopt->memfd : -1, o->adopt ? o->adopt->req_eventfd : -1,
                  o->adopt ? o->adopt->rsp_eventfd : -1, o->adopt ? o->adopt_journal_fd : -1,
                  o->limits ? o->limits->group_fd : -1,
                  o->orphan_wait_s > 0 ? o->rendezvous_fd : -1 };
    unsigned n = 0;

    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            out[n++] = (struct spawn_fd){ fds[i], -1 };
    if (o->stderr_fd >= 0)
        out[n++] = (struct spawn_fd){ o->stderr_fd, STDERR_FILENO };
    return n;
}

static int spawn_child(const struct worker_spawn_opts *o, int ctl_fd, int key_fd, pid_t *pid)
{
    char store[MAX_ARGS][64];
    const char *argv[MAX_ARGS];
    struct spawn_fd fds[10];
    struct spawn_opts so = { .path = o->worker_path, .argv = (char *const *)argv, .fds = fds };
    pid_t p;

    build_argv(o, ctl_fd, key_fd, store, argv);
    so.nfds = worker_fds(o, ctl_fd, key_fd, fds);
    if ((p = spawn_clean(&so)) < 0)
        return (int)p;
    *pid = p;
    return 0;
}

static int key_pipe(const char *key, int *read_end)
{
    int p[2];

    *read_end = -1;
    if (!key)
        return 0;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    /* A password fits in the pipe buffer: the write cannot block. */
    if (write(p[1], key, strlen(key)) < 0 || write(p[1], "\n", 1) < 0) {
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    close(p[1]);
    *read_end = p[0];
    return 0;
}

static int recv_json(int fd, int timeout_ms, json_object **msg, int *fds, unsigned *nfds)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char *buf;
    ssize_t n;
    int r;

    *nfds = 0;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return -errno;
    if (!(buf = malloc(MESSAGE_MAX + 1)))
        return -ENOMEM;
    n = fdpass_recv(fd, buf, MESSAGE_MAX, fds, fds ? 4 : 0, nfds);
    if (n <= 0) {
        free(buf);
        return n == 0 ? -ECONNRESET : (int)n;
    }
    *msg = json_read_message(buf, (size_t)n);
    free(buf);
    if (!*msg) {
        for (unsigned i = 0; fds && i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -EBADMSG;
    }
    return 0;
}

/* The worker says why it failed in the protocol's terms (PermissionDenied
 * for a backing file the caller may not read, Locked for one someone writes,
 * LimitReached for a host limit such as kernel AIO slots). */
static int failure_errno(const char *cls)
{
    if (cls && strcmp(cls, "PermissionDenied") == 0)
        return -EACCES;
    if (cls && strcmp(cls, "Locked") == 0)
        return -EBUSY;
    if (cls && strcmp(cls, "LimitReached") == 0)
        return -EAGAIN;
    return -EIO;
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static bool copy_string(json_object *to, json_object *from, const char *key)
{
    const char *v = json_read_string(from, key);

    if (v)
        json_object_object_add(to, key, json_object_new_string(v));
    return v != NULL;
}

static bool copy_int(json_object *to, json_object *from, const char *key, int64_t max)
{
    int64_t v;

    if (!json_read_int(from, key, 0, max, &v))
        return false;
    json_object_object_add(to, key, json_object_new_int64(v));
    return true;
}

static bool copy_bool(json_object *to, json_object *from, const char *key)
{
    bool v;

    if (!json_read_bool(from, key, &v))
        return false;
    json_object_object_add(to, key, json_object_new_boolean(v));
    return true;
}

static json_object *checked_chain(json_object *data)
{
    json_object *in = json_read_array(data, "chain"), *out;
    size_t n = in ? json_object_array_length(in) : 0;

    if (n == 0 || n > CHAIN_MAX)
        return NULL;
    out = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *from = json_object_array_get_idx(in, i), *e = json_object_new_object();
        json_object_array_add(out, e);
        if (!copy_string(e, from, "filename") || !copy_string(e, from, "format") ||
            !copy_int(e, from, "virtual-size", INT64_MAX)) {
            json_object_put(out);
            return NULL;
        }
    }
    return out;
}

/* The "data" of a worker's "ready", copied field by field with each type
 * checked: the supervisor shows it to clients and believes its sizes.
 * NULL when anything is missing or mistyped. */
json_object *worker_checked_info(json_object *data)
{
    json_object *out = json_object_new_object(), *chain = checked_chain(data);
    bool ok = chain && copy_string(out, data, "format") && copy_int(out, data, "size", INT64_MAX) &&
              copy_int(out, data, "cluster-size", INT32_MAX) && copy_bool(out, data, "encrypted") &&
              copy_bool(out, data, "read-only") &&
              copy_int(out, data, "capacity-sectors", INT64_MAX) &&
              copy_int(out, data, "features", INT64_MAX) &&
              copy_int(out, data, "ring-page-order", QCOWRING_MAX_RING_PAGE_ORDER) &&
              copy_int(out, data, "data-pages", UINT32_MAX) &&
              copy_int(out, data, "max-indirect-segments", UINT32_MAX);

    if (!ok) {
        json_object_put(chain);
        json_object_put(out);
        return NULL;
    }
    json_object_object_add(out, "chain", chain);
    return out;
}

static int take_ready(const struct worker_spawn_opts *o, struct worker_proc *p, json_object *msg,
                      const int *fds, unsigned nfds)
{
    const char *name = json_read_string(msg, "event");
    json_object *data = json_read_object(msg, "data"), *info;
    const char *desc = json_read_string(data, "desc");

    if (name && strcmp(name, "failed") == 0)
        return qc_fail(failure_errno(json_read_string(data, "class")), "%s",
                       desc ? desc : "the worker failed without saying why");
    if (!name || strcmp(name, "ready") != 0 || nfds != (o->adopt ? 0 : 4))
        return qc_fail(-EPROTO, "%s: the worker sent an unexpected first message", o->image);
    if (!(info = worker_checked_info(data)))
        return qc_fail(-EPROTO, "%s: the worker's ready message is malformed", o->image);
    if (!o->adopt) {
        p->ring = (struct qcowring_fds){ fds[0], fds[1], fds[2] };
        p->journal_fd = fds[3];
    }
    p->ready = info;
    return 0;
}

int worker_launch(const struct worker_spawn_opts *o, struct worker_proc *out)
{
    int sv[2], key_fd = -1;
    pid_t pid;
    int r;

    *out = WORKER_PROC_NONE;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if ((r = key_pipe(o->key, &key_fd)) < 0) {
        close(sv[0]);
        close(sv[1]);
        return r;
    }
    r = spawn_child(o, sv[1], key_fd, &pid);
    if (r < 0)
        qc_fail(r, "cannot run %s: %s", o->worker_path, strerror(-r));
    close(sv[1]);
    if (key_fd >= 0)
        close(key_fd);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    out->pid = pid;
    out->ctl_fd = sv[0];
    return 0;
}

int worker_read_ready(const struct worker_spawn_opts *o, struct worker_proc *p, int timeout_ms)
{
    json_object *msg = NULL;
    unsigned nfds = 0;
    int fds[4], r;

    if ((r = recv_json(p->ctl_fd, timeout_ms, &msg, fds, &nfds)) < 0)
        r = qc_fail(r, "%s: the worker did not start: %s", o->image,
                    r == -ECONNRESET ? "it exited" : strerror(-r));
    else
        r = take_ready(o, p, msg, fds, nfds);
    json_object_put(msg);
    if (r < 0)
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
    return r;
}

int worker_spawn(const struct worker_spawn_opts *o, int timeout_ms, struct worker_proc *out)
{
    int r = worker_launch(o, out);

    if (r < 0)
        return r;
    if ((r = worker_read_ready(o, out, timeout_ms)) < 0) {
        kill_and_reap(out->pid);
        close(out->ctl_fd);
        *out = WORKER_PROC_NONE;
    }
    return r;
}

int worker_call(struct worker_proc *p, const char *cmd, int timeout_ms, json_object **ret)
{
    char buf[256];
    json_object *msg = NULL, *v;
    int r;

    snprintf(buf, sizeof buf, "{\"execute\":\"%s\"}", cmd);
    if ((r = fdpass_send(p->ctl_fd, buf, strlen(buf), NULL, 0)) < 0)
        return r;
    if ((r = recv_json(p->ctl_fd, timeout_ms, &msg, NULL, &(unsigned){ 0 })) < 0)
        return r;
    if ((v = json_read_object(msg, "return"))) {
        *ret = json_object_get(v);
        r = 0;
    } else {
        const char *desc = json_read_string(json_read_object(msg, "error"), "desc");
        r = qc_fail(-EIO, "%s", desc ? desc : "bad answer");
    }
    json_object_put(msg);
    return r;
}

void worker_proc_release(struct worker_proc *p)
{
    if (p->ctl_fd >= 0)
        close(p->ctl_fd);
    qcowring_close_fds(&p->ring);
    if (p->journal_fd >= 0)
        close(p->journal_fd);
    p->journal_fd = -1;
    json_object_put(p->ready);
    p->ready = NULL;
    p->ctl_fd = -1;
}

int worker_stop(struct worker_proc *p, int timeout_ms)
{
    json_object *ret = NULL;
    int status = 0, waited = 0;
    pid_t w;

    if (worker_call(p, "stop", timeout_ms, &ret) == 0)
        json_object_put(ret);
    worker_proc_release(p);
    while ((w = waitpid(p->pid, &status, WNOHANG)) == 0 && waited < timeout_ms) {
        usleep(10000);
        waited += 10;
    }
    if (w == 0) {
        kill_and_reap(p->pid);
        return -ETIMEDOUT;
    }
    if (w < 0)
        return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
