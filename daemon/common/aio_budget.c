#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "aio_budget.h"

static const char *ledger_path(void)
{
    const char *p = getenv(AIO_LEDGER_ENV);

    return p && *p ? p : NULL;
}

/* The files are opened once and read (or locked) again in place: a worker
 * may open no file once it serves (daemon/worker/sandbox.h), and
 * aio_budget_prepare() opens them before that. */
static int kept_open(const char *path, int flags)
{
    static struct {
        const char *path;
        int fd;
    } kept[3];

    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        if (kept[i].path && strcmp(kept[i].path, path) == 0)
            return kept[i].fd;
        if (!kept[i].path) {
            int fd = open(path, flags | O_CLOEXEC);
            if (fd < 0)
                return -errno;
            kept[i].path = path;
            kept[i].fd = fd;
            return fd;
        }
    }
    return -EMFILE;
}

static int read_number(const char *path, uint64_t *out)
{
    char buf[32];
    int fd = kept_open(path, O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return fd;
    n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return n < 0 ? -errno : -EINVAL;
    buf[n] = '\0';
    return sscanf(buf, "%" SCNu64, out) == 1 ? 0 : -EINVAL;
}

static int ledger_parse(int fd, struct aio_budget *b)
{
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);

    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return sscanf(buf, "%" SCNu64 " %" SCNu64, &b->max, &b->used) == 2 ? 0 : -EINVAL;
}

static int ledger_write(int fd, const struct aio_budget *b)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64 "\n", b->max, b->used);

    if (pwrite(fd, buf, (size_t)n, 0) != n || ftruncate(fd, n) < 0)
        return -EIO;
    return 0;
}

/* The ledger, locked until ledger_close(). */
static int ledger_open(const char *path)
{
    int fd = kept_open(path, O_RDWR);

    if (fd < 0)
        return fd;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return -errno;
    return fd;
}

static void ledger_close(int fd)
{
    flock(fd, LOCK_UN);
}

int aio_budget_prepare(void)
{
    struct aio_budget b;

    return aio_budget_read(&b);
}

int aio_budget_read(struct aio_budget *b)
{
    int fd, r;

    memset(b, 0, sizeof *b);
    if (!(b->ledger = ledger_path())) {
        if ((r = read_number("/proc/sys/fs/aio-max-nr", &b->max)) < 0)
            return r;
        return read_number("/proc/sys/fs/aio-nr", &b->used);
    }
    if ((fd = ledger_open(b->ledger)) < 0)
        return fd;
    r = ledger_parse(fd, b);
    ledger_close(fd);
    return r;
}

unsigned aio_budget_growth_room(void)
{
    struct aio_budget b;
    uint64_t reserve, free_slots;

    if (aio_budget_read(&b) < 0 || b.used >= b.max)
        return 0;
    reserve = b.max / AIO_GROWTH_RESERVE_SHARE;
    free_slots = b.max - b.used;
    if (free_slots <= reserve)
        return 0;
    free_slots -= reserve;
    return free_slots > UINT32_MAX ? UINT32_MAX : (unsigned)free_slots;
}

/* Add delta (possibly negative) to the ledger's USED; with check, refuse
 * to pass MAX. */
static int ledger_add(const char *path, int64_t delta, bool check)
{
    struct aio_budget b = { 0 };
    int fd = ledger_open(path), r;

    if (fd < 0)
        return fd;
    if ((r = ledger_parse(fd, &b)) == 0) {
        if (check && b.used + (uint64_t)delta > b.max)
            r = -EAGAIN;
        else if (delta < 0 && (uint64_t)-delta > b.used)
            b.used = 0;
        else
            b.used += (uint64_t)delta;
        if (r == 0)
            r = ledger_write(fd, &b);
    }
    ledger_close(fd);
    return r;
}

int aio_budget_take(unsigned n)
{
    const char *path = ledger_path();

    return path ? ledger_add(path, n, true) : 0;
}

void aio_budget_give(unsigned n)
{
    const char *path = ledger_path();

    if (path && n)
        ledger_add(path, -(int64_t)n, false);
}

void aio_budget_describe_refusal(char *buf, size_t len, unsigned need)
{
    struct aio_budget b;

    if (aio_budget_read(&b) < 0) {
        snprintf(buf, len, "aio-max-nr reached: the kernel refused %u more AIO slots: "
                 "raise fs.aio-max-nr (sysctl fs.aio-max-nr)", need);
        return;
    }
    snprintf(buf, len, "aio-max-nr reached: %" PRIu64 " of %" PRIu64 " kernel AIO slots are in "
             "use (%s) and an image needs %u: raise fs.aio-max-nr (e.g. sysctl "
             "fs.aio-max-nr=%" PRIu64 ")", b.used, b.max,
             b.ledger ? "the test ledger " AIO_LEDGER_ENV : "fs.aio-nr of fs.aio-max-nr", need,
             b.max * 2 > b.max ? b.max * 2 : b.max);
}
