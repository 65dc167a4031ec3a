/* Image operations on a served image (doc/protocol.md: resize): checked
 * here, run by the worker between requests; its answer, read with
 * suspicion, updates what qcowd tells clients and becomes an event. */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "attachment_internal.h"
#include "json_read.h"
#include "log.h"
#include "qcowring.h"

static bool operation_pending(const struct attachment *att)
{
    for (const struct call *call = att->calls; call; call = call->next)
        if (strcmp(call->command, "resize") == 0 || strcmp(call->command, "snapshot") == 0)
            return true;
    return false;
}

/* Whether att can take an operation now; if not, the client is told why. */
static bool may_operate(struct client *c, json_object *id, const struct attachment *att)
{
    if (att->state != ATT_RUNNING && att->state != ATT_PAUSED) {
        client_error(c, id, "InvalidState", "'%s' is %s", att->name,
                     attachment_state_name(att->state));
        return false;
    }
    if (att->read_only) {
        client_error(c, id, "ReadOnly", "'%s' is attached read-only", att->name);
        return false;
    }
    if (att->io_error) {
        client_error(c, id, "ImageError", "'%s' serves reads only: %s", att->name, att->io_error);
        return false;
    }
    if (operation_pending(att)) {
        client_error(c, id, "Busy", "'%s': another resize or snapshot is under way", att->name);
        return false;
    }
    return true;
}

static int64_t served_size(const struct attachment *att)
{
    int64_t size = 0;

    json_read_int(att->proc.ready, "size", 0, INT64_MAX, &size);
    return size;
}

void imageops_cmd_resize(struct supervisor *s, struct attachment *att, struct client *c,
                         json_object *id, json_object *args)
{
    int64_t size, now = served_size(att);
    json_object *wargs;

    if (!json_read_int(args, "size", 1, INT64_MAX, &size) || size % QCOWRING_SECTOR_SIZE) {
        client_error(c, id, "InvalidParameter", "'size' must be a positive multiple of 512 bytes");
        return;
    }
    if (!may_operate(c, id, att))
        return;
    if (size < now) {
        client_error(c, id, "InvalidParameter", "'%s': shrinking from %" PRId64 " to %" PRId64
                     " bytes is refused while it is served: detach it, then qcowctl resize "
                     "--shrink %s SIZE", att->name, now, size, att->path);
        return;
    }
    if ((uint64_t)size / QCOWRING_SECTOR_SIZE > QCOWRING_MAX_CAPACITY_SECTORS) {
        client_error(c, id, "InvalidParameter", "'size' %" PRId64 " is too large", size);
        return;
    }
    wargs = json_object_new_object();
    json_object_object_add(wargs, "size", json_object_new_int64(size));
    log_info("%s: resizing from %" PRId64 " to %" PRId64 " bytes (pid %d asks)", att->name, now,
             size, (int)c->pid);
    attachment_call_worker(s, att, c, id, "resize", wargs, -1);
    json_object_put(wargs);
}

/* The new size in what "ready" said (query, list) and in our copy of the
 * qcowd page (the worker wrote the new capacity there: not damage). */
static void note_size(struct attachment *att, int64_t size, int64_t sectors)
{
    json_object *chain = json_read_array(att->proc.ready, "chain");

    json_object_object_add(att->proc.ready, "size", json_object_new_int64(size));
    json_object_object_add(att->proc.ready, "capacity-sectors", json_object_new_int64(sectors));
    if (chain && json_object_array_length(chain) > 0)
        json_object_object_add(json_object_array_get_idx(chain, 0), "virtual-size",
                               json_object_new_int64(size));
    if (att->have_ring_page)
        att->ring_page.capacity_sectors = (uint64_t)sectors;
}

bool imageops_resize_answered(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *ret)
{
    int64_t old_size, size, sectors;
    json_object *reply, *data;

    if (!json_read_int(ret, "old-size", 0, INT64_MAX, &old_size) ||
        !json_read_int(ret, "size", 1, INT64_MAX, &size) ||
        !json_read_int(ret, "capacity-sectors", 1, INT64_MAX, &sectors) ||
        size < old_size || sectors != size / QCOWRING_SECTOR_SIZE || !att->proc.ready)
        return false;
    note_size(att, size, sectors);
    data = json_object_new_object();
    json_object_object_add(data, "name", json_object_new_string(att->name));
    json_object_object_add(data, "old-size", json_object_new_int64(old_size));
    json_object_object_add(data, "size", json_object_new_int64(size));
    json_object_object_add(data, "capacity-sectors", json_object_new_int64(sectors));
    reply = json_object_get(data);
    broadcast_event(s, "image-resized", data);
    if (c)
        client_reply(c, id, reply);
    else
        json_object_put(reply);
    return true;
}

/* A restarted worker serves the image's size now: the page says so too. */
void imageops_worker_restarted(struct attachment *att)
{
    int64_t size, sectors;

    if (json_read_int(att->proc.ready, "size", 1, INT64_MAX, &size) &&
        json_read_int(att->proc.ready, "capacity-sectors", 1, INT64_MAX, &sectors) &&
        att->have_ring_page && (uint64_t)sectors > att->ring_page.capacity_sectors)
        att->ring_page.capacity_sectors = (uint64_t)sectors;
}
