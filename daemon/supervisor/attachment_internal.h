/* Inside the supervisor's attachments: what attachments.c (the table,
 * attach and detach), calls.c (questions to workers), worker_messages.c
 * (what workers say) and recovery.c (workers' starts, exits and restarts)
 * share. */
#ifndef QCOWD_ATTACHMENT_INTERNAL_H
#define QCOWD_ATTACHMENT_INTERNAL_H

#include "cleanup.h"
#include "supervisor.h"

/* attachments.c */
void status_to_systemd(const struct supervisor *s);
void fill_spawn_opts(const struct supervisor *s, const struct attachment *att,
                     struct worker_spawn_opts *o, bool adopt);
/* Start a worker (serving att's kept ring when adopt); its first message
 * comes through attachment_worker_readable. */
int attachment_launch(struct supervisor *s, struct attachment *att, bool adopt);
/* Close our copy of the image's locked descriptor: the lock goes once the
 * worker's copy is closed too.  Before answering that an image is gone. */
void attachment_release_image(struct attachment *att);
void attachment_free(struct supervisor *s, struct attachment *att);
/* The end of a detach: answer the detach calls (error NULL: success), say
 * so, and free att. */
void attachment_detached(struct supervisor *s, struct attachment *att, const char *error);
/* The worker says a flush failed (the image is write-failed): remember why. */
void attachment_io_error(struct supervisor *s, struct attachment *att, const char *reason);

/* adoption.c */
/* What an orphaned worker hands over at its rendezvous, checked. */
struct adoption {
    int ctl_fd;
    pid_t pid;
    struct qcowring_fds ring;
    int journal_fd;
    int image_fd;               /* the image, with the lock of the previous qcowd's open */
    json_object *info;          /* worker_checked_info of its ready message */
    bool paused;
};
/* Bind att's rendezvous when adoption is on and it has none (its workers
 * get it); a failure is logged and only costs adoption. */
void rendezvous_ensure(struct supervisor *s, struct attachment *att);
void rendezvous_release(struct attachment *att);
/* Connect to the worker pid at path and check that it is who listens
 * there (never blocks): 0 and *a, or -errno and why. */
int adoption_connect(const char *path, pid_t pid, struct adoption *a, char *why, size_t len);
/* Take the ready message of the worker connected to, waiting for it until
 * deadline_ns (mono_ns): 0 and *a complete, or -errno and why, the worker
 * told to stop. */
int adoption_take_ready(struct adoption *a, uint64_t deadline_ns, char *why, size_t len);
/* Tell the worker met to stop (it flushes and exits), and close it all. */
void adoption_refuse(struct adoption *a);
void adoption_close(struct adoption *a);
/* adoption_close, and free the heap-allocated a (NULL: nothing). */
void adoption_free(struct adoption *a);
DEFINE_POINTER_CLEANUP(adoption_free, struct adoption)
int adoption_watch_exit(struct supervisor *s, struct attachment *att);
void adoption_unwatch_exit(struct supervisor *s, struct attachment *att);

/* calls.c */
struct call *call_push(struct attachment *att, enum call_kind kind, struct client *c,
                       json_object *id, const char *command);
void call_free(struct call *call);
int call_send(struct attachment *att, struct call *call);
/* A call ended: answer its client (ret is the worker's "return", or NULL
 * with err set). */
void call_finish(struct supervisor *s, struct attachment *att, struct call *call,
                 json_object *ret, const char *err);
void call_finish_refused(struct supervisor *s, struct attachment *att, struct call *call,
                         const char *cls, const char *desc);
/* The call waiting for the worker's answer with this id (0: any), taken off. */
struct call *call_pop_answerable(struct attachment *att, uint64_t seq);
struct call *call_take(struct attachment *att, enum call_kind kind);
bool call_pending(const struct attachment *att, enum call_kind kind);
void calls_fail(struct supervisor *s, struct attachment *att, const char *why);

/* worker_messages.c */
/* Stop listening to the worker and close our end of its channel. */
void attachment_forget_ctl(struct supervisor *s, struct attachment *att);
/* Handle whatever the worker said before it exited. */
void attachment_drain_messages(struct supervisor *s, struct attachment *att);

/* imageops.c */
/* The worker's answer to a resize: false when it is malformed. */
bool imageops_resize_answered(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *ret);
void imageops_worker_restarted(struct attachment *att);
/* The worker's answer to a snapshot (ret, or NULL and err): switch to the
 * new top, or remove it. */
void imageops_snapshot_answered(struct supervisor *s, struct attachment *att, struct client *c,
                                json_object *id, json_object *ret, const char *err);

void imageops_commit_answered(struct supervisor *s, struct attachment *att, struct client *c,
                              json_object *id, json_object *ret, const char *err);
/* A worker's commit-* event: NULL, or what was wrong with it. */
const char *imageops_commit_event(struct supervisor *s, struct attachment *att,
                                  const char *name, json_object *data);
/* The worker is gone (died, stopped, detached): a commit under way ends. */
void imageops_worker_gone(struct supervisor *s, struct attachment *att);

/* recovery.c */
/* Kill the worker, which can no longer be trusted; it is restarted on the
 * same ring when it is reaped. */
void attachment_kill_worker(struct supervisor *s, struct attachment *att, const char *why);
void attachment_started(struct supervisor *s, struct attachment *att);
/* The worker did not come up (err: -EIO when it could not open the image,
 * -EAGAIN when a host limit stopped it): kill it; its exit settles the rest. */
void attachment_start_failed(struct supervisor *s, struct attachment *att, int err,
                             const char *why);
void attachment_stopped(struct supervisor *s, struct attachment *att, int status);
void attachment_ring_broken(struct supervisor *s, struct attachment *att, const char *reason);
/* Ask a serving worker to finish, flush and stop; "stopped" comes back. */
void attachment_stop_worker(struct attachment *att);
void attachment_mark_failed(struct supervisor *s, struct attachment *att, const char *why);

#endif
