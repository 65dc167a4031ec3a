/* Backing files as a worker opens them: with the rights of the caller that
 * attached the image (never the daemon's), only inside the directories the
 * operator allowed (qcowd --backing-dir), and locked the way QEMU locks a
 * backing file (consistent read, sharing neither write nor resize), so no
 * one writes it while an overlay on it is served, and qcowd itself refuses
 * to attach it read-write. */
#ifndef QCOWD_WORKER_BACKING_H
#define QCOWD_WORKER_BACKING_H

#include <stdbool.h>

#include "identity.h"

#define BACKING_MAX_DIRS 8

struct backing_policy {
    bool as_caller;             /* false: the worker's own rights (root or qcowd's user) */
    struct identity caller;
    const char *dirs[BACKING_MAX_DIRS];  /* canonical; none: anywhere */
    unsigned ndirs;
};

/* For image_open_opts.open_backing (opaque: a struct backing_policy). */
int backing_open(void *opaque, const char *child_path, const char *path);

#endif
