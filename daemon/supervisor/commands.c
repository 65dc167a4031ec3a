/* One request line: parse it carefully, check its arguments, dispatch. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "supervisor.h"

struct command {
    const char *name;
    const char *const *args;    /* the arguments it takes (NULL-terminated) */
    void (*run)(struct supervisor *s, struct client *c, json_object *id, json_object *args);
};

/* ---- argument helpers --------------------------------------------------- */

/* The image named by the "name" argument, or an error reply and NULL. */
static struct attachment *named_attachment(struct supervisor *s, struct client *c, json_object *id,
                                 json_object *args)
{
    json_object *v;
    struct attachment *att;

    if (!json_object_object_get_ex(args, "name", &v) || !json_object_is_type(v, json_type_string)) {
        client_error(c, id, "InvalidParameter", "'name' (a string) is required");
        return NULL;
    }
    if (!(att = attachment_find(s, json_object_get_string(v)))) {
        client_error(c, id, "NotFound", "no image is attached as '%s'", json_object_get_string(v));
    } else if (!caller_may_use(c, att)) {
        client_error(c, id, "PermissionDenied", "'%s' was attached by another user (uid %u)",
                     att->name, (unsigned)att->caller.uid);
        att = NULL;
    }
    return att;
}

/* ---- commands ----------------------------------------------------------- */

static void cmd_version(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    json_object *v = json_object_new_object();

    json_object_object_add(v, "major", json_object_new_int(PACKAGE_VERSION_MAJOR));
    json_object_object_add(v, "minor", json_object_new_int(PACKAGE_VERSION_MINOR));
    json_object_object_add(v, "micro", json_object_new_int(PACKAGE_VERSION_MICRO));
    json_object_object_add(v, "package", json_object_new_string(PACKAGE_STRING));
    json_object_object_add(v, "protocol", json_object_new_int(1));
    json_object_object_add(v, "limits", limits_describe(s));
    client_reply(c, id, v);
}

static void cmd_attach(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    attachment_start(s, c, id, args);
}

static void cmd_detach(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (att)
        attachment_detach(s, att, c, id);
}

static void cmd_list(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    json_object *list = json_object_new_array();

    for (struct attachment *att = s->attachments; att; att = att->next)
        if (caller_may_use(c, att))
            json_object_array_add(list, attachment_describe(att, false));
    client_reply(c, id, list);
}

static void cmd_query(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    json_object *q, *exported;

    if (!att)
        return;
    q = attachment_describe(att, true);
    if ((exported = exports_describe_for(s, att)))
        json_object_object_add(q, "export", exported);
    client_reply(c, id, q);
}

static bool serving(struct client *c, json_object *id, const struct attachment *att)
{
    if (att->state == ATT_RUNNING || att->state == ATT_PAUSED)
        return true;
    client_error(c, id, "InvalidState", "'%s' is %s", att->name, attachment_state_name(att->state));
    return false;
}

static void cmd_stats(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att;

    if (!json_object_object_get_ex(args, "name", NULL)) {
        attachments_stats_all(s, c, id);
        return;
    }
    if ((att = named_attachment(s, c, id, args)) && serving(c, id, att))
        attachment_forward(s, att, c, id, "stats");
}

static void cmd_pause(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (!att)
        return;
    if (att->state != ATT_RUNNING) {
        client_error(c, id, "InvalidState", "'%s' is %s, not running", att->name,
                     attachment_state_name(att->state));
        return;
    }
    attachment_forward(s, att, c, id, "pause");
}

static void cmd_resume(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (!att)
        return;
    if (json_object_object_get_ex(args, "image", NULL)) {
        imageops_cmd_resume_onto(s, att, c, id, args);
        return;
    }
    if (att->state != ATT_PAUSED) {
        client_error(c, id, "InvalidState", "'%s' is %s, not paused", att->name,
                     attachment_state_name(att->state));
        return;
    }
    attachment_forward(s, att, c, id, "resume");
}

static void cmd_limit(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (att) {
        throttling_command(s, att, c, id, args);
        state_save(s);          /* the image's limits, or its group's */
    }
}

static void cmd_resize(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (att)
        imageops_cmd_resize(s, att, c, id, args);
}

static void cmd_snapshot(struct supervisor *s, struct client *c, json_object *id,
                         json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (att)
        imageops_cmd_snapshot(s, att, c, id, args);
}

static void cmd_commit(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (att)
        imageops_cmd_commit(s, att, c, id, args);
}

/* The previous qcowd's client of an adopted ring let go of it (its
 * presence lock is gone): the ring is free for a new one. */
static void forget_gone_client(struct supervisor *s, struct attachment *att)
{
    if (!att->ring_held_elsewhere || attachment_ring_held_elsewhere(att))
        return;
    log_info("%s: the previous qcowd's ring client is gone (its lock on the ring is released): "
             "the ring is free", att->name);
    att->ring_held_elsewhere = att->ring_lock_elsewhere = false;
    state_save(s);
}

static void cmd_connect(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);
    json_object *msg, *ret, *v;

    if (!att || !serving(c, id, att))
        return;
    /* Kept for older clients: the lock is ours to take now, promised or not. */
    if (json_object_object_get_ex(args, "hold-lock", &v) &&
        !json_object_is_type(v, json_type_boolean)) {
        client_error(c, id, "InvalidParameter", "'hold-lock' must be a boolean");
        return;
    }
    forget_gone_client(s, att);
    if (att->ring_held_elsewhere) {
        /* One ring, one client: the previous qcowd's may still use it. */
        client_error(c, id, "Busy", "'%s' is held by a client of the previous qcowd (its "
                     "worker was adopted): that client goes on; detach and attach the image "
                     "again for a new ring", att->name);
        return;
    }
    if (att->owner && att->owner != c) {
        client_error(c, id, "Busy", "'%s' is connected to another client (pid %d)", att->name,
                     (int)att->owner->pid);
        return;
    }
    _cleanup_close_ int own_memfd = ring_memfd_for_client(att->proc.ring.memfd);
    if (own_memfd < 0)
        log_warning("%s: cannot give the ring's client a locked memfd of its own (%s): a "
                    "qcowd adopting the worker will not tell when it is gone", att->name,
                    strerror(-own_memfd));
    int fds[3] = { own_memfd >= 0 ? own_memfd : att->proc.ring.memfd, att->proc.ring.req_eventfd,
                   att->proc.ring.rsp_eventfd };
    ret = attachment_describe(att, true);
    json_object *names = json_object_new_array();
    json_object_array_add(names, json_object_new_string("memfd"));
    json_object_array_add(names, json_object_new_string("request-eventfd"));
    json_object_array_add(names, json_object_new_string("response-eventfd"));
    json_object_object_add(ret, "fds", names);
    msg = json_object_new_object();
    json_object_object_add(msg, "return", ret);
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    if (client_send(c, msg, fds, 3) == 0) {
        att->owner = c;
        att->owner_locks = own_memfd >= 0;
        state_save(s);          /* "ring-held": before the client has the ring */
        log_info("%s: ring connected to pid %d", att->name, (int)c->pid);
        exports_ring_taken(s, att, c->pid);
    }
}

static void cmd_disconnect(struct supervisor *s, struct client *c, json_object *id,
                           json_object *args)
{
    struct attachment *att = named_attachment(s, c, id, args);

    if (!att)
        return;
    if (att->owner != c) {
        client_error(c, id, "InvalidState", "this connection does not hold '%s'", att->name);
        return;
    }
    att->owner = NULL;
    state_save(s);
    client_reply(c, id, NULL);
    attachment_ring_released(att);
}

static void cmd_events(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    json_object *v;

    c->events = true;
    if (json_object_object_get_ex(args, "enable", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            client_error(c, id, "InvalidParameter", "'enable' must be a boolean");
            return;
        }
        c->events = json_object_get_boolean(v);
    }
    client_reply(c, id, NULL);
}

static void cmd_shutdown(struct supervisor *s, struct client *c, json_object *id, json_object *args)
{
    if (!caller_privileged(&c->who)) {
        client_error(c, id, "PermissionDenied", "only root and qcowd's own user may stop it");
        return;
    }
    client_reply(c, id, NULL);
    log_info("shutdown requested by pid %d", (int)c->pid);
    attachments_stop_all(s);
}

static const char *const no_args[] = { NULL };
static const char *const name_arg[] = { "name", NULL };
static const char *const connect_args[] = { "name", "hold-lock", NULL };
static const char *const attach_args[] = { "path", "name", "read-only", "cache", "format", "key",
                                           "key-file", "poll-us", "ring-page-order", "data-pages", "io-limits",
                                           "fd", NULL };
static const char *const limit_args[] = { "name", "io-limits", "reset", NULL };
static const char *const resize_args[] = { "name", "size", NULL };
static const char *const snapshot_args[] = { "name", "path", NULL };
static const char *const resume_args[] = { "name", "image", NULL };
static const char *const events_args[] = { "enable", NULL };
static const char *const export_add_args[] = { "name", "nbd", "tls-certs", "read-only",
                                               "insecure", NULL };

static const struct command commands[] = {
    { "version", no_args, cmd_version },
    { "attach", attach_args, cmd_attach },
    { "detach", name_arg, cmd_detach },
    { "list", no_args, cmd_list },
    { "query", name_arg, cmd_query },
    { "stats", name_arg, cmd_stats },
    { "connect", connect_args, cmd_connect },
    { "disconnect", name_arg, cmd_disconnect },
    { "pause", name_arg, cmd_pause },
    { "resume", resume_args, cmd_resume },
    { "limit", limit_args, cmd_limit },
    { "resize", resize_args, cmd_resize },
    { "snapshot", snapshot_args, cmd_snapshot },
    { "commit", name_arg, cmd_commit },
    { "events", events_args, cmd_events },
    { "shutdown", no_args, cmd_shutdown },
    { "export-add", export_add_args, exports_cmd_add },
    { "export-remove", name_arg, exports_cmd_remove },
    { "export-list", no_args, exports_cmd_list },
};

/* ---- parsing ------------------------------------------------------------ */

static bool known_arg(const struct command *cmd, const char *key)
{
    for (const char *const *a = cmd->args; *a; a++)
        if (strcmp(*a, key) == 0)
            return true;
    return false;
}

static bool check_args(struct client *c, json_object *id, const struct command *cmd,
                       json_object *args)
{
    if (!json_object_is_type(args, json_type_object)) {
        client_error(c, id, "InvalidParameter", "'arguments' must be an object");
        return false;
    }
    json_object_object_foreach(args, key, val) {
        (void)val;
        if (!known_arg(cmd, key)) {
            client_error(c, id, "InvalidParameter", "'%s' takes no argument '%s'", cmd->name, key);
            return false;
        }
    }
    return true;
}

static json_object *parse_line(struct client *c, const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    json_object *obj;
    enum json_tokener_error err;

    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, line, (int)len);
    err = json_tokener_get_error(tok);
    if (err == json_tokener_continue)
        err = json_tokener_error_parse_eof;
    if (!obj || err != json_tokener_success || json_tokener_get_parse_end(tok) != len) {
        client_error(c, NULL, "GenericError", "malformed JSON: %s",
                     err != json_tokener_success ? json_tokener_error_desc(err)
                                                 : "trailing characters");
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

static void dispatch(struct supervisor *s, struct client *c, json_object *req)
{
    json_object *id = NULL, *exec, *args = NULL;
    json_object *empty = json_object_new_object();

    json_object_object_get_ex(req, "id", &id);
    if (!json_object_object_get_ex(req, "execute", &exec) ||
        !json_object_is_type(exec, json_type_string)) {
        client_error(c, id, "GenericError", "expected {\"execute\": COMMAND, ...}");
        goto out;
    }
    json_object_object_get_ex(req, "arguments", &args);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, json_object_get_string(exec)) != 0)
            continue;
        if (check_args(c, id, &commands[i], args ? args : empty))
            commands[i].run(s, c, id, args ? args : empty);
        goto out;
    }
    client_error(c, id, "CommandNotFound", "unknown command '%.64s'", json_object_get_string(exec));
out:
    json_object_put(empty);
}

void handle_request(struct supervisor *s, struct client *c, const char *line, size_t len)
{
    json_object *req = parse_line(c, line, len);

    if (!req)
        return;
    if (!json_object_is_type(req, json_type_object))
        client_error(c, NULL, "GenericError", "a request must be a JSON object");
    else
        dispatch(s, c, req);
    json_object_put(req);
}
