/* qcowring_attach and qcowring_detach: the control protocol's "attach"
 * (with the image's descriptor, opened here with the caller's own rights:
 * qcowd serves what its caller could open, nothing more) and "detach". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "client_internal.h"
#include "fdpass.h"

/* s as a JSON string (quotes included) appended to out; 0 or -ENAMETOOLONG. */
static int json_string(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = *len;

    if (n + 1 >= cap)
        return -ENAMETOOLONG;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (n + 7 >= cap)
            return -ENAMETOOLONG;
        if (*p == '"' || *p == '\\')
            n += (size_t)snprintf(out + n, cap - n, "\\%c", *p);
        else if (*p < 0x20)
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        else
            out[n++] = (char)*p;
    }
    out[n++] = '"';
    *len = n;
    return 0;
}

static int append(char *out, size_t cap, size_t *len, const char *text)
{
    size_t n = strlen(text);

    if (*len + n >= cap)
        return -ENAMETOOLONG;
    memcpy(out + *len, text, n);
    *len += n;
    return 0;
}

/* The greeting, then one request (with fd when >= 0), then its reply. */
static int call(const char *socket_path, const char *line, size_t len, int fd)
{
    _cleanup_close_ int sock = control_dial(socket_path);
    _cleanup_free_ char *reply = NULL;
    _cleanup_(control_received_close) struct control_received got = { .n = 0 };
    int r;

    if (sock < 0)
        return sock;
    if (!(reply = malloc(CONTROL_LINE_MAX)))
        return -ENOMEM;
    if ((r = control_read_greeting(sock, reply, &got, NULL)) < 0)
        return r;
    if ((r = fdpass_send(sock, line, len, &fd, fd >= 0 ? 1 : 0)) < 0)
        return r;
    return control_read_reply(sock, reply, &got);
}

/* path made absolute against our directory: qcowd locates relative backing
 * files from it. */
static char *absolute(const char *path)
{
    char *cwd, *abs = NULL;

    if (path[0] == '/')
        return strdup(path);
    if (!(cwd = getcwd(NULL, 0)))
        return NULL;
    if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
        abs = NULL;
    free(cwd);
    return abs;
}

static int attach_request(char *out, size_t cap, size_t *len, const char *path,
                          const char *name, const char *format, unsigned flags)
{
    int r = append(out, cap, len, "{\"execute\":\"attach\",\"arguments\":{\"fd\":true,\"path\":");

    if (r == 0)
        r = json_string(out, cap, len, path);
    if (r == 0 && name && (r = append(out, cap, len, ",\"name\":")) == 0)
        r = json_string(out, cap, len, name);
    if (r == 0 && format && (r = append(out, cap, len, ",\"format\":")) == 0)
        r = json_string(out, cap, len, format);
    if (r == 0 && (flags & QCOWRING_ATTACH_READ_ONLY))
        r = append(out, cap, len, ",\"read-only\":true");
    return r == 0 ? append(out, cap, len, "}}\n") : r;
}

int qcowring_attach(const char *socket_path, const char *path, const char *name,
                    const char *format, unsigned flags)
{
    bool read_only = flags & QCOWRING_ATTACH_READ_ONLY;
    char *abs, *line;
    size_t len = 0;
    int fd, r;

    if (!path || !*path || (flags & ~QCOWRING_ATTACH_READ_ONLY) ||
        (name && !control_valid_name(name)) ||
        (format && strcmp(format, "auto") && strcmp(format, "qcow") && strcmp(format, "raw")))
        return -EINVAL;
    if (!(abs = absolute(path)))
        return -errno;
    if (!(line = malloc(CONTROL_LINE_MAX))) {
        free(abs);
        return -ENOMEM;
    }
    r = attach_request(line, CONTROL_LINE_MAX, &len, abs, name, format, flags);
    fd = r < 0 ? -1 : open(abs, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (r == 0 && fd < 0)
        r = -errno;
    free(abs);
    if (r == 0)
        r = call(socket_path, line, len, fd);
    if (fd >= 0)
        close(fd);
    free(line);
    return r;
}

int qcowring_detach(const char *socket_path, const char *name)
{
    char line[160];
    int n;

    if (!name || !control_valid_name(name))
        return -EINVAL;
    n = snprintf(line, sizeof line, "{\"execute\":\"detach\",\"arguments\":{\"name\":\"%s\"}}\n",
                 name);
    return call(socket_path, line, (size_t)n, -1);
}
