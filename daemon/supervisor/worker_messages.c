/* What workers say, read with suspicion: a worker parses hostile images and
 * may have been taken over.  Every field is read through a typed accessor;
 * a worker that says anything it should not (malformed JSON, a wrong type,
 * an unknown event, an answer to a question never asked, an oversized
 * message, descriptors) is killed and restarted like after a crash. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attachment_internal.h"
#include "error.h"
#include "fdpass.h"
#include "json_read.h"
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

/* An event; NULL, or what was wrong with it. */
static const char *take_event(struct supervisor *s, struct attachment *att, json_object *msg)
{
    const char *name = json_read_string(msg, "event"), *reason;
    json_object *data = json_read_object(msg, "data");
    int64_t status;

    if (!name || !data)
        return "an event without a name or data";
    if (strcmp(name, "stopped") == 0) {
        if (!json_read_int(data, "status", 0, 255, &status))
            return "a \"stopped\" event without a valid status";
        attachment_stopped(s, att, (int)status);
    } else if (strcmp(name, "ring-broken") == 0) {
        if (!(reason = json_read_string(data, "reason")))
            return "a \"ring-broken\" event without a reason";
        attachment_ring_broken(s, att, reason);
    } else if (strncmp(name, "commit-", 7) == 0 && (strcmp(name, "commit-progress") == 0 ||
               strcmp(name, "commit-completed") == 0 || strcmp(name, "commit-failed") == 0)) {
        return imageops_commit_event(s, att, name, data);
    } else if (strcmp(name, "io-error") == 0) {
        if (!(reason = json_read_string(data, "reason")))
            return "an \"io-error\" event without a reason";
        attachment_io_error(s, att, reason);
    } else {
        return "an unknown event";
    }
    return NULL;
}

/* The answer to one of our calls; NULL, or what was wrong with it. */
static const char *take_answer(struct supervisor *s, struct attachment *att, json_object *msg)
{
    json_object *ret = json_read_object(msg, "return"), *err = json_read_object(msg, "error");
    const char *desc = json_read_string(err, "desc");
    struct call *call;
    int64_t seq;

    if (!json_read_int(msg, "id", 1, INT64_MAX, &seq))
        return "an answer without a valid id";
    if (!ret == !err || (err && !desc))
        return "an answer that is neither a result nor an error with a description";
    if (!(call = call_pop_answerable(att, (uint64_t)seq)))
        return "an answer to a question it was not asked";
    if (err)
        call_finish_refused(s, att, call, json_read_string(err, "class"), desc);
    else
        call_finish(s, att, call, ret, NULL);
    return NULL;
}

/* A message from a serving (or stopping) worker. */
static void read_message(struct supervisor *s, struct attachment *att)
{
    char buf[MAX_LINE];
    int fds[FDPASS_MAX];
    unsigned nfds = 0;
    ssize_t n = fdpass_recv(att->proc.ctl_fd, buf, sizeof buf, fds, FDPASS_MAX, &nfds);
    json_object *msg;
    const char *wrong;

    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    if (n == -EAGAIN || n == -EINTR)
        return;
    if (n == -EMSGSIZE) {
        attachment_kill_worker(s, att, "sent a message over 64 KiB");
        return;
    }
    if (n <= 0) {
        /* The worker is gone; its exit is handled when it is reaped. */
        attachment_forget_ctl(s, att);
        return;
    }
    if (nfds > 0) {
        attachment_kill_worker(s, att, "sent descriptors");
        return;
    }
    if (!(msg = json_read_message(buf, (size_t)n))) {
        attachment_kill_worker(s, att, "sent malformed JSON");
        return;
    }
    wrong = json_read_has(msg, "event") ? take_event(s, att, msg) : take_answer(s, att, msg);
    if (wrong) {
        char why[128];
        snprintf(why, sizeof why, "sent %s", wrong);
        attachment_kill_worker(s, att, why);
    }
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
