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
 * the worker to answer what it was given.
 */
#include "config.h"

#include <errno.h>
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

int main(int argc, char **argv)
{
    int fds[3], ctl;
    struct stat st;
    uint8_t *base;

    bool soft = argc == 6 && strcmp(argv[5], "soft") == 0;

    if (argc != 5 && !soft) {
        fprintf(stderr, "usage: ringabuse SOCKET NAME ROUNDS SEED [soft]\n");
        return 2;
    }
    rng = strtoull(argv[4], NULL, 0) | 1;
    if ((ctl = take_ring(argv[1], argv[2], fds)) < 0 || fstat(fds[0], &st) < 0) {
        fprintf(stderr, "ringabuse: cannot take the ring of %s\n", argv[2]);
        return 1;
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    if (base == MAP_FAILED)
        return 1;
    for (long i = 0; i < atol(argv[3]); i++) {
        uint64_t one = 1;
        scribble(base + QCOWRING_PAGE_SIZE, QCOWRING_PAGE_SIZE, base, soft);
        (void)!write(fds[1], &one, sizeof one);
        if (soft)
            wait_answered(base + QCOWRING_PAGE_SIZE);
        else if (i % 16 == 0)
            usleep(1000);
    }
    munmap(base, (size_t)st.st_size);
    close(ctl);
    return 0;
}
