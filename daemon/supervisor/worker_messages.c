/* What workers say: the first message ("ready", or why not), events, and
 * answers to calls. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attachment_internal.h"
#include "error.h"
#include "fdpass.h"
#include "log.h"

void attachment_forget_ctl(struct supervisor *s, struct attachment *att)
{
    if (att->proc.ctl_fd < 0)
        return;
    unwatch_fd(s, att->proc.ctl_fd);
    close(att->proc.ctl_fd);
    att->proc.ctl_fd = -1;
}

/* The worker's first message: "ready", or why not. */
static void read_ready(struct supervisor *s, struct attachment *att)
{
    bool restart = att->state == ATT_RESTARTING;
    json_object *kept = restart ? att->proc.ready : NULL;
    struct worker_spawn_opts o;
    int r;

    fill_spawn_opts(s, att, &o, restart);
    /* A replacement serves our ring: it reports, it hands nothing over. */
    if (restart)
        att->proc.ready = NULL;
    qc_clear_error();
    r = worker_read_ready(&o, &att->proc, 0);
    if (r < 0) {
        if (restart)
            att->proc.ready = kept;
        attachment_start_failed(s, att, r, qc_error_message(r));
        return;
    }
    json_object_put(kept);
    attachment_started(s, att);
}

static bool ring_broken_event(struct supervisor *s, struct attachment *att, json_object *msg)
{
    json_object *ev, *data, *reason = NULL;

    if (!json_object_object_get_ex(msg, "event", &ev) ||
        strcmp(json_object_get_string(ev), "ring-broken") != 0)
        return false;
    json_object_object_get_ex(msg, "data", &data);
    json_object_object_get_ex(data, "reason", &reason);
    attachment_ring_broken(s, att, reason ? json_object_get_string(reason) : "no reason given");
    return true;
}

static bool stopped_event(struct supervisor *s, struct attachment *att, json_object *msg)
{
    json_object *ev, *data, *status;

    if (!json_object_object_get_ex(msg, "event", &ev) ||
        strcmp(json_object_get_string(ev), "stopped") != 0)
        return false;
    json_object_object_get_ex(msg, "data", &data);
    json_object_object_get_ex(data, "status", &status);
    attachment_stopped(s, att, status ? json_object_get_int(status) : 1);
    return true;
}

static void read_message(struct supervisor *s, struct attachment *att)
{
    char buf[MAX_LINE];
    int fds[4];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv(att->proc.ctl_fd, buf, sizeof buf - 1, fds, 4, &nfds);
    json_object *msg, *ret = NULL, *err = NULL, *desc = NULL, *id = NULL;
    struct call *call;

    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (n <= 0) {
        /* The worker is gone; its exit is handled when it is reaped. */
        attachment_forget_ctl(s, att);
        return;
    }
    buf[n] = '\0';
    msg = json_tokener_parse(buf);
    if (stopped_event(s, att, msg) || ring_broken_event(s, att, msg)) {
        json_object_put(msg);
        return;
    }
    json_object_object_get_ex(msg, "id", &id);
    if (!id || !(call = call_pop_answerable(att, (uint64_t)json_object_get_int64(id)))) {
        log_warning("%s: unexpected message from the worker", att->name);
        json_object_put(msg);
        return;
    }
    json_object_object_get_ex(msg, "return", &ret);
    json_object_object_get_ex(msg, "error", &err);
    json_object_object_get_ex(err, "desc", &desc);
    call_finish(s, att, call, ret, desc ? json_object_get_string(desc) : "bad answer");
    json_object_put(msg);
}

void attachment_worker_readable(struct supervisor *s, struct attachment *att)
{
    if (att->state == ATT_STARTING || att->state == ATT_RESTARTING)
        read_ready(s, att);
    else
        read_message(s, att);
}

void attachment_drain_messages(struct supervisor *s, struct attachment *att)
{
    pid_t pid = att->proc.pid;

    while (!att->watch.dead && att->proc.pid == pid && att->proc.ctl_fd >= 0) {
        struct pollfd p = { .fd = att->proc.ctl_fd, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0)
            break;
        attachment_worker_readable(s, att);
    }
}
