/* A worker parses untrusted images and serves an untrusted client.  Once its
 * files are open and its ring is mapped, it gives up everything else: it
 * drops to an unprivileged user, keeps no capability, cannot gain any
 * (PR_SET_NO_NEW_PRIVS), cannot be traced by other processes of that user
 * (not dumpable), and, when built with libseccomp, may make only the system
 * calls its loop needs.  A compromised worker then holds its own image and
 * ring and nothing else.  See doc/security.md. */
#ifndef QCOWD_WORKER_SANDBOX_H
#define QCOWD_WORKER_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

struct sandbox_opts {
    bool change_user;           /* --user given */
    uid_t uid;
    gid_t gid;
};

/* "UID:GID" (qcowd --worker-user, resolved by qcowd). */
int sandbox_parse_user(const char *arg, struct sandbox_opts *o);

/* Enter the sandbox: 0 or -errno with a message. */
int sandbox_enter(const struct sandbox_opts *o);

/* seccomp.c: the filter (0 without libseccomp), and whether this build has
 * one. */
int sandbox_install_seccomp(void);
bool sandbox_has_seccomp(void);

#ifdef QCOWD_TEST_HOOKS
/* Tests only (tests/daemon/qcowd-worker-hooks): make a system call the
 * filter forbids, as a compromised worker would. */
void sandbox_test_forbidden_call(void);
#endif

#endif
