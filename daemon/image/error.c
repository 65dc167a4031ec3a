#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static _Thread_local char last_error[1024];

void qc_record_error(const char *fmt, ...)
{
    int saved_errno = errno;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

const char *qc_error_message(int err)
{
    if (last_error[0] != '\0')
        return last_error;
    return strerror(err < 0 ? -err : err);
}

void qc_clear_error(void)
{
    last_error[0] = '\0';
}
