/* Ringing a doorbell (an eventfd) that an untrusted peer also holds,
 * without ever blocking on it.
 *
 * The eventfd's open file description is shared with the client, so the
 * client can clear O_NONBLOCK on it and saturate its counter: a plain
 * write() would then sleep until the client reads, that is forever.  The
 * flag cannot be made private (RWF_NOWAIT is refused on an eventfd, and it
 * cannot be reopened through /proc), so every write is guarded instead: a
 * per-thread POSIX timer, armed while the thread rings doorbells, sends it
 * DOORBELL_GUARD_SIGNAL every DOORBELL_GUARD_NS.  A tick that finds the
 * thread ringing a doorbell that cannot be rung (poll() says the counter is
 * saturated) jumps out of the write; otherwise the write goes on (the
 * handler is SA_RESTART, so other system calls of the thread are restarted,
 * except those that never are: epoll_wait, poll, nanosleep...).  So no
 * doorbell write lasts longer than one tick, and a write that can proceed is
 * never cut.  The timer disarms itself after a tick with no doorbell: an
 * idle thread gets no signals, a busy one one per tick, and a doorbell costs
 * no system call beyond its write (the timer is re-armed only after a quiet
 * tick).
 */
#ifndef QCOWD_DOORBELL_H
#define QCOWD_DOORBELL_H

#include <signal.h>

#define DOORBELL_GUARD_SIGNAL (SIGRTMIN + 6)
#define DOORBELL_GUARD_NS 2000000L         /* 2 ms */

/* Write 1 to the eventfd fd.  Returns 0, or -EAGAIN when it cannot be rung
 * at once: its counter is saturated, which only a peer that writes huge
 * values to it can do (with O_NONBLOCK cleared too, the write slept until
 * the guard's tick), or another -errno. */
int doorbell_ring(int fd);

/* Set up this thread's guard (its timer and the signal handler) now rather
 * than at its first doorbell: a worker calls it before its sandbox, whose
 * filter allows the timer to be armed but no new one made.  Blocks never. */
void doorbell_prepare(void);

/* How many doorbell writes of this thread the guard cut short (tests). */
unsigned long doorbell_interrupted(void);

#endif
