#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aio_budget.h"
#include "error.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#define POLL_BATCH 64
#define TICK_MS 1000

/* A ring request on its way through the executor. */
struct wreq {
    struct blk_req req;
    struct ring_io *io;
    struct worker *w;
    struct first_sector_copy first;
};

static void log_ring(void *opaque, const char *msg)
{
    struct worker *w = opaque;
    log_warning("%s: ring: %s", w->name, msg);
}

/* ---- setup ------------------------------------------------------------- */

/* Discard where the image can (not an encrypted one), in units of its
 * clusters, which start at sector 0: Xen's discard-granularity and
 * discard-alignment (0).  Never DISCARD_SECURE. */
static uint64_t ring_features(const struct worker *w)
{
    uint64_t f = QCOWRING_F_FLUSH | QCOWRING_F_BARRIER | QCOWRING_F_INDIRECT | QCOWRING_F_MAP |
                 QCOWRING_F_RESIZE;

    if (image_discard_granularity(w->img))
        f |= QCOWRING_F_DISCARD;
    if ((f & QCOWRING_F_DISCARD) && worker_discard_zeroes(w))
        f |= QCOWRING_F_DISCARD_ZEROES;
    return w->read_only ? f | QCOWRING_F_READ_ONLY : f;
}

static int make_ring(struct worker *w, const struct worker_opts *o)
{
    w->ring_params = (struct qcowring_params){
        .capacity_sectors = w->img->size / IMAGE_SECTOR_SIZE,
        .features = ring_features(w),
        .ring_page_order = o->ring_page_order,
        .data_pages = o->data_pages,
        .max_indirect_segments = o->max_indirect,
        .discard_granularity = image_discard_granularity(w->img),
        .discard_alignment = 0,
    };
    if (o->adopt.memfd >= 0) {
        w->ring_fds = o->adopt;
        return 0;
    }
    return qcowring_create(&w->ring_params, &w->ring_fds);
}

static struct ring_server_geometry geo_of(const struct worker *w)
{
    return (struct ring_server_geometry){
        .capacity_sectors = w->ring_params.capacity_sectors,
        .features = w->ring_params.features,
        .ring_page_order = w->ring_params.ring_page_order,
        .data_pages = w->ring_params.data_pages,
        .max_indirect_segments = w->ring_params.max_indirect_segments,
    };
}

/* The journal lets a restarted worker answer what its predecessor took
 * but did not answer (the ring's part) and keep the allocations it made
 * (the metadata log).  Only the supervisor and the workers see it. */
static size_t ring_journal_bytes(const struct ring_server_geometry *geo)
{
    return align_up(ring_server_journal_size(geo), 4096);
}

static int map_journal(struct worker *w, const struct worker_opts *o,
                       const struct ring_server_geometry *geo)
{
    struct stat st;

    w->journal_size = ring_journal_bytes(geo) + metalog_size(METALOG_ENTRIES);
    if (o->adopt_journal_fd >= 0) {
        w->journal_fd = o->adopt_journal_fd;
        if (fstat(w->journal_fd, &st) < 0 || (uint64_t)st.st_size < w->journal_size)
            return qc_fail(-EINVAL, "%s: the ring's journal is too small", w->name);
    } else {
        w->journal_fd = memfd_create("qcowd-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (w->journal_fd < 0 || ftruncate(w->journal_fd, (off_t)w->journal_size) < 0)
            return qc_fail(-errno, "%s: cannot create the ring's journal: %s", w->name,
                           strerror(errno));
        fcntl(w->journal_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    }
    w->journal = mmap(NULL, w->journal_size, PROT_READ | PROT_WRITE, MAP_SHARED, w->journal_fd, 0);
    if (w->journal == MAP_FAILED) {
        w->journal = NULL;
        return qc_fail(-errno, "%s: cannot map the ring's journal: %s", w->name, strerror(errno));
    }
    return 0;
}

static int start_ring_server(struct worker *w, const struct worker_opts *o)
{
    struct ring_server_geometry geo = geo_of(w);
    struct ring_server_config cfg = {
        .geo = geo,
        .req_eventfd = w->ring_fds.req_eventfd,
        .rsp_eventfd = w->ring_fds.rsp_eventfd,
        .log = log_ring,
        .log_opaque = w,
    };
    int r;

    if ((r = ring_server_map(w->ring_fds.memfd, &geo, &w->ring_base, &w->ring_size)) < 0)
        return qc_fail(r, "%s: cannot map the ring: %s", w->name, strerror(-r));
    if ((r = map_journal(w, o, &geo)) < 0)
        return r;
    cfg.base = w->ring_base;
    cfg.map_size = w->ring_size;
    cfg.journal = w->journal;
    cfg.journal_size = ring_server_journal_size(&geo);
    if ((r = ring_server_new(&cfg, &w->rs)) < 0)
        return qc_fail(r, "%s: bad ring geometry: %s", w->name, strerror(-r));
    /* A predecessor may have died between growing the image and saying so. */
    if (o->adopt.memfd >= 0)
        ring_server_set_capacity(w->rs, geo.capacity_sectors);
    return 0;
}

/* Refuse to serve an encrypted chain without its key: every I/O would fail. */
static int check_key(struct worker *w, const struct image_open_opts *o)
{
    struct layer_info info;

    for (struct layer *l = w->img->top; l && !o->key; l = layer_backing(l)) {
        layer_get_info(l, &info);
        if (info.encrypted)
            return qc_fail(-ENOKEY, "%s: image is encrypted, a key is needed", info.path);
    }
    return 0;
}

static int adopt_one(void *opaque, uint64_t guest, uint64_t host)
{
    struct worker *w = opaque;
    int r = image_adopt_cluster(w->img, guest, host);

    if (r < 0)
        log_warning("%s: %s", w->name, qc_error_message(r));
    qc_clear_error();
    return 0;
}

/* The metadata log, after the ring's journal: what a dead predecessor
 * committed and did not write back becomes ours. */
static int adopt_allocations(struct worker *w, const struct ring_server_geometry *geo)
{
    size_t off = ring_journal_bytes(geo);
    int r;

    if (w->read_only)
        return 0;
    r = metalog_attach((uint8_t *)w->journal + off, w->journal_size - off, &w->metalog);
    if (r < 0)
        return qc_fail(r, "%s: the ring's metadata log is damaged", w->name);
    qc_clear_error();
    return metalog_replay(w->metalog, adopt_one, w);
}

/* O_DIRECT alignment: 512 unless the device wants more. */
static unsigned probe_dio_align(struct image *img)
{
    void *buf = alloc_aligned(4096, 4096);
    unsigned align = 512;
    int fd = layer_fd(img->top, true);

    if (buf && layer_is_direct(img->top) && pread(fd, buf, 512, 0) < 0 && errno == EINVAL)
        align = 4096;
    free(buf);
    return align;
}

static int watch(struct worker *w, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };

    if (fd < 0)
        return 0;
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int setup_loop(struct worker *w)
{
    sigset_t mask;
    int r;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
#ifdef QCOWD_TEST_HOOKS
    sigaddset(&mask, SIGUSR1);
#endif
    sigprocmask(SIG_BLOCK, &mask, NULL);
    w->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->sigfd < 0 || w->epfd < 0)
        return -errno;
    /* The request doorbell is never read (the client could make it block):
     * edge-triggered, epoll reports every write to it. */
    if ((r = watch(w, w->sigfd, EPOLLIN)) < 0 || (r = watch(w, w->aio.efd, EPOLLIN)) < 0 ||
        (r = watch(w, w->ring_fds.req_eventfd, EPOLLIN | EPOLLET)) < 0 ||
        (r = watch(w, w->ctl_fd, EPOLLIN)) < 0 ||
        (r = watch(w, limiter_timer_fd(&w->limiter), EPOLLIN)) < 0)
        return r;
    return 0;
}

/* The host's AIO budget cannot hold even an idle image: a limit, which
 * qcowd reports as such (LimitReached), not a fault of the image. */
static int aio_setup_failed(struct worker *w, int r)
{
    char why[512];

    if (r != -EAGAIN)
        return qc_fail(r, "%s: io_setup failed: %s", w->name, strerror(-r));
    w->fail_class = "LimitReached";
    aio_budget_describe_refusal(why, sizeof why, AIO_IDLE_DEPTH);
    return qc_fail(r, "%s: %s", w->name, why);
}

static int start_limiter(struct worker *w, const struct worker_opts *o)
{
    char why[160];
    int r = limiter_init(&w->limiter, ring_server_ring_size(w->rs), o->limits, o->limit_group_fd,
                         o->limit_group_slot, why, sizeof why);

    if (o->limit_group_fd >= 0)
        close(o->limit_group_fd);       /* mapped, if it is any good */
    return r < 0 ? qc_fail(r, "%s: %s", w->name, why) : 0;
}

/* The top layer's file: the supervisor's descriptor (o->image_fd), whose
 * open file description carries the image's lock, opened again through
 * /proc/self/fd.  We keep the supervisor's until the image is closed (so
 * the lock outlasts a supervisor that dies while we flush), but serve the
 * image through a description of our own: libaio requests keep references
 * to the file they work on, which the kernel may drop a moment after we
 * have seen them complete and closed it, and the lock would live on for
 * that moment. */
static int top_fd(const struct worker_opts *o, bool read_only)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    char proc[40];
    int fd;

    if (o->image_fd < 0) {
        fd = open(o->path, flags);
    } else {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->image_fd);
        fd = open(proc, flags);
    }
    if (fd < 0)
        return -errno;
    return fd;
}

/* The lock goes only once the image is closed. */
static void release_image_lock(struct worker *w)
{
    if (w->lock_fd >= 0)
        close(w->lock_fd);
    w->lock_fd = -1;
    while (w->n_old_locks > 0)
        close(w->old_lock_fds[--w->n_old_locks]);
}

/* O_DIRECT needs every piece, data and metadata, aligned to the device's
 * sector; qcow's are 512-byte aligned.  On a device that wants more, mixing
 * direct and buffered I/O on one file is unsafe: serve it buffered. */
static int open_image(struct worker *w, const struct worker_opts *o)
{
    struct image_open_opts open = o->open;
    int r;

    open.open_backing = backing_open;
    open.open_backing_opaque = (void *)&o->backing;
    w->open_opts = open;
    w->open_opts.key = NULL;
    w->open_opts.key_len = 0;
    if ((r = image_open_fd(o->path, top_fd(o, open.read_only), &open, &w->img)) < 0 ||
        (r = check_key(w, &open)) < 0)
        return r;
    if (!layer_is_direct(w->img->top) || probe_dio_align(w->img) <= IMAGE_SECTOR_SIZE)
        return 0;
    log_warning("%s: the device needs O_DIRECT alignment above 512 bytes: using the page cache",
                w->name);
    image_close(w->img);
    w->img = NULL;              /* worker_destroy() must not close it again */
    open.direct = false;
    w->open_opts.direct = false;
    return image_open_fd(o->path, top_fd(o, open.read_only), &open, &w->img);
}

static void flush_failed(void *opaque, const char *reason)
{
    struct worker *w = opaque;

    log_error("%s: a flush failed: %s; from now on only reads are served", w->name, reason);
    worker_send_io_error(w, reason);
}

int worker_init(struct worker *w, const struct worker_opts *o)
{
    struct exec_opts xo = { .null_backend = o->null_backend, .flush_failed = flush_failed,
                            .opaque = w };
    int r;

    *w = (struct worker){ .name = o->name ? o->name : o->path, .ctl_fd = o->ctl_fd,
                          .rendezvous_fd = -1,
                          .read_only = o->open.read_only, .epfd = -1, .sigfd = -1,
                          .ring_fds = { -1, -1, -1 }, .journal_fd = -1, .lock_fd = -1,
                          .aio = { .efd = -1 },
                          .limiter = { .timer_fd = -1 }, .op = { .fds = { -1, -1, -1 } } };
    w->lock_fd = o->image_fd;
    w->rendezvous_fd = o->rendezvous_fd;
    w->orphan_wait_s = o->orphan_wait_s;
    w->supervisor_uid = geteuid();      /* who started us, before any change of user */
    if (w->rendezvous_fd >= 0 && listen(w->rendezvous_fd, 1) < 0) {
        log_warning("%s: cannot listen at the rendezvous (no adoption): %s", w->name,
                    strerror(errno));
        close(w->rendezvous_fd);
        w->rendezvous_fd = -1;
    }
    if ((r = open_image(w, o)) < 0)
        return r;
    if (w->img->size < IMAGE_SECTOR_SIZE)
        return qc_fail(-EINVAL, "%s: image is smaller than one sector", w->name);
    w->guard_first_sector = image_first_sector_guarded(w->img);
    if ((r = make_ring(w, o)) < 0)
        return qc_fail(r, "%s: cannot create the ring: %s", w->name, strerror(-r));
    if ((r = start_ring_server(w, o)) < 0)
        return r;
    /* Busy, enough kernel slots for every request's pieces with room to
     * spare; idle, only a few (aio.h). */
    if ((r = aio_ctx_init(&w->aio, AIO_IDLE_DEPTH, 4 * ring_server_ring_size(w->rs) + 64)) < 0)
        return aio_setup_failed(w, r);
    if ((r = pool_init(&w->wreqs, sizeof(struct wreq), ring_server_ring_size(w->rs))) < 0)
        return qc_fail(r, "%s: out of memory", w->name);
    xo.pool_size = ring_server_ring_size(w->rs);
    struct ring_server_geometry geo = geo_of(w);
    if ((r = adopt_allocations(w, &geo)) < 0)
        return r;
    xo.metalog = w->metalog;
    if ((r = executor_new(w->img, &w->aio, &xo, &w->x)) < 0)
        return r;
    if ((r = start_limiter(w, o)) < 0)
        return r;
    if ((r = setup_loop(w)) < 0)
        return qc_fail(r, "%s: cannot set up the event loop: %s", w->name, strerror(-r));
    w->poll = (struct busy_poll){ .spin = { .budget_ns = (uint64_t)o->poll_us * 1000 },
                                  .aio = &w->aio };
    w->started_ns = now_ns();
    w->ring_pending = true;     /* requests may have been posted before we came */
    if (o->start_paused)
        w->state = WORKER_PAUSED;
    return 0;
}

void worker_destroy(struct worker *w)
{
    worker_op_abandon(w);
    worker_commit_abandon(w);
    if (w->x)
        executor_free(w->x);
    pool_destroy(&w->wreqs);
    metalog_free(w->metalog);
    /* io_destroy() waits for an RCU grace period (tens of milliseconds);
     * the process is about to exit, which tears the contexts down without
     * making anyone wait.  Nothing is in flight here. */
    aio_ctx_abandon(&w->aio);
    if (w->rs)
        ring_server_free(w->rs);
    if (w->ring_base)
        munmap(w->ring_base, w->ring_size);
    if (w->journal)
        munmap(w->journal, w->journal_size);
    if (w->journal_fd >= 0)
        close(w->journal_fd);
    qcowring_close_fds(&w->ring_fds);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->sigfd >= 0)
        close(w->sigfd);
    if (w->rendezvous_fd >= 0)
        close(w->rendezvous_fd);
    w->rendezvous_fd = -1;
    limiter_destroy(&w->limiter);
    if (w->img)
        image_close(w->img);
    w->img = NULL;
    release_image_lock(w);
}

/* ---- the data path ------------------------------------------------------ */

static int16_t ring_status(int status)
{
    if (status == 0)
        return QCOWRING_RSP_OKAY;
    return status == -EOPNOTSUPP ? QCOWRING_RSP_EOPNOTSUPP : QCOWRING_RSP_ERROR;
}

static void on_complete(struct blk_req *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct worker *w = wr->w;

    if (status < 0) {
        snprintf(w->last_error, sizeof w->last_error, "%s of %" PRIu64 " bytes at %" PRIu64
                 " failed: %s", blk_op_name(req->op), req->len, req->off, req->error);
        log_warning("%s: %s", w->name, w->last_error);
    }
    if (req->op == BLK_WRITE || req->op == BLK_DISCARD)
        worker_commit_dirty(w, req->off, req->len);    /* a copy that raced it is redone */
    ring_server_respond_deferred(w->rs, wr->io, ring_status(status));
    first_sector_release(&wr->first);
    pool_put(&w->wreqs, wr);
}

static void on_quiesce_flushed(struct blk_req *req, int status)
{
    struct worker *w = req->opaque;

    w->quiesce_flushing = false;
    if (status < 0)
        log_error("%s: flush before pausing failed: %s", w->name, req->error);
    if (w->state == WORKER_PAUSING)
        worker_pause_done(w);
}

void worker_quiesce(struct worker *w)
{
    if (w->quiesce_flushing || !executor_idle(w->x))
        return;
    w->quiesce_flushing = true;
    w->quiesce_flush = (struct blk_req){ .op = BLK_FLUSH, .complete = on_quiesce_flushed,
                                         .opaque = w };
    executor_submit(w->x, &w->quiesce_flush);
}

static void to_blk_req(const struct ring_io *io, struct blk_req *req)
{
    *req = (struct blk_req){ .off = io->sector * IMAGE_SECTOR_SIZE, .len = io->length,
                             .iov = io->iov, .niov = io->iovcnt };
    switch (io->op) {
    case RING_IO_READ: req->op = BLK_READ; break;
    case RING_IO_WRITE: req->op = BLK_WRITE; break;
    case RING_IO_DISCARD: req->op = BLK_DISCARD; break;
    case RING_IO_MAP: break;    /* answered by map.c, never executed */
    case RING_IO_FLUSH:
    case RING_IO_BARRIER:
        req->op = io->length ? BLK_WRITE : BLK_FLUSH;
        req->flush = true;
        req->barrier = io->op == RING_IO_BARRIER;
        break;
    }
}

/* Writes to the first sector of a probed raw image (first_sector.h). */
static bool first_sector_refused(struct worker *w, struct wreq *wr)
{
    const char *format;
    int r;

    wr->first = (struct first_sector_copy){ 0 };
    if (!w->guard_first_sector)
        return false;
    r = first_sector_check(&wr->req, &wr->first, &format);
    if (r == -EPERM)
        log_warning("%s: refused a write that would make the first sector a %s header (the "
                    "image's format was probed: attach it with format raw to allow that)",
                    w->name, format);
    return r < 0;
}

static void submit_io(struct worker *w, struct ring_io *io)
{
    struct wreq *wr;

    if (io->op == RING_IO_MAP) {
        worker_answer_map(w, io);
        return;
    }
    if (!(wr = pool_get(&w->wreqs))) {
        ring_server_respond_deferred(w->rs, io, QCOWRING_RSP_ERROR);
        return;
    }
    to_blk_req(io, &wr->req);
    if (first_sector_refused(w, wr)) {
        ring_server_respond_deferred(w->rs, io, QCOWRING_RSP_ERROR);
        pool_put(&w->wreqs, wr);
        return;
    }
    wr->req.complete = on_complete;
    wr->io = io;
    wr->w = w;
    if (wr->req.op == BLK_WRITE || wr->req.op == BLK_DISCARD)
        worker_commit_dirty(w, wr->req.off, wr->req.len);
    executor_submit(w->x, &wr->req);
}

/* The client broke the ring (its indices, or its response doorbell): stop
 * using it and tell the supervisor, which renews it. */
static void ring_broke(struct worker *w)
{
    if (w->ring_dead)
        return;
    log_error("%s: ring shut down: %s", w->name, ring_server_broken_reason(w->rs));
    w->ring_dead = true;
    worker_send_ring_broken(w, ring_server_broken_reason(w->rs));
}

static void poll_ring(struct worker *w)
{
    struct ring_io *ios[POLL_BATCH];

    while (w->ring_pending && !w->ring_dead && w->state == WORKER_RUNNING) {
        int n = ring_server_poll_requests(w->rs, ios, POLL_BATCH);
        if (n < 0) {
            ring_broke(w);
            return;
        }
        for (int i = 0; i < n; i++)
            if (!limiter_hold(&w->limiter, ios[i], now_ns()))
                submit_io(w, ios[i]);
        if (n == POLL_BATCH)
            continue;
        /* Every slot in flight: the completions will bring us back. */
        if (ring_server_in_flight(w->rs) >= ring_server_ring_size(w->rs))
            return;
        w->ring_pending = ring_server_final_check(w->rs);
    }
}

/* ---- the loop ----------------------------------------------------------- */

static void handle_signal(struct worker *w)
{
    struct signalfd_siginfo si;

    while (read(w->sigfd, &si, sizeof si) == sizeof si) {
#ifdef QCOWD_TEST_HOOKS
        if (si.ssi_signo == SIGUSR1) {
            log_warning("%s: test hook: making a forbidden system call", w->name);
            sandbox_test_forbidden_call();
            continue;
        }
#endif
        log_info("%s: signal %u: stopping", w->name, si.ssi_signo);
        w->state = WORKER_STOPPING;
    }
}

static void dispatch(struct worker *w, int fd)
{
    if (fd == w->aio.efd) {
        aio_reap(&w->aio);
        w->ring_pending = true;     /* slots were freed: look again */
    } else if (fd == w->ring_fds.req_eventfd) {
        w->ring_pending = true;
    } else if (fd == w->sigfd) {
        handle_signal(w);
    } else if (fd == w->ctl_fd) {
        worker_handle_control(w);
    } else if (fd == w->rendezvous_fd) {
        worker_rendezvous_readable(w);
    } else if (fd == limiter_timer_fd(&w->limiter)) {
        limiter_timer_expired(&w->limiter);
    }
}

static void start_held(void *opaque, struct ring_io *io)
{
    submit_io(opaque, io);
}

/* Held requests start when their turn comes, and all at once when the
 * worker stops; a pause keeps them held (they have not started). */
static void release_held(struct worker *w)
{
    if (w->state == WORKER_RUNNING || w->state == WORKER_STOPPING)
        limiter_release(&w->limiter, now_ns(), w->state == WORKER_STOPPING, start_held, w);
}

static bool finished(const struct worker *w)
{
    return w->state == WORKER_STOPPING && executor_idle(w->x) && aio_idle(&w->aio) &&
           limiter_idle(&w->limiter);
}

static int drain_and_close(struct worker *w)
{
    int r;

    ring_server_push_responses(w->rs);
    ring_server_shutdown(w->rs);
    qc_clear_error();
    r = image_close(w->img);
    w->img = NULL;
    release_image_lock(w);
    if (r < 0)
        log_error("%s: final flush failed: %s", w->name, qc_error_message(r));
    else
        log_info("%s: stopped cleanly", w->name);
    worker_send_stopped(w, r);
    return r;
}

/* Before sleeping, a short busy-wait for the next request or completion
 * (busypoll.c); when one comes, take it at once and only glance at epoll. */
static int wait_timeout(struct worker *w)
{
    bool ring_open = w->state == WORKER_RUNNING && !w->ring_dead;

    if (worker_commit_busy(w))
        return 0;
    w->poll.rs = ring_open ? w->rs : NULL;
    if (!busy_poll_for_work(&w->poll))
        return aio_idle(&w->aio) ? TICK_MS : 100;
    aio_reap(&w->aio);
    w->ring_pending = true;
    return 0;
}

int worker_run(struct worker *w)
{
    struct epoll_event ev[8];
    const char *failed = executor_flush_error(w->x);

    /* Inherited from a worker that died after a flush failed. */
    if (failed) {
        log_error("%s: %s; only reads are served", w->name, failed);
        worker_send_io_error(w, failed);
    }

    while (!finished(w)) {
        int n = epoll_wait(w->epfd, ev, 8, wait_timeout(w));

        if (n < 0 && errno != EINTR)
            return -errno;
        /* A client that reads its own request doorbell steals the wake-up:
         * its requests wait for the next look, at the latest a tick. */
        if (n == 0)
            w->ring_pending = true;
        for (int i = 0; i < n; i++)
            dispatch(w, ev[i].data.fd);
        worker_orphan_tick(w);
        poll_ring(w);
        worker_commit_step(w);
        release_held(w);
        executor_tick(w->x);
        /* A pause waits for the executor to go idle, whatever finished
         * last: a request, a writeback or a growth ahead of need. */
        if (w->state == WORKER_PAUSING)
            worker_quiesce(w);
        /* Answer first: the client can post more while the disk works. */
        ring_server_push_responses(w->rs);
        if (ring_server_is_broken(w->rs))
            ring_broke(w);
        aio_submit(&w->aio);
        if (aio_has_extra(&w->aio))
            aio_release_idle(&w->aio, now_ns());
    }
    return drain_and_close(w);
}
