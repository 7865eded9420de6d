/*
 * A program that dlopens libmproc (as Python's ctypes does, RTLD_LOCAL) and
 * asks for spawned workers: a fresh run of it would not load libmproc at
 * its start, so the open is refused with MPROC_ENOTSUP and a sentence, at
 * once, and nothing is started. Fork pools work.
 *
 *   spawn_dlopen path/to/libmproc.so
 */
#include <mproc.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    void *h = argc > 1 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!h) {
        fprintf(stderr, "spawn_dlopen: %s\n", dlerror());
        return 2;
    }
    int (*open_pool)(mproc_pool **, const mproc_options *);
    int (*close_pool)(mproc_pool *);
    const char *(*last_error)(void);
    void *a = dlsym(h, "mproc_pool_open"), *b = dlsym(h, "mproc_pool_close"),
         *c = dlsym(h, "mproc_last_error");
    memcpy(&open_pool, &a, sizeof a);
    memcpy(&close_pool, &b, sizeof b);
    memcpy(&last_error, &c, sizeof c);
    mproc_pool *p;
    int r = open_pool(&p, &(mproc_options){.workers = 2,
                                           .start = MPROC_START_SPAWN});
    if (r != MPROC_ENOTSUP ||
        !strstr(last_error(), "was dlopen'ed by the program")) {
        fprintf(stderr, "spawn: open returned %d: %s\n", r, last_error());
        return 1;
    }
    printf("spawn: %s\n", last_error());
    r = open_pool(&p, &(mproc_options){.workers = 2});
    if (r) {
        fprintf(stderr, "fork: open returned %d: %s\n", r, last_error());
        return 1;
    }
    close_pool(p);
    return 0;
}
