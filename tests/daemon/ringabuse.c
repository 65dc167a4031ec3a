/* A hostile ring client against a real worker: takes the ring of an
 * attached image from qcowd and scribbles on it — random request entries,
 * producer indices far ahead or behind, garbage in the qcowd page — ringing
 * the doorbell each time.  The test around it checks that the worker and
 * the daemon survive and that other images are untouched.
 *
 *   ringabuse SOCKET NAME ROUNDS SEED [soft]
 *
 * With "soft", only abuse that keeps the ring alive: garbage requests
 * (answered with errors) and a trashed qcowd page, each round waiting for
 * the worker to answer what it was given.  Without it, the rounds include
 * indices that break the ring, and the ring is held until the worker has
 * marked it broken (30 s at most).
 *
 *   ringabuse SOCKET NAME rsp-block
 *
 * Makes the response eventfd blocking and saturates it (both are properties
 * of the open file description the worker shares), then posts a valid
 * request: the worker must not block ringing the doorbell; it marks the
 * ring broken.  Exits 0 once the qcowd page says so, 1 if it does not
 * within 30 s (a worker stuck in write()).
 *
 *   ringabuse SOCKET NAME req-block ROUNDS
 *
 * Makes the request eventfd blocking, saturates it, and drains it from a
 * thread blocked in read() while posting ROUNDS valid requests, ringing
 * for each: a worker that reads the doorbell after epoll woke it finds it
 * empty and blocks.  Stops at the first request left unanswered for 1 s
 * (the drain stole the wake-up) and exits 0, with the fd left as it is;
 * the test then checks that the worker still answers its supervisor.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "qcowring.h"
#include "../lib/xorshift.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    return xorshift64(&rng);
}

static int take_ring(const char *path, const char *name, int fds[3])
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char buf[65536], req[256];
    unsigned nfds = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return -errno;
    if (recv(fd, buf, sizeof buf, 0) <= 0)  /* the greeting */
        return -EPROTO;
    snprintf(req, sizeof req, "{\"execute\":\"connect\",\"arguments\":{\"name\":\"%s\"}}\n", name);
    if (send(fd, req, strlen(req), 0) < 0)
        return -errno;
    ssize_t n = fdpass_recv(fd, buf, sizeof buf - 1, fds, 3, &nfds);
    if (n <= 0 || nfds != 3 || strncmp(buf, "{\"return\"", 9) != 0)
        return -EPROTO;
    return fd;              /* keep it open: it holds the ring */
}

static void scribble(uint8_t *ring, size_t ring_bytes, uint8_t *info, bool soft)
{
    static const uint64_t soft_modes[] = { 0, 3, 4 };
    volatile uint32_t *req_prod = (volatile uint32_t *)ring;
    uint64_t how = soft ? soft_modes[rnd() % 3] : rnd() % 6;

    switch (how) {
    case 0: /* random bytes over the request entries */
        for (size_t i = 64; i < ring_bytes; i += 8) {
            uint64_t v = rnd();
            memcpy(ring + i, &v, 8);
        }
        *req_prod += (uint32_t)(rnd() % 8);
        break;
    case 1: *req_prod += 100000 + (uint32_t)(rnd() % 1000); break;     /* far ahead */
    case 2: *req_prod -= 1 + (uint32_t)(rnd() % 1000); break;          /* behind */
    case 3: memset(info, (int)rnd(), 64); break;                      /* the qcowd page */
    case 4: /* plausible headers, hostile fields */
        for (size_t i = 64; i + 112 <= ring_bytes; i += 112) {
            ring[i] = (uint8_t)(rnd() % 8);          /* operation */
            ring[i + 1] = (uint8_t)rnd();            /* nr_segments */
            uint64_t sector = rnd();
            memcpy(ring + i + 16, &sector, 8);
        }
        *req_prod += 4;
        break;
    default: *req_prod = (uint32_t)rnd(); break;
    }
}

/* Until rsp_prod reaches req_prod (every request answered), up to 1 s. */
static void wait_answered(uint8_t *ring)
{
    volatile uint32_t *req_prod = (volatile uint32_t *)ring;
    volatile uint32_t *rsp_prod = (volatile uint32_t *)(ring + 8);

    for (int i = 0; i < 1000 && *rsp_prod != *req_prod; i++)
        usleep(1000);
}

/* ---- doorbell abuse ------------------------------------------------------ */

struct ring_view {
    uint8_t *base;
    struct qcowring_sring *sring;
    uint32_t entries;
    uint64_t next_id;
};

static void view_ring(uint8_t *base, struct ring_view *v)
{
    struct qcowring_info info;

    memcpy(&info, base, sizeof info);
    v->base = base;
    v->sring = (struct qcowring_sring *)(base + QCOWRING_PAGE_SIZE);
    v->entries = qcowring_ring_entries(info.ring_page_order <= QCOWRING_MAX_RING_PAGE_ORDER
                                       ? info.ring_page_order : 0);
}

/* A valid one-sector read of sector 0 into data page 0, a response doorbell
 * asked for, and the request doorbell rung. */
static uint32_t post_read(struct ring_view *v, int req_fd)
{
    struct qcowring_request r = { .operation = QCOWRING_OP_READ, .nr_segments = 1,
                                  .id = ++v->next_id,
                                  .seg[0] = { .page = 0, .first_sect = 0, .last_sect = 0 } };
    uint32_t prod = qcowring_load_acquire(&v->sring->req_prod);
    uint64_t one = 1;

    memcpy(&v->sring->ring[prod & (v->entries - 1)].req, &r, sizeof r);
    qcowring_store_release(&v->sring->rsp_event, qcowring_load_acquire(&v->sring->rsp_prod) + 1);
    qcowring_store_release(&v->sring->req_prod, prod + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    (void)!write(req_fd, &one, sizeof one);
    return prod + 1;
}

/* Empty the counter first (the worker never reads the request doorbell),
 * or the saturating write would block. */
static bool make_blocking_and_saturate(int fd)
{
    uint64_t most = UINT64_C(0xfffffffffffffffe), count;
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0 && read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
        flags = -1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        perror("ringabuse: fcntl");
        return false;
    }
    return write(fd, &most, sizeof most) == sizeof most;
}

/* Until cond(v) holds, polling every ms, for up to ms milliseconds. */
static bool wait_for(struct ring_view *v, bool (*cond)(struct ring_view *, uint32_t), uint32_t arg,
                     int ms)
{
    for (int i = 0; i < ms; i++) {
        if (cond(v, arg))
            return true;
        usleep(1000);
    }
    return cond(v, arg);
}

static bool ring_broken(struct ring_view *v, uint32_t unused)
{
    (void)unused;
    return __atomic_load_n(&((struct qcowring_info *)v->base)->server_state, __ATOMIC_ACQUIRE) ==
           QCOWRING_STATE_BROKEN;
}

static bool answered(struct ring_view *v, uint32_t prod)
{
    return qcowring_load_acquire(&v->sring->rsp_prod) == prod;
}

static int abuse_rsp_doorbell(struct ring_view *v, const int fds[3])
{
    if (!make_blocking_and_saturate(fds[2]))
        return 1;
    post_read(v, fds[1]);
    if (!wait_for(v, ring_broken, 0, 30000)) {
        fprintf(stderr, "ringabuse: the worker did not mark the ring broken in 30 s\n");
        return 1;
    }
    return 0;
}

static void *drain(void *arg)
{
    int fd = *(int *)arg;
    uint64_t count;

    for (;;)
        if (read(fd, &count, sizeof count) < 0 && errno != EINTR)
            return NULL;
}

static int abuse_req_doorbell(struct ring_view *v, const int fds[3], long rounds)
{
    pthread_t t;
    long i;

    if (!make_blocking_and_saturate(fds[1]) || pthread_create(&t, NULL, drain, (void *)&fds[1]))
        return 1;
    for (i = 0; i < rounds; i++)
        if (!wait_for(v, answered, post_read(v, fds[1]), 1000))
            break;
    printf("%ld of %ld requests answered\n", i, rounds);
    return 0;
}

/* The original abuse: ROUNDS rounds of scribbling, ringing each time. */
static void scribble_rounds(uint8_t *base, int req_fd, char **argv, bool soft)
{
    rng = strtoull(argv[4], NULL, 0) | 1;
    for (long i = 0; i < atol(argv[3]); i++) {
        uint64_t one = 1;
        scribble(base + QCOWRING_PAGE_SIZE, QCOWRING_PAGE_SIZE, base, soft);
        (void)!write(req_fd, &one, sizeof one);
        if (soft)
            wait_answered(base + QCOWRING_PAGE_SIZE);
        else if (i % 16 == 0)
            usleep(1000);
    }
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int fds[3] = { -1, -1, -1 }, ctl;
    struct stat st;
    struct ring_view view = { 0 };
    uint8_t *base;
    int r = 0;

    bool soft = argc == 6 && strcmp(argv[5], "soft") == 0;
    bool rsp_block = argc == 4 && strcmp(argv[3], "rsp-block") == 0;
    bool req_block = argc == 5 && strcmp(argv[3], "req-block") == 0;

    if (argc != 5 && !soft && !rsp_block) {
        fprintf(stderr, "usage: ringabuse SOCKET NAME ROUNDS SEED [soft]\n"
                        "       ringabuse SOCKET NAME rsp-block\n"
                        "       ringabuse SOCKET NAME req-block ROUNDS\n");
        return 2;
    }
    if ((ctl = take_ring(argv[1], argv[2], fds)) < 0 || fstat(fds[0], &st) < 0) {
        fprintf(stderr, "ringabuse: cannot take the ring of %s\n", argv[2]);
        return 1;
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    if (base == MAP_FAILED)
        return 1;
    view_ring(base, &view);
    alarm(60);                  /* never hang the test that runs us */
    if (rsp_block)
        r = abuse_rsp_doorbell(&view, fds);
    else if (req_block)
        r = abuse_req_doorbell(&view, fds, atol(argv[4]));
    else
        scribble_rounds(base, fds[1], argv, soft);
    /* Hold the ring until the worker has seen the abuse that breaks it: a
     * client that lets go at once gets the ring renewed for its damaged
     * qcowd page, maybe before a busy worker even looked. */
    if (!soft && !rsp_block && !req_block)
        wait_for(&view, ring_broken, 0, 30000);
    /* Exit with the drain thread still blocked in read(); closing the
     * control connection gives the ring back. */
    fflush(stdout);
    close(ctl);
    _exit(r);
}
