/* The control connection to qcowd: one request at a time, replies matched
 * by id, events handed to a callback, every failure named with the socket. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "output.h"
#include "daemon/common/cleanup.h"

/* read_message() results besides 1 (a message) and 0 (end of stream). */
#define READ_REPORTED (-EPROTO)         /* a bad message: already reported */

/* ---- the socket path ---------------------------------------------------- */

char *ctl_socket_path(const struct cli *cli)
{
    const char *env = getenv(CTL_SOCKET_ENV), *dir;
    char *path = NULL;

    if (cli->socket)
        path = strdup(cli->socket);
    else if (env && *env)
        path = strdup(env);
    else if (geteuid() == 0)
        path = strdup(CTL_DEFAULT_SOCKET_ROOT);
    else if ((dir = getenv("XDG_RUNTIME_DIR")) && *dir) {
        if (asprintf(&path, "%s/qcowd.sock", dir) < 0)
            path = NULL;
    } else {
        cli_error("no control socket to use: XDG_RUNTIME_DIR is not set (use --socket PATH or "
                  "set " CTL_SOCKET_ENV ")");
        return NULL;
    }
    if (!path)
        cli_error("out of memory");
    return path;
}

/* ---- exit status per error class ----------------------------------------- */

static const struct {
    const char *cls;
    int status;
} class_exit[] = {
    { "InvalidParameter", CLI_EXIT_USAGE },
    { "NotFound", CLI_EXIT_NOT_FOUND },
    { "AlreadyExists", CLI_EXIT_EXISTS },
    { "Locked", CLI_EXIT_LOCKED },
    { "PermissionDenied", CLI_EXIT_DENIED },
    { "InvalidState", CLI_EXIT_STATE },
    { "Busy", CLI_EXIT_BUSY },
    { "LimitReached", CLI_EXIT_LIMIT },
    { "OperationFailed", CLI_EXIT_OP_FAILED },
};

int ctl_error_exit(const char *cls)
{
    for (size_t i = 0; cls && i < sizeof class_exit / sizeof class_exit[0]; i++)
        if (strcmp(class_exit[i].cls, cls) == 0)
            return class_exit[i].status;
    return CLI_EXIT_FAILURE;
}

/* ---- reading ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline for a wait of `seconds` (0: none, -1). */
static int64_t deadline_after(unsigned seconds)
{
    return seconds ? mono_ms() + (int64_t)seconds * 1000 : -1;
}

/* The next complete line in the buffer, NUL-terminated in place (valid
 * until the next fill()), or NULL. */
static char *take_line(struct ctl_conn *c, size_t *len)
{
    char *line = c->buf + c->start;
    char *nl = c->len > c->start ? memchr(line, '\n', c->len - c->start) : NULL;

    if (!nl)
        return NULL;
    *nl = '\0';
    *len = (size_t)(nl - line);
    c->start = (size_t)(nl - c->buf) + 1;
    return line;
}

/* Read more bytes: 1, 0 at the end of the stream, or -ETIMEDOUT, -EINTR,
 * -EMSGSIZE (a line longer than CTL_MAX_LINE), -errno. */
static int fill(struct ctl_conn *c, int64_t deadline)
{
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->len - c->start);
        c->len -= c->start;
        c->start = 0;
    }
    if (c->len == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 65536;
        char *buf;
        if (c->cap >= CTL_MAX_LINE)
            return -EMSGSIZE;
        if (cap > CTL_MAX_LINE)
            cap = CTL_MAX_LINE;
        if (!(buf = realloc(c->buf, cap)))
            return -ENOMEM;
        c->buf = buf;
        c->cap = cap;
    }
    for (;;) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int timeout = -1, n;
        ssize_t got;

        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        n = poll(&p, 1, timeout);
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        got = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (got < 0 && errno == EAGAIN)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return 0;
        c->len += (size_t)got;
        return 1;
    }
}

static json_object *parse_line(const char *line, size_t len, const char **why)
{
    struct json_tokener *tok = json_tokener_new_ex(CTL_MAX_DEPTH);
    json_object *obj;
    enum json_tokener_error err;

    *why = "out of memory";
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT
#ifdef JSON_TOKENER_VALIDATE_UTF8
                                    | JSON_TOKENER_VALIDATE_UTF8
#endif
    );
    obj = json_tokener_parse_ex(tok, line, (int)len);
    err = json_tokener_get_error(tok);
    if (err == json_tokener_continue)
        err = json_tokener_error_parse_eof;
    if (obj && err == json_tokener_success && json_tokener_get_parse_end(tok) != len) {
        *why = "trailing characters";
        json_object_put(obj);
        obj = NULL;
    } else if (err != json_tokener_success) {
        *why = json_tokener_error_desc(err);
        json_object_put(obj);
        obj = NULL;
    } else if (!json_object_is_type(obj, json_type_object)) {
        *why = "not a JSON object";
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

/* The next message: 1 (*msg set, *line the text until the next read), 0 at
 * the end of the stream, READ_REPORTED after a bad message (reported), or
 * a fill() error. */
static int read_message(struct ctl_conn *c, int64_t deadline, json_object **msg, const char **line)
{
    for (;;) {
        size_t len;
        char *text = take_line(c, &len);
        const char *why;
        int r;

        if (text) {
            if (len == 0)
                continue;
            cli_verbose(c->cli, "%s: <- %.*s", c->path, len > 2000 ? 2000 : (int)len, text);
            if (!(*msg = parse_line(text, len, &why))) {
                cli_error("%s: bad message from qcowd: %s", c->path, why);
                return READ_REPORTED;
            }
            *line = text;
            return 1;
        }
        if ((r = fill(c, deadline)) <= 0)
            return r;
    }
}

/* Report a read_message() failure while waiting for `what` ("its
 * greeting", "the reply to list", ...); returns the exit status. */
static int read_failed(struct ctl_conn *c, int r, const char *what, unsigned waited_s)
{
    switch (r) {
    case READ_REPORTED:
        return CLI_EXIT_FAILURE;
    case 0:
    case -ECONNRESET:
        return cli_fail("%s: qcowd closed the connection (waiting for %s)", c->path, what);
    case -ETIMEDOUT:
        return cli_fail("%s: no answer from qcowd within %u s (waiting for %s)", c->path,
                        waited_s, what);
    case -EMSGSIZE:
        return cli_fail("%s: a message from qcowd is longer than %u bytes", c->path,
                        CTL_MAX_LINE);
    default:
        return cli_fail("%s: cannot read from qcowd: %s", c->path, strerror(-r));
    }
}

static bool is_event(json_object *msg)
{
    return json_object_object_get_ex(msg, "event", NULL);
}

static void hand_on_event(struct ctl_conn *c, json_object *msg, const char *line)
{
    if (c->on_event)
        c->on_event(c->event_ctx, msg, line);
}

/* ---- connecting --------------------------------------------------------- */

static int check_greeting(struct ctl_conn *c, json_object *msg)
{
    json_object *body, *err, *v;

    if (json_object_object_get_ex(msg, "error", &err)) {
        const char *cls = NULL, *desc = "no reason given";
        if (json_object_object_get_ex(err, "class", &v))
            cls = json_object_get_string(v);
        if (json_object_object_get_ex(err, "desc", &v))
            desc = json_object_get_string(v);
        cli_error("%s: qcowd refused the connection: %s", c->path, desc);
        return ctl_error_exit(cls);
    }
    if (!json_object_object_get_ex(msg, "QCOWD", &body) ||
        !json_object_is_type(body, json_type_object) ||
        !json_object_object_get_ex(body, "protocol", &v) || !json_object_is_type(v, json_type_int))
        return cli_fail("%s: not a qcowd control socket (unexpected greeting)", c->path);
    if (json_object_get_int64(v) != CTL_PROTOCOL)
        return cli_fail("%s: qcowd speaks protocol %" PRId64 ", this qcowctl speaks %d", c->path,
                        json_object_get_int64(v), CTL_PROTOCOL);
    c->greeting = json_object_get(body);
    return CLI_EXIT_OK;
}

static int dial(struct ctl_conn *c)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    if (strlen(c->path) >= sizeof addr.sun_path)
        return cli_fail("%s: cannot connect: the socket path is longer than %zu bytes", c->path,
                        sizeof addr.sun_path - 1);
    strcpy(addr.sun_path, c->path);
    if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return cli_fail("%s: cannot create a socket: %s", c->path, strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        bool absent = e == ENOENT || e == ECONNREFUSED;
        cli_error("%s: cannot connect: %s%s", c->path, strerror(e),
                  absent ? " (is qcowd running?)" : "");
        return e == EACCES || e == EPERM ? CLI_EXIT_DENIED : CLI_EXIT_FAILURE;
    }
    cli_verbose(c->cli, "%s: connected", c->path);
    return CLI_EXIT_OK;
}

static int greet(struct ctl_conn *c)
{
    unsigned wait_s = c->cli->timeout_s ? c->cli->timeout_s : CTL_GREETING_TIMEOUT_S;
    _cleanup_json_ json_object *msg = NULL;
    const char *line;
    int r = read_message(c, deadline_after(wait_s), &msg, &line);

    if (r <= 0)
        return read_failed(c, r, "its greeting", wait_s);
    return check_greeting(c, msg);
}

int ctl_connect(struct ctl_conn *c, const struct cli *cli)
{
    int r;

    *c = (struct ctl_conn){ .fd = -1, .cli = cli };
    if (!(c->path = ctl_socket_path(cli)))
        return CLI_EXIT_FAILURE;
    if ((r = dial(c)) == CLI_EXIT_OK)
        r = greet(c);
    if (r != CLI_EXIT_OK)
        ctl_close(c);
    return r;
}

void ctl_close(struct ctl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->path);
    c->path = NULL;
    free(c->buf);
    c->buf = NULL;
    c->start = c->len = c->cap = 0;
    json_object_put(c->greeting);
    c->greeting = NULL;
}

/* ---- requests ----------------------------------------------------------- */

/* The descriptor `pass` (when >= 0) goes with the first bytes (SCM_RIGHTS). */
static ssize_t send_some(int fd, const char *text, size_t len, int pass)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { (void *)text, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (pass >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass, sizeof pass);
    }
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static int send_all(int fd, const char *text, size_t len, int pass)
{
    while (len > 0) {
        ssize_t n = send_some(fd, text, len, pass);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        text += n;
        len -= (size_t)n;
        pass = -1;
    }
    return 0;
}

/* Show a request with -v; the password of an attach is never shown (nor
 * copied: the copy shown is built without it). */
static void log_request(struct ctl_conn *c, const char *command, json_object *args, int64_t id)
{
    json_object *shown, *shown_args;

    if (!c->cli->verbose)
        return;
    shown = json_object_new_object();
    json_object_object_add(shown, "execute", json_object_new_string(command));
    if (args && json_object_is_type(args, json_type_object)) {
        shown_args = json_object_new_object();
        json_object_object_foreach(args, key, val) {
            bool secret = strcmp(key, "key") == 0;
            json_object_object_add(shown_args, key, secret ? json_object_new_string("(hidden)")
                                                           : json_object_get(val));
        }
        json_object_object_add(shown, "arguments", shown_args);
    } else if (args) {
        json_object_object_add(shown, "arguments", json_object_get(args));
    }
    json_object_object_add(shown, "id", json_object_new_int64(id));
    cli_verbose(c->cli, "%s: -> %s", c->path,
                json_object_to_json_string_ext(shown, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(shown);
}

static int send_request(struct ctl_conn *c, const char *command, json_object *args,
                        int64_t id, int pass)
{
    json_object *req = json_object_new_object();
    const char *text;
    int r;

    if (!req)
        return -ENOMEM;
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    json_object_object_add(req, "id", json_object_new_int64(id));
    log_request(c, command, args, id);
    text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text) {
        json_object_put(req);
        return -ENOMEM;
    }
    /* The daemon reads lines: the request and its newline in one go. */
    size_t len = strlen(text);
    char *line = malloc(len + 1);
    if (!line) {
        r = -ENOMEM;
    } else {
        memcpy(line, text, len);
        line[len] = '\n';
        r = send_all(c->fd, line, len + 1, pass);
        explicit_bzero(line, len + 1);      /* it may hold a password */
        free(line);
    }
    explicit_bzero((char *)text, len);
    json_object_put(req);
    return r;
}

/* Whether a reply's id is ours (a reply without one, to a line the daemon
 * could not read, is taken as ours). */
static bool our_reply(json_object *msg, int64_t id)
{
    json_object *v;

    if (!json_object_object_get_ex(msg, "id", &v))
        return true;
    return json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id;
}

int ctl_call(struct ctl_conn *c, const char *command, json_object *args, json_object **ret)
{
    return ctl_call_fd(c, command, args, -1, ret);
}

int ctl_call_fd(struct ctl_conn *c, const char *command, json_object *args, int pass,
                json_object **ret)
{
    int64_t id = ++c->next_id, deadline = deadline_after(c->cli->timeout_s);
    char what[64];
    int r;

    *ret = NULL;
    snprintf(what, sizeof what, "the reply to %s", command);
    if ((r = send_request(c, command, args, id, pass)) < 0) {
        if (r == -EPIPE || r == -ECONNRESET)
            return cli_fail("%s: qcowd closed the connection", c->path);
        return cli_fail("%s: cannot send %s: %s", c->path, command, strerror(-r));
    }
    for (;;) {
        json_object *msg, *v, *err;
        const char *line;

        r = read_message(c, deadline, &msg, &line);
        if (r == -EINTR)
            continue;
        if (r <= 0)
            return read_failed(c, r, what, c->cli->timeout_s);
        if (is_event(msg)) {
            hand_on_event(c, msg, line);
        } else if (json_object_object_get_ex(msg, "return", &v) && our_reply(msg, id)) {
            *ret = json_object_get(v);
            json_object_put(msg);
            return CLI_EXIT_OK;
        } else if (json_object_object_get_ex(msg, "error", &err) && our_reply(msg, id)) {
            const char *cls = NULL, *desc = "no reason given";
            if (json_object_object_get_ex(err, "class", &v))
                cls = json_object_get_string(v);
            if (json_object_object_get_ex(err, "desc", &v))
                desc = json_object_get_string(v);
            char *clean = cli_clean_text(desc);
            cli_error("%s: %s: %s", c->path, command, clean ? clean : desc);
            free(clean);
            cli_verbose(c->cli, "%s: error class %s", c->path, cls ? cls : "(none)");
            r = ctl_error_exit(cls);        /* cls lives in msg */
            json_object_put(msg);
            return r;
        } else {
            json_object_put(msg);
            return cli_fail("%s: unexpected message from qcowd while waiting for %s", c->path,
                            what);
        }
        json_object_put(msg);
    }
}

/* ---- following the stream ----------------------------------------------- */

int ctl_call_once(struct cli *cli, const char *command, json_object *args, json_object **ret)
{
    struct ctl_conn c;
    int r;

    *ret = NULL;
    if ((r = ctl_connect(&c, cli)) != CLI_EXIT_OK)
        return r;
    r = ctl_call(&c, command, args, ret);
    ctl_close(&c);
    return r;
}

int ctl_follow_events(struct ctl_conn *c, volatile const sig_atomic_t *stop)
{
    for (;;) {
        json_object *msg;
        const char *line;
        int r = read_message(c, -1, &msg, &line);

        if (r == -EINTR) {
            if (stop && *stop)
                return CLI_EXIT_OK;
            continue;
        }
        if (r == 0 || r == -ECONNRESET)
            return CLI_EXIT_OK;
        if (r < 0)
            return read_failed(c, r, "events", 0);
        if (is_event(msg))
            hand_on_event(c, msg, line);
        json_object_put(msg);
        if (stop && *stop)
            return CLI_EXIT_OK;
    }
}

int ctl_wait_close(struct ctl_conn *c)
{
    int64_t deadline = deadline_after(c->cli->timeout_s);

    for (;;) {
        json_object *msg;
        const char *line;
        int r = read_message(c, deadline, &msg, &line);

        if (r == -EINTR)
            continue;
        if (r == 0 || r == -ECONNRESET)
            return CLI_EXIT_OK;
        if (r < 0)
            return read_failed(c, r, "it to stop", c->cli->timeout_s);
        if (is_event(msg))
            hand_on_event(c, msg, line);
        json_object_put(msg);
    }
}
