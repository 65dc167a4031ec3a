#include "config.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

#define CHILD_STACK (256 * 1024)

struct trampoline {
    int (*fn)(void *);
    void *arg;
    int exec_errno;             /* written by the child before it gives up */
};

static int run_child(void *p)
{
    struct trampoline *t = p;

    t->exec_errno = t->fn(t->arg);
    _exit(127);
}

pid_t spawn_shared(int (*fn)(void *), void *arg)
{
    struct trampoline t = { .fn = fn, .arg = arg };
    char *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    pid_t pid;
    int e;

    if (stack == MAP_FAILED)
        return -errno;
    pid = clone(run_child, stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &t);
    e = errno;
    munmap(stack, CHILD_STACK);
    if (pid < 0)
        return -e;
    if (t.exec_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -t.exec_errno;
    }
    return pid;
}
