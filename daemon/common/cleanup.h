/* Scope-bound cleanup (GCC/clang's cleanup attribute): a variable declared
 * with one of these is released when it goes out of scope, on every return
 * path, so a function needs no goto ladder.  Hand a value on with TAKE_PTR
 * or TAKE_FD, which leave nothing behind to release. */
#ifndef QCOWD_CLEANUP_H
#define QCOWD_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <json-c/json_object.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(const int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void json_putp(json_object **o) { json_object_put(*o); }

/* funcp(type **) from func(type *), for _cleanup_(funcp) on pointers. */
#define DEFINE_POINTER_CLEANUP(func, type) \
    static inline void func##p(type **p) { func(*p); }

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_json_ _cleanup_(json_putp)

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

#endif
