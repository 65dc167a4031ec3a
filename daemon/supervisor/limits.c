/* What the host lets qcowd hold: open files (ours), kernel AIO slots (the
 * host's, shared with every program) and --max-images.  An attach that
 * would pass one is refused with LimitReached and a message that names
 * the limit, its figures and what to raise; `version` reports them all. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "aio_budget.h"
#include "log.h"
#include "supervisor.h"

/* What qcowd holds per image: the worker's control socket, the ring's
 * memfd and two eventfds, its journal and the image lock; and with
 * adoption on, its rendezvous (or an adopted worker's pidfd). */
#define FDS_PER_IMAGE 6
/* Descriptors an attach or a worker restart holds for a moment (the
 * worker's end of the socketpair, a key pipe, duplicates of the ring). */
#define FDS_TRANSIENT 16
/* The default --max-images: a cap, the real limits are checked one by one. */
#define MAX_IMAGES_CAP 4096

static unsigned count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    struct dirent *e;

    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;   /* not the directory's own descriptor */
}

static unsigned fds_per_image(const struct supervisor *s)
{
    return FDS_PER_IMAGE + (s->state_path && s->orphan_wait_s > 0);
}

/* Descriptors qcowd needs with nimages images and every client connected. */
static uint64_t fds_needed(const struct supervisor *s, unsigned nimages)
{
    return (uint64_t)s->base_fds + (uint64_t)nimages * fds_per_image(s) + s->max_clients +
           FDS_TRANSIENT;
}

static unsigned images_fds_allow(const struct supervisor *s)
{
    uint64_t fixed = fds_needed(s, 0);

    return s->nofile > fixed ? (unsigned)((s->nofile - fixed) / fds_per_image(s)) : 0;
}

void limits_init(struct supervisor *s)
{
    struct rlimit rl;
    unsigned room;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_info("open files: raised the soft limit from %" PRIu64 " to the hard limit %" PRIu64,
                     (uint64_t)was, (uint64_t)rl.rlim_max);
    }
    s->nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 1024;
    s->base_fds = count_open_fds();
    room = images_fds_allow(s);
    if (!s->max_images)
        s->max_images = MAX_IMAGES_CAP;
    log_info("room for %u images: --max-images %u, open files %" PRIu64 " (%u each)%s",
             room < s->max_images ? room : s->max_images, s->max_images, s->nofile,
             fds_per_image(s), room < s->max_images ? ": raise with ulimit -n or LimitNOFILE=" : "");
}

static bool aio_admits(struct client *c, json_object *id)
{
    struct aio_budget b;
    char why[512];

    if (aio_budget_read(&b) < 0 || (b.used < b.max && b.max - b.used >= AIO_IDLE_DEPTH))
        return true;        /* the worker's io_setup() has the last word */
    aio_budget_describe_refusal(why, sizeof why, AIO_IDLE_DEPTH);
    client_error(c, id, "LimitReached", "%s", why);
    return false;
}

bool limits_admit_image(struct supervisor *s, struct client *c, json_object *id)
{
    if (s->nimages >= s->max_images) {
        client_error(c, id, "LimitReached",
                     "--max-images reached: %u images are attached and qcowd takes at most %u: "
                     "restart qcowd with a larger --max-images", s->nimages, s->max_images);
        return false;
    }
    if (fds_needed(s, s->nimages + 1) > s->nofile) {
        client_error(c, id, "LimitReached",
                     "open files: qcowd may hold %" PRIu64 " descriptors (RLIMIT_NOFILE) and "
                     "%u images take %u each beside %u for clients: raise the limit (ulimit -n, "
                     "or LimitNOFILE= in qcowd.service)", s->nofile, s->nimages + 1,
                     fds_per_image(s), s->max_clients);
        return false;
    }
    return aio_admits(c, id);
}

bool limits_start_error(int r, char *why, size_t len)
{
    if (r == -EMFILE || r == -ENFILE)
        snprintf(why, len, "open files: cannot start a worker (%s): raise the limit (ulimit -n, "
                 "LimitNOFILE= in qcowd.service%s)", strerror(-r),
                 r == -ENFILE ? ", or the host's fs.file-max" : "");
    else if (r == -EAGAIN)
        snprintf(why, len, "processes: cannot start a worker (fork: %s): raise RLIMIT_NPROC "
                 "(ulimit -u) or the pids limit of qcowd's cgroup (TasksMax= in qcowd.service)",
                 strerror(-r));
    else
        return false;
    return true;
}

static json_object *room_object(json_object *o, int64_t room)
{
    json_object_object_add(o, "room", json_object_new_int64(room > 0 ? room : 0));
    return o;
}

json_object *limits_describe(const struct supervisor *s)
{
    json_object *o = json_object_new_object(), *files = json_object_new_object();
    json_object *aio = json_object_new_object();
    unsigned open_fds = count_open_fds();
    int64_t room_images = (int64_t)s->max_images - s->nimages;
    int64_t room_files = ((int64_t)s->nofile - open_fds - (int64_t)s->max_clients + s->nclients -
                          FDS_TRANSIENT) / fds_per_image(s);
    int64_t room_aio = -1, room = room_images;
    const char *tightest = "max-images";
    struct aio_budget b;

    json_object_object_add(o, "images", json_object_new_int64(s->nimages));
    json_object_object_add(o, "max-images", json_object_new_int64(s->max_images));
    json_object_object_add(files, "limit", json_object_new_int64((int64_t)s->nofile));
    json_object_object_add(files, "in-use", json_object_new_int64(open_fds));
    json_object_object_add(files, "per-image", json_object_new_int64(fds_per_image(s)));
    json_object_object_add(o, "open-files", room_object(files, room_files));
    if (room_files <= room) {
        room = room_files;
        tightest = "open-files";
    }
    if (aio_budget_read(&b) == 0) {
        room_aio = b.used < b.max ? (int64_t)((b.max - b.used) / AIO_IDLE_DEPTH) : 0;
        json_object_object_add(aio, "max-nr", json_object_new_int64((int64_t)b.max));
        json_object_object_add(aio, "nr", json_object_new_int64((int64_t)b.used));
        json_object_object_add(aio, "per-image", json_object_new_int64(AIO_IDLE_DEPTH));
        if (b.ledger)
            json_object_object_add(aio, "ledger", json_object_new_string(b.ledger));
        room_object(aio, room_aio);
        if (room_aio < room) {
            room = room_aio;
            tightest = "aio";
        }
    }
    json_object_object_add(o, "aio", aio);
    json_object_object_add(o, "room", json_object_new_int64(room > 0 ? room : 0));
    json_object_object_add(o, "tightest", json_object_new_string(tightest));
    return o;
}
