/* Error reporting for the image engine.
 *
 * Functions return 0 or -errno.  The human reason for the most recent failure
 * on this thread (naming the object and what was wrong) is kept here, so the
 * caller that finally reports the error can print it whole. */
#ifndef QCOWD_ERROR_H
#define QCOWD_ERROR_H

#include <stdarg.h>

/* Record a message and return err (a negative errno) unchanged, so that a
 * failure path reads: return qc_fail(-EINVAL, "%s: bad thing", path); */
int qc_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or strerror of err when nothing
 * was recorded since qc_clear_error(). */
const char *qc_error_message(int err);

void qc_clear_error(void);

#endif
