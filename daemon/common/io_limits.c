/* I/O limits by name, to and from JSON: see io_limits.h. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io_limits.h"

enum field { F_AVG, F_MAX, F_LENGTH, F_COUNT };

static const char *const limit_names[THROTTLE_LIMITS] = {
    [THROTTLE_IOPS_TOTAL] = "iops-total", [THROTTLE_IOPS_READ] = "iops-read",
    [THROTTLE_IOPS_WRITE] = "iops-write", [THROTTLE_BPS_TOTAL] = "bps-total",
    [THROTTLE_BPS_READ] = "bps-read",     [THROTTLE_BPS_WRITE] = "bps-write",
};

static const char *const field_suffix[F_COUNT] = { [F_AVG] = "", [F_MAX] = "-max",
                                                   [F_LENGTH] = "-max-length" };

const char *io_limits_name(enum throttle_limit l)
{
    return (unsigned)l < THROTTLE_LIMITS ? limit_names[l] : "?";
}

bool io_limits_valid_group(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > IO_LIMITS_GROUP_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            return false;
    return true;
}

/* "iops-read-max" -> (THROTTLE_IOPS_READ, F_MAX). */
static bool parse_key(const char *key, enum throttle_limit *l, enum field *f)
{
    for (unsigned i = 0; i < THROTTLE_LIMITS; i++) {
        size_t n = strlen(limit_names[i]);
        if (strncmp(key, limit_names[i], n) != 0)
            continue;
        for (unsigned j = 0; j < F_COUNT; j++)
            if (strcmp(key + n, field_suffix[j]) == 0) {
                *l = (enum throttle_limit)i;
                *f = (enum field)j;
                return true;
            }
    }
    return false;
}

static uint64_t field_max(enum field f)
{
    return f == F_LENGTH ? THROTTLE_MAX_BURST_LENGTH : THROTTLE_MAX_RATE;
}

static int get_uint(json_object *v, const char *key, uint64_t max, uint64_t *out, char *err,
                    size_t errlen)
{
    int64_t n = json_object_get_int64(v);

    if (!json_object_is_type(v, json_type_int) || n < 0 || (uint64_t)n > max) {
        snprintf(err, errlen, "'%s' must be an integer from 0 to %" PRIu64, key, max);
        return -EINVAL;
    }
    *out = (uint64_t)n;
    return 0;
}

static int set_group(struct io_limits *l, json_object *v, char *err, size_t errlen)
{
    const char *g = json_object_get_string(v);

    if (!json_object_is_type(v, json_type_string) || (*g && !io_limits_valid_group(g))) {
        snprintf(err, errlen, "'group' must be \"\" or 1-%d of A-Z a-z 0-9 . _ -",
                 IO_LIMITS_GROUP_MAX);
        return -EINVAL;
    }
    snprintf(l->group, sizeof l->group, "%s", g);
    return 0;
}

static void set_field(struct throttle_rate *r, enum field f, uint64_t v)
{
    switch (f) {
    case F_AVG: r->avg = v; break;
    case F_MAX: r->max = v; break;
    case F_LENGTH: r->max_length = (uint32_t)v; break;
    case F_COUNT: break;
    }
}

static int check(const struct io_limits *l, char *err, size_t errlen)
{
    for (unsigned i = 0; i < THROTTLE_LIMITS; i++) {
        const struct throttle_rate *r = &l->cfg.rate[i];
        const char *name = limit_names[i];
        if (r->max && !r->avg) {
            snprintf(err, errlen, "'%s-max' needs '%s'", name, name);
            return -EINVAL;
        }
        if (r->max && r->max < r->avg) {
            snprintf(err, errlen, "'%s-max' (%" PRIu64 ") is below '%s' (%" PRIu64 ")", name,
                     r->max, name, r->avg);
            return -EINVAL;
        }
        if (r->max_length && !r->max) {
            snprintf(err, errlen, "'%s-max-length' needs '%s-max'", name, name);
            return -EINVAL;
        }
    }
    return 0;
}

/* Apply one member to *l; given[limit] collects the fields named (bits
 * 1 << field), cleared[limit] the limits set to 0. */
static int merge_one(struct io_limits *l, const char *key, json_object *v, bool cleared[],
                     unsigned given[], char *err, size_t errlen)
{
    enum throttle_limit lim;
    enum field f;
    uint64_t n;
    int r;

    if (strcmp(key, "group") == 0)
        return set_group(l, v, err, errlen);
    if (strcmp(key, "iops-size") == 0)
        return get_uint(v, key, IO_LIMITS_MAX_IOPS_SIZE, &l->cfg.iops_size, err, errlen);
    if (!parse_key(key, &lim, &f)) {
        snprintf(err, errlen, "unknown limit '%.64s'", key);
        return -EINVAL;
    }
    if ((r = get_uint(v, key, field_max(f), &n, err, errlen)) < 0)
        return r;
    set_field(&l->cfg.rate[lim], f, n);
    given[lim] |= 1u << f;
    if (f == F_AVG && n == 0)
        cleared[lim] = true;
    return 0;
}

int io_limits_merge(struct io_limits *l, json_object *obj, char *err, size_t errlen)
{
    struct io_limits next = *l;
    bool cleared[THROTTLE_LIMITS] = { false };
    unsigned given[THROTTLE_LIMITS] = { 0 };
    int r;

    if (!json_object_is_type(obj, json_type_object)) {
        snprintf(err, errlen, "the limits must be an object");
        return -EINVAL;
    }
    json_object_object_foreach(obj, key, val) {
        if ((r = merge_one(&next, key, val, cleared, given, err, errlen)) < 0)
            return r;
    }
    for (unsigned i = 0; i < THROTTLE_LIMITS; i++) {
        bool max_given = given[i] & (1u << F_MAX), length_given = given[i] & (1u << F_LENGTH);
        if (cleared[i] && !max_given)
            next.cfg.rate[i].max = 0;
        if ((cleared[i] || !next.cfg.rate[i].max) && !length_given)
            next.cfg.rate[i].max_length = 0;
    }
    if ((r = check(&next, err, errlen)) < 0)
        return r;
    *l = next;
    return 0;
}

int io_limits_parse(const char *text, struct io_limits *out, char *err, size_t errlen)
{
    json_object *obj = json_tokener_parse(text);
    int r;

    memset(out, 0, sizeof *out);
    if (!obj) {
        snprintf(err, errlen, "the limits are not JSON");
        return -EINVAL;
    }
    r = io_limits_merge(out, obj, err, errlen);
    json_object_put(obj);
    return r;
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

json_object *io_limits_to_json(const struct io_limits *l)
{
    json_object *o = json_object_new_object();
    char key[48];

    for (unsigned i = 0; i < THROTTLE_LIMITS; i++) {
        const struct throttle_rate *r = &l->cfg.rate[i];
        if (!r->avg)
            continue;
        add_u64(o, limit_names[i], r->avg);
        if (!r->max)
            continue;
        snprintf(key, sizeof key, "%s-max", limit_names[i]);
        add_u64(o, key, r->max);
        snprintf(key, sizeof key, "%s-max-length", limit_names[i]);
        add_u64(o, key, r->max_length ? r->max_length : 1);
    }
    if (l->cfg.iops_size)
        add_u64(o, "iops-size", l->cfg.iops_size);
    if (l->group[0])
        json_object_object_add(o, "group", json_object_new_string(l->group));
    return o;
}
