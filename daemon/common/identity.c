#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "identity.h"

/* setfsuid() and setfsgid() report no error; asking with an invalid id
 * returns the current one. */
static bool fs_ids_are(uid_t uid, gid_t gid)
{
    return (uid_t)setfsuid((uid_t)-1) == uid && (gid_t)setfsgid((gid_t)-1) == gid;
}

void identity_restore(const struct identity_saved *saved)
{
    setfsuid(geteuid());
    setfsgid(getegid());
    if (saved->ngroups >= 0)
        (void)!setgroups((size_t)saved->ngroups, saved->groups);
}

int identity_assume(const struct identity *id, struct identity_saved *saved)
{
    saved->ngroups = getgroups(IDENTITY_MAX_GROUPS, saved->groups);
    if (saved->ngroups < 0)
        return -errno;
    if (setgroups(id->ngroups, id->groups) < 0)
        return -errno;
    setfsgid(id->gid);
    setfsuid(id->uid);
    if (!fs_ids_are(id->uid, id->gid)) {
        identity_restore(saved);
        return -EPERM;
    }
    return 0;
}

int identity_open(const struct identity *id, const char *path, int flags)
{
    struct identity_saved saved;
    int fd, err, r;

    if ((r = identity_assume(id, &saved)) < 0)
        return r;
    fd = open(path, flags);
    err = errno;
    identity_restore(&saved);
    if (fd < 0)
        return -err;
    return fd;
}

int identity_format(const struct identity *id, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%u:%u", (unsigned)id->uid, (unsigned)id->gid);

    for (unsigned i = 0; i < id->ngroups && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%c%u", i ? ',' : ':', (unsigned)id->groups[i]);
    return n < len ? 0 : -ENAMETOOLONG;
}

static int parse_id(const char *s, char **end, uint32_t *out)
{
    unsigned long v;

    errno = 0;
    v = strtoul(s, end, 10);
    if (errno || *end == s || v >= UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int identity_parse(const char *s, struct identity *id)
{
    char *end;
    uint32_t v;

    *id = (struct identity){ 0 };
    if (parse_id(s, &end, &v) < 0 || *end != ':')
        return -EINVAL;
    id->uid = v;
    if (parse_id(end + 1, &end, &v) < 0 || (*end && *end != ':'))
        return -EINVAL;
    id->gid = v;
    if (!*end)
        return 0;
    do {
        if (id->ngroups == IDENTITY_MAX_GROUPS || parse_id(end + 1, &end, &v) < 0)
            return -EINVAL;
        id->groups[id->ngroups++] = v;
    } while (*end == ',');
    return *end ? -EINVAL : 0;
}
