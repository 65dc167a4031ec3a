/* I/O limits and limit groups, qcowd's side: see throttling.h.
 *
 * A limit group's buckets are one page of shared memory (a sealed memfd)
 * that qcowd makes and hands to every worker of the group, which charge
 * their requests to it with atomic operations (throttle.h).  So the group's
 * budget is exact whatever the mix of images, with no message per request
 * and nothing for qcowd to do while I/O runs; when the group's limits
 * change, qcowd carries what the buckets owe over to the new rates once,
 * then tells the workers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"

#define GROUP_PAGE_SIZE 4096

/* A group is its owner's: the uid whose attachments made and joined it.
 * Each user has groups of its own, so that no caller can join, and so
 * reconfigure, the images of another. */
struct limit_group {
    char name[IO_LIMITS_GROUP_MAX + 1];
    uid_t owner;
    struct throttle_config cfg;
    int memfd;
    struct throttle_state *state;
    unsigned members;
    struct limit_group *next;
};

/* ---- groups -------------------------------------------------------------- */

static struct limit_group *group_find(struct supervisor *s, const char *name, uid_t owner)
{
    for (struct limit_group *g = s->limit_groups; g; g = g->next)
        if (g->owner == owner && strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

static void group_free(struct limit_group *g)
{
    if (g->state)
        munmap(g->state, GROUP_PAGE_SIZE);
    if (g->memfd >= 0)
        close(g->memfd);
    free(g);
}

static struct limit_group *group_new(struct supervisor *s, const char *name, uid_t owner,
                                     const struct throttle_config *cfg)
{
    struct limit_group *g = calloc(1, sizeof *g);
    void *page;

    if (!g)
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->owner = owner;
    g->cfg = *cfg;
    g->memfd = memfd_create("qcowd-limit-group", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (g->memfd < 0 || ftruncate(g->memfd, GROUP_PAGE_SIZE) < 0 ||
        fcntl(g->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
        (page = mmap(NULL, GROUP_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0)) ==
            MAP_FAILED) {
        log_error("limit group %s: cannot make its shared memory: %s", name, strerror(errno));
        group_free(g);
        return NULL;
    }
    g->state = page;
    throttle_state_init(g->state);
    g->next = s->limit_groups;
    s->limit_groups = g;
    return g;
}

/* The lowest member slot no image of g holds. */
static int free_slot(struct supervisor *s, const struct limit_group *g)
{
    uint64_t taken = 0;

    for (struct attachment *a = s->attachments; a; a = a->next)
        if (a->limits.group == g)
            taken |= UINT64_C(1) << a->limits.slot;
    for (int i = 0; i < THROTTLE_GROUP_MAX_MEMBERS; i++)
        if (!(taken & (UINT64_C(1) << i)))
            return i;
    return -ENOSPC;
}

/* The member in `slot` leaves g: its slot is clean for the next one. */
static void group_leave(struct supervisor *s, struct limit_group *g, int slot)
{
    if (!g)
        return;
    throttle_member_wait(g->state, (unsigned)slot, false);
    __atomic_store_n(&g->state->used_ns[slot], 0, __ATOMIC_RELEASE);
    if (--g->members > 0)
        return;
    for (struct limit_group **pp = &s->limit_groups; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    group_free(g);
}

/* ---- one image's limits ---------------------------------------------------- */

static void set_limits(struct attachment *att, const struct io_limits *l, struct limit_group *g)
{
    json_object *o = io_limits_to_json(l);

    att->limits.set = *l;
    att->limits.group = g;
    free(att->limits.json);
    att->limits.json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    att->limits.spawn = (struct worker_limits){
        .json = throttle_config_any(&l->cfg) || g ? att->limits.json : NULL,
        .group_fd = g ? g->memfd : -1,
        .group_slot = g ? att->limits.slot : -1,
    };
}

const struct worker_limits *throttling_for_worker(const struct attachment *att)
{
    return att->limits.spawn.json ? &att->limits.spawn : NULL;
}

json_object *throttling_describe(const struct attachment *att)
{
    return io_limits_to_json(&att->limits.set);
}

static bool has_worker(const struct attachment *att)
{
    return att->proc.ctl_fd >= 0 && att->state != ATT_FAILED && att->state != ATT_STOPPING;
}

/* The worker's "limit" command: the whole set, and the group's page. */
static json_object *worker_args(const struct attachment *att)
{
    json_object *args = json_object_new_object();

    json_object_object_add(args, "io-limits", throttling_describe(att));
    if (att->limits.group)
        json_object_object_add(args, "group-slot", json_object_new_int(att->limits.slot));
    return args;
}

static void announce(struct supervisor *s, const struct attachment *att)
{
    json_object *d = json_object_new_object();

    json_object_object_add(d, "name", json_object_new_string(att->name));
    json_object_object_add(d, "io-limits", throttling_describe(att));
    broadcast_event(s, "io-limits-changed", d);
}

/* The group's limits change: its buckets carry their debts over, and
 * every image of the group but `except` (told by the caller) hears of it. */
static void group_reconfigure(struct supervisor *s, struct limit_group *g,
                              const struct throttle_config *cfg, const struct attachment *except)
{
    if (throttle_config_equal(&g->cfg, cfg))
        return;
    throttle_state_rescale(g->state, &g->cfg, cfg, mono_ns());
    g->cfg = *cfg;
    for (struct attachment *m = s->attachments; m; m = m->next) {
        if (m == except || m->limits.group != g)
            continue;
        struct io_limits l = m->limits.set;
        l.cfg = *cfg;
        set_limits(m, &l, g);
        if (has_worker(m)) {
            json_object *args = worker_args(m);
            attachment_call_worker(s, m, NULL, NULL, "limit", args, g->memfd);
            json_object_put(args);
        }
        announce(s, m);
    }
}

/* Make `next` att's limits, joining and leaving groups.  -ENOMEM when a
 * new group's memory cannot be made, -ENOSPC when the group is full
 * (nothing changed then). */
static int assign(struct supervisor *s, struct attachment *att, const struct io_limits *next)
{
    struct limit_group *old = att->limits.group, *g = NULL;
    int old_slot = att->limits.slot, slot = old_slot;

    if (next->group[0] && !(g = group_find(s, next->group, att->caller.uid)) &&
        !(g = group_new(s, next->group, att->caller.uid, &next->cfg)))
        return -ENOMEM;
    if (g && g != old && (slot = free_slot(s, g)) < 0)
        return slot;
    if (g)
        group_reconfigure(s, g, &next->cfg, att);
    if (g && g != old)
        g->members++;
    att->limits.slot = slot;
    set_limits(att, next, g);
    if (old != g)
        group_leave(s, old, old_slot);
    return 0;
}

/* assign(), with an error reply when it fails. */
static int assign_or_reply(struct supervisor *s, struct attachment *att, struct client *c,
                           json_object *id, const struct io_limits *next)
{
    int r = assign(s, att, next);

    if (r == -ENOSPC)
        client_error(c, id, "LimitReached", "limit group '%s' has %d images, the most it takes",
                     next->group, THROTTLE_GROUP_MAX_MEMBERS);
    else if (r < 0)
        client_error(c, id, "GenericError", "cannot make limit group '%s': %s", next->group,
                     strerror(-r));
    return r;
}

/* The limits to start from when `obj` is applied: joining another group
 * that exists, its limits; else att's own (none after a reset). */
static void base_limits(struct supervisor *s, const struct attachment *att, json_object *obj,
                        bool reset, struct io_limits *base)
{
    json_object *v;
    struct limit_group *g;

    *base = att->limits.set;
    if (reset)
        memset(&base->cfg, 0, sizeof base->cfg);
    if (obj && json_object_object_get_ex(obj, "group", &v) &&
        json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), base->group) &&
        (g = group_find(s, json_object_get_string(v), att->caller.uid)) && !reset)
        base->cfg = g->cfg;
}

/* base with obj applied into *next; false after an error reply. */
static bool compute(struct supervisor *s, const struct attachment *att, struct client *c,
                    json_object *id, json_object *obj, bool reset, struct io_limits *next)
{
    char why[160];

    base_limits(s, att, obj, reset, next);
    if (obj && io_limits_merge(next, obj, why, sizeof why) < 0) {
        client_error(c, id, "InvalidParameter", "'%s': %s", att->name, why);
        return false;
    }
    return true;
}

int throttling_attach(struct supervisor *s, struct attachment *att, struct client *c,
                  json_object *id, json_object *args)
{
    struct io_limits next;
    json_object *obj = NULL;

    att->limits.spawn.group_fd = -1;
    json_object_object_get_ex(args, "io-limits", &obj);
    if (!compute(s, att, c, id, obj, false, &next))
        return -EINVAL;
    return assign_or_reply(s, att, c, id, &next);
}

void throttling_release(struct supervisor *s, struct attachment *att)
{
    group_leave(s, att->limits.group, att->limits.slot);
    att->limits.group = NULL;
    free(att->limits.json);
    att->limits.json = NULL;
}

static bool get_reset(struct client *c, json_object *id, json_object *args, bool *reset)
{
    json_object *v;

    *reset = false;
    if (!json_object_object_get_ex(args, "reset", &v))
        return true;
    if (!json_object_is_type(v, json_type_boolean)) {
        client_error(c, id, "InvalidParameter", "'reset' must be a boolean");
        return false;
    }
    *reset = json_object_get_boolean(v);
    return true;
}

void throttling_command(struct supervisor *s, struct attachment *att, struct client *c,
                    json_object *id, json_object *args)
{
    struct io_limits next;
    json_object *obj = NULL, *wargs;
    bool reset;

    json_object_object_get_ex(args, "io-limits", &obj);
    if (!get_reset(c, id, args, &reset))
        return;
    if (!obj && !reset) {
        client_reply(c, id, throttling_describe(att));
        return;
    }
    if (!has_worker(att)) {
        client_error(c, id, "InvalidState", "'%s' is %s", att->name,
                     attachment_state_name(att->state));
        return;
    }
    if (!compute(s, att, c, id, obj, reset, &next) || assign_or_reply(s, att, c, id, &next) < 0)
        return;
    log_info("%s: I/O limits now %s", att->name, att->limits.json);
    announce(s, att);
    wargs = worker_args(att);
    if (att->state == ATT_RUNNING || att->state == ATT_PAUSED) {
        /* The answer is the worker's: the limits it now applies. */
        attachment_call_worker(s, att, c, id, "limit", wargs, att->limits.spawn.group_fd);
    } else {
        /* Starting: the worker reads this once it serves. */
        attachment_call_worker(s, att, NULL, NULL, "limit", wargs, att->limits.spawn.group_fd);
        client_reply(c, id, throttling_describe(att));
    }
    json_object_put(wargs);
}

void throttling_resend(struct supervisor *s, struct attachment *att)
{
    json_object *wargs;

    if (!att->limits.spawn.json)
        return;
    wargs = worker_args(att);
    attachment_call_worker(s, att, NULL, NULL, "limit", wargs, att->limits.spawn.group_fd);
    json_object_put(wargs);
}
