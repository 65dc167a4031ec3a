/* qcowctl's side of qcowd's control protocol (doc/protocol.md): connect to
 * the unix socket, check the greeting, send one request at a time and read
 * its reply, passing events that arrive meanwhile to a callback.
 *
 * Every failure is reported here, on stderr, naming the socket and the
 * reason; the functions return the exit status to stop with (see
 * ctl_error_exit() for the daemon's error classes). */
#ifndef QCOWCTL_CLIENT_H
#define QCOWCTL_CLIENT_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

#define CTL_PROTOCOL 1                  /* the protocol version we speak */
#define CTL_MAX_DEPTH 32                /* JSON nesting we accept from the daemon */
#define CTL_MAX_LINE (16u << 20)        /* longest line we accept from the daemon */
#define CTL_GREETING_TIMEOUT_S 10       /* unless --timeout says otherwise */
#define CTL_DEFAULT_SOCKET_ROOT "/run/qcowd/qcowd.sock"
#define CTL_SOCKET_ENV "QCOWD_SOCKET"

/* An event line: the parsed object and the line as it came. */
typedef void ctl_event_fn(void *ctx, json_object *event, const char *line);

struct ctl_conn {
    int fd;
    char *path;                 /* the socket, for messages */
    const struct cli *cli;
    char *buf;                  /* bytes received and not yet taken */
    size_t start, len, cap;
    int64_t next_id;
    json_object *greeting;      /* the "QCOWD" object */
    ctl_event_fn *on_event;     /* NULL: events are skipped */
    void *event_ctx;
};

/* A connection that is not open: ctl_close() on it does nothing. */
#define CTL_CONN_CLOSED ((struct ctl_conn){ .fd = -1 })

/* The socket to talk to: --socket, else $QCOWD_SOCKET, else the default
 * (/run/qcowd/qcowd.sock as root, $XDG_RUNTIME_DIR/qcowd.sock otherwise).
 * A malloc'd string, or NULL after printing why there is none. */
char *ctl_socket_path(const struct cli *cli);

/* Connect and read the greeting.  CLI_EXIT_OK, or the failure's status
 * (message printed; c is then closed). */
int ctl_connect(struct ctl_conn *c, const struct cli *cli);

/* Send {"execute": command, "arguments": args, "id": N} (args may be NULL;
 * the caller keeps its reference) and wait for the reply.  On success *ret
 * is the "return" value (a new reference) and CLI_EXIT_OK is returned; a
 * daemon error is printed as "qcowctl: SOCKET: COMMAND: DESC" and its
 * class's exit status returned. */
int ctl_call(struct ctl_conn *c, const char *command, json_object *args, json_object **ret);

/* Connect, run one command as ctl_call does, close. */
int ctl_call_once(struct cli *cli, const char *command, json_object *args, json_object **ret);

/* The same as ctl_call, passing the descriptor `pass` with the request (SCM_RIGHTS);
 * the caller keeps it. */
int ctl_call_fd(struct ctl_conn *c, const char *command, json_object *args, int pass,
                json_object **ret);

/* Wait for messages and hand each event to c->on_event, until the
 * connection ends (CLI_EXIT_OK), *stop is set (by a signal that interrupts
 * the wait, or by the event handler: CLI_EXIT_OK), or an error (printed). */
int ctl_follow_events(struct ctl_conn *c, volatile const sig_atomic_t *stop);

/* Wait until the daemon closes the connection (events are handed on).
 * CLI_EXIT_OK at the end of the stream; an error status on a timeout. */
int ctl_wait_close(struct ctl_conn *c);

void ctl_close(struct ctl_conn *c);

/* The exit status for a daemon error class (CLI_EXIT_FAILURE for the ones
 * that have none of their own). */
int ctl_error_exit(const char *cls);

#endif
