/* Starting a program without lending it our descriptors for a moment.
 * After fork() the child holds a copy of every descriptor of the parent
 * until it execs, close-on-exec or not, while the parent goes on: an image
 * the parent detached and unlocked meanwhile stays locked by the child.
 * spawn_shared() runs the child with clone(CLONE_VM | CLONE_VFORK): it
 * shares our memory and we are suspended until it has exec'ed (or exited),
 * so by the time we run again its copies of our close-on-exec descriptors
 * are gone.  (posix_spawn does the same, for programs that need nothing
 * computed in the child; worker_spawn.c uses it.) */
#ifndef QCOWD_SPAWN_H
#define QCOWD_SPAWN_H

#include <sys/types.h>

/* Run fn(arg) in the child.  fn shares our memory and runs while we wait:
 * it may only make system calls and write to memory set aside for it (no
 * malloc, no stdio, no setenv), and must exec; it returns the errno of the
 * failed exec.  Returns the child's pid, or -errno (the exec's, once the
 * child is reaped). */
pid_t spawn_shared(int (*fn)(void *), void *arg);

#endif
