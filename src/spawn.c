/*
 * The spawn start (options.start = MPROC_START_SPAWN): process workers that
 * are fresh runs of the program's own executable, for programs that are not
 * safe to fork (a caller with OpenMP's threads, a database client's locks).
 * Python's multiprocessing calls this start method "spawn".
 *
 * The supervisor is still forked from the caller at open (it runs only this
 * library's code, single-threaded), and starts each worker, first or
 * replacement, with posix_spawn of the executable the caller runs (read from
 * /proc/self/exe at open). The new process enters the worker in a
 * constructor, before main, when it finds MPROC_SPAWN in its environment:
 * it maps the pool's shared region (a memfd it inherits) at the caller's
 * address, so that every pointer on the board, the arena and the staged
 * copies reads as it does in the caller, and runs the same worker body as a
 * forked worker (workers.c). From there on nothing differs: the board, the
 * supervisor, crashes, timeouts, kills, max_items and close are as for fork.
 *
 * What cannot cross by address is the program's code (and init_arg, which
 * points at the program's static data, if anywhere): the new run loads its
 * objects elsewhere (ASLR). At open the caller lists its loaded objects
 * (name, build id, span, load bias: linux/code.c) into the region; a
 * spawned worker finds each in itself and moves an address from the
 * caller's object to its own, once per job (mproc__code_view), the identity
 * the MPI backend uses for functions. An object the caller loaded and the
 * new run does not (one it dlopen'ed) is marked missing by the workers, and
 * a job whose code lies there is refused at submit.
 *
 * The rules this gives (mproc.h, MPROC_START_SPAWN): job.arg needs
 * arg_size or must lie in the shared arena; init_arg must be NULL or point
 * into the program's static data (whose value is then as static
 * initialisation left it, not as the caller changed it); globals are as
 * static initialisation and init leave them; constructors of objects
 * initialised after libmproc's may not have run (a C++ program's, when
 * libmproc is a shared library) when the worker starts.
 *
 * Who runs here: the caller (prepare, check_job), the supervisor (exec),
 * and a spawned worker from its first instruction of ours (spawned) on.
 */
#define _GNU_SOURCE
#include "processes.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define ENV "MPROC_SPAWN"

/* In the region: what a spawned worker needs beyond the board. */
struct mproc__program {
    uint64_t pool;                 /* the caller's pool, as mproc__self_pool:
                                      compared, never followed, in workers */
    uint64_t init, fini, init_arg; /* addresses in the caller */
    int nobj;
    struct mproc__object obj[];
};

static uintptr_t fn_addr(void (*fn)(void))
{
    uintptr_t a;
    memcpy(&a, &fn, sizeof a);
    return a;
}

static void (*addr_fn(uintptr_t a))(void)
{
    void (*fn)(void);
    memcpy(&fn, &a, sizeof fn);
    return fn;
}

/* ---- the caller ------------------------------------------------------ */

static const char *object_name(const struct mproc__object *o)
{
    return o->object[0] ? o->object : "the program's executable";
}

int mproc__spawn_prepare(mproc_pool *pool)
{
    const mproc_options *o = &pool->opt;
    pool->exe = malloc(PATH_MAX);
    if (!pool->exe)
        return mproc__fail(MPROC_ENOMEM, "no memory for the executable's "
                                         "path");
    int err = mproc__self_exe(pool->exe, PATH_MAX);
    if (err)
        return mproc__fail(err,
                           "options.start is MPROC_START_SPAWN and the "
                           "program's executable cannot be run again "
                           "(/proc/self/exe: %s)",
                           mproc_strerror(err));
    /* The list, in staging; a dlopen between the count and the list makes
       it longer: count again. */
    struct mproc__program *prog = NULL;
    for (int cap = mproc__objects(NULL, 0) + 4;;) {
        size_t size = sizeof *prog + (size_t)cap * sizeof prog->obj[0];
        prog = mproc__heap_alloc(&pool->staging, size);
        if (!prog)
            return mproc__fail(MPROC_ENOMEM,
                               "no room in the pool's staging area for the "
                               "list of the program's %d loaded objects",
                               cap);
        int n = mproc__objects(prog->obj, cap);
        if (n <= cap) {
            prog->nobj = n;
            break;
        }
        mproc__heap_free(&pool->staging, prog);
        cap = n + 4;
    }
    prog->pool = (uint64_t)(uintptr_t)pool;
    prog->init = o->init ? fn_addr((void (*)(void))o->init) : 0;
    prog->fini = o->fini ? fn_addr((void (*)(void))o->fini) : 0;
    prog->init_arg = (uint64_t)(uintptr_t)o->init_arg;
    pool->program = prog;
    if ((prog->init && mproc__object_of(prog->obj, prog->nobj, prog->init) < 0) ||
        (prog->fini && mproc__object_of(prog->obj, prog->nobj, prog->fini) < 0))
        return mproc__fail(MPROC_EINVAL,
                           "options.init or options.fini lies in no loaded "
                           "object of the program (code made at run time?): "
                           "a spawned worker cannot find it");
    if (o->init_arg &&
        mproc__object_of(prog->obj, prog->nobj, prog->init_arg) < 0)
        return mproc__fail(MPROC_EINVAL,
                           "options.init_arg points outside the program's "
                           "static data; with MPROC_START_SPAWN it must be "
                           "NULL or the address of a static object (a "
                           "spawned worker has none of the caller's heap or "
                           "stack)");
    return 0;
}

/* Code a spawned worker can find: in an object listed at open that the
   workers load too. */
static int check_code(const mproc_pool *pool, uintptr_t a, const char *what)
{
    const struct mproc__program *prog = pool->program;
    int i = mproc__object_of(prog->obj, prog->nobj, a);
    if (i < 0)
        return mproc__fail(MPROC_EINVAL,
                           "%s lies in no object the program had loaded when "
                           "the pool opened (code made at run time, or "
                           "dlopen'ed since?): a spawned worker cannot find "
                           "it",
                           what);
    /* Relaxed: the workers' marks were published by their readiness,
       which mproc_pool_open acquired; only the value is read. */
    if (atomic_load_explicit(&prog->obj[i].missing, memory_order_relaxed))
        return mproc__fail(MPROC_ENOTSUP,
                           "%s lies in %s, which a fresh run of the program "
                           "does not load (the program dlopen'ed it?): use "
                           "MPROC_START_FORK, or link it",
                           what, object_name(&prog->obj[i]));
    return 0;
}

int mproc__spawn_check_job(const mproc_pool *pool, const mproc_job *job)
{
    if (pool->opt.start != MPROC_START_SPAWN)
        return 0;
    int err = 0;
    if (job->fn)
        err = check_code(pool, fn_addr((void (*)(void))job->fn), "job.fn");
    if (!err && job->batch)
        err = check_code(pool, fn_addr((void (*)(void))job->batch),
                         "job.batch");
    if (!err && job->reduce)
        err = check_code(pool, fn_addr((void (*)(void))job->reduce),
                         "job.reduce");
    if (err)
        return err;
    const char *a = job->arg;
    if (a && !job->arg_size &&
        !(a >= pool->region && (size_t)(a - pool->region) < pool->region_size))
        return mproc__fail(MPROC_EINVAL,
                           "job.arg has no job.arg_size and lies outside the "
                           "shared arena; a spawned worker has none of the "
                           "caller's memory: give arg_size (it is copied) "
                           "or put it in mproc_shared_alloc memory");
    return 0;
}

/* ---- the supervisor ---------------------------------------------------- */

pid_t mproc__spawn_exec(const mproc_pool *pool, int w, bool initial,
                        const sigset_t *mask)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (!envp)
        return -ENOMEM;
    char mine[160];
    int rfd = mproc__results_fd(pool);
    snprintf(mine, sizeof mine, ENV "=%d,%lx,%zu,%zu,%d,%d,%d,%d",
             pool->region_fd, (unsigned long)(uintptr_t)pool->region,
             pool->region_size, (size_t)((char *)pool->program - pool->region),
             w, initial ? 1 : 0, (int)getpid(), rfd);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ENV "=", sizeof ENV))
            envp[k++] = environ[i];
    envp[k++] = mine;
    envp[k] = NULL;
    char *argv[] = {program_invocation_name, NULL};
    int keep[] = {pool->region_fd, rfd};
    pid_t pid = mproc__exec(pool->exe, argv, envp, keep, 2, mask);
    free(envp);
    return pid;
}

/* ---- a spawned worker ---------------------------------------------------- */

/* Set in a spawned worker before anything else runs: the caller's objects,
   whether each is loaded here, and its load bias here. */
static const struct mproc__program *program;
static bool *found;
static uintptr_t *here;

/* The caller's address a, here; 0 if its object is not loaded here. */
static uintptr_t translate(uint64_t a)
{
    if (!a)
        return 0;
    int i = mproc__object_of(program->obj, program->nobj, (uintptr_t)a);
    if (i < 0 || !found[i])
        return 0;
    return (uintptr_t)(a - program->obj[i].base) + here[i];
}

bool mproc__code_view(struct mproc__worker *wk, const struct mproc__claim *c)
{
    const struct mproc__job *j = c->j;
    if (!program) {
        wk->fn = j->fn;
        wk->batch = j->batch;
        wk->reduce = j->reduce;
        wk->code_id = c->id;
        return true;
    }
    uintptr_t fn = j->fn ? translate(fn_addr((void (*)(void))j->fn)) : 0;
    uintptr_t batch =
        j->batch ? translate(fn_addr((void (*)(void))j->batch)) : 0;
    uintptr_t reduce =
        j->reduce ? translate(fn_addr((void (*)(void))j->reduce)) : 0;
    if ((j->fn && !fn) || (j->batch && !batch) || (j->reduce && !reduce))
        return false;
    wk->fn = (mproc_fn)addr_fn(fn);
    wk->batch = (mproc_batch_fn)addr_fn(batch);
    wk->reduce = (void (*)(void *, const void *, void *))addr_fn(reduce);
    wk->code_id = c->id;
    return true;
}

#ifdef MPROC_TEST_HOOKS
/* Tests: a run that removes one of the files $MPROC_TEST_PLACE_TAKEN.0 to
   .15 acts as if the region's address were taken in it. */
static bool place_taken(void)
{
    const char *pre = getenv("MPROC_TEST_PLACE_TAKEN");
    char path[4096];
    for (int i = 0; pre && i < 16; i++) {
        snprintf(path, sizeof path, "%s.%d", pre, i);
        if (unlink(path) == 0)
            return true;
    }
    return false;
}
#else
static bool place_taken(void)
{
    return false;
}
#endif

/*
 * A fresh run of the program started by a supervisor: become worker w.
 * The environment says where everything is; it is removed at once, so that
 * what items start never sees it.
 */
__attribute__((constructor)) static void spawned(void)
{
    const char *e = getenv(ENV);
    if (!e)
        return;
    int fd, w, initial, zpid, rfd;
    unsigned long at;
    size_t size, off;
    int got = sscanf(e, "%d,%lx,%zu,%zu,%d,%d,%d,%d", &fd, &at, &size, &off,
                     &w, &initial, &zpid, &rfd);
    unsetenv(ENV);
    if (got != 8 || getppid() != zpid)
        return; /* not one of ours: the program runs as usual */
    if (mproc__die_with_parent(zpid) != 0)
        _exit(0);
    char *region = place_taken() ? NULL
                                 : mproc__region_map_at(
                                       fd, (void *)(uintptr_t)at, size);
    close(fd);
    if (!region)
        _exit(MPROC__EXIT_PLACE);
    if (rfd >= 0)
        fcntl(rfd, F_SETFD, FD_CLOEXEC);
    const struct mproc__program *prog = (const void *)(region + off);
    here = calloc((size_t)prog->nobj + 1, sizeof *here);
    found = calloc((size_t)prog->nobj + 1, sizeof *found);
    if (!here || !found)
        _exit(MPROC__EXIT_CODE);
    for (int i = 0; i < prog->nobj; i++) {
        if (mproc__object_here(&prog->obj[i], &here[i]) == 0)
            found[i] = true;
        else
            atomic_store_explicit(
                &((struct mproc__program *)(uintptr_t)prog)->obj[i].missing,
                1, memory_order_relaxed);
    }
    program = prog;
    mproc_options o = {.start = MPROC_START_SPAWN};
    o.init = (int (*)(void *))addr_fn(translate(prog->init));
    o.fini = (void (*)(void *))addr_fn(translate(prog->fini));
    o.init_arg = (void *)translate(prog->init_arg);
    if ((prog->init && !o.init) || (prog->fini && !o.fini) ||
        (prog->init_arg && !o.init_arg))
        _exit(MPROC__EXIT_CODE);
    mproc__self_pool = (const mproc_pool *)(uintptr_t)prog->pool;
    mproc__worker_body(&o, (struct mproc__board *)(void *)region, w, initial,
                       rfd);
}
