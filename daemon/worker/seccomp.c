/* The worker's seccomp filter: an allow-list of what its loop needs once the
 * sandbox is entered (worker.c: epoll, the ring's eventfds, libaio and its
 * growing and shrinking depth (aio.c: io_setup, a thread for io_destroy, the
 * AIO budget read in place), reads and writes of its open files, its
 * control socket and an orphan's rendezvous (adopt.c), memory, time).  Anything
 * else kills the process, which the supervisor reports and replaces.  No
 * open, no exec, no socket, no signal to another process, no new
 * executable memory.  Foreign system call ABIs (i386, x32) are killed too
 * (libseccomp's default for a filter's missing architectures). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "error.h"
#include "sandbox.h"

#ifdef HAVE_SECCOMP
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

static const int allowed[] = {
    /* its files, eventfds and control socket */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev),
    SCMP_SYS(preadv2), SCMP_SYS(pwritev2), SCMP_SYS(lseek), SCMP_SYS(close),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(fallocate), SCMP_SYS(ftruncate),
    SCMP_SYS(fcntl), SCMP_SYS(fstat),
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
    /* an orphan's rendezvous with the next supervisor (adopt.c) */
    SCMP_SYS(accept4), SCMP_SYS(getsockopt),
    /* the loop */
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(epoll_ctl),
    SCMP_SYS(io_submit), SCMP_SYS(io_getevents), SCMP_SYS(io_pgetevents), SCMP_SYS(io_cancel),
    SCMP_SYS(io_setup), SCMP_SYS(io_destroy), SCMP_SYS(flock),
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(sched_yield),
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall),
    /* the doorbell guard (doorbell.c: one timer per thread that rings)
     * and the I/O limiter's timerfd (limiter.c) */
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(timer_create), SCMP_SYS(timer_settime),
    SCMP_SYS(timer_gettime), SCMP_SYS(timer_delete), SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    /* memory */
    SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
    /* the C library, and the thread that destroys idle AIO contexts */
    SCMP_SYS(futex), SCMP_SYS(getrandom), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(rt_sigaction),
    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(exit), SCMP_SYS(exit_group),
};

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds (tests only): the runtime reads /proc, stops the world
 * with a tracer (clone, ptrace) to look for leaks at exit, and runs a
 * symbolizer on a report. */
static const int sanitizer_allowed[] = {
    SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(getdents), SCMP_SYS(getdents64), SCMP_SYS(readlink),
    SCMP_SYS(readlinkat), SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(clone),
    SCMP_SYS(clone3), SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(waitid), SCMP_SYS(prctl),
    SCMP_SYS(sigaltstack), SCMP_SYS(sched_getaffinity),
    SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(setrlimit), SCMP_SYS(getppid),
    SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(tkill), SCMP_SYS(mmap), SCMP_SYS(mprotect),
    SCMP_SYS(execve), SCMP_SYS(pipe), SCMP_SYS(pipe2), SCMP_SYS(dup), SCMP_SYS(dup2),
    SCMP_SYS(dup3), SCMP_SYS(uname), SCMP_SYS(arch_prctl), SCMP_SYS(set_robust_list),
    SCMP_SYS(vfork), SCMP_SYS(fork), SCMP_SYS(access), SCMP_SYS(faccessat),
    SCMP_SYS(process_vm_readv), SCMP_SYS(rt_sigtimedwait),
};
#endif

static int allow_all(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);
        if (r < 0 && r != -EDOM)        /* -EDOM: not on this architecture */
            return r;
    }
    return 0;
}

#ifndef __SANITIZE_ADDRESS__
/* Allowed only with these arguments. */
static int allow_with_arguments(scmp_filter_ctx ctx)
{
    const struct {
        int nr;
        struct scmp_arg_cmp cmp;
    } rules[] = {
        /* Threads, not processes. */
        { SCMP_SYS(clone), SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD) },
        /* Memory never becomes executable. */
        { SCMP_SYS(mmap), SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) },
        { SCMP_SYS(mprotect), SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) },
        /* fstat() is fstatat(fd, "", AT_EMPTY_PATH): a descriptor, not a path. */
        { SCMP_SYS(newfstatat), SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH) },
        /* abort() signals itself, and only itself. */
        { SCMP_SYS(tgkill), SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()) },
        { SCMP_SYS(kill), SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()) },
    };

    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, rules[i].nr, 1, rules[i].cmp);
        if (r < 0 && r != -EDOM)
            return r;
    }
    return 0;
}
#endif

int sandbox_install_seccomp(void)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int r;

    if (!ctx)
        return qc_fail(-ENOMEM, "cannot make a seccomp filter");
    r = allow_all(ctx, allowed, sizeof allowed / sizeof allowed[0]);
#ifdef __SANITIZE_ADDRESS__
    if (r == 0)
        r = allow_all(ctx, sanitizer_allowed, sizeof sanitizer_allowed / sizeof sanitizer_allowed[0]);
#else
    if (r == 0)
        r = allow_with_arguments(ctx);
    /* clone3 takes its flags in memory, where a filter cannot look: "not
     * implemented" makes the C library use clone, whose flags it can. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
#endif
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r < 0 ? qc_fail(r, "cannot install the seccomp filter: %s", strerror(-r)) : 0;
}

bool sandbox_has_seccomp(void)
{
    return true;
}

#else

int sandbox_install_seccomp(void)
{
    return 0;
}

bool sandbox_has_seccomp(void)
{
    return false;
}

#endif
