/* A worker's life as the supervisor sees it: it comes up or fails to; it is
 * asked to stop; it dies and a replacement takes over the same ring and
 * journal, so that nothing it acknowledged is lost (up to RESTART_LIMIT
 * deaths within RESTART_WINDOW_S); or its ring, broken by the client, is
 * renewed.  A detach that comes while a replacement is starting waits for
 * it: only the replacement can write back what the journal holds. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attachment_internal.h"
#include "log.h"
#include "vec.h"

/* A reaped worker's pid is -1: its number may already be someone else's. */
static void signal_worker(const struct attachment *att, int sig)
{
    /* An adopted worker is not our child: only its pidfd is sure to name it. */
    if (att->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, att->pidfd, sig, NULL, 0);
    else if (att->proc.pid > 0)
        kill(att->proc.pid, sig);
}

/* Killed before its channel is closed: a worker that saw the channel close
 * first would stop cleanly, and a clean stop shuts the ring down under the
 * replacement. */
void attachment_kill_worker(struct supervisor *s, struct attachment *att, const char *why)
{
    log_warning("%s: the worker (pid %d) %s: killing it", att->name, (int)att->proc.pid, why);
    signal_worker(att, SIGKILL);
    attachment_forget_ctl(s, att);
}

/* Nobody will answer the ring's requests any more: say so in its qcowd
 * page, where a client waiting for responses looks at least once a second
 * (libqcowring's sleep), instead of leaving it waiting for good.  A write to
 * the memfd cannot block, whatever the client did to it. */
static void tell_client_shut_down(struct attachment *att)
{
    uint32_t state = QCOWRING_STATE_SHUTDOWN;

    if (att->proc.ring.memfd >= 0 &&
        pwrite(att->proc.ring.memfd, &state, sizeof state,
               offsetof(struct qcowring_info, server_state)) != (ssize_t)sizeof state)
        log_warning("%s: cannot mark the ring shut down: %s", att->name, strerror(errno));
}

void attachment_mark_failed(struct supervisor *s, struct attachment *att, const char *why)
{
    char *copy = strdup(why);   /* why may be att->error itself */
    json_object *d = json_object_new_object();
    char detach_error[512];

    free(att->error);
    att->error = copy;
    why = copy ? copy : "out of memory";
    att->state = ATT_FAILED;
    tell_client_shut_down(att);
    log_error("%s: failed: %s", att->name, why);
    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "error", json_object_new_string(why));
    broadcast_event(s, "image-failed", d);
    if (call_pending(att, CALL_DETACH)) {
        snprintf(detach_error, sizeof detach_error,
                 "failed before the writes it held were flushed: %s", why);
        attachment_detached(s, att, detach_error);
    }
}

/* A new worker could not even be started. */
static void launch_failed(struct supervisor *s, struct attachment *att, int err, const char *what)
{
    char why[512];

    snprintf(why, sizeof why, "cannot run %s %s: %s", s->worker_path, what, strerror(-err));
    attachment_mark_failed(s, att, why);
}

/* ---- coming up ---------------------------------------------------------- */

/* Remember the qcowd page of a fresh ring: a client may scribble on it, and
 * the next client must not inherit that (see attachment_ring_released). */
static void snapshot_ring_page(struct attachment *att)
{
    ssize_t n = pread(att->proc.ring.memfd, &att->ring_page, sizeof att->ring_page, 0);

    att->have_ring_page = n == (ssize_t)sizeof att->ring_page;
}

void attachment_started(struct supervisor *s, struct attachment *att)
{
    bool restart = att->state == ATT_RESTARTING, adopted = att->adopted && att->restoring;
    struct call *call = call_take(att, CALL_ATTACH);
    json_object *d = json_object_new_object();

    att->state = att->paused ? ATT_PAUSED : ATT_RUNNING;
    if (!restart)
        snapshot_ring_page(att);
    else
        imageops_worker_restarted(att);
    json_object_object_add(d, "name", json_object_new_string(att->name));
    if (att->renewing) {
        att->renewing = false;
        json_object_object_add(d, "pid", json_object_new_int(att->proc.pid));
        broadcast_event(s, "ring-renewed", d);
        log_info("%s: serving a fresh ring (worker pid %d)", att->name, (int)att->proc.pid);
    } else if (restart) {
        json_object_object_add(d, "pid", json_object_new_int(att->proc.pid));
        json_object_object_add(d, "restarts", json_object_new_int((int32_t)att->restarts));
        broadcast_event(s, "worker-restarted", d);
    } else {
        json_object_object_add(d, "path", json_object_new_string(att->path));
        if (att->restoring)
            json_object_object_add(d, "restored", json_object_new_boolean(true));
        if (adopted)
            json_object_object_add(d, "adopted", json_object_new_boolean(true));
        broadcast_event(s, "image-attached", d);
    }
    if (adopted)
        log_info("%s: adopted its running worker (pid %d) from the state file", att->name,
                 (int)att->proc.pid);
    else if (att->restoring)
        log_info("%s: attached again from the state file (worker pid %d)", att->name,
                 (int)att->proc.pid);
    att->restoring = false;
    att->recorded = true;
    state_save(s);              /* a new attachment, or its worker's new pid */
    if (call && call->client)
        client_reply(call->client, call->id, attachment_describe(att, true));
    if (call)
        call_free(call);
    status_to_systemd(s);
    if (call_pending(att, CALL_DETACH)) {
        /* Detached while it took over the journal: what the journal held
         * is its now, and its stop writes it back. */
        log_info("%s: the new worker took over the journal: detaching", att->name);
        attachment_stop_worker(att);
    }
}

/* The error class of an attach whose worker did not start. */
static const char *start_error_class(int err)
{
    switch (err) {
    case -EIO:
        return "ImageError";
    case -EAGAIN:
        return "LimitReached";
    case -EACCES:
        return "PermissionDenied";     /* a backing file the caller may not read */
    case -EBUSY:
        return "Locked";               /* a backing file someone writes */
    default:
        return "WorkerError";
    }
}

void attachment_start_failed(struct supervisor *s, struct attachment *att, int err,
                             const char *why)
{
    char *copy = strdup(why);

    log_warning("%s: worker failed to start: %s", att->name, why);
    free(att->error);
    att->error = copy;
    att->start_error = err;
    /* Whatever it says next does not count.  Its exit is reaped in
     * attachments_reap, which answers the attach and frees a fresh
     * attachment (not before: a new attach of the same image right after
     * the answer must not find it), restarts a restarting one, or fails a
     * renewal. */
    signal_worker(att, SIGKILL);
    attachment_forget_ctl(s, att);
}

/* ---- stopping ----------------------------------------------------------- */

static void remember_exiting(struct supervisor *s, pid_t pid)
{
    if (pid <= 0)
        return;
    if (array_reserve(s->exiting, s->exiting_cap, s->nexiting, 1) < 0)
        return;                 /* it is still reaped, just not waited for at exit */
    s->exiting[s->nexiting++] = pid;
}

static void forget_exiting(struct supervisor *s, pid_t pid)
{
    for (unsigned i = 0; i < s->nexiting; i++)
        if (s->exiting[i] == pid) {
            s->exiting[i] = s->exiting[--s->nexiting];
            return;
        }
}

void attachment_stop_worker(struct attachment *att)
{
    struct call *stop;

    att->state = ATT_STOPPING;
    stop = call_push(att, CALL_INTERNAL, NULL, NULL, "stop");
    if (!stop || call_send(att, stop) < 0)
        signal_worker(att, SIGTERM);    /* the worker drains and flushes on SIGTERM too */
}

/* ---- renewing a ring ---------------------------------------------------- */

/* A renewal stops the worker like a detach; a detach asked meanwhile wins. */
static bool renewal_goes_on(const struct attachment *att)
{
    return att->renewing && !call_pending(att, CALL_DETACH);
}

/* The old worker flushed and closed the image: start a new one with a new
 * ring.  The client that broke the old ring keeps only its dead mapping. */
static void relaunch_with_fresh_ring(struct supervisor *s, struct attachment *att)
{
    int r;

    calls_fail(s, att, "the ring is being renewed");
    attachment_forget_ctl(s, att);
    /* An adopted worker that stopped exits by itself: its pidfd must not
     * stand for the child that replaces it (whose exit SIGCHLD tells). */
    adoption_unwatch_exit(s, att);
    worker_proc_release(&att->proc);
    att->proc = (struct worker_proc){ .pid = -1, .ctl_fd = -1, .ring = { -1, -1, -1 },
                                      .journal_fd = -1 };
    att->owner = NULL;
    att->ring_held_elsewhere = att->ring_lock_elsewhere = false;
    att->ring_renewals++;
    att->state = ATT_STARTING;
    if ((r = attachment_launch(s, att, false)) < 0) {
        att->renewing = false;
        launch_failed(s, att, r, "for a fresh ring");
    }
}

static void renew_ring(struct attachment *att)
{
    if (att->state == ATT_RUNNING || att->state == ATT_PAUSED) {
        att->renewing = true;
        attachment_stop_worker(att);
    }
}

/* The worker only ever writes its server_state there; anything else that
 * changed was the client's doing, and a new client would refuse the ring
 * (or worse, believe it). */
static bool ring_page_damaged(struct attachment *att)
{
    struct qcowring_info now;

    if (!att->have_ring_page ||
        pread(att->proc.ring.memfd, &now, sizeof now, 0) != (ssize_t)sizeof now)
        return false;
    now.server_state = att->ring_page.server_state;
    return memcmp(&now, &att->ring_page, sizeof now) != 0;
}

void attachment_ring_released(struct attachment *att)
{
    if ((att->state == ATT_RUNNING || att->state == ATT_PAUSED) && ring_page_damaged(att)) {
        log_warning("%s: the client that let go of the ring damaged its qcowd page: "
                    "renewing the ring", att->name);
        renew_ring(att);
    }
}

/* The worker reports that its client broke the ring: once the worker has
 * finished what it started and flushed, a new worker gets a new ring, so
 * the next client can connect. */
void attachment_ring_broken(struct supervisor *s, struct attachment *att, const char *reason)
{
    json_object *d = json_object_new_object();

    log_warning("%s: the client broke the ring (%s): renewing it", att->name, reason);
    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "reason", json_object_new_string(reason));
    broadcast_event(s, "ring-broken", d);
    renew_ring(att);
}

/* The worker flushed and closed the image: the detach (or the renewal) goes
 * on, whether or not the process has exited yet (it is reaped whenever it
 * does). */
void attachment_stopped(struct supervisor *s, struct attachment *att, int status)
{
    if (att->state == ATT_RUNNING || att->state == ATT_PAUSED) {
        /* Stopped by someone else (a signal): it shut its ring down, so a
         * replacement on that ring would serve nobody.  It flushed: the
         * image goes on on a fresh ring, as after a broken one. */
        log_warning("%s: the worker (pid %d) stopped on its own: renewing the ring", att->name,
                    (int)att->proc.pid);
        att->renewing = true;
        att->state = ATT_STOPPING;
    }
    if (att->state != ATT_STOPPING)
        return;
    attachment_forget_ctl(s, att);
    if (att->pidfd < 0)         /* an adopted worker is reaped by someone else */
        remember_exiting(s, att->proc.pid);
    if (renewal_goes_on(att) && status == 0) {
        relaunch_with_fresh_ring(s, att);
    } else if (renewal_goes_on(att)) {
        /* Its last flush failed: what it held is not known to be on
         * disk, so no new worker reads the image behind its back. */
        att->renewing = false;
        attachment_mark_failed(s, att, "the worker's flush before renewing the ring failed");
    } else {
        attachment_detached(s, att, status == 0 ? NULL : "the worker's final flush failed");
    }
}

/* ---- deaths ------------------------------------------------------------- */

static bool restart_allowed(struct attachment *att)
{
    uint64_t now = mono_ns(), window = (uint64_t)RESTART_WINDOW_S * 1000000000u;
    unsigned recent = 0;

    for (unsigned i = 0; i < RESTART_LIMIT; i++)
        if (att->restart_times[i] && now - att->restart_times[i] < window)
            recent++;
    if (recent >= RESTART_LIMIT)
        return false;
    memmove(att->restart_times + 1, att->restart_times, sizeof(uint64_t) * (RESTART_LIMIT - 1));
    att->restart_times[0] = now;
    return true;
}

/* A replacement serves the same ring with the same journal: it answers
 * what was posted and not answered, and takes over the allocations that
 * were acknowledged and not yet written back. */
static void died(struct supervisor *s, struct attachment *att, pid_t pid, int status)
{
    json_object *d = json_object_new_object();
    char why[128];
    int r;

    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "pid", json_object_new_int(pid));
    json_object_object_add(d, "status", json_object_new_int(status));
    if (status == 128 + SIGSYS) {
        /* A worker never makes a call its filter forbids: a bug, or someone
         * who took it over through its image or its ring. */
        log_error("%s: worker pid %d was killed by its seccomp filter for a forbidden system "
                  "call", att->name, (int)pid);
        json_object_object_add(d, "reason", json_object_new_string("forbidden system call"));
    }
    broadcast_event(s, "worker-died", d);
    attachment_forget_ctl(s, att);
    calls_fail(s, att, "the worker died");
    if (!restart_allowed(att)) {
        snprintf(why, sizeof why, "the worker died %d times within %d s (last status %d)",
                 RESTART_LIMIT, RESTART_WINDOW_S, status);
        attachment_mark_failed(s, att, why);
        return;
    }
    att->restarts++;
    att->state = ATT_RESTARTING;
    if ((r = attachment_launch(s, att, true)) < 0)
        launch_failed(s, att, r, "to take over the ring");
    else
        log_warning("%s: worker died (status %d); restarted as pid %d", att->name, status,
                    (int)att->proc.pid);
}

/* A fresh worker (new attachment or new ring) exited before it served. */
static void start_ended(struct supervisor *s, struct attachment *att)
{
    struct call *call;

    calls_fail(s, att, "the worker exited");
    if (att->renewing) {
        att->renewing = false;
        attachment_mark_failed(s, att, att->error ? att->error
                                                  : "the worker for a fresh ring exited");
        return;
    }
    attachment_release_image(att);
    if (att->restoring) {
        /* Recorded: it stays, failed, until someone detaches it. */
        char why[600];
        att->restoring = false;
        if ((call = call_take(att, CALL_ATTACH)))
            call_free(call);
        snprintf(why, sizeof why, "cannot attach it again: %s",
                 att->error ? att->error : "the worker exited during start-up");
        attachment_mark_failed(s, att, why);
        return;
    }
    if ((call = call_take(att, CALL_ATTACH))) {
        if (call->client)
            client_error(call->client, call->id, start_error_class(att->start_error), "%s",
                         att->error ? att->error : "the worker exited during start-up");
        call_free(call);
    }
    attachment_free(s, att);
}

static void worker_exited(struct supervisor *s, struct attachment *att, pid_t pid, int status)
{
    switch (att->state) {
    case ATT_FAILED:
        break;
    case ATT_STARTING:
        start_ended(s, att);
        break;
    case ATT_STOPPING:
        if (!att->proc.ready) {
            /* Killed by a detach while it started: it held nothing. */
            attachment_detached(s, att, NULL);
            break;
        }
        /* It died before it said it had flushed: what it held is in the
         * journal.  A replacement takes it over and is stopped once it
         * serves (a detach); or, for a renewal, its journal says broken,
         * so it reports that again and the renewal starts over. */
        att->renewing = false;
        died(s, att, pid, status);
        break;
    case ATT_RUNNING:
    case ATT_PAUSED:
    case ATT_RESTARTING:
        died(s, att, pid, status);
        break;
    }
}

void attachments_reap(struct supervisor *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        struct attachment *att = s->attachments;

        forget_exiting(s, pid);
        if (exports_child_exited(s, pid, code))
            continue;
        while (att && att->proc.pid != pid)
            att = att->next;
        if (!att)
            continue;
        att->proc.pid = -1;
        /* What it said before it died counts ("stopped", why it did not
         * start); it may settle everything (att freed, or a new worker). */
        attachment_drain_messages(s, att);
        if (!att->watch.dead && att->proc.pid == -1)
            worker_exited(s, att, pid, code);
    }
}

/* An adopted worker exited (its pidfd says so; its status is not ours to
 * know): handled as the exit of a child is, with status -1. */
void attachment_adopted_exited(struct supervisor *s, struct attachment *att)
{
    pid_t pid = att->proc.pid;

    adoption_unwatch_exit(s, att);
    att->proc.pid = -1;
    attachment_drain_messages(s, att);
    if (!att->watch.dead && att->proc.pid == -1)
        worker_exited(s, att, pid, -1);
}
