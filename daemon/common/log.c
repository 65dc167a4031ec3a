#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static char program_name[64] = "qcowd";
static enum log_level max_level = LOG_LEVEL_INFO;

void log_init(const char *program)
{
    snprintf(program_name, sizeof program_name, "%s", program);
}

void log_set_level(enum log_level level)
{
    max_level = level;
}

enum log_level log_get_level(void)
{
    return max_level;
}

int log_level_parse(const char *name)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    if (level > max_level)
        return;
    n = snprintf(line, sizeof line, "%s[%d]: %s: ", program_name, (int)getpid(),
                 level_names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line so lines from several processes do not mix. */
    n = (int)strlen(line);
    if (n < (int)sizeof line - 1)
        line[n++] = '\n';
    while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
        ;                       /* a worker's doorbell guard may tick (doorbell.h) */
}
