/* An image's I/O limits as the protocol names them (doc/protocol.md,
 * "limit"), after QEMU's throttling options: iops-total, iops-read,
 * iops-write, bps-total, bps-read, bps-write, each with NAME-max (a burst
 * rate) and NAME-max-length (seconds it may last), iops-size, and group.
 * Shared by qcowd, which checks what clients ask for, and its workers,
 * which are told the result. */
#ifndef QCOWD_IO_LIMITS_H
#define QCOWD_IO_LIMITS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "throttle.h"

#define IO_LIMITS_GROUP_MAX 64
#define IO_LIMITS_MAX_IOPS_SIZE (UINT64_C(1) << 30)

struct io_limits {
    struct throttle_config cfg;
    char group[IO_LIMITS_GROUP_MAX + 1];    /* "": in no group */
};

/* Apply the members of obj to *l: a limit's name with an integer sets it
 * (0 removes that limit, with its burst unless that is given too),
 * "group" with a string names the group ("" for none).  A name not known,
 * a value of the wrong type or range, or limits that do not fit together
 * (a burst without its limit, a burst rate below its limit) get -EINVAL
 * with one line in err, and *l is left as it was. */
int io_limits_merge(struct io_limits *l, json_object *obj, char *err, size_t errlen);

/* The limits as JSON text, as from io_limits_to_json(); 0 or -EINVAL. */
int io_limits_parse(const char *text, struct io_limits *out, char *err, size_t errlen);

/* The limits that are set, by name ("group" when in one): {} for none. */
json_object *io_limits_to_json(const struct io_limits *l);

/* Group names are like image names: 1-64 of A-Z a-z 0-9 . _ - */
bool io_limits_valid_group(const char *name);

const char *io_limits_name(enum throttle_limit l);

#endif
