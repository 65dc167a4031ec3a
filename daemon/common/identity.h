/* Whose rights a file is opened with.  qcowd serves callers of several
 * users (root, its own user, members of --group); what a caller attaches,
 * and every backing file of it, is opened with that caller's rights, as
 * SO_PEERCRED and SO_PEERGROUPS saw them when it connected. */
#ifndef QCOWD_IDENTITY_H
#define QCOWD_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

/* More supplementary groups than this are cut off: the caller then has
 * fewer rights here, never more. */
#define IDENTITY_MAX_GROUPS 64

struct identity {
    uid_t uid;
    gid_t gid;
    unsigned ngroups;
    gid_t groups[IDENTITY_MAX_GROUPS];
};

/* What identity_assume replaced. */
struct identity_saved {
    int ngroups;
    gid_t groups[IDENTITY_MAX_GROUPS];
};

/* Open files with id's rights from now on: its supplementary groups, and
 * its uid and gid as the file system ids (the effective ids stay, so
 * identity_restore can come back).  Needs CAP_SETUID and CAP_SETGID: -EPERM
 * without them.  Single-threaded processes only. */
int identity_assume(const struct identity *id, struct identity_saved *saved);
void identity_restore(const struct identity_saved *saved);

/* open(2) of path with id's rights. */
int identity_open(const struct identity *id, const char *path, int flags);

/* "UID:GID[:G1,G2,...]", the form a worker gets on its command line. */
int identity_format(const struct identity *id, char *buf, size_t len);
int identity_parse(const char *s, struct identity *id);

#endif
