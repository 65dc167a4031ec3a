/* A minimal harness for the C unit tests (automake's plain protocol: exit 0
 * pass, 1 fail, 77 skip, 99 hard error).  CHECK* report every failed check
 * with its file and line and carry on; main returns unit_result(), which
 * fails a test that made no check at all. */
#ifndef QCOWD_TESTS_UNIT_H
#define QCOWD_TESTS_UNIT_H

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond) \
    do { \
        unit_checks++; \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            unit_failures++; \
        } \
    } while (0)

#define CHECK_U64(got, want) \
    do { \
        uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want); \
        unit_checks++; \
        if (g_ != w_) { \
            fprintf(stderr, "%s:%d: %s = %" PRIu64 " (0x%" PRIx64 "), expected %" PRIu64 \
                    " (0x%" PRIx64 ")\n", __FILE__, __LINE__, #got, g_, g_, w_, w_); \
            unit_failures++; \
        } \
    } while (0)

/* An engine call that must return 0; prints the engine's message if not. */
#define CHECK_OK(call) \
    do { \
        int r_; \
        qc_clear_error(); \
        r_ = (call); \
        unit_checks++; \
        if (r_ != 0) { \
            fprintf(stderr, "%s:%d: %s = %d (%s)\n", __FILE__, __LINE__, #call, r_, \
                    qc_error_message(r_)); \
            unit_failures++; \
        } \
    } while (0)

/* A step without which the rest of the test makes no sense. */
#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            unit_cleanup(); \
            exit(1); \
        } \
    } while (0)

static char unit_dir[4096];

static int unit_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static inline void unit_cleanup(void)
{
    if (unit_dir[0] && !getenv("QCOWD_TEST_KEEP"))
        nftw(unit_dir, unit_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* A private scratch directory under $TMPDIR, removed at the end. */
static inline const char *unit_tmpdir(void)
{
    const char *base = getenv("TMPDIR");

    if (unit_dir[0])
        return unit_dir;
    snprintf(unit_dir, sizeof unit_dir, "%s/qcowd-unit.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(unit_dir)) {
        perror("mkdtemp");
        exit(99);
    }
    return unit_dir;
}

static inline const char *unit_path(const char *name)
{
    static char buf[4][8192];
    static int i;

    i = (i + 1) % 4;
    if ((size_t)snprintf(buf[i], sizeof buf[i], "%s/%s", unit_tmpdir(), name) >= sizeof buf[i])
        exit(99);
    return buf[i];
}

/* A test that made no check tested nothing: that is a failure, not a pass. */
static inline int unit_result(const char *name)
{
    unit_cleanup();
    if (unit_checks == 0) {
        fprintf(stderr, "%s: no check was made\n", name);
        return 1;
    }
    if (unit_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, unit_failures, unit_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, unit_checks);
    return 0;
}

#endif
