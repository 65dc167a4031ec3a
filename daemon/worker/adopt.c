/* A worker whose supervisor died: it holds its image (with the lock), its
 * ring and its journal, so it serves on, and waits a while (--rendezvous's
 * seconds) for a new supervisor to adopt it at its rendezvous socket, a
 * SOCK_SEQPACKET socket the supervisor bound (in a 0700 directory) and we
 * listen on.  The first peer that runs as the user who started us (the
 * supervisor's, as SO_PEERCRED says) becomes our control channel, and
 * hears "ready" again, with every descriptor it needs to go on: the ring's
 * memfd and eventfds, the journal and the image's locked descriptor.
 * Nobody in time: we finish, flush and exit, as a worker whose supervisor
 * went away always did.  See doc/restart.md. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "worker.h"

bool worker_orphaned(struct worker *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = w->rendezvous_fd };

    if (w->rendezvous_fd < 0 || w->orphan_wait_s == 0 || w->state == WORKER_STOPPING)
        return false;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->rendezvous_fd, &ev) < 0 && errno != EEXIST) {
        log_warning("%s: cannot wait for a new supervisor: %s", w->name, strerror(errno));
        return false;
    }
    w->orphan_deadline_ns = now_ns() + (uint64_t)w->orphan_wait_s * 1000000000u;
    log_warning("%s: supervisor went away: serving on, and waiting %u s for a new one to "
                "adopt this worker", w->name, w->orphan_wait_s);
    return true;
}

static void stop_waiting(struct worker *w)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->rendezvous_fd, NULL);
    w->orphan_deadline_ns = 0;
}

void worker_orphan_tick(struct worker *w)
{
    if (w->orphan_deadline_ns == 0 || now_ns() < w->orphan_deadline_ns)
        return;
    stop_waiting(w);
    log_warning("%s: no supervisor adopted this worker within %u s: stopping", w->name,
                w->orphan_wait_s);
    w->state = WORKER_STOPPING;
}

/* The peer is the supervisor's user, or it is not heard. */
static bool peer_trusted(struct worker *w, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_warning("%s: rendezvous: cannot tell who connected: %s", w->name, strerror(errno));
        return false;
    }
    if (cred.uid != w->supervisor_uid) {
        log_warning("%s: rendezvous: refused pid %d of uid %u (not the supervisor's uid %u)",
                    w->name, (int)cred.pid, (unsigned)cred.uid, (unsigned)w->supervisor_uid);
        return false;
    }
    log_info("%s: adopted by pid %d", w->name, (int)cred.pid);
    return true;
}

void worker_rendezvous_readable(struct worker *w)
{
    struct epoll_event ev = { .events = EPOLLIN };
    int fd = accept4(w->rendezvous_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warning("%s: rendezvous: %s", w->name, strerror(errno));
        return;
    }
    if (w->ctl_fd >= 0 || !peer_trusted(w, fd)) {
        close(fd);
        return;
    }
    ev.data.fd = fd;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_warning("%s: rendezvous: %s", w->name, strerror(errno));
        close(fd);
        return;
    }
    stop_waiting(w);
    w->ctl_fd = fd;
    if (worker_send_adoption_ready(w) < 0)
        log_warning("%s: cannot report to the new supervisor", w->name);
}
