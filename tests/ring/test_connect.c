/* qcowring_connect() against a fake qcowd: the protocol promises no order
 * of members and lets the server add members (doc/protocol.md), so greetings
 * and replies with their members shuffled and with unknown ones must work
 * exactly like qcowd's own, and every error reply must map to its errno by
 * its class alone.  A qcowd that offers "hold-lock" is promised the
 * presence lock, and the client holds it on the memfd it was handed (an
 * open file description of its own, as qcowd hands out) until it closes
 * the ring; an older qcowd is asked as before, and no lock is taken. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qcowring-client.h"
#include "ring_test.h"

#define CAPACITY_SECTORS 2048
#define RING_FDS "\"fds\": [\"memfd\", \"request-eventfd\", \"response-eventfd\"]"

struct scenario {
    const char *what;
    const char *greeting;
    const char *after[3];       /* sent after the request, in order; NULL ends */
    bool fds;                   /* the last of them carries the ring's descriptors */
    int want;                   /* what qcowring_connect() must return */
};

static const struct scenario scenarios[] = {
    { "as qcowd sends it",
      "{\"QCOWD\": {\"version\": {\"major\": 0, \"minor\": 1, \"micro\": 0, \"package\": "
      "\"qcowd 0.1.0\"}, \"protocol\": 1, \"capabilities\": [\"events\", \"fd-passing\", "
      "\"hold-lock\"]}}",
      { "{\"return\": {" RING_FDS ", \"name\": \"disk\"}}" }, true, 0 },
    { "an older qcowd, without hold-lock",
      "{\"QCOWD\": {\"version\": {\"major\": 0, \"minor\": 1, \"micro\": 0, \"package\": "
      "\"qcowd 0.1.0\"}, \"protocol\": 1, \"capabilities\": [\"events\", \"fd-passing\"]}}",
      { "{\"return\": {" RING_FDS ", \"name\": \"disk\"}}" }, true, 0 },
    { "hold-lock named by something that is not a string",
      "{\"QCOWD\": {\"protocol\": 1, \"capabilities\": [{\"hold-lock\": true}, 7]}}",
      { "{\"return\": {" RING_FDS "}}" }, true, 0 },
    { "members in another order, and unknown members everywhere",
      "{\"motd\": \"hello\", \"QCOWD\": {\"capabilities\": [\"events\", \"telepathy\"], "
      "\"future\": {\"nested\": [1, {\"deep\": true}]}, \"protocol\": 1}}",
      { "{\"timestamp\": {\"microseconds\": 5, \"seconds\": 1}, \"data\": {\"name\": \"other\"}, "
        "\"event\": \"image-attached\"}",
        "{\"id\": 3, \"extra\": {\"a\": [1, 2]}, \"return\": {\"name\": \"disk\", " RING_FDS "}}" },
      true, 0 },
    { "an error whose id comes first",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"id\": null, \"error\": {\"desc\": \"no attachment named disk\", "
        "\"class\": \"NotFound\"}}" }, false, -ENOENT },
    { "an error with its class last and an unknown member",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"error\": {\"hint\": \"later\", \"desc\": \"connected to another client\", "
        "\"class\": \"Busy\"}}" }, false, -EBUSY },
    { "InvalidState after an event",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"event\": \"worker-died\", \"data\": {\"name\": \"disk\"}}",
        "{\"error\": {\"class\": \"InvalidState\", \"desc\": \"disk is failed\"}, \"id\": 1}" },
      false, -EAGAIN },
    { "a known class named by another member than class",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"could not connect\", "
        "\"not\": \"Busy\"}}" }, false, -EIO },
    { "an error without a class",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"error\": {\"desc\": \"something\"}}" }, false, -EIO },
    { "a refusal instead of the greeting, id first",
      "{\"id\": null, \"error\": {\"desc\": \"not authorised\", \"class\": \"PermissionDenied\"}}",
      { NULL }, false, -EACCES },
    { "another protocol",
      "{\"QCOWD\": {\"capabilities\": [], \"protocol\": 2}}",
      { NULL }, false, -EPROTONOSUPPORT },
    { "a greeting without a protocol",
      "{\"QCOWD\": {\"version\": {\"major\": 0}}}",
      { NULL }, false, -EPROTO },
    { "not qcowd",
      "HTTP/1.0 200 OK",
      { NULL }, false, -EPROTO },
    { "not a greeting",
      "{\"hello\": 1, \"note\": \"{\\\"QCOWD\\\": {\\\"protocol\\\": 1}}\"}",
      { NULL }, false, -EPROTO },
    { "a greeting with trailing characters",
      "{\"QCOWD\": {\"protocol\": 1}} {\"x\": 1}",
      { NULL }, false, -EPROTO },
    { "a reply that is not an object",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "[{\"return\": {}}]" }, true, -EPROTO },
    { "a return without the descriptors",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"return\": {" RING_FDS "}}" }, false, -EPROTO },
    { "a reply that is neither return nor error",
      "{\"QCOWD\": {\"protocol\": 1}}",
      { "{\"id\": 1, \"result\": {}}" }, true, -EPROTO },
};

struct server {
    int listen_fd;
    const struct scenario *sc;
    struct qcowring_fds ring;
    char request[4096];         /* the line the client sent, if any */
};

static int send_line(int fd, const char *text, const struct qcowring_fds *ring)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s\n", text);
    struct iovec iov = { buf, (size_t)n };
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (ring) {
        /* As qcowd does: the client's memfd is a description of its own. */
        char own[64];
        snprintf(own, sizeof own, "/proc/self/fd/%d", ring->memfd);
        int fds[3] = { open(own, O_RDWR | O_CLOEXEC), ring->req_eventfd, ring->rsp_eventfd };
        struct cmsghdr *c;
        int sent;

        CHECK(fds[0] >= 0);

        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof fds);
        memcpy(CMSG_DATA(c), fds, sizeof fds);
        sent = sendmsg(fd, &msg, MSG_NOSIGNAL) == n ? 0 : -1;
        close(fds[0]);
        return sent;
    }
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* Read up to the newline (or the end of the stream), 10 s at most. */
static void read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;

    while (len + 1 < cap) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 10000) <= 0 || read(fd, buf + len, 1) != 1 || buf[len] == '\n')
            break;
        len++;
    }
    buf[len] = '\0';
}

/* Wait for the client to hang up (it keeps the connection while it holds
 * the ring). */
static void wait_hangup(int fd)
{
    char c;
    struct pollfd p = { .fd = fd, .events = POLLIN };

    while (poll(&p, 1, 10000) > 0 && read(fd, &c, 1) > 0)
        ;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return NULL;
    if (send_line(fd, s->sc->greeting, NULL) == 0) {
        read_request(fd, s->request, sizeof s->request);
        for (size_t i = 0; i < 3 && s->sc->after[i]; i++) {
            bool last = i == 2 || !s->sc->after[i + 1];
            if (send_line(fd, s->sc->after[i], last && s->sc->fds ? &s->ring : NULL) < 0)
                break;
        }
    }
    wait_hangup(fd);
    close(fd);
    return NULL;
}

/* The client asked for the ring of "disk" with the connect command. */
static bool is_connect_request(const char *line)
{
    json_object *req = json_tokener_parse(line), *v, *args;
    bool ok = req && json_object_object_get_ex(req, "execute", &v) &&
              strcmp(json_object_get_string(v), "connect") == 0 &&
              json_object_object_get_ex(req, "arguments", &args) &&
              json_object_object_get_ex(args, "name", &v) &&
              strcmp(json_object_get_string(v), "disk") == 0;

    json_object_put(req);
    return ok;
}

static bool greeting_accepted(const struct scenario *sc)
{
    return sc->after[0] != NULL;
}

/* The greeting offers the presence lock (as text: the test's own data). */
static bool offers_hold_lock(const struct scenario *sc)
{
    return strstr(sc->greeting, "\"hold-lock\"]") != NULL;
}

static bool request_holds_lock(const char *line)
{
    json_object *req = json_tokener_parse(line), *args, *v;
    bool yes = req && json_object_object_get_ex(req, "arguments", &args) &&
               json_object_object_get_ex(args, "hold-lock", &v) &&
               json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);

    json_object_put(req);
    return yes;
}

/* Someone holds a lock on the memfd's presence byte (seen through an open
 * of our own, as qcowd looks). */
static bool presence_locked(int memfd)
{
    struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                           .l_start = QCOWRING_CLIENT_LOCK_START,
                           .l_len = QCOWRING_CLIENT_LOCK_LEN };
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(fcntl(fd, F_OFD_GETLK, &probe), 0);
    close(fd);
    return probe.l_type != F_UNLCK;
}

static int run(const struct scenario *sc, const char *sock, int listen_fd,
               const struct qcowring_params *params)
{
    struct server s = { .listen_fd = listen_fd, .sc = sc };
    struct qcowring *ring = NULL;
    pthread_t t;
    int r;

    CHECK_EQ(qcowring_create(params, &s.ring), 0);
    CHECK_EQ(pthread_create(&t, NULL, serve, &s), 0);
    r = qcowring_connect(sock, "disk", &ring);
    if (r == 0) {
        struct qcowring_geometry g;
        qcowring_get_geometry(ring, &g);
        CHECK_EQ(g.capacity_sectors, CAPACITY_SECTORS);
        CHECK_EQ(presence_locked(s.ring.memfd), offers_hold_lock(sc));
    }
    qcowring_close(ring);
    /* The fake server closes its own copy of the description it sent just
     * after sendmsg(); until then that copy keeps the lock alive. */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(!presence_locked(s.ring.memfd));
    qcowring_close_fds(&s.ring);
    if (greeting_accepted(sc) && !is_connect_request(s.request)) {
        fprintf(stderr, "%s: the request was not a connect for disk: '%s'\n", sc->what, s.request);
        return 1;
    }
    if (greeting_accepted(sc) && request_holds_lock(s.request) != offers_hold_lock(sc)) {
        fprintf(stderr, "%s: hold-lock %s asked for: '%s'\n", sc->what,
                offers_hold_lock(sc) ? "not" : "wrongly", s.request);
        return 1;
    }
    if (r != sc->want) {
        fprintf(stderr, "%s: qcowring_connect() = %d (%s), expected %d (%s)\n", sc->what, r,
                strerror(-r), sc->want, strerror(-sc->want));
        return 1;
    }
    printf("ok: %s: %d\n", sc->what, r);
    return 0;
}

int main(void)
{
    struct qcowring_params params = { .capacity_sectors = CAPACITY_SECTORS, .data_pages = 4 };
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char dir[] = "/tmp/qcowring-connect.XXXXXX";
    int listen_fd, failed = 0;

    alarm(120);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/fake.sock", dir);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(listen_fd >= 0);
    CHECK_EQ(bind(listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
    CHECK_EQ(listen(listen_fd, 1), 0);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        failed += run(&scenarios[i], addr.sun_path, listen_fd, &params);
    close(listen_fd);
    unlink(addr.sun_path);
    rmdir(dir);
    return failed ? 1 : 0;
}
