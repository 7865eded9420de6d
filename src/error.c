/*
 * Errors: a code for programs (mproc_strerror names each) and a sentence
 * for people (mproc_last_error), as sqlite's sqlite3_errmsg and libcurl's
 * CURLOPT_ERRORBUFFER do.
 *
 * Who runs here: any thread. The sentence is thread-local: each thread
 * reads the reason for its own last failed call, whatever other threads
 * do meanwhile. A call that succeeds leaves it as it was.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last[256];

int mproc__fail(int code, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last, sizeof last, fmt, ap);
    va_end(ap);
    errno = saved;
    return code;
}

const char *mproc_last_error(void)
{
    return last;
}

const char *mproc_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case MPROC_ECRASHED:
        return "worker crashed while running the item";
    case MPROC_ETIMEDOUT:
        return "timed out";
    case MPROC_ECANCELED:
        return "cancelled before it started";
    case MPROC_EOF:
        return "no more items";
    case MPROC_ENOTSUP:
        return "not supported by this kind of pool";
    case MPROC_EINIT:
        return "a worker's init function failed";
    case MPROC_EBROKEN:
        return "the pool is broken (its supervisor died, or its control "
               "memory was written over); close the pool";
    case MPROC_EDEADLK:
        return "called from a worker of the same pool";
    case MPROC_EPERM:
        return "the pool belongs to another process";
    }
    if (code < 0 && code > -4096) {
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return code > 0 ? "item failed with its function's own code"
                    : "unknown error";
}
