/* Questions to workers on behalf of clients (stats, pause, resume, stop),
 * in flight until the worker answers, dies or takes too long. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "attachment_internal.h"
#include "fdpass.h"

struct call *call_push(struct attachment *att, enum call_kind kind, struct client *c,
                       json_object *id, const char *command)
{
    struct call *call = calloc(1, sizeof *call), **pp = &att->calls;

    if (!call)
        return NULL;
    call->kind = kind;
    call->client = c;
    if (c)
        c->busy++;
    call->id = id ? json_object_get(id) : NULL;
    snprintf(call->command, sizeof call->command, "%s", command);
    call->seq = ++att->next_seq;
    call->deadline_ns = mono_ns() + (uint64_t)WORKER_CALL_TIMEOUT_MS * 1000000u;
    while (*pp)
        pp = &(*pp)->next;
    *pp = call;
    return call;
}

void call_free(struct call *call)
{
    if (call->client && --call->client->busy == 0)
        call->client->resume = true;
    json_object_put(call->id);
    free(call);
}

/* A message to a worker never waits: a worker that does not read its
 * channel (stuck in the kernel, or compromised) would stop the event loop,
 * and every image's control with it.  A channel full is -EAGAIN: the
 * caller treats the worker as one that does not answer. */
static int send_to_worker(const struct attachment *att, const char *text, size_t len,
                          const int *fds, unsigned nfds)
{
    ssize_t n = fdpass_send_some(att->proc.ctl_fd, text, len, fds, nfds, MSG_DONTWAIT);

    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO;
}

int call_send(struct attachment *att, struct call *call)
{
    char buf[96];
    int n = snprintf(buf, sizeof buf, "{\"execute\":\"%s\",\"id\":%llu}", call->command,
                     (unsigned long long)call->seq);

    return send_to_worker(att, buf, (size_t)n, NULL, 0);
}

/* A call could not be sent: it ends, and a worker whose channel is full is
 * killed (its replacement takes over the ring and journal), as one that
 * does not answer in time is. */
static void call_unsent(struct supervisor *s, struct attachment *att, struct call *call, int err)
{
    call_finish(s, att, call_pop_answerable(att, call->seq), NULL, "the worker is not answering");
    if (err == -EAGAIN && att->proc.ctl_fd >= 0)
        attachment_kill_worker(s, att, "does not read its channel (it is full)");
}

/* A command with arguments, and descriptors. */
static int call_send_args(struct attachment *att, struct call *call, json_object *args,
                          const int *fds, unsigned nfds)
{
    json_object *msg = json_object_new_object();
    const char *text;
    int r;

    json_object_object_add(msg, "execute", json_object_new_string(call->command));
    if (args)
        json_object_object_add(msg, "arguments", json_object_get(args));
    json_object_object_add(msg, "id", json_object_new_int64((int64_t)call->seq));
    text = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    r = send_to_worker(att, text, strlen(text), fds, nfds);
    json_object_put(msg);
    return r;
}

static void stats_all_done(struct stats_all *all)
{
    if (all->client)
        client_reply(all->client, all->id, all->result);
    else
        json_object_put(all->result);
    json_object_put(all->id);
    free(all);
}

static void stats_all_answer(struct attachment *att, struct stats_all *all, json_object *ret)
{
    if (ret)
        json_object_object_add(all->result, att->name, json_object_get(ret));
    if (--all->waiting == 0)
        stats_all_done(all);
}

void call_finish(struct supervisor *s, struct attachment *att, struct call *call,
                 json_object *ret, const char *err)
{
    if (call->kind == CALL_STATS_ALL) {
        stats_all_answer(att, call->all, ret);
    } else if (ret && call->kind == CALL_FORWARD && strcmp(call->command, "resize") == 0) {
        if (!imageops_resize_answered(s, att, call->client, call->id, ret)) {
            if (call->client)
                client_error(call->client, call->id, "WorkerError",
                             "%s: the worker's answer to resize is malformed", att->name);
            attachment_kill_worker(s, att, "sent a malformed answer to resize");
        }
    } else if (call->kind == CALL_FORWARD && strcmp(call->command, "commit") == 0) {
        imageops_commit_answered(s, att, call->client, call->id, ret, err);
    } else if (call->kind == CALL_FORWARD && strcmp(call->command, "snapshot") == 0) {
        imageops_snapshot_answered(s, att, call->client, call->id, ret, err);
    } else if (ret && call->kind == CALL_FORWARD) {
        if (strcmp(call->command, "pause") == 0) {
            att->state = ATT_PAUSED;
            att->paused = true;
        } else if (strcmp(call->command, "resume") == 0) {
            att->state = ATT_RUNNING;
            att->paused = false;
        }
        if (call->client)
            client_reply(call->client, call->id, json_object_get(ret));
    } else if (!ret && call->client) {
        client_error(call->client, call->id, "WorkerError", "%s: %s", att->name, err);
    }
    call_free(call);
}

/* A worker's refusal of a resize keeps its class when it is one that
 * resize answers (doc/protocol.md); any other answer is a WorkerError. */
void call_finish_refused(struct supervisor *s, struct attachment *att, struct call *call,
                         const char *cls, const char *desc)
{
    static const char *const resize_classes[] = {
        "InvalidParameter", "ReadOnly", "NotSupported", "Busy", "InvalidState", "OperationFailed",
    };

    if (call->kind == CALL_FORWARD && strcmp(call->command, "resize") == 0 && call->client && cls)
        for (size_t i = 0; i < sizeof resize_classes / sizeof resize_classes[0]; i++)
            if (strcmp(cls, resize_classes[i]) == 0) {
                client_error(call->client, call->id, resize_classes[i], "%s: %s", att->name, desc);
                call_free(call);
                return;
            }
    call_finish(s, att, call, NULL, desc);
}

struct call *call_pop_answerable(struct attachment *att, uint64_t seq)
{
    for (struct call **pp = &att->calls; *pp; pp = &(*pp)->next) {
        struct call *call = *pp;
        if ((call->kind == CALL_FORWARD || call->kind == CALL_STATS_ALL ||
             call->kind == CALL_INTERNAL) && (seq == 0 || call->seq == seq)) {
            *pp = call->next;
            return call;
        }
    }
    return NULL;
}

struct call *call_take(struct attachment *att, enum call_kind kind)
{
    for (struct call **pp = &att->calls; *pp; pp = &(*pp)->next)
        if ((*pp)->kind == kind) {
            struct call *call = *pp;
            *pp = call->next;
            return call;
        }
    return NULL;
}

bool call_pending(const struct attachment *att, enum call_kind kind)
{
    for (const struct call *c = att->calls; c; c = c->next)
        if (c->kind == kind)
            return true;
    return false;
}

void calls_fail(struct supervisor *s, struct attachment *att, const char *why)
{
    struct call *call;

    imageops_worker_gone(s, att);
    while ((call = call_pop_answerable(att, 0)))
        call_finish(s, att, call, NULL, why);
}

void attachment_forward(struct supervisor *s, struct attachment *att, struct client *c,
                        json_object *id, const char *command)
{
    struct call *call = call_push(att, CALL_FORWARD, c, id, command);
    int r;

    if (!call) {
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    if ((r = call_send(att, call)) < 0)
        call_unsent(s, att, call, r);
}

void attachment_call_worker(struct supervisor *s, struct attachment *att, struct client *c,
                            json_object *id, const char *command, json_object *args, int fd)
{
    attachment_call_worker_fds(s, att, c, id, command, args, &fd, fd >= 0 ? 1 : 0);
}

void attachment_call_worker_fds(struct supervisor *s, struct attachment *att, struct client *c,
                                json_object *id, const char *command, json_object *args,
                                const int *fds, unsigned nfds)
{
    struct call *call = call_push(att, c ? CALL_FORWARD : CALL_INTERNAL, c, id, command);
    int r;

    if (!call) {
        if (c)
            client_error(c, id, "GenericError", "out of memory");
        return;
    }
    if ((r = call_send_args(att, call, args, fds, nfds)) < 0)
        call_unsent(s, att, call, r);
}

void attachments_stats_all(struct supervisor *s, struct client *c, json_object *id)
{
    struct stats_all *all = calloc(1, sizeof *all);
    int r;

    if (!all) {
        client_error(c, id, "GenericError", "out of memory");
        return;
    }
    all->client = c;
    all->id = id ? json_object_get(id) : NULL;
    all->result = json_object_new_object();
    all->waiting = 1;           /* held until every worker is asked */
    for (struct attachment *att = s->attachments; att; att = att->next) {
        if ((att->state != ATT_RUNNING && att->state != ATT_PAUSED) || !caller_may_use(c, att))
            continue;
        struct call *call = call_push(att, CALL_STATS_ALL, c, NULL, "stats");
        if (!call)
            continue;
        call->all = all;
        all->waiting++;
        if ((r = call_send(att, call)) < 0)
            call_unsent(s, att, call, r);
    }
    if (--all->waiting == 0)
        stats_all_done(all);
}
