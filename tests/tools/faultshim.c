/* Fault injection for the data path, as an LD_PRELOAD shim (never installed).
 *
 *   LD_PRELOAD=tests/tools/.libs/qcowfault.so QCOWD_FAULT=RULE[,RULE...] PROGRAM
 *
 *   RULE  = CALL[@MATCH]:N[+]:ERR
 *   CALL  = open | pread | pwrite | pwritev | fdatasync | fsync | io_submit
 *           | aio-read | aio-write | aio-fdsync
 *   MATCH = a part of the file's path, or O_DIRECT (descriptors opened with it);
 *           only matching calls are counted
 *   N     = the matching call that fails, from 1; N+ fails it and every later one
 *   ERR   = EIO, ENOSPC, EINVAL, EACCES, EAGAIN or a number
 *
 * open/pread/pwrite/pwritev/fdatasync/fsync (and their 64 variants) fail with
 * -1 and errno ERR without running.  io_submit fails whole (libaio returns
 * -ERR) without submitting anything.  aio-* rules count completions that
 * io_getevents() reports for reads, writes (PWRITE, PWRITEV) and fdsyncs: the
 * operation ran, but its event says -ERR, as when the device failed it.
 * libaio's io_submit and io_getevents are interposed by name, which works
 * because programs call them in libaio.so (a dynamic symbol).
 *
 * QCOWD_FAULT_LOG=FILE appends one line per injected fault (tests check that
 * the fault they asked for happened).  QCOWD_FAULT_PROGRAM=NAME limits the
 * shim to processes of that name (e.g. the workers a daemon spawns).
 *
 * A worker's seccomp filter forbids opening files and reading links, so the
 * shim does both first: it opens its log when it loads (while the worker is
 * still root) and, when seccomp_load is called (interposed too), notes the
 * path of every open descriptor; rules with a path then match those notes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum call { C_OPEN, C_PREAD, C_PWRITE, C_PWRITEV, C_FDATASYNC, C_FSYNC, C_IO_SUBMIT,
            C_AIO_READ, C_AIO_WRITE, C_AIO_FDSYNC, C__COUNT };

static const char *const call_names[C__COUNT] = {
    "open", "pread", "pwrite", "pwritev", "fdatasync", "fsync", "io_submit",
    "aio-read", "aio-write", "aio-fdsync",
};

#define MAX_RULES 8

struct rule {
    enum call call;
    char match[128];            /* "" for every call */
    unsigned long nth;
    bool and_later;
    int err;
    unsigned long seen;         /* matching calls so far */
};

static struct rule rules[MAX_RULES];
static unsigned nrules;
static bool active;

#define MAX_NOTED_FDS 1024
static bool sandboxed;                  /* seccomp_load ran: paths come from the notes */
static char *noted_paths[MAX_NOTED_FDS];
static int log_fd = -1;

static int parse_errno(const char *s)
{
    static const struct { const char *name; int err; } names[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EINVAL", EINVAL }, { "EACCES", EACCES },
        { "EAGAIN", EAGAIN },
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].err;
    return atoi(s) > 0 ? atoi(s) : EIO;
}

static void parse_rule(char *text)
{
    struct rule *r = &rules[nrules];
    char *save = NULL;
    char *call = strtok_r(text, ":", &save), *nth = strtok_r(NULL, ":", &save);
    char *err = strtok_r(NULL, ":", &save), *at;

    if (!call || !nth || !err || nrules == MAX_RULES) {
        fprintf(stderr, "qcowfault: bad rule (CALL[@MATCH]:N[+]:ERR)\n");
        return;
    }
    if ((at = strchr(call, '@'))) {
        *at = '\0';
        snprintf(r->match, sizeof r->match, "%s", at + 1);
    }
    for (enum call c = 0; c < C__COUNT; c++)
        if (strcmp(call, call_names[c]) == 0) {
            r->call = c;
            r->nth = strtoul(nth, NULL, 10);
            r->and_later = strchr(nth, '+') != NULL;
            r->err = parse_errno(err);
            nrules++;
            return;
        }
    fprintf(stderr, "qcowfault: unknown call '%s'\n", call);
}

/* openat: the shim interposes open(), and its own log must not count. */
static void open_log(void)
{
    const char *file = getenv("QCOWD_FAULT_LOG");

    if (log_fd < 0 && file)
        log_fd = openat(AT_FDCWD, file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

__attribute__((constructor)) static void load_rules(void)
{
    const char *spec = getenv("QCOWD_FAULT"), *only = getenv("QCOWD_FAULT_PROGRAM");
    char buf[1024], *save = NULL;

    if (!spec || (only && strcmp(only, program_invocation_short_name) != 0))
        return;
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char one[256];
        snprintf(one, sizeof one, "%s", t);
        parse_rule(one);
    }
    active = nrules > 0;
    if (active)
        open_log();     /* now: a worker is soon another user, in a sandbox */
}

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);

    if (!f) {
        fprintf(stderr, "qcowfault: no next %s\n", name);
        abort();
    }
    return f;
}

static bool path_of(int fd, char *path, size_t len)
{
    char link[64];
    ssize_t n;

    if (sandboxed) {
        if (fd < 0 || fd >= MAX_NOTED_FDS || !noted_paths[fd])
            return false;
        snprintf(path, len, "%s", noted_paths[fd]);
        return true;
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if ((n = readlink(link, path, len - 1)) < 0)
        return false;
    path[n] = '\0';
    return true;
}

static bool fd_matches(int fd, const char *match)
{
    char path[4096];
    int flags;

    if (match[0] == '\0')
        return true;
    if (strcmp(match, "O_DIRECT") == 0)
        return (flags = fcntl(fd, F_GETFL)) >= 0 && (flags & O_DIRECT);
    return path_of(fd, path, sizeof path) && strstr(path, match) != NULL;
}

static void log_fault(enum call c, const struct rule *r, const char *what)
{
    if (!sandboxed)
        open_log();
    if (log_fd < 0)
        return;
    dprintf(log_fd, "%s[%d]: %s #%lu%s%s -> %s (%s)\n", program_invocation_short_name,
            (int)getpid(), call_names[c], r->seen, r->match[0] ? " @" : "", r->match,
            strerrorname_np(r->err), what);
}

/* What the filter will forbid, done while it is still allowed. */
static void prepare_for_sandbox(void)
{
    char path[4096];

    open_log();
    for (int fd = 0; fd < MAX_NOTED_FDS; fd++)
        if (path_of(fd, path, sizeof path))
            noted_paths[fd] = strdup(path);
    sandboxed = true;
}

/* libseccomp's, declared here: the shim does not need its headers. */
int seccomp_load(void *ctx);

int seccomp_load(void *ctx)
{
    static int (*real)(void *);

    if (!real)
        real = next("seccomp_load");
    if (active)
        prepare_for_sandbox();
    return real(ctx);
}

/* The error to inject for this call (0: let it run).  path is for open(),
 * fd for the others. */
static int fault(enum call c, int fd, const char *path)
{
    int err = 0;

    if (!active)
        return 0;
    for (unsigned i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (r->call != c || !(path ? strstr(path, r->match) != NULL : fd_matches(fd, r->match)))
            continue;
        r->seen++;
        if (!err && (r->seen == r->nth || (r->and_later && r->seen > r->nth))) {
            err = r->err;
            log_fault(c, r, path ? path : "");
        }
    }
    return err;
}

static int fail(int err)
{
    errno = err;
    return -1;
}

/* ---- plain calls -------------------------------------------------------- */

static int open_common(const char *name, const char *path, int flags, va_list ap)
{
    int (*real)(const char *, int, ...) = next(name);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    int err = fault(C_OPEN, -1, path ? path : "");

    return err ? fail(err) : real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = open_common("open", path, flags, ap);
    va_end(ap);
    return r;
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int r = open_common("open64", path, flags, ap);
    va_end(ap);
    return r;
}

/* With _FORTIFY_SOURCE, an open() whose flags the compiler cannot see is a
 * call to __open_2 (or __open64_2): the worker's are such calls. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

static int open_fortified(const char *name, const char *path, int flags)
{
    int (*real)(const char *, int) = next(name);
    int err = fault(C_OPEN, -1, path ? path : "");

    return err ? fail(err) : real(path, flags);
}

int __open_2(const char *path, int flags)
{
    return open_fortified("__open_2", path, flags);
}

int __open64_2(const char *path, int flags)
{
    return open_fortified("__open64_2", path, flags);
}

#define RW_CALL(name, kind, type, buftype)                                              \
    ssize_t name(int fd, buftype buf, size_t n, type off)                               \
    {                                                                                   \
        static ssize_t (*real)(int, buftype, size_t, type);                             \
        int err = fault(kind, fd, NULL);                                                \
        if (!real)                                                                      \
            real = next(#name);                                                         \
        return err ? fail(err) : real(fd, buf, n, off);                                 \
    }

RW_CALL(pread, C_PREAD, off_t, void *)
RW_CALL(pread64, C_PREAD, off64_t, void *)
RW_CALL(pwrite, C_PWRITE, off_t, const void *)
RW_CALL(pwrite64, C_PWRITE, off64_t, const void *)

#define RWV_CALL(name, type)                                                            \
    ssize_t name(int fd, const struct iovec *iov, int n, type off)                      \
    {                                                                                   \
        static ssize_t (*real)(int, const struct iovec *, int, type);                   \
        int err = fault(C_PWRITEV, fd, NULL);                                           \
        if (!real)                                                                      \
            real = next(#name);                                                         \
        return err ? fail(err) : real(fd, iov, n, off);                                 \
    }

RWV_CALL(pwritev, off_t)
RWV_CALL(pwritev64, off64_t)

int fdatasync(int fd)
{
    static int (*real)(int);
    int err = fault(C_FDATASYNC, fd, NULL);

    if (!real)
        real = next("fdatasync");
    return err ? fail(err) : real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    int err = fault(C_FSYNC, fd, NULL);

    if (!real)
        real = next("fsync");
    return err ? fail(err) : real(fd);
}

/* ---- libaio ------------------------------------------------------------- */

int io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
    static int (*real)(io_context_t, long, struct iocb *[]);
    int err = fault(C_IO_SUBMIT, nr > 0 ? ios[0]->aio_fildes : -1, NULL);

    if (!real)
        real = next("io_submit");
    return err ? -err : real(ctx, nr, ios);
}

static enum call aio_call_of(const struct iocb *cb)
{
    switch (cb->aio_lio_opcode) {
    case IO_CMD_PREAD:
    case IO_CMD_PREADV: return C_AIO_READ;
    case IO_CMD_PWRITE:
    case IO_CMD_PWRITEV: return C_AIO_WRITE;
    case IO_CMD_FDSYNC:
    case IO_CMD_FSYNC: return C_AIO_FDSYNC;
    default: return C__COUNT;
    }
}

int io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *ev,
                 struct timespec *timeout)
{
    static int (*real)(io_context_t, long, long, struct io_event *, struct timespec *);
    int n;

    if (!real)
        real = next("io_getevents");
    n = real(ctx, min_nr, nr, ev, timeout);
    for (int i = 0; i < n; i++) {
        enum call c = aio_call_of(ev[i].obj);
        int err = c == C__COUNT ? 0 : fault(c, ev[i].obj->aio_fildes, NULL);
        if (err) {
            ev[i].res = (unsigned long)(long)-err;
            ev[i].res2 = 0;
        }
    }
    return n;
}
