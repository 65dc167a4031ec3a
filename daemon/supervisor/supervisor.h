/* qcowd, the supervisor: owns the control socket, the table of attached
 * images and one worker process per image.  It never touches image data.
 * See doc/protocol.md for the protocol and qcowd(8) for operations. */
#ifndef QCOWD_SUPERVISOR_H
#define QCOWD_SUPERVISOR_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "throttling.h"
#include "identity.h"
#include "worker_spawn.h"

#define MAX_LINE 65536
#define MAX_DEPTH 16
#define MAX_NAME 64
#define WORKER_START_TIMEOUT_MS 30000
#define WORKER_CALL_TIMEOUT_MS 30000
#define RESTART_WINDOW_S 60
#define RESTART_LIMIT 5
#define IDLE_TIMEOUT_DEFAULT_S 10
#define MAX_PASSED_FDS 4        /* descriptors a connection may have sent and not used */
#define MAX_BACKING_DIRS 8
#define KEY_FILE_MAX 1024       /* a password's bytes, as qcowctl reads a --key-file */
#define ORPHAN_WAIT_DEFAULT_S 60    /* an orphaned worker waits that long to be adopted */

enum watch_kind { WATCH_LISTEN, WATCH_SIGNAL, WATCH_CLIENT, WATCH_WORKER, WATCH_WORKER_EXIT };

struct watch {
    enum watch_kind kind;
    void *obj;
    bool dead;                  /* freed at the end of this round of events */
    struct watch *next_dead;    /* in the graveyard */
};

/* A message for a client that it has not read yet. */
struct outbuf {
    struct outbuf *next;
    size_t len, off;            /* off: bytes already sent */
    int fds[3];                 /* our copies, sent with the first byte */
    unsigned nfds;
    char data[];
};

struct client {
    struct watch watch;
    struct supervisor *sup;
    int fd;
    uid_t uid;
    pid_t pid;
    struct identity who;        /* its rights, as it connected */
    int passed[MAX_PASSED_FDS]; /* descriptors it sent, oldest first, for `attach` */
    unsigned npassed;
    char *in;                   /* bytes of an unfinished line */
    size_t in_len;
    bool skipping;              /* discarding the rest of an oversized line */
    char *backlog;              /* received, not yet looked at */
    size_t backlog_len, backlog_off;
    unsigned busy;              /* its commands still waiting for a worker */
    bool resume;                /* busy went to 0: look at the backlog again */
    bool events;
    bool closing;               /* closed at the end of this round of events */
    bool reading;               /* taking requests (EPOLLIN) */
    uint32_t armed;             /* the epoll events registered */
    struct outbuf *out, *out_tail;  /* written as the socket takes it (EPOLLOUT) */
    size_t out_bytes;
    uint64_t connected_ns;
    bool spoke;                 /* has sent a request (the idle timeout is over) */
    struct client *next;
};

enum attachment_state {
    ATT_STARTING, ATT_RUNNING, ATT_PAUSED, ATT_RESTARTING, ATT_STOPPING, ATT_FAILED,
};

enum call_kind { CALL_ATTACH, CALL_DETACH, CALL_FORWARD, CALL_STATS_ALL, CALL_INTERNAL };

/* A question to a worker whose answer goes to a client. */
struct call {
    enum call_kind kind;
    struct client *client;      /* NULL when the client went away */
    json_object *id;
    char command[16];
    uint64_t seq;               /* the id the worker echoes */
    uint64_t deadline_ns;
    struct stats_all *all;      /* CALL_STATS_ALL */
    struct call *next;
};

/* One `stats` without a name: answers gathered from every worker. */
struct stats_all {
    struct client *client;
    json_object *id;
    json_object *result;
    unsigned waiting;
};

struct attachment {
    struct watch watch;
    char name[MAX_NAME + 1];
    char *path;
    bool read_only;
    bool writeback;
    unsigned poll_us;           /* the worker's busy-poll before it sleeps */
    unsigned ring_page_order;   /* the ring's geometry, when given at attach */
    bool ring_page_order_given;
    unsigned data_pages;        /* 0: the worker's default */
    char *format;
    char *key;
    char *key_file;             /* where the key came from, when the attach said */
    enum attachment_state state;
    bool paused;                /* by a client: a restarted worker starts paused too */
    struct worker_proc proc;
    int lock_fd;                /* the image, locked; each worker gets a copy */
    dev_t dev;                  /* of the image file */
    ino_t ino;
    struct identity caller;     /* who attached it: its workers open backing files as it */
    char *caller_arg;           /* that for the worker's --caller, NULL for root and us */
    unsigned restarts;
    uint64_t restart_times[RESTART_LIMIT + 1];
    bool renewing;              /* replacing a ring its client broke */
    unsigned ring_renewals;
    struct qcowring_info ring_page;     /* the qcowd page as the worker made it */
    bool have_ring_page;
    uint64_t started_ns;
    char *error;
    int start_error;            /* -errno: why the worker did not start */
    struct attachment_limits limits;    /* I/O limits (throttling.c) */
    char *io_error;             /* a flush failed: the image serves reads only */
    struct client *owner;       /* the connection that holds the ring */
    bool owner_locks;           /* and its memfd carries the presence lock */
    bool ring_held_elsewhere;   /* adopted: a client of the previous qcowd may hold it */
    bool ring_lock_elsewhere;   /* and that client's memfd carries the presence lock */
    bool adopted;               /* its worker was a previous qcowd's (adoption.c) */
    int pidfd;                  /* an adopted worker, not our child: readable at its exit */
    struct watch exit_watch;    /* on pidfd */
    int rendezvous_fd;          /* bound; its workers listen there when orphaned, or -1 */
    char *rendezvous_path;
    struct snapshot_pending *snapshot;  /* a snapshot's new top, until the worker answers */
    struct commit_pending *commit;      /* a live commit under way */
    bool recorded;              /* in the state file (state_file.c) */
    bool restoring;             /* attached again from the state file, not serving yet */
    json_object *restore_entry; /* recorded, never started here: kept as it was read */
    struct call *calls;         /* in the order they were sent */
    uint64_t next_seq;
    struct attachment *next;
};

struct export;
struct snapshot_pending;

struct supervisor {
    int listen_fd;
    bool socket_ours;           /* we bound it: remove it at exit */
    char *socket_path;
    int epfd;
    int sigfd;
    const char *worker_path;
    const char *log_level;
    gid_t group;                /* (gid_t)-1: none */
    const char *worker_user;    /* "UID:GID" workers drop to, NULL: they keep ours */
    const char *backing_dirs[MAX_BACKING_DIRS + 1]; /* NULL-terminated; empty: anywhere */
    unsigned max_clients, max_images;   /* max_images 0 until limits_init() */
    unsigned idle_timeout_s;    /* close connections silent that long (0: never) */
    uint64_t nofile;            /* our RLIMIT_NOFILE (raised to the hard limit) */
    unsigned base_fds;          /* open before any image or client */
    unsigned nclients, nimages;
    struct client *clients;
    struct attachment *attachments;
    struct watch *graveyard;    /* clients and attachments to free after this round */
    pid_t *exiting;             /* workers done with their image, not yet reaped */
    unsigned nexiting;
    size_t exiting_cap;
    bool stopping;
    const char *nbdkit_path;    /* supervised NBD exports (exports.c) */
    const char *nbdkit_plugin;
    struct export *exports;
    struct limit_group *limit_groups;   /* throttling.c */
    char *state_path;           /* the state file (state_file.c), NULL: none */
    bool state_dirty;           /* the table changed since it was written */
    unsigned orphan_wait_s;     /* --orphan-wait: 0 (or no state file): no adoption */
};

/* server.c: the socket and connections */
int server_listen(struct supervisor *s);
void server_accept(struct supervisor *s);
void client_readable(struct supervisor *s, struct client *c);
/* The socket takes more of what the client has not read yet. */
void client_writable(struct client *c);
/* Requests of one connection run one at a time, in order: go on with the
 * connections whose last command has finished; close those marked closing. */
void clients_resume(struct supervisor *s);
/* Close connections that sent no request within the idle timeout. */
void clients_tick(struct supervisor *s);
/* The end of a round: send what it queued, as far as the sockets take it
 * without waiting (EPOLLOUT brings the rest); drop clients that leave too
 * much unread, and close those marked closing. */
void clients_flush(struct supervisor *s);
void client_reply(struct client *c, json_object *id, json_object *ret);
/* c may be NULL (an attach from the state file): the error is logged, and
 * kept for client_unsent_error. */
void client_error(struct client *c, json_object *id, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const char *client_unsent_error(void);
/* Queue msg (consumed) for the client, with copies of fds that go with its
 * first byte.  It goes out at the end of this round of events (clients_flush),
 * after whatever else the round changes: a detach is answered once the
 * image is released.  0 or -errno. */
int client_send(struct client *c, json_object *msg, const int *fds, unsigned nfds);
void client_close(struct supervisor *s, struct client *c);
void broadcast_event(struct supervisor *s, const char *name, json_object *data);
int watch_fd(struct supervisor *s, int fd, struct watch *w);
void unwatch_fd(struct supervisor *s, int fd);

/* auth.c */
bool peer_authorised(const struct supervisor *s, uid_t uid, gid_t gid);

/* caller.c: what a caller may reach */
void caller_identify(int fd, const struct ucred *cred, struct identity *who);
/* Root and the daemon's own user: they reach what qcowd reaches. */
bool caller_privileged(const struct identity *who);
/* May c see and act on att (it attached it, or it is privileged)? */
bool caller_may_use(const struct client *c, const struct attachment *att);
/* recv() that keeps descriptors sent with the bytes for client_take_fd. */
ssize_t client_recv(struct client *c, void *buf, size_t len);
int client_take_fd(struct client *c);
void client_drop_fds(struct client *c);

struct opened_image {
    int fd;                     /* ours: no client shares its open file description */
    char *path;                 /* canonical, or as the caller gave it with a descriptor */
    struct stat st;
};
/* The canonical path of the file open at fd, as the kernel names it: the
 * file that was opened, whatever a symbolic link on the way names by now.
 * malloc'd, or NULL with errno (ENOENT: it has no name any more). */
char *fd_canonical_path(int fd);
/* Open the file open at fd again (/proc/self/fd/N) with flags, without
 * waiting: a lease another process holds on it (F_SETLEASE) is
 * -EWOULDBLOCK, not a wait of lease-break-time inside the event loop.
 * The descriptor, or -errno. */
int reopen_fd_nowait(int fd, int flags);
/* Open the image of an attach with the caller's rights: its descriptor
 * `passed` (>= 0, kept by the caller of this function), or path.  -errno
 * with a message naming the path. */
int caller_open_image(const struct identity *who, const char *path, int passed, bool read_only,
                      struct opened_image *out);
/* The protocol's error class for a failure to open, lock or start an image
 * (-EAGAIN: a host limit stopped its worker). */
const char *error_class_of(int err);

/* commands.c: one request */
void handle_request(struct supervisor *s, struct client *c, const char *line, size_t len);

/* attachments.c: attached images and their workers */
struct attachment *attachment_find(struct supervisor *s, const char *name);
int attachment_start(struct supervisor *s, struct client *c, json_object *id, json_object *args);
void attachment_detach(struct supervisor *s, struct attachment *att, struct client *c, json_object *id);
void attachment_forward(struct supervisor *s, struct attachment *att, struct client *c, json_object *id,
                   const char *command);
/* Send command with arguments (and a descriptor, or -1) to att's worker;
 * its answer goes to c, or nowhere when c is NULL. */
void attachment_call_worker(struct supervisor *s, struct attachment *att, struct client *c,
                            json_object *id, const char *command, json_object *args, int fd);
/* imageops.c: protocol resize (args checked against the command's list) */
void imageops_cmd_resize(struct supervisor *s, struct attachment *att, struct client *c,
                         json_object *id, json_object *args);
void imageops_cmd_snapshot(struct supervisor *s, struct attachment *att, struct client *c,
                           json_object *id, json_object *args);
void imageops_cmd_commit(struct supervisor *s, struct attachment *att, struct client *c,
                         json_object *id, json_object *args);
/* A live commit's state for query, added to o. */
void imageops_describe(const struct attachment *att, json_object *o);
/* resume with "image": serve that overlay of the paused image's top. */
void imageops_cmd_resume_onto(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *args);
/* The same with several descriptors (copies are sent; ours stay ours). */
void attachment_call_worker_fds(struct supervisor *s, struct attachment *att, struct client *c,
                                json_object *id, const char *command, json_object *args,
                                const int *fds, unsigned nfds);
void attachments_stats_all(struct supervisor *s, struct client *c, json_object *id);
json_object *attachment_describe(const struct attachment *att, bool full);
void attachment_worker_readable(struct supervisor *s, struct attachment *att);
void attachments_reap(struct supervisor *s);
void attachments_tick(struct supervisor *s);
void attachments_forget_client(struct supervisor *s, struct client *c);
/* Adopted, and a client of the previous qcowd still holds the ring: one
 * whose memfd carries the presence lock only while it keeps that memfd
 * (ring_presence.c; a look at a lock, never blocks). */
bool attachment_ring_held_elsewhere(const struct attachment *att);
/* A new open file description of a ring's memfd, to hand to one client,
 * read-locked as its presence lock (which lasts as long as the client keeps
 * the description), or -errno. */
int ring_memfd_for_client(int memfd);
/* The owner let go of att's ring (disconnect, or its connection closed). */
void attachment_ring_released(struct attachment *att);
void attachments_stop_all(struct supervisor *s);
/* Attach again what the state file recorded (args: its attach arguments,
 * who: the rights its attach used, entry: as read).  One that cannot be
 * stays listed (and recorded) as failed.  0 or -errno. */
int attachment_restore(struct supervisor *s, json_object *args, const struct identity *who,
                       json_object *entry);
const char *attachment_state_name(enum attachment_state st);
/* Adopting the running workers a state file names takes two steps, so
 * that all of them are met before any answer is awaited, and one deadline
 * (ADOPT_ANSWER_MS after the meetings) covers every answer. */
#define ADOPT_ANSWER_MS 5000
struct adoption;
/* Connect to the running worker a state file entry names, at its
 * rendezvous, and check who listens (never blocks): the meeting, for
 * attachment_adopt, or NULL when there is none (logged when a worker was
 * recorded and cannot be met: the entry is attached afresh). */
struct adoption *attachment_adopt_meet(struct supervisor *s, json_object *args,
                                       json_object *entry);
/* Adopt the worker met, which must say "ready" by deadline_ns (mono_ns).
 * Takes the meeting (freed).  0, or -errno (logged) when it cannot be, and
 * the entry is attached afresh (the worker was asked to stop). */
int attachment_adopt(struct supervisor *s, struct adoption *met, json_object *args,
                     const struct identity *who, json_object *entry, uint64_t deadline_ns);
/* An adopted worker's pidfd is readable: it exited. */
void attachment_adopted_exited(struct supervisor *s, struct attachment *att);

/* exports.c: supervised NBD exports (nbdkit with nbdkit-qcowd-plugin) */
void exports_cmd_add(struct supervisor *s, struct client *c, json_object *id, json_object *args);
void exports_cmd_remove(struct supervisor *s, struct client *c, json_object *id, json_object *args);
void exports_cmd_list(struct supervisor *s, struct client *c, json_object *id, json_object *args);
/* A child exited: true if it was an export's nbdkit (then handled). */
bool exports_child_exited(struct supervisor *s, pid_t pid, int status);
/* Process pid took att's ring (connect). */
void exports_ring_taken(struct supervisor *s, const struct attachment *att, pid_t pid);
/* att is being detached: its export goes first. */
void exports_detaching(struct supervisor *s, const struct attachment *att);
void exports_forget_client(struct supervisor *s, const struct client *c);
void exports_tick(struct supervisor *s);
/* The export of att for query, or NULL. */
json_object *exports_describe_for(struct supervisor *s, const struct attachment *att);
void exports_free_all(struct supervisor *s);

uint64_t mono_ns(void);

/* state_file.c: attachments recorded for the next start (doc/restart.md) */
/* The default state file for this user, or NULL (no $HOME). */
char *state_default_path(void);
/* What is attached changed: it is recorded by state_flush (nothing changes
 * while stopping). */
void state_save(struct supervisor *s);
/* Write the state file if it changed: at the end of each round of events,
 * before any answer goes out, so an attach is recorded before it is
 * acknowledged; and before stopping. */
void state_flush(struct supervisor *s);
/* Attach again what the state file records; a damaged file is put aside. */
void state_restore(struct supervisor *s);

/* limits.c: open files, kernel AIO slots, --max-images */
/* Raise RLIMIT_NOFILE to the hard limit and settle --max-images. */
void limits_init(struct supervisor *s);
/* Whether one more image fits; if not, a LimitReached reply is sent. */
bool limits_admit_image(struct supervisor *s, struct client *c, json_object *id);
/* r from starting a worker: true (and the message) when a host limit was hit. */
bool limits_start_error(int r, char *why, size_t len);
/* The "limits" object of `version`. */
json_object *limits_describe(const struct supervisor *s);

/* Events of one epoll round may still point at an object another event of
 * the same round closed: such objects are buried, and freed after it. */
void bury(struct supervisor *s, struct watch *w, void *obj);
void empty_graveyard(struct supervisor *s);

#endif
