/* The fault points of test builds (daemon/image/faultpoint.h), set from the
 * environment:
 *
 *   QCOWD_FAULTPOINT=RULE[,RULE...]     RULE = STEP[@K][:crash|:hold]
 *
 * STEP names a step (doc: tests/README.md); with @K only in the K-th
 * operation of this process (operations are counted by their "begin-..."
 * steps, from 1); without an action the step fails with EIO; with :crash
 * the process kills itself with SIGKILL there, as a crash would stop it;
 * with :hold it waits there until the FIFO QCOWD_FAULTPOINT_RELEASE has
 * been written to (it stays released), then goes on: a test kills it
 * while it waits, from outside, with whatever else is going on.
 * QCOWD_FAULTPOINT_LOG=FILE appends a line for each fault made. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "faultpoint.h"
#include "faultpoint_env.h"

#define MAX_RULES 16

struct rule {
    char step[64];
    unsigned op;                /* 0: any */
    bool crash, hold;
};

static struct rule rules[MAX_RULES];
static unsigned nrules, op_count;
static FILE *log_file;          /* opened at start: a sandboxed worker cannot open later */
static int release_fd = -1;     /* QCOWD_FAULTPOINT_RELEASE, opened at start too */

static void note(const char *step, const char *what)
{
    if (!log_file)
        return;
    fprintf(log_file, "%s %s op %u pid %ld\n", what, step, op_count, (long)getpid());
    fflush(log_file);
}

static void wait_for_release(void)
{
    struct pollfd p = { .fd = release_fd, .events = POLLIN };

    while (release_fd >= 0 && poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
}

static int hook(const char *step)
{
    if (strncmp(step, "begin-", 6) == 0)
        op_count++;
    for (unsigned i = 0; i < nrules; i++) {
        if (strcmp(rules[i].step, step) != 0 || (rules[i].op && rules[i].op != op_count))
            continue;
        if (rules[i].crash) {
            note(step, "crash");
            raise(SIGKILL);
        }
        if (rules[i].hold) {
            note(step, "hold");
            wait_for_release();
            return 0;
        }
        note(step, "fail");
        return qc_fail(-EIO, "fault injected at step %s", step);
    }
    return 0;
}

static void parse_rule(char *text)
{
    struct rule *r = &rules[nrules];
    char *colon = strchr(text, ':'), *at;

    if (colon) {
        *colon = '\0';
        r->crash = strcmp(colon + 1, "crash") == 0;
        r->hold = strcmp(colon + 1, "hold") == 0;
    }
    if ((at = strchr(text, '@'))) {
        *at = '\0';
        r->op = (unsigned)strtoul(at + 1, NULL, 10);
    }
    snprintf(r->step, sizeof r->step, "%s", text);
    nrules++;
}

void faultpoint_from_env(void)
{
    const char *spec = getenv("QCOWD_FAULTPOINT"), *log_path = getenv("QCOWD_FAULTPOINT_LOG");
    const char *release = getenv("QCOWD_FAULTPOINT_RELEASE");
    char buf[1024], *save = NULL;

    if (!spec || !*spec)
        return;
    if (log_path && *log_path)
        log_file = fopen(log_path, "ae");
    if (release && *release)
        release_fd = open(release, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *t = strtok_r(buf, ",", &save); t && nrules < MAX_RULES; t = strtok_r(NULL, ",", &save))
        parse_rule(t);
    image_faultpoint_hook = hook;
}
