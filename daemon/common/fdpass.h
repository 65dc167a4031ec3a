/* Messages with file descriptors over unix sockets (SCM_RIGHTS). */
#ifndef QCOWD_FDPASS_H
#define QCOWD_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define FDPASS_MAX 8

/* Send len bytes and nfds descriptors in one message.  0 or -errno. */
int fdpass_send(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);

/* One sendmsg() with extra flags (e.g. MSG_DONTWAIT): the bytes it took
 * (on a stream socket possibly fewer than len; the descriptors travel with
 * the first of them) or -errno. */
ssize_t fdpass_send_some(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
                         int flags);

/* Receive one message of at most len bytes and up to max_fds descriptors
 * (received close-on-exec; extra ones are closed).  Returns the byte count
 * (0 at end of stream) or -errno; *nfds is set to the descriptors kept. */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, unsigned max_fds, unsigned *nfds);
/* The same with recvmsg flags (MSG_DONTWAIT). */
ssize_t fdpass_recv_flags(int sock, void *buf, size_t len, int flags, int *fds, unsigned max_fds,
                          unsigned *nfds);

#endif
