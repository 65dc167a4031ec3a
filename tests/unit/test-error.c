/* qc_fail: evaluates to its (negative) error, records the message, keeps
 * errno, and refuses a "failure" that is not negative. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "error.h"
#include "unit.h"

static int fail_with_errno(void)
{
    errno = EIO;
    return qc_fail(-errno, "disk.qcow: cannot read: %s", strerror(errno));
}

/* qc_fail(0, ...) in a child: it must die of SIGABRT. */
static void non_negative_is_refused(int err)
{
    pid_t pid = fork();
    int status;

    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        int r = qc_fail(err, "not a failure");
        _exit(r == err ? 0 : 1);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int main(void)
{
    qc_clear_error();
    CHECK(qc_fail(-EINVAL, "%s: bad %s", "disk.qcow", "magic") == -EINVAL);
    CHECK(strcmp(qc_error_message(-EINVAL), "disk.qcow: bad magic") == 0);

    CHECK(fail_with_errno() == -EIO);
    CHECK(errno == EIO);
    CHECK(strcmp(qc_error_message(-EIO), "disk.qcow: cannot read: Input/output error") == 0);

    qc_clear_error();
    CHECK(strcmp(qc_error_message(-ENOSPC), strerror(ENOSPC)) == 0);

    non_negative_is_refused(0);
    non_negative_is_refused(EINVAL);
    return unit_result("test-error");
}
