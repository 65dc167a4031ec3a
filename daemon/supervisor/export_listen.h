/* The address of a supervised NBD export: parsed from "unix:PATH" or
 * "tcp:[HOST:]PORT", bound by qcowd itself (so a bad address fails the
 * command, and a restarted nbdkit keeps the same socket), and described
 * as an NBD URI. */
#ifndef QCOWD_EXPORT_LISTEN_H
#define QCOWD_EXPORT_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>

#include "identity.h"

#define EXPORT_ADDRESS_MAX 300

struct export_listen {
    int fd;                     /* listening, close-on-exec */
    bool is_unix;
    char path[108];             /* unix: the socket file, removed at close */
    char address[EXPORT_ADDRESS_MAX];   /* canonical: unix:PATH, tcp:HOST:PORT (bound port) */
    char uri[EXPORT_ADDRESS_MAX * 3 + 32];
    bool as_owner;              /* unix: made with a caller's rights, removed with them */
    struct identity owner;
};

struct export_listen_opts {
    const char *spec;           /* as the operator gave it */
    bool tls;                   /* nbdkit will require TLS */
    bool insecure;              /* plain NBD beyond loopback is wanted */
    gid_t group;                /* (gid_t)-1, or the group of a unix socket */
    /* NULL: bind with the daemon's rights.  Else a caller's: a unix socket
     * is created with its rights (where it may create files, owned by it),
     * and a TCP port below 1024 is refused. */
    const struct identity *as;
};

/* Bind and listen.  0, or -errno with a one-line reason in why. */
int export_listen_open(const struct export_listen_opts *o, struct export_listen *out,
                       char *why, size_t why_len);
void export_listen_close(struct export_listen *l);

#endif
