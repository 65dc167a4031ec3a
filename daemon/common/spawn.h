/* Starting a program that holds none of our descriptors but those it is
 * given, not even for a moment.  The copies a child gets of our descriptors
 * hold the images' locks (and would keep one alive after we released it).
 * Close-on-exec is not enough: the kernel lets a vfork (or posix_spawn)
 * parent run again before the exec has closed those copies, and drops them
 * later still, once the new program is loaded; waiting for the exec does
 * not close the gap either.  So the child closes every other descriptor
 * itself, and we go on only once it says it has. */
#ifndef QCOWD_SPAWN_H
#define QCOWD_SPAWN_H

#include <sys/types.h>

struct spawn_fd {
    int fd;                     /* ours */
    int target;                 /* its number in the child; -1: the same */
};

struct spawn_opts {
    const char *path;           /* searched in $PATH when it has no '/' */
    char *const *argv;
    const struct spawn_fd *fds; /* besides 0, 1 and 2, the only ones it keeps */
    unsigned nfds;
    /* Run in the child just before exec (e.g. setenv): it is a copy of us. */
    void (*prepare)(void *opaque);
    void *opaque;
};

/* The child's pid once it has closed what it must not keep and exec'ed, or
 * -errno (the exec's errno, the child reaped). */
pid_t spawn_clean(const struct spawn_opts *o);

#endif
