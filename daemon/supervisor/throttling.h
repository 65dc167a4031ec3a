/* qcowd's side of I/O limits: what each image is limited to, limit groups
 * (one page of buckets shared by the workers of the group's images), the
 * `limit` command.  qcowd keeps the limits: a worker started again gets
 * them on its command line, and one that is running is told of changes. */
#ifndef QCOWD_SUPERVISOR_THROTTLING_H
#define QCOWD_SUPERVISOR_THROTTLING_H

#include <json-c/json.h>

#include "io_limits.h"
#include "worker_spawn.h"

struct supervisor;
struct attachment;
struct client;
struct limit_group;

struct attachment_limits {
    struct io_limits set;           /* in a group: the group's */
    struct limit_group *group;      /* NULL: the image's own buckets */
    int slot;                       /* its member slot in the group */
    char *json;                     /* `set` as the worker is told it */
    struct worker_limits spawn;     /* for worker_spawn; json NULL: none */
};

/* An attach's "io-limits" argument (args may be NULL): joining its group,
 * whose limits the ones given change (for every image of the group).
 * 0, or -EINVAL after an error reply to c. */
int throttling_attach(struct supervisor *s, struct attachment *att, struct client *c,
                  json_object *id, json_object *args);

/* att goes away: it leaves its group (the last one out frees it). */
void throttling_release(struct supervisor *s, struct attachment *att);

/* What to start att's worker with. */
const struct worker_limits *throttling_for_worker(const struct attachment *att);

/* att's limits, for query ({} for none). */
json_object *throttling_describe(const struct attachment *att);

/* The `limit` command on att (args: "io-limits", "reset"). */
void throttling_command(struct supervisor *s, struct attachment *att, struct client *c,
                    json_object *id, json_object *args);

/* att's limits again, to an adopted worker: it kept the previous qcowd's
 * group page, which nobody else shares any more. */
void throttling_resend(struct supervisor *s, struct attachment *att);

#endif
