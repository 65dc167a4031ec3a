/* Binding the address of a supervised NBD export (export_listen.h). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "export_listen.h"

#define LISTEN_BACKLOG 64

static int why_fail(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int why_fail(char *why, size_t len, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return err;
}

/* Percent-encode what an NBD URI's query value may not hold as is. */
static void uri_escape(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* ---- unix sockets ---------------------------------------------------------- */

/* A socket file left by a dead server is removed; a live one, or a file
 * that is not a socket, is an error.  The probe never waits: a listener
 * whose backlog is full (whoever made it may keep it so) is a live one. */
static int clear_stale(const struct sockaddr_un *addr, char *why, size_t len)
{
    struct stat st;
    int fd, r = 0;

    if (lstat(addr->sun_path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return why_fail(why, len, -EEXIST, "%s: exists and is not a socket", addr->sun_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0 || errno == EAGAIN)
        r = why_fail(why, len, -EADDRINUSE, "%s: something is listening there already",
                     addr->sun_path);
    else if (errno == ECONNREFUSED)
        unlink(addr->sun_path);
    close(fd);
    return r;
}

static int bind_unix(const struct export_listen_opts *o, const struct sockaddr_un *addr,
                     struct export_listen *l, char *why, size_t len)
{
    mode_t old;
    int r;

    if ((r = clear_stale(addr, why, len)) < 0)
        return r;
    if ((l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    old = umask(0117);          /* 0660: the NBD clients of the owner and the group */
    r = bind(l->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 ? -errno : 0;
    umask(old);
    if (r < 0)
        return why_fail(why, len, r, "%s: cannot bind: %s", addr->sun_path, strerror(-r));
    if (o->group != (gid_t)-1 && chown(addr->sun_path, (uid_t)-1, o->group) < 0) {
        /* Only the socket's owner can connect then: said in the log by the caller. */
    }
    return 0;
}

/* A caller's socket file is made, and removed at the end, with its rights:
 * where it may create files, and never through a path it has changed
 * meanwhile into somewhere it may not. */
static int listen_unix(const struct export_listen_opts *o, const char *path,
                       struct export_listen *l, char *why, size_t len)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char escaped[sizeof l->path * 3];
    struct identity_saved saved;
    int r;

    if (path[0] != '/')
        return why_fail(why, len, -EINVAL, "unix:%s: the socket path must be absolute", path);
    if (strlen(path) >= sizeof addr.sun_path)
        return why_fail(why, len, -ENAMETOOLONG, "unix:%s: socket path too long", path);
    strcpy(addr.sun_path, path);
    if (o->as && identity_assume(o->as, &saved) < 0)
        return why_fail(why, len, -EACCES, "%s: qcowd cannot create files with the rights of "
                        "uid %u", path, (unsigned)o->as->uid);
    r = bind_unix(o, &addr, l, why, len);
    if (o->as)
        identity_restore(&saved);
    if (r < 0)
        return r;
    l->is_unix = true;
    strcpy(l->path, path);
    if (o->as) {
        l->owner = *o->as;
        l->as_owner = true;
    }
    snprintf(l->address, sizeof l->address, "unix:%s", path);
    uri_escape(path, escaped, sizeof escaped);
    snprintf(l->uri, sizeof l->uri, "nbd+unix:///?socket=%s", escaped);
    return 0;
}

/* ---- TCP ------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" into host ("" if none) and port. */
static int split_host_port(const char *hp, char *host, size_t host_len, char *port,
                           size_t port_len)
{
    const char *colon = strrchr(hp, ':');
    const char *h = hp, *p = colon ? colon + 1 : hp;
    size_t n = colon ? (size_t)(colon - hp) : 0;

    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= host_len || strlen(p) >= port_len || !*p || strspn(p, "0123456789") != strlen(p))
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, p);
    return atoi(port) <= 65535 ? 0 : -EINVAL;
}

static int bind_first(const struct addrinfo *ai, int *fd_out)
{
    int one = 1, err = -EADDRNOTAVAIL;

    for (; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            *fd_out = fd;
            return 0;
        }
        err = -errno;
        close(fd);
    }
    return err;
}

/* Name the bound address: the port the kernel chose for port 0. */
static void describe_tcp(struct export_listen *l, bool tls)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    bool v6;

    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    v6 = strchr(host, ':') != NULL;
    snprintf(l->address, sizeof l->address, "tcp:%s%s%s:%s", v6 ? "[" : "", host,
             v6 ? "]" : "", port);
    snprintf(l->uri, sizeof l->uri, "%s://%s%s%s:%s", tls ? "nbds" : "nbd", v6 ? "[" : "",
             host, v6 ? "]" : "", port);
}

static int listen_tcp(const struct export_listen_opts *o, const char *hp,
                      struct export_listen *l, char *why, size_t len)
{
    /* Numeric only: a name would be resolved (DNS) inside the event loop. */
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST };
    struct addrinfo *ai = NULL;
    char host[256], port[16];
    int r;

    if (split_host_port(hp, host, sizeof host, port, sizeof port) < 0)
        return why_fail(why, len, -EINVAL, "tcp:%s: expected tcp:HOST:PORT or tcp:PORT", hp);
    /* Ports below 1024 are root's to give: not on a caller's behalf. */
    if (o->as && atoi(port) > 0 && atoi(port) < 1024)
        return why_fail(why, len, -EACCES, "tcp:%s: ports below 1024 are for root", hp);
    /* Plain NBD stays on this host unless the operator wants otherwise. */
    if ((!*host && !o->tls) || strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if ((r = getaddrinfo(*host ? host : NULL, port, &hints, &ai)) != 0)
        return why_fail(why, len, -EINVAL, "tcp:%s: %s%s", hp, gai_strerror(r),
                        r == EAI_NONAME ? " (give an IP address: qcowd resolves no host "
                                          "names but localhost)" : "");
    if (!o->tls && !o->insecure && !is_loopback(ai->ai_addr)) {
        freeaddrinfo(ai);
        return why_fail(why, len, -EPERM,
                        "tcp:%s: plain NBD beyond this host: give TLS certificates, or say "
                        "insecure to serve it unencrypted", hp);
    }
    r = bind_first(ai, &l->fd);
    freeaddrinfo(ai);
    if (r < 0)
        return why_fail(why, len, r, "tcp:%s: cannot bind: %s", hp, strerror(-r));
    describe_tcp(l, o->tls);
    return 0;
}

/* ---- both -------------------------------------------------------------------- */

int export_listen_open(const struct export_listen_opts *o, struct export_listen *out,
                       char *why, size_t why_len)
{
    int r;

    *out = (struct export_listen){ .fd = -1 };
    if (strncmp(o->spec, "unix:", 5) == 0)
        r = listen_unix(o, o->spec + 5, out, why, why_len);
    else if (strncmp(o->spec, "tcp:", 4) == 0)
        r = listen_tcp(o, o->spec + 4, out, why, why_len);
    else
        r = why_fail(why, why_len, -EINVAL, "'%s': expected unix:PATH or tcp:HOST:PORT",
                     o->spec);
    if (r == 0 && listen(out->fd, LISTEN_BACKLOG) < 0)
        r = why_fail(why, why_len, -errno, "%s: listen: %s", o->spec, strerror(errno));
    if (r < 0)
        export_listen_close(out);
    return r;
}

void export_listen_close(struct export_listen *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->is_unix && l->path[0] && !l->as_owner)
        unlink(l->path);
    if (l->is_unix && l->path[0] && l->as_owner) {
        struct identity_saved saved;
        if (identity_assume(&l->owner, &saved) == 0) {
            unlink(l->path);
            identity_restore(&saved);
        }
    }
    l->path[0] = '\0';
}
