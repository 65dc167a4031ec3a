#include "config.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aio_budget.h"
#include "error.h"
#include "sandbox.h"

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds are for tests: their runtime stops the world and reads
 * /proc at exit to look for leaks, which needs a traceable process and more
 * system calls (seccomp.c lets them through). */
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

int sandbox_parse_user(const char *arg, struct sandbox_opts *o)
{
    unsigned uid, gid;
    char end;

    if (sscanf(arg, "%u:%u%c", &uid, &gid, &end) != 2)
        return -EINVAL;
    o->change_user = true;
    o->uid = uid;
    o->gid = gid;
    return 0;
}

/* The bounding set first, while we may (CAP_SETPCAP): a later exec could not
 * bring any capability back even without NO_NEW_PRIVS. */
static void drop_bounding_set(void)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
            break;
}

static int change_user(const struct sandbox_opts *o)
{
    uid_t r, e, s;
    gid_t rg, eg, sg;

    if (setgroups(0, NULL) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
        setresuid(o->uid, o->uid, o->uid) < 0)
        return qc_fail(-errno, "cannot become uid %u gid %u: %s", (unsigned)o->uid,
                       (unsigned)o->gid, strerror(errno));
    if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || r != o->uid ||
        e != o->uid || s != o->uid || rg != o->gid || eg != o->gid || sg != o->gid)
        return qc_fail(-EPERM, "still not uid %u gid %u after changing", (unsigned)o->uid,
                       (unsigned)o->gid);
    return 0;
}

/* Leaving root clears the capabilities; a worker left as root (or one
 * whose qcowd was not root but had some) clears them itself. */
static int drop_capabilities(void)
{
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];

    memset(data, 0, sizeof data);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (syscall(SYS_capset, &head, data) < 0)
        return qc_fail(-errno, "cannot drop capabilities: %s", strerror(errno));
    return 0;
}

int sandbox_enter(const struct sandbox_opts *o)
{
    int r;

    /* What the loop reads later without opening it: the AIO budget's
     * figures (daemon/worker/aio.c grows and shrinks its depth). */
    if ((r = aio_budget_prepare()) < 0)
        return qc_fail(r, "cannot read the kernel AIO budget: %s", strerror(-r));
    drop_bounding_set();
    if (o->change_user && (r = change_user(o)) < 0)
        return r;
    if ((r = drop_capabilities()) < 0)
        return r;
    /* Changing user made us not dumpable already (suid_dumpable); say so
     * anyway, for a worker that kept its user: no other process of the
     * user may trace it or open its /proc files. */
    if (!SANITIZED && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return qc_fail(-errno, "PR_SET_DUMPABLE: %s", strerror(errno));
    if (SANITIZED)
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return qc_fail(-errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    return sandbox_install_seccomp();
}

#ifdef QCOWD_TEST_HOOKS
void sandbox_test_forbidden_call(void)
{
    /* A compromised worker phoning home. */
    syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
}
#endif
