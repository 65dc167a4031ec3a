/* libqcowring against ring_server + an in-memory disk, in two processes: the
 * parent creates the ring and serves it, the child receives the three fds
 * over a unix socket (SCM_RIGHTS) and drives it with the synchronous and
 * asynchronous interfaces at queue depths 1..32 and sizes 512 B..1 MiB+,
 * checking every read against a shadow copy.  At the end the child sends a
 * hash of its shadow, which must match the server's disk.  Also: the
 * client's validation of bad qcowd pages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qcowring-client.h"
#include "ring_test.h"
#include "serve.h"
#include "../lib/xorshift.h"

#define DISK_SEED 7

struct config {
    const char *name;
    struct qcowring_params params;
};

static const struct config configs[] = {
    { "indirect", { .capacity_sectors = 131072, .ring_page_order = 0,
                    .data_pages = 32 * 257 + 64, .max_indirect_segments = 256,
                    .features = QCOWRING_F_FLUSH | QCOWRING_F_BARRIER |
                                QCOWRING_F_DISCARD | QCOWRING_F_INDIRECT } },
    { "direct", { .capacity_sectors = 65536, .ring_page_order = 2,
                  .data_pages = 128 * 11 + 16,
                  .features = QCOWRING_F_FLUSH | QCOWRING_F_DISCARD } },
    { "read-only", { .capacity_sectors = 2048, .ring_page_order = 0, .data_pages = 64,
                     .features = QCOWRING_F_READ_ONLY | QCOWRING_F_FLUSH } },
};

/* ------------------------------------------------------------------------ */
/* Passing the fds                                                          */
/* ------------------------------------------------------------------------ */

static void send_fds(int sock, const struct qcowring_fds *fds)
{
    int list[3] = { fds->memfd, fds->req_eventfd, fds->rsp_eventfd };
    char ctl[CMSG_SPACE(sizeof(list))];
    char byte = 'R';
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                          .msg_controllen = sizeof(ctl) };
    struct cmsghdr *cm;

    memset(ctl, 0, sizeof(ctl));
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(list));
    memcpy(CMSG_DATA(cm), list, sizeof(list));
    CHECK_EQ(sendmsg(sock, &msg, 0), 1);
}

static void recv_fds(int sock, struct qcowring_fds *fds)
{
    int list[3];
    char ctl[CMSG_SPACE(sizeof(list))];
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                          .msg_controllen = sizeof(ctl) };
    struct cmsghdr *cm;

    CHECK_EQ(recvmsg(sock, &msg, MSG_CMSG_CLOEXEC), 1);
    cm = CMSG_FIRSTHDR(&msg);
    CHECK(cm && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(list)));
    memcpy(list, CMSG_DATA(cm), sizeof(list));
    fds->memfd = list[0];
    fds->req_eventfd = list[1];
    fds->rsp_eventfd = list[2];
}

/* ------------------------------------------------------------------------ */
/* The client (child process)                                               */
/* ------------------------------------------------------------------------ */

struct client {
    struct qcowring *ring;
    struct qcowring_geometry geo;
    struct fake_disk shadow;       /* what the disk must contain */
    unsigned seed;
    /* async bookkeeping, by request: disk range and direction */
    uint64_t busy_off[256], busy_len[256];
    bool busy[256];
    unsigned outstanding;          /* started, not yet reaped */
};

static uint64_t rnd64(struct client *c)
{
    return ((uint64_t)rand_r(&c->seed) << 31) ^ (uint64_t)rand_r(&c->seed);
}

static void fill_random(struct client *c, uint8_t *p, size_t len)
{
    uint64_t x = rnd64(c) | 1;

    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)xorshift64(&x);
}

/* A length in [512, max], a multiple of 512, biased to small sizes. */
static uint64_t random_len(struct client *c, uint64_t max)
{
    uint64_t sectors = max / 512, pick;

    switch (rand_r(&c->seed) % 3) {
    case 0: pick = 1 + rnd64(c) % (sectors < 16 ? sectors : 16); break;
    case 1: pick = 1 + rnd64(c) % (sectors < 256 ? sectors : 256); break;
    default: pick = 1 + rnd64(c) % sectors; break;
    }
    return pick * 512;
}

static uint64_t disk_bytes(const struct client *c)
{
    return c->geo.capacity_sectors * 512;
}

static void sync_roundtrip(struct client *c, uint64_t len, uint64_t off)
{
    uint8_t *buf = malloc(len), *back = malloc(len);

    CHECK(buf && back);
    fill_random(c, buf, len);
    CHECK_EQ(qcowring_pwrite(c->ring, buf, len, off), 0);
    memcpy(c->shadow.bytes + off, buf, len);
    memset(back, 0, len);
    CHECK_EQ(qcowring_pread(c->ring, back, len, off), 0);
    CHECK(memcmp(back, buf, len) == 0);
    free(buf);
    free(back);
}

static void test_sync(struct client *c)
{
    static const uint64_t sizes[] = { 512, 1024, 4096, 4608, 45056, 45568, 65536,
                                      131072, 1 << 20, (1 << 20) + 512, 3 << 20 };
    uint8_t small[4096];

    CHECK_EQ(qcowring_set_spin(c->ring, 1000001), -EINVAL);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t len = sizes[i];
        if (len > disk_bytes(c))
            continue;
        /* Every waiting strategy: sleep at once, the default, a long spin. */
        CHECK_EQ(qcowring_set_spin(c->ring, (unsigned[]){ 0, 50, 1000 }[i % 3]), 0);
        sync_roundtrip(c, len, (rnd64(c) % ((disk_bytes(c) - len) / 512 + 1)) * 512);
        sync_roundtrip(c, len, disk_bytes(c) - len);
    }
    CHECK_EQ(qcowring_pread(c->ring, small, 512, disk_bytes(c)), -EINVAL);
    CHECK_EQ(qcowring_pread(c->ring, small, 1024, disk_bytes(c) - 512), -EINVAL);
    CHECK_EQ(qcowring_pread(c->ring, small, 100, 0), -EINVAL);
    CHECK_EQ(qcowring_pread(c->ring, small, 512, 7), -EINVAL);
    CHECK_EQ(qcowring_pread(c->ring, small, 0, 0), 0);
}

static void test_flush_discard(struct client *c)
{
    uint64_t len = 64 * 512, off = disk_bytes(c) / 2;

    CHECK_EQ(qcowring_flush(c->ring), (c->geo.features & QCOWRING_F_FLUSH) ? 0 : -EOPNOTSUPP);
    if (!(c->geo.features & QCOWRING_F_DISCARD)) {
        CHECK_EQ(qcowring_discard(c->ring, off, len), -EOPNOTSUPP);
        return;
    }
    CHECK_EQ(qcowring_discard(c->ring, off, len), 0);
    memset(c->shadow.bytes + off, 0, len);
    CHECK_EQ(qcowring_discard(c->ring, disk_bytes(c), 512), -EINVAL);
    CHECK_EQ(qcowring_discard(c->ring, 0, 0), -EINVAL);
}

/* Does [off, off+len) overlap a request in flight? */
static bool overlaps(const struct client *c, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < c->geo.ring_entries && i < 256; i++)
        if (c->busy[i] && off < c->busy_off[i] + c->busy_len[i] && c->busy_off[i] < off + len)
            return true;
    return false;
}

struct async_op {
    struct client *c;
    unsigned tag;
    int op;
    uint64_t off, len;
    struct qcowring_req *req;
};

static void finish_op(struct client *c, const struct qcowring_completion *done)
{
    struct async_op *a = done->user_data;

    CHECK_EQ(done->result, 0);
    CHECK(done->req == a->req && done->op == a->op);
    if (a->op == QCOWRING_OP_READ)
        CHECK(memcmp(qcowring_req_buf(a->req), c->shadow.bytes + a->off, a->len) == 0);
    c->busy[a->tag] = false;
    c->outstanding--;
    qcowring_req_free(c->ring, a->req);
    free(a);
}

static void finish_cb(void *opaque, const struct qcowring_completion *done)
{
    finish_op(opaque, done);
}

static unsigned free_tag(const struct client *c)
{
    for (unsigned i = 0; i < 256; i++)
        if (!c->busy[i])
            return i;
    return 256;
}

static int pick_op(struct client *c)
{
    unsigned r = (unsigned)rand_r(&c->seed) % 20;
    bool ro = c->geo.features & QCOWRING_F_READ_ONLY;

    if (r == 0 && (c->geo.features & QCOWRING_F_FLUSH))
        return QCOWRING_OP_FLUSH_DISKCACHE;
    if (r == 1 && (c->geo.features & QCOWRING_F_DISCARD))
        return QCOWRING_OP_DISCARD;
    return (r % 2 || ro) ? QCOWRING_OP_READ : QCOWRING_OP_WRITE;
}

/* Choose a range that overlaps nothing in flight. */
static bool pick_range(struct client *c, uint64_t max_len, uint64_t *off, uint64_t *len)
{
    for (int tries = 0; tries < 64; tries++) {
        *len = random_len(c, max_len);
        *off = (rnd64(c) % ((disk_bytes(c) - *len) / 512 + 1)) * 512;
        if (!overlaps(c, *off, *len))
            return true;
    }
    return false;
}

/* Start one random operation; false if the ring has no room right now. */
static bool start_op(struct client *c)
{
    struct async_op *a = calloc(1, sizeof(*a));
    uint64_t max = c->geo.max_request_bytes < (1u << 20) ? c->geo.max_request_bytes : 1u << 20;
    int err;

    CHECK(a);
    a->op = pick_op(c);
    a->tag = free_tag(c);
    if (a->tag == 256 || !pick_range(c, max, &a->off, &a->len)) {
        free(a);
        return false;
    }
    if (a->op == QCOWRING_OP_FLUSH_DISKCACHE)
        a->off = a->len = 0;
    err = qcowring_req_alloc(c->ring, a->op == QCOWRING_OP_DISCARD ? 0 : a->len, &a->req);
    if (err == -EAGAIN) {
        free(a);
        return false;
    }
    CHECK_EQ(err, 0);
    if (a->op == QCOWRING_OP_WRITE) {
        fill_random(c, qcowring_req_buf(a->req), a->len);
        memcpy(c->shadow.bytes + a->off, qcowring_req_buf(a->req), a->len);
    } else if (a->op == QCOWRING_OP_DISCARD) {
        memset(c->shadow.bytes + a->off, 0, a->len);
    }
    CHECK_EQ(qcowring_submit(c->ring, a->req, a->op, a->off, a->len, a), 0);
    c->busy[a->tag] = true;
    c->outstanding++;
    c->busy_off[a->tag] = a->off;
    c->busy_len[a->tag] = a->len;
    return true;
}

/* Wait with qcowring_wait()+qcowring_reap(), or poll()+qcowring_reap_cb()
 * after a kick in two steps (publish, then the doorbell only if asked for:
 * the server sleeps on it, so a wrong answer leaves the poll() empty). */
static void reap_some(struct client *c, bool use_poll)
{
    struct qcowring_completion done[8];
    int n;

    if (use_poll) {
        struct pollfd pfd = { .fd = qcowring_fd(c->ring), .events = POLLIN };
        int notify = qcowring_publish(c->ring);
        CHECK(notify == 0 || notify == 1);
        if (notify)
            CHECK_EQ(qcowring_ring_doorbell(c->ring), 0);
        CHECK_EQ(qcowring_publish(c->ring), 0);   /* nothing staged any more */
        n = qcowring_reap_cb(c->ring, finish_cb, c);
        CHECK(n >= 0);
        if (n == 0)
            CHECK(poll(&pfd, 1, 10000) == 1);
        return;
    }
    CHECK(qcowring_wait(c->ring, 10000) > 0);
    n = qcowring_reap(c->ring, done, 8);
    CHECK(n > 0);
    for (int i = 0; i < n; i++)
        finish_op(c, &done[i]);
}

static void test_async(struct client *c, unsigned depth, unsigned ops, bool use_poll)
{
    unsigned started = 0;

    while (started < ops || c->outstanding) {
        while (started < ops && c->outstanding < depth && start_op(c))
            started++;
        CHECK(c->outstanding > 0);
        CHECK(qcowring_in_flight(c->ring) <= c->outstanding);
        reap_some(c, use_poll);
    }
    CHECK_EQ(qcowring_in_flight(c->ring), 0);
    CHECK_EQ(qcowring_wait(c->ring, 0), 0);
}

static void test_async_errors(struct client *c)
{
    struct qcowring_req *q;

    CHECK_EQ(qcowring_req_alloc(c->ring, c->geo.max_request_bytes + 1, &q), -E2BIG);
    CHECK_EQ(qcowring_req_alloc(c->ring, 4096, &q), 0);
    CHECK_EQ(qcowring_submit(c->ring, q, QCOWRING_OP_READ, 0, 8192, NULL), -EINVAL);
    CHECK_EQ(qcowring_submit(c->ring, q, QCOWRING_OP_READ, 0, 0, NULL), -EINVAL);
    CHECK_EQ(qcowring_submit(c->ring, q, 99, 0, 512, NULL), -EINVAL);
    if (!(c->geo.features & QCOWRING_F_BARRIER))
        CHECK_EQ(qcowring_submit(c->ring, q, QCOWRING_OP_WRITE_BARRIER, 0, 0, NULL), -EOPNOTSUPP);
    if (c->geo.features & QCOWRING_F_READ_ONLY)
        CHECK_EQ(qcowring_submit(c->ring, q, QCOWRING_OP_WRITE, 0, 512, NULL), -EROFS);
    qcowring_req_free(c->ring, q);
    /* Every slot can be taken, then none. */
    struct qcowring_req *all[257];
    unsigned n = 0;
    while (n < 257 && qcowring_req_alloc(c->ring, 0, &all[n]) == 0)
        n++;
    CHECK_EQ(n, c->geo.ring_entries);
    CHECK_EQ(qcowring_req_alloc(c->ring, 0, &q), -EAGAIN);
    while (n)
        qcowring_req_free(c->ring, all[--n]);
}

static void check_geometry(const struct client *c, const struct qcowring_params *p)
{
    CHECK_EQ(c->geo.capacity_sectors, p->capacity_sectors);
    CHECK_EQ(c->geo.features, p->features | QCOWRING_F_PERSISTENT);
    CHECK_EQ(c->geo.ring_entries, 32u << p->ring_page_order);
    CHECK_EQ(c->geo.data_pages, p->data_pages);
    CHECK_EQ(c->geo.max_indirect_segments, p->max_indirect_segments);
    CHECK_EQ(c->geo.max_request_bytes,
             (p->max_indirect_segments ? p->max_indirect_segments : 11) * 4096u);
    CHECK_EQ(c->geo.version_major, 1);
}

/* Close and open again (indices no longer 0): the ring keeps working; the
 * descriptors were never the library's.  With a request in flight, the ring
 * cannot be taken over until it is answered. */
static void reopen(struct client *c, struct qcowring_fds *fds)
{
    struct qcowring *other;
    struct qcowring_req *q;
    uint8_t buf[1024];

    CHECK_EQ(qcowring_req_alloc(c->ring, 512, &q), 0);
    CHECK_EQ(qcowring_submit(c->ring, q, QCOWRING_OP_READ, 0, 512, NULL), 0);
    CHECK_EQ(qcowring_open_fds(fds->memfd, fds->req_eventfd, fds->rsp_eventfd, &other), 0);
    qcowring_close(other);       /* staged, not yet published: still idle */
    CHECK_EQ(qcowring_kick(c->ring), 0);
    int err = qcowring_open_fds(fds->memfd, fds->req_eventfd, fds->rsp_eventfd, &other);
    CHECK(err == -EBUSY || err == 0);  /* -EBUSY unless already answered */
    if (err == 0)
        qcowring_close(other);
    CHECK_EQ(qcowring_wait(c->ring, 10000), 1);
    qcowring_close(c->ring);
    CHECK_EQ(qcowring_open_fds(fds->memfd, fds->req_eventfd, fds->rsp_eventfd, &c->ring), 0);
    qcowring_close_fds(fds);
    CHECK_EQ(qcowring_pread(c->ring, buf, sizeof(buf), 0), 0);
    CHECK(memcmp(buf, c->shadow.bytes, sizeof(buf)) == 0);
}

static void client_main(int sock, const struct config *cfg)
{
    struct client c = { .seed = 99 };
    struct qcowring_fds fds;
    uint64_t hash;
    bool ro = cfg->params.features & QCOWRING_F_READ_ONLY;

    recv_fds(sock, &fds);
    CHECK_EQ(qcowring_open_fds(fds.memfd, fds.req_eventfd, fds.rsp_eventfd, &c.ring), 0);
    qcowring_get_geometry(c.ring, &c.geo);
    check_geometry(&c, &cfg->params);
    CHECK_EQ(fake_disk_init(&c.shadow, disk_bytes(&c), DISK_SEED), 0);
    if (!ro)
        test_sync(&c);
    else
        CHECK_EQ(qcowring_pwrite(c.ring, c.shadow.bytes, 512, 0), -EROFS);
    test_flush_discard(&c);
    test_async_errors(&c);
    for (unsigned depth = 1; depth <= 32 && depth <= c.geo.ring_entries; depth *= 2)
        test_async(&c, depth, 150, depth & 0x2a);
    test_async(&c, c.geo.ring_entries, 300, false);
    /* Everything read back in one call (split into many requests). */
    uint8_t *all = malloc(disk_bytes(&c));
    CHECK(all);
    CHECK_EQ(qcowring_pread(c.ring, all, disk_bytes(&c), 0), 0);
    CHECK(memcmp(all, c.shadow.bytes, disk_bytes(&c)) == 0);
    free(all);
    reopen(&c, &fds);
    hash = fake_disk_hash(&c.shadow);
    CHECK_EQ(write(sock, &hash, sizeof(hash)), sizeof(hash));
    qcowring_close(c.ring);
    fake_disk_destroy(&c.shadow);
}

/* ------------------------------------------------------------------------ */
/* The server (parent process)                                              */
/* ------------------------------------------------------------------------ */

static void run_pair(const struct config *cfg)
{
    struct qcowring_fds fds;
    struct test_server ts;
    struct fake_disk disk;
    uint64_t hash = 0;
    int sv[2], status;
    pid_t pid;

    fprintf(stderr, "client test: %s ring\n", cfg->name);
    CHECK_EQ(qcowring_create(&cfg->params, &fds), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        qcowring_close_fds(&fds);   /* the child gets its copies by message */
        client_main(sv[1], cfg);
        _exit(0);
    }
    close(sv[1]);
    send_fds(sv[0], &fds);
    CHECK_EQ(fake_disk_init(&disk, cfg->params.capacity_sectors * 512, DISK_SEED), 0);
    CHECK_EQ(test_server_open(&ts, &fds, &cfg->params, &disk, 0), 0);
    CHECK_EQ(test_server_run(&ts, sv[0]), 0);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(read(sv[0], &hash, sizeof(hash)), sizeof(hash));
    CHECK_EQ(hash, fake_disk_hash(&disk));
    CHECK(!ring_server_is_broken(ts.rs));
    test_server_close(&ts);
    fake_disk_destroy(&disk);
    qcowring_close_fds(&fds);
    close(sv[0]);
}

/* ------------------------------------------------------------------------ */
/* The client's validation of the qcowd page                                */
/* ------------------------------------------------------------------------ */

typedef void (*corrupt_fn)(struct qcowring_info *info);

static void bad_magic(struct qcowring_info *i) { i->magic[0] = 'X'; }
static void bad_major(struct qcowring_info *i) { i->version_major = 2; }
static void bad_info_size(struct qcowring_info *i) { i->info_size = 64; }
static void bad_page_size(struct qcowring_info *i) { i->page_size = 8192; }
static void bad_order(struct qcowring_info *i) { i->ring_page_order = 9; }
static void bad_entries(struct qcowring_info *i) { i->ring_entries = 64; }
static void bad_ring_offset(struct qcowring_info *i) { i->ring_offset = 0; }
static void data_over_ring(struct qcowring_info *i) { i->data_offset = 4096; }
static void data_unaligned(struct qcowring_info *i) { i->data_offset += 512; }
static void data_too_big(struct qcowring_info *i) { i->data_pages += 1; }
static void data_overflow(struct qcowring_info *i) { i->data_pages = UINT64_MAX / 2; }
static void data_offset_huge(struct qcowring_info *i) { i->data_offset = UINT64_MAX - 4095; }
static void no_data(struct qcowring_info *i) { i->data_pages = 0; }
static void bad_indirect(struct qcowring_info *i) { i->features |= QCOWRING_F_INDIRECT; i->max_indirect_segments = 5; }
static void bad_capacity(struct qcowring_info *i) { i->capacity_sectors = UINT64_MAX; }
static void broken_state(struct qcowring_info *i) { i->server_state = QCOWRING_STATE_BROKEN; }
static void newer_minor(struct qcowring_info *i) { i->version_minor = 7; i->features |= 1ull << 50; }

static int open_corrupted(corrupt_fn corrupt)
{
    struct qcowring_params p = { .capacity_sectors = 64, .data_pages = 4 };
    struct qcowring_fds fds;
    struct qcowring *ring;
    struct qcowring_info *info;
    int err;

    CHECK_EQ(qcowring_create(&p, &fds), 0);
    info = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds.memfd, 0);
    CHECK(info != MAP_FAILED);
    corrupt(info);
    munmap(info, 4096);
    err = qcowring_open_fds(fds.memfd, fds.req_eventfd, fds.rsp_eventfd, &ring);
    if (err == 0)
        qcowring_close(ring);
    qcowring_close_fds(&fds);
    return err;
}

static void test_unsealed_memfd(void)
{
    struct qcowring_params p = { .capacity_sectors = 64, .data_pages = 4 };
    struct qcowring_fds fds;
    struct qcowring *ring;
    size_t size = qcowring_total_size(0, 4);
    int plain = memfd_create("unsealed", MFD_CLOEXEC);
    void *src, *dst;

    CHECK_EQ(qcowring_create(&p, &fds), 0);
    CHECK(plain >= 0 && ftruncate(plain, (off_t)size) == 0);
    src = mmap(NULL, size, PROT_READ, MAP_SHARED, fds.memfd, 0);
    dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, plain, 0);
    CHECK(src != MAP_FAILED && dst != MAP_FAILED);
    memcpy(dst, src, size);
    CHECK_EQ(qcowring_open_fds(plain, fds.req_eventfd, fds.rsp_eventfd, &ring), -EINVAL);
    CHECK_EQ(qcowring_open_fds(fds.req_eventfd, fds.req_eventfd, fds.rsp_eventfd, &ring), -EINVAL);
    munmap(src, size);
    munmap(dst, size);
    close(plain);
    qcowring_close_fds(&fds);
}

static void test_open_validation(void)
{
    static const corrupt_fn einval[] = {
        bad_magic, bad_info_size, bad_page_size, bad_order, bad_entries, bad_ring_offset,
        data_over_ring, data_unaligned, data_too_big, data_overflow, data_offset_huge,
        no_data, bad_indirect, bad_capacity,
    };

    for (size_t i = 0; i < sizeof(einval) / sizeof(einval[0]); i++) {
        int err = open_corrupted(einval[i]);
        if (err != -EINVAL)
            fprintf(stderr, "corruption %zu: got %d\n", i, err);
        CHECK_EQ(err, -EINVAL);
    }
    CHECK_EQ(open_corrupted(bad_major), -EPROTONOSUPPORT);
    CHECK_EQ(open_corrupted(broken_state), -ESHUTDOWN);
    CHECK_EQ(open_corrupted(newer_minor), 0);
    test_unsealed_memfd();
}

/* A capacity the server grows (F_RESIZE): taken when larger, refused when
 * smaller or impossible, and taken by a request past the known end. */
static void test_refresh_capacity(uint64_t features)
{
    struct qcowring_params p = { .capacity_sectors = 64, .data_pages = 4, .features = features };
    struct qcowring_geometry g;
    struct qcowring_fds fds;
    struct qcowring *ring;
    struct qcowring_info *info;
    struct qcowring_req *req;
    bool resize = features & QCOWRING_F_RESIZE;

    CHECK_EQ(qcowring_create(&p, &fds), 0);
    info = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds.memfd, 0);
    CHECK(info != MAP_FAILED);
    CHECK_EQ(qcowring_open_fds(fds.memfd, fds.req_eventfd, fds.rsp_eventfd, &ring), 0);
    CHECK_EQ(qcowring_refresh_capacity(ring), 0);
    info->capacity_sectors = 128;
    CHECK_EQ(qcowring_req_alloc(ring, 4096, &req), 0);
    /* Past the old end: with F_RESIZE the page is read again first. */
    CHECK_EQ(qcowring_submit(ring, req, QCOWRING_OP_READ, 100 * 512, 4096, NULL),
             resize ? 0 : -EINVAL);
    qcowring_get_geometry(ring, &g);
    CHECK_EQ(g.capacity_sectors, resize ? 128u : 64u);
    CHECK_EQ(qcowring_refresh_capacity(ring), 0);
    info->capacity_sectors = 96;
    CHECK_EQ(qcowring_refresh_capacity(ring), resize ? -EPROTO : 0);
    info->capacity_sectors = UINT64_MAX;
    CHECK_EQ(qcowring_refresh_capacity(ring), resize ? -EPROTO : 0);
    info->capacity_sectors = 1024;
    CHECK_EQ(qcowring_refresh_capacity(ring), resize ? 1 : 0);
    qcowring_get_geometry(ring, &g);
    CHECK_EQ(g.capacity_sectors, resize ? 1024u : 64u);
    qcowring_close(ring);
    munmap(info, 4096);
    qcowring_close_fds(&fds);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(300);
    test_open_validation();
    test_refresh_capacity(QCOWRING_F_RESIZE);
    test_refresh_capacity(0);
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
        run_pair(&configs[i]);
    return 0;
}
