/* The control socket: binding it (or taking it from systemd), accepting and
 * authorising connections, line framing, replies and events. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fdpass.h"
#include "log.h"
#include "supervisor.h"

#define BACKLOG_MAX (4 * MAX_LINE)
/* What a client may leave unread, beyond the message being sent, before
 * it is dropped (one message of any size is taken: a `stats` of 1000
 * images is about 650 KB). */
#define OUTPUT_MAX (1 << 20)

int watch_fd(struct supervisor *s, int fd, struct watch *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

    return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Always before close(): epoll watches the open file, not the descriptor,
 * and a worker being forked holds a copy of every descriptor until it
 * execs, so close() alone can leave the watch (and its dangling pointer)
 * armed. */
void unwatch_fd(struct supervisor *s, int fd)
{
    if (fd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- the listening socket ---------------------------------------------- */

static int from_systemd(struct supervisor *s)
{
    int n = sd_listen_fds(1);

    if (n < 0)
        return qc_fail(n, "systemd socket activation: %s", strerror(-n));
    if (n == 0)
        return 0;
    if (n > 1)
        return qc_fail(-EINVAL, "systemd passed %d sockets; qcowd takes exactly one", n);
    if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
        return qc_fail(-EINVAL, "the socket systemd passed is not a listening unix stream socket");
    s->listen_fd = SD_LISTEN_FDS_START;
    fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC);
    log_info("listening on the socket passed by systemd");
    return 1;
}

/* A socket file left by a dead daemon is removed; a live one is an error. */
static int clear_stale_socket(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = 0;

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0)
        r = qc_fail(-EADDRINUSE, "%s: another qcowd is already listening there", addr->sun_path);
    else if (errno == ECONNREFUSED)
        unlink(addr->sun_path);
    close(fd);
    return r;
}

/* Bound and listening under a temporary name, then linked into place: a
 * socket file that exists is one that accepts, so whoever waits for the
 * file (a script that started qcowd) is never refused; and link(), unlike
 * rename(), fails when a second qcowd got there first. */
static int bind_socket(struct supervisor *s)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX }, tmp = { .sun_family = AF_UNIX };
    bool via_tmp;
    mode_t old;
    int r;

    if (strlen(s->socket_path) >= sizeof addr.sun_path)
        return qc_fail(-ENAMETOOLONG, "%s: socket path too long", s->socket_path);
    strcpy(addr.sun_path, s->socket_path);
    via_tmp = (size_t)snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s.%d", s->socket_path,
                               (int)getpid()) < sizeof tmp.sun_path;
    if (!via_tmp)
        tmp = addr;             /* no room for a temporary name: bind in place */
    if ((r = clear_stale_socket(&addr)) < 0)
        return r;
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return -errno;
    if (via_tmp)
        unlink(tmp.sun_path);   /* left by a dead qcowd with our pid */
    old = umask(0117);          /* the socket file: 0660 */
    r = bind(s->listen_fd, (struct sockaddr *)&tmp, sizeof tmp);
    umask(old);
    if (r < 0)
        return qc_fail(-errno, "%s: cannot bind: %s", tmp.sun_path, strerror(errno));
    if (s->group != (gid_t)-1 && chown(tmp.sun_path, (uid_t)-1, s->group) < 0)
        log_warning("%s: cannot give the socket to the group: %s", s->socket_path, strerror(errno));
    r = listen(s->listen_fd, 64) < 0 ? -errno : 0;
    if (r == 0 && via_tmp && link(tmp.sun_path, addr.sun_path) < 0)
        r = -errno;
    if (via_tmp)
        unlink(tmp.sun_path);
    if (r == -EEXIST)
        return qc_fail(-EADDRINUSE, "%s: another qcowd is already listening there", s->socket_path);
    if (r < 0)
        return qc_fail(r, "%s: listen: %s", s->socket_path, strerror(-r));
    s->socket_ours = true;
    log_info("listening on %s", s->socket_path);
    return 0;
}

int server_listen(struct supervisor *s)
{
    static struct watch w = { .kind = WATCH_LISTEN };
    int r = from_systemd(s);

    if (r == 0)
        r = bind_socket(s);
    if (r < 0)
        return r;
    fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
    return watch_fd(s, s->listen_fd, &w);
}

/* ---- sending ----------------------------------------------------------- */

/* EPOLLIN while we take its requests, EPOLLOUT while it has output queued. */
static void update_events(struct client *c)
{
    uint32_t want = (c->reading ? EPOLLIN : 0) | (c->out ? EPOLLOUT : 0);
    struct epoll_event ev = { .events = want, .data.ptr = &c->watch };

    if (want != c->armed && epoll_ctl(c->sup->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->armed = want;
}

static void outbuf_free(struct outbuf *b)
{
    for (unsigned i = 0; i < b->nfds; i++)
        close(b->fds[i]);
    free(b);
}

static void drop_output(struct client *c)
{
    while (c->out) {
        struct outbuf *b = c->out;
        c->out = b->next;
        outbuf_free(b);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

/* Send what the socket takes now, without waiting; EPOLLOUT brings us back
 * for the rest. */
static void flush_output(struct client *c)
{
    while (c->out && !c->closing) {
        struct outbuf *b = c->out;
        ssize_t n = fdpass_send_some(c->fd, b->data + b->off, b->len - b->off, b->fds, b->nfds,
                                     MSG_DONTWAIT);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            c->closing = true;      /* it went away; the read side sees it too */
            break;
        }
        for (unsigned i = 0; i < b->nfds; i++)
            close(b->fds[i]);
        b->nfds = 0;
        b->off += (size_t)n;
        c->out_bytes -= (size_t)n;
        if (b->off == b->len) {
            c->out = b->next;
            if (!c->out)
                c->out_tail = NULL;
            free(b);
        }
    }
    if (c->closing)
        drop_output(c);
    else
        update_events(c);
}

void client_writable(struct client *c)
{
    flush_output(c);
}

static struct outbuf *outbuf_new(const char *text, size_t len, const int *fds, unsigned nfds)
{
    struct outbuf *b = malloc(sizeof *b + len + 1);

    if (!b)
        return NULL;
    *b = (struct outbuf){ .len = len + 1 };
    memcpy(b->data, text, len);
    b->data[len] = '\n';
    for (; b->nfds < nfds; b->nfds++)
        if ((b->fds[b->nfds] = fcntl(fds[b->nfds], F_DUPFD_CLOEXEC, 0)) < 0) {
            outbuf_free(b);
            return NULL;
        }
    return b;
}

int client_send(struct client *c, json_object *msg, const int *fds, unsigned nfds)
{
    const char *text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    struct outbuf *b = NULL;
    int r = -EPIPE;

    assert(nfds <= sizeof b->fds / sizeof b->fds[0]);
    if (!c->closing && !(b = outbuf_new(text, strlen(text), fds, nfds)))
        r = -errno;
    json_object_put(msg);
    if (!b)
        return r;
    if (c->out_tail)
        c->out_tail->next = b;
    else
        c->out = b;
    c->out_tail = b;
    c->out_bytes += b->len;
    return 0;
}

/* Bytes queued behind the message being sent. */
static size_t unread_backlog(const struct client *c)
{
    return c->out ? c->out_bytes - (c->out->len - c->out->off) : 0;
}

void clients_flush(struct supervisor *s)
{
    for (struct client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (c->out && !c->closing)
            flush_output(c);
        if (!c->closing && unread_backlog(c) > OUTPUT_MAX) {
            log_warning("client pid %d does not read its answers (%zu bytes waiting): closing "
                        "the connection", (int)c->pid, c->out_bytes);
            c->closing = true;
        }
        if (c->closing)
            client_close(s, c);
    }
}

void client_reply(struct client *c, json_object *id, json_object *ret)
{
    json_object *msg = json_object_new_object();

    json_object_object_add(msg, "return", ret ? ret : json_object_new_object());
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    client_send(c, msg, NULL, 0);
}

static char unsent_error[1024];

const char *client_unsent_error(void)
{
    return unsent_error;
}

void client_error(struct client *c, json_object *id, const char *cls, const char *fmt, ...)
{
    json_object *msg = json_object_new_object(), *err = json_object_new_object();
    char desc[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    if (!c) {
        log_error("%s", desc);
        snprintf(unsent_error, sizeof unsent_error, "%s", desc);
        json_object_put(msg);
        json_object_put(err);
        return;
    }
    json_object_object_add(err, "class", json_object_new_string(cls));
    json_object_object_add(err, "desc", json_object_new_string(desc));
    json_object_object_add(msg, "error", err);
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    client_send(c, msg, NULL, 0);
}

static json_object *timestamp_now(void)
{
    struct timeval tv;
    json_object *t = json_object_new_object();

    gettimeofday(&tv, NULL);
    json_object_object_add(t, "seconds", json_object_new_int64(tv.tv_sec));
    json_object_object_add(t, "microseconds", json_object_new_int64(tv.tv_usec));
    return t;
}

/* Events about an attachment go to those who may see it. */
static bool may_hear(struct supervisor *s, const struct client *c, json_object *data)
{
    json_object *name;
    const struct attachment *att;

    if (!json_object_object_get_ex(data, "name", &name))
        return true;
    att = attachment_find(s, json_object_get_string(name));
    return att ? caller_may_use(c, att) : caller_privileged(&c->who);
}

void broadcast_event(struct supervisor *s, const char *name, json_object *data)
{
    log_info("event %s: %s", name, json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    for (struct client *c = s->clients; c; c = c->next) {
        if (!c->events || c->closing || !may_hear(s, c, data))
            continue;
        json_object *ev = json_object_new_object();
        json_object_object_add(ev, "event", json_object_new_string(name));
        json_object_object_add(ev, "data", json_object_get(data));
        json_object_object_add(ev, "timestamp", timestamp_now());
        client_send(c, ev, NULL, 0);
    }
    json_object_put(data);
}

/* ---- connections ------------------------------------------------------- */

static void send_greeting(struct client *c)
{
    json_object *msg = json_object_new_object(), *body = json_object_new_object();
    json_object *ver = json_object_new_object(), *caps = json_object_new_array();

    json_object_object_add(ver, "major", json_object_new_int(PACKAGE_VERSION_MAJOR));
    json_object_object_add(ver, "minor", json_object_new_int(PACKAGE_VERSION_MINOR));
    json_object_object_add(ver, "micro", json_object_new_int(PACKAGE_VERSION_MICRO));
    json_object_object_add(ver, "package", json_object_new_string(PACKAGE_STRING));
    json_object_array_add(caps, json_object_new_string("events"));
    json_object_array_add(caps, json_object_new_string("fd-passing"));
    json_object_array_add(caps, json_object_new_string("hold-lock"));
    json_object_object_add(body, "version", ver);
    json_object_object_add(body, "protocol", json_object_new_int(1));
    json_object_object_add(body, "capabilities", caps);
    json_object_object_add(msg, "QCOWD", body);
    client_send(c, msg, NULL, 0);
}

static void refuse(int fd, const char *cls, const char *desc)
{
    char line[512];
    int n = snprintf(line, sizeof line, "{\"error\":{\"class\":\"%s\",\"desc\":\"%s\"}}\n", cls, desc);

    (void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static struct client *client_new(struct supervisor *s, int fd, const struct ucred *cred)
{
    struct client *c = calloc(1, sizeof *c);

    if (!c || !(c->in = malloc(MAX_LINE)) || !(c->backlog = malloc(BACKLOG_MAX))) {
        if (c)
            free(c->in);
        free(c);
        return NULL;
    }
    c->watch = (struct watch){ .kind = WATCH_CLIENT, .obj = c };
    c->sup = s;
    c->fd = fd;
    c->uid = cred->uid;
    c->pid = cred->pid;
    c->reading = true;
    c->armed = EPOLLIN;         /* as watch_fd() registers it */
    c->connected_ns = mono_ns();
    caller_identify(fd, cred, &c->who);
    return c;
}

static void accept_one(struct supervisor *s, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    struct client *c;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        refuse(fd, "GenericError", "cannot identify the peer");
        return;
    }
    if (!peer_authorised(s, cred.uid, cred.gid)) {
        log_warning("refused a connection from uid %u (pid %d): not authorised",
                    (unsigned)cred.uid, (int)cred.pid);
        refuse(fd, "PermissionDenied", "not authorised to use qcowd");
        return;
    }
    if (s->nclients >= s->max_clients || s->stopping) {
        refuse(fd, "LimitReached", s->stopping ? "qcowd is shutting down" : "too many clients");
        return;
    }
    if (!(c = client_new(s, fd, &cred)) || watch_fd(s, fd, &c->watch) < 0) {
        refuse(fd, "GenericError", "out of resources");
        if (c) {
            free(c->in);
            free(c->backlog);
        }
        free(c);
        return;
    }
    c->next = s->clients;
    s->clients = c;
    s->nclients++;
    log_debug("client uid %u pid %d connected", (unsigned)cred.uid, (int)cred.pid);
    send_greeting(c);
}

void server_accept(struct supervisor *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warning("accept: %s", strerror(errno));
            if (errno != EINTR && errno != ECONNABORTED)
                return;
            continue;
        }
        accept_one(s, fd);
    }
}

void client_close(struct supervisor *s, struct client *c)
{
    struct client **pp = &s->clients;

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    attachments_forget_client(s, c);
    exports_forget_client(s, c);
    client_drop_fds(c);
    unwatch_fd(s, c->fd);
    close(c->fd);
    s->nclients--;
    drop_output(c);
    free(c->in);
    free(c->backlog);
    bury(s, &c->watch, c);
}

/* The graveyard is a list through the objects' own watches: burying needs
 * no memory, so nothing is ever freed before the round is over. */
void bury(struct supervisor *s, struct watch *w, void *obj)
{
    assert(!w->dead);
    w->dead = true;
    w->obj = obj;
    w->next_dead = s->graveyard;
    s->graveyard = w;
}

void empty_graveyard(struct supervisor *s)
{
    while (s->graveyard) {
        struct watch *w = s->graveyard;
        s->graveyard = w->next_dead;
        free(w->obj);           /* w lives inside it */
    }
}

/* Take lines from the backlog while the connection has no command in
 * progress; an oversized line is answered and skipped. */
static void take_lines(struct supervisor *s, struct client *c)
{
    while (c->backlog_off < c->backlog_len && !c->closing && c->busy == 0) {
        char ch = c->backlog[c->backlog_off++];
        if (ch == '\n') {
            c->spoke = true;
            if (!c->skipping && c->in_len > 0)
                handle_request(s, c, c->in, c->in_len);
            c->in_len = 0;
            c->skipping = false;
        } else if (!c->skipping) {
            if (c->in_len == MAX_LINE - 1) {
                client_error(c, NULL, "GenericError", "request too long (limit %d bytes)", MAX_LINE);
                c->skipping = true;
                c->in_len = 0;
                continue;
            }
            c->in[c->in_len++] = ch;
        }
    }
}

static void set_reading(struct client *c, bool on)
{
    c->reading = on;
    update_events(c);
}

static int backlog_add(struct client *c, const char *data, size_t n)
{
    if (c->backlog_off == c->backlog_len)
        c->backlog_off = c->backlog_len = 0;
    if (c->backlog_off > 0) {
        memmove(c->backlog, c->backlog + c->backlog_off, c->backlog_len - c->backlog_off);
        c->backlog_len -= c->backlog_off;
        c->backlog_off = 0;
    }
    if (c->backlog_len + n > BACKLOG_MAX)
        return -ENOBUFS;
    memcpy(c->backlog + c->backlog_len, data, n);
    c->backlog_len += n;
    return 0;
}

void client_readable(struct supervisor *s, struct client *c)
{
    char buf[16384];
    ssize_t n;

    /* A client that waits for a slow command may not pile up requests
     * without bound: stop reading it until the command finishes. */
    if (c->backlog_len - c->backlog_off > BACKLOG_MAX - sizeof buf) {
        set_reading(c, false);
        return;
    }
    n = client_recv(c, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || backlog_add(c, buf, (size_t)n) < 0) {
        client_close(s, c);
        return;
    }
    take_lines(s, c);
    if (c->closing)
        client_close(s, c);
}

void clients_resume(struct supervisor *s)
{
    for (struct client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (c->resume && !c->closing) {
            c->resume = false;
            set_reading(c, true);
            take_lines(s, c);
        }
        if (c->closing)
            client_close(s, c);
    }
}

void clients_tick(struct supervisor *s)
{
    uint64_t now = mono_ns(), limit = (uint64_t)s->idle_timeout_s * 1000000000u;

    for (struct client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (s->idle_timeout_s && !c->spoke && now - c->connected_ns > limit) {
            log_info("client pid %d sent no request within %u s: closing the connection",
                     (int)c->pid, s->idle_timeout_s);
            client_close(s, c);
        }
    }
}
