/* The fault points of test builds (daemon/image/faultpoint.h), set from the
 * environment:
 *
 *   QCOWD_FAULTPOINT=RULE[,RULE...]     RULE = STEP[@K][:crash]
 *
 * STEP names a step (doc: tests/README.md); with @K only in the K-th
 * operation of this process (operations are counted by their "begin-..."
 * steps, from 1); without :crash the step fails with EIO, with it the
 * process kills itself with SIGKILL there, as a crash would stop it.
 * QCOWD_FAULTPOINT_LOG=FILE appends a line for each fault made. */
#include "config.h"

#include <errno.h>
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
    bool crash;
};

static struct rule rules[MAX_RULES];
static unsigned nrules, op_count;
static FILE *log_file;          /* opened at start: a sandboxed worker cannot open later */

static void note(const char *step, const char *what)
{
    if (!log_file)
        return;
    fprintf(log_file, "%s %s op %u pid %ld\n", what, step, op_count, (long)getpid());
    fflush(log_file);
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
    char buf[1024], *save = NULL;

    if (!spec || !*spec)
        return;
    if (log_path && *log_path)
        log_file = fopen(log_path, "ae");
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *t = strtok_r(buf, ",", &save); t && nrules < MAX_RULES; t = strtok_r(NULL, ",", &save))
        parse_rule(t);
    image_faultpoint_hook = hook;
}
