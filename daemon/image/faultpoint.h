/* Named steps of the operations that change an image in several writes
 * (resize, commit, rebase, a worker's switch to another chain), where a
 * test makes the operation fail or the process die, to show that every
 * step leaves the image whole and the operation undone or done.
 *
 * Nothing happens unless a test build installs a hook: the test builds of
 * qcowctl and the worker (QCOWD_TEST_HOOKS) read QCOWD_FAULTPOINT, see
 * tests/tools/faultpoint_env.c.  An operation announces itself with a step
 * named "begin-..." first, so that a rule can pick the k-th operation. */
#ifndef QCOWD_FAULTPOINT_H
#define QCOWD_FAULTPOINT_H

/* Returns 0 to go on, or -errno (with a message) to fail the step; may
 * also end the process. */
extern int (*image_faultpoint_hook)(const char *step);

static inline int faultpoint(const char *step)
{
    return image_faultpoint_hook ? image_faultpoint_hook(step) : 0;
}

#endif
