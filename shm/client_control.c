/* Talking to qcowd's control socket (doc/protocol.md), for
 * qcowring_connect and qcowring_attach: dialling, reading messages with the
 * descriptors that come with them, and error classes as errnos.  Every line
 * is parsed with json-c: the order of members and members we do not know
 * do not matter. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "client_internal.h"
#include "fdpass.h"

#define JSON_MAX_DEPTH 16               /* the protocol's limit */
#define PROTOCOL_VERSION 1
#define REPLY_TIMEOUT_MS 30000

static int default_socket(char *buf, size_t len)
{
    const char *env = getenv("QCOWD_SOCKET"), *dir = getenv("XDG_RUNTIME_DIR");
    int n;

    if (env && *env)
        n = snprintf(buf, len, "%s", env);
    else if (geteuid() == 0)
        n = snprintf(buf, len, "/run/qcowd/qcowd.sock");
    else if (dir && *dir)
        n = snprintf(buf, len, "%s/qcowd.sock", dir);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int dial_path(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof addr.sun_path)
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Read one line (and any descriptors that come with it) into buf. */
static int read_line(int fd, char *buf, size_t cap, int *fds, unsigned *nfds)
{
    size_t len = 0;

    *nfds = 0;
    while (len < cap - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        unsigned got = 0;
        int r = poll(&p, 1, REPLY_TIMEOUT_MS);
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        /* One byte at a time keeps the next line in the socket. */
        ssize_t n = fdpass_recv(fd, buf + len, 1, fds + *nfds, 3 - *nfds, &got);
        if (n <= 0)
            return n == 0 ? -ECONNRESET : (int)n;
        *nfds += got;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return 0;
        }
        len++;
    }
    return -EMSGSIZE;
}

/* A line as one JSON object, or NULL when it is none. */
static json_object *parse_message(const char *line)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    size_t len = strlen(line);
    json_object *msg;

    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    msg = json_tokener_parse_ex(tok, line, (int)len);
    if (msg && (json_tokener_get_error(tok) != json_tokener_success ||
                json_tokener_get_parse_end(tok) != len ||
                !json_object_is_type(msg, json_type_object))) {
        json_object_put(msg);
        msg = NULL;
    }
    json_tokener_free(tok);
    return msg;
}

/* A reply as an errno: 0 for a return, the error class's errno for an
 * error, -EPROTO for anything else. */
static int reply_status(json_object *msg)
{
    static const struct { const char *cls; int err; } classes[] = {
        { "NotFound", -ENOENT }, { "Busy", -EBUSY }, { "Locked", -EBUSY },
        { "PermissionDenied", -EACCES }, { "InvalidState", -EAGAIN },
        { "AlreadyExists", -EEXIST }, { "InvalidParameter", -EINVAL },
        { "LimitReached", -ENOSPC },
    };
    json_object *error, *cls;

    if (json_object_object_get_ex(msg, "return", NULL))
        return 0;
    if (!json_object_object_get_ex(msg, "error", &error))
        return -EPROTO;
    if (!json_object_object_get_ex(error, "class", &cls) ||
        !json_object_is_type(cls, json_type_string))
        return -EIO;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        if (strcmp(json_object_get_string(cls), classes[i].cls) == 0)
            return classes[i].err;
    return -EIO;
}

/* The CONTROL_CAP_* a greeting's "capabilities" lists. */
static unsigned capabilities(json_object *body)
{
    json_object *list;
    unsigned caps = 0;

    if (!json_object_object_get_ex(body, "capabilities", &list) ||
        !json_object_is_type(list, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *item = json_object_array_get_idx(list, i);

        if (json_object_is_type(item, json_type_string) &&
            strcmp(json_object_get_string(item), "hold-lock") == 0)
            caps |= CONTROL_CAP_HOLD_LOCK;
    }
    return caps;
}

/* The greeting, or the refusal the server sends instead of it. */
static int greeting_status(json_object *msg, unsigned *caps)
{
    json_object *body, *protocol;
    int r;

    if (!json_object_object_get_ex(msg, "QCOWD", &body)) {
        r = reply_status(msg);
        return r < 0 ? r : -EPROTO;
    }
    if (!json_object_object_get_ex(body, "protocol", &protocol) ||
        !json_object_is_type(protocol, json_type_int))
        return -EPROTO;
    if (json_object_get_int64(protocol) != PROTOCOL_VERSION)
        return -EPROTONOSUPPORT;
    if (caps)
        *caps = capabilities(body);
    return 0;
}

static bool is_event(json_object *msg)
{
    return json_object_object_get_ex(msg, "event", NULL) &&
           !json_object_object_get_ex(msg, "return", NULL) &&
           !json_object_object_get_ex(msg, "error", NULL);
}

void control_received_close(struct control_received *got)
{
    for (unsigned i = 0; i < got->n; i++)
        close(got->fds[i]);
    got->n = 0;
}

/* The next message; descriptors that came with the previous one are
 * closed first. */
static int next_message(int fd, char *line, struct control_received *got, json_object **msg)
{
    int r;

    control_received_close(got);
    if ((r = read_line(fd, line, CONTROL_LINE_MAX, got->fds, &got->n)) < 0)
        return r;
    *msg = parse_message(line);
    return *msg ? 0 : -EPROTO;
}

int control_read_greeting(int fd, char *line, struct control_received *got, unsigned *caps)
{
    _cleanup_json_ json_object *msg = NULL;
    int r = next_message(fd, line, got, &msg);

    return r < 0 ? r : greeting_status(msg, caps);
}

int control_read_reply(int fd, char *line, struct control_received *got)
{
    for (;;) {
        _cleanup_json_ json_object *msg = NULL;
        int r = next_message(fd, line, got, &msg);

        if (r < 0)
            return r;
        if (!is_event(msg))
            return reply_status(msg);
    }
}

int control_dial(const char *socket_path)
{
    char path[108];
    int r;

    if (!socket_path) {
        if ((r = default_socket(path, sizeof path)) < 0)
            return r;
        socket_path = path;
    }
    return dial_path(socket_path);
}

bool control_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}
