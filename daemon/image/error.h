/* Error reporting for the image engine.
 *
 * Functions return 0 or -errno.  The human reason for the most recent failure
 * on this thread (naming the object and what was wrong) is kept here, so the
 * caller that finally reports the error can print it whole. */
#ifndef QCOWD_ERROR_H
#define QCOWD_ERROR_H

#include <assert.h>
#include <stdarg.h>

/* Record a message and evaluate to err, a negative errno, so that a failure
 * path reads: return qc_fail(-EINVAL, "%s: bad thing", path);
 * err is evaluated first (before formatting can touch errno), and asserted
 * negative: a failure that returned 0 would pass for a success.  Being a
 * macro, the sign is visible to the compiler and to static analysers at the
 * call site. */
#define qc_fail(err, ...) \
    ({ \
        int qc_fail_err_ = (err); \
        assert(qc_fail_err_ < 0); \
        qc_record_error(__VA_ARGS__); \
        qc_fail_err_; \
    })

/* Record the message qc_error_message() returns (errno is preserved). */
void qc_record_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded on this thread, or strerror of err when nothing
 * was recorded since qc_clear_error(). */
const char *qc_error_message(int err);

void qc_clear_error(void);

#endif
