/*
 * The spawn start (options.start = MPROC_START_SPAWN): process workers that
 * are fresh runs of the program's own executable, for programs that are not
 * safe to fork (a caller with OpenMP's threads, a database client's locks).
 * Python's multiprocessing calls this start method "spawn".
 *
 * The caller starts the supervisor with posix_spawn of the executable it
 * runs (opened through /proc/self/exe at open, so that a rebuild of the file
 * meanwhile changes nothing), and the supervisor starts each worker, first
 * or replacement, the same way: no process of the pool is a fork of the
 * caller, and posix_spawn (a vfork) copies no page table, so opening does
 * not grow with the caller's memory. A new process enters its role in a
 * constructor, before main, when it finds MPROC_SPAWN_SUPER (supervisor) or
 * MPROC_SPAWN (worker) in its environment. A worker
 * maps the pool's shared region (a memfd it inherits) at the caller's
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
 * Who runs here: the caller (prepare, check_job, spawn_supervisor), the
 * supervisor (spawn_exec), and a spawned supervisor or worker from its
 * first instruction of ours (the constructor, spawned) on.
 */
#define _GNU_SOURCE
#include "processes.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define ENV       "MPROC_SPAWN"       /* a worker's */
#define ENV_SUPER "MPROC_SPAWN_SUPER" /* a supervisor's */

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

/*
 * A spawned process takes its role in libmproc's constructor, which runs at
 * the program's start only if libmproc is part of the program: linked into
 * the executable, or a library it needs. A libmproc a program dlopen'ed
 * (Python's ctypes, a plugin) is not there in a fresh run, which would run
 * the program's main instead. Loaded with RTLD_LOCAL (ctypes' default), its
 * symbols are not in the program's global scope: refuse that at open. (One
 * dlopen'ed RTLD_GLOBAL passes this test; its fresh runs take their role
 * only at the dlopen, documented.)
 */
static bool at_start(const struct mproc__program *prog)
{
    uintptr_t mine = fn_addr((void (*)(void))mproc_pool_open);
    int i = mproc__object_of(prog->obj, prog->nobj, mine);
    if (i >= 0 && !prog->obj[i].object[0])
        return true; /* in the executable itself */
    /* The program's handle searches its global scope alone (RTLD_DEFAULT
       would search ours too, which holds us even when dlopen'ed local). */
    void *prog_scope = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
    void *global = prog_scope ? dlsym(prog_scope, "mproc_pool_open") : NULL;
    if (prog_scope)
        dlclose(prog_scope);
    return global && (uintptr_t)global == mine;
}

int mproc__spawn_prepare(mproc_pool *pool)
{
    const mproc_options *o = &pool->opt;
    int fd = mproc__self_exe();
    if (fd < 0)
        return mproc__fail(fd,
                           "options.start is MPROC_START_SPAWN and the "
                           "program's executable cannot be opened to run it "
                           "again (/proc/self/exe: %s)",
                           mproc_strerror(fd));
    pool->exe_fd = fd;
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
    if (!at_start(prog))
        return mproc__fail(MPROC_ENOTSUP,
                           "options.start is MPROC_START_SPAWN and libmproc "
                           "was dlopen'ed by the program: a fresh run of it "
                           "would not load libmproc at its start; link "
                           "libmproc into the program, or use "
                           "MPROC_START_FORK");
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

/* Is the environment entry e our variable `name`? */
static bool is_var(const char *e, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(e, name, n) && e[n] == '=';
}

/*
 * Run the program again with `mine` (NAME=value) added to this process's
 * environment, in place of either of ours. It starts with every signal
 * blocked: until its constructor has set up its role, a terminal's SIGINT
 * or SIGTSTP must not end or stop it, and a thread that another library's
 * constructor starts before ours must not take the SIGCHLD a supervisor
 * reads from its signalfd. The mask the role runs with is told in `mine`.
 */
static pid_t run_again(const mproc_pool *pool, const char *mine,
                       const int *keep, int nkeep)
{
    sigset_t all;
    sigfillset(&all);
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (!envp)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_var(environ[i], ENV) && !is_var(environ[i], ENV_SUPER))
            envp[k++] = environ[i];
    envp[k++] = (char *)mine;
    envp[k] = NULL;
    char *argv[] = {program_invocation_name, NULL};
    pid_t pid = mproc__exec(pool->exe_fd, argv, envp, keep, nkeep, &all);
    free(envp);
    return pid;
}

/* A signal mask as a word (signals 1 to 64: every one Linux has), and
   back. */
static unsigned long long mask_word(const sigset_t *m)
{
    unsigned long long w = 0;
    for (int sig = 1; sig <= 64; sig++)
        if (sigismember(m, sig) == 1)
            w |= 1ULL << (sig - 1);
    return w;
}

static void mask_of(unsigned long long w, sigset_t *m)
{
    sigemptyset(m);
    for (int sig = 1; sig <= 64; sig++)
        if (w >> (sig - 1) & 1)
            sigaddset(m, sig);
}

/* Where the region is, as every spawned process is told. */
static int region_words(const mproc_pool *pool, char *at, size_t cap)
{
    return snprintf(at, cap, "%d,%lx,%zu,%zu", pool->region_fd,
                    (unsigned long)(uintptr_t)pool->region, pool->region_size,
                    (size_t)((char *)pool->program - pool->region));
}

pid_t mproc__spawn_exec(const mproc_pool *pool, int results_fd, int w,
                        bool initial, const sigset_t *mask)
{
    char mine[192];
    int at = snprintf(mine, sizeof mine, ENV "=");
    at += region_words(pool, mine + at, sizeof mine - (size_t)at);
    snprintf(mine + at, sizeof mine - (size_t)at, ",%d,%d,%d,%d,%llx", w,
             initial ? 1 : 0, (int)getpid(), results_fd, mask_word(mask));
    int keep[] = {pool->region_fd, results_fd};
    return run_again(pool, mine, keep, 2);
}

pid_t mproc__spawn_supervisor(const mproc_pool *pool, int watch)
{
    struct sigaction tstp;
    sigaction(SIGTSTP, NULL, &tstp);
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    int rfd = mproc__results_fd(pool);
    char mine[224];
    int at = snprintf(mine, sizeof mine, ENV_SUPER "=");
    at += region_words(pool, mine + at, sizeof mine - (size_t)at);
    snprintf(mine + at, sizeof mine - (size_t)at,
             ",%d,%d,%d,%d,%d,%d,%d,%llx", pool->workers, watch, pool->zevent,
             rfd, pool->opt.init != NULL, tstp.sa_handler == SIG_DFL,
             (int)getpid(), mask_word(&mask));
    int keep[] = {pool->region_fd, watch, pool->zevent, rfd};
    return run_again(pool, mine, keep, 4);
}

/* ---- a spawned worker ---------------------------------------------------- */

/* Set in a spawned process before anything else runs: the caller's objects,
   whether each is loaded here, and its load bias here. */
static const struct mproc__program *program;
static bool *found;
static uintptr_t *here;
static char *region_start; /* the board */

bool mproc__foreign_pool(const mproc_pool *pool)
{
    return program && pool &&
           pool == (const mproc_pool *)(uintptr_t)program->pool &&
           !mproc__opened_here(pool);
}

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
    /* Only the caller's pool has the caller's addresses: a pool an item
       opens here has this run's own. */
    if (!program || (const void *)wk->b != (const void *)region_start) {
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

/* Map the region a spawned process was told of (fd, address, size) and
   find the program's objects in this run; exits if the address is taken. */
static const struct mproc__program *adopt(int fd, unsigned long at,
                                          size_t size, size_t off)
{
    if (place_taken())
        _exit(MPROC__EXIT_PLACE);
    char *region = mproc__region_map_at(fd, (void *)(uintptr_t)at, size);
    if (!region)
        _exit(errno == EEXIST ? MPROC__EXIT_PLACE : MPROC__EXIT_NOMEM);
    region_start = region;
    const struct mproc__program *prog = (const void *)(region + off);
    here = calloc((size_t)prog->nobj + 1, sizeof *here);
    found = calloc((size_t)prog->nobj + 1, sizeof *found);
    if (!here || !found)
        _exit(MPROC__EXIT_NOMEM);
    for (int i = 0; i < prog->nobj; i++) {
        if (mproc__object_here(&prog->obj[i], &here[i]) == 0)
            found[i] = true;
        else
            atomic_store_explicit(
                &((struct mproc__program *)(uintptr_t)prog)->obj[i].missing,
                1, memory_order_relaxed);
    }
    program = prog;
    return prog;
}

/* A fresh run started by a supervisor: become worker w. */
static void become_worker(const char *e)
{
    int fd, w, initial, zpid, rfd;
    unsigned long at;
    unsigned long long mask;
    size_t size, off;
    if (sscanf(e, "%d,%lx,%zu,%zu,%d,%d,%d,%d,%llx", &fd, &at, &size, &off,
               &w, &initial, &zpid, &rfd, &mask) != 9)
        return; /* not one of ours: the program runs as usual */
    /* Ours, and the supervisor already gone: end, never run main. */
    if (mproc__die_with_parent(zpid) != 0)
        _exit(0);
    const struct mproc__program *prog = adopt(fd, at, size, off);
    close(fd);
    if (rfd >= 0)
        fcntl(rfd, F_SETFD, FD_CLOEXEC);
    mproc_options o = {.start = MPROC_START_SPAWN};
    o.init = (int (*)(void *))addr_fn(translate(prog->init));
    o.fini = (void (*)(void *))addr_fn(translate(prog->fini));
    o.init_arg = (void *)translate(prog->init_arg);
    if ((prog->init && !o.init) || (prog->fini && !o.fini) ||
        (prog->init_arg && !o.init_arg))
        _exit(MPROC__EXIT_CODE);
    /* mproc__self_pool stays NULL: the caller's pool is known by its
       address alone (mproc__foreign_pool), which a pool this run opens may
       share. */
    sigset_t user;
    mask_of(mask, &user);
    sigprocmask(SIG_SETMASK, &user, NULL);
    mproc__worker_body(&o, (struct mproc__board *)(void *)region_start,
                       w, initial, rfd);
}

/* A fresh run started by the caller at open: become the pool's supervisor.
   Its pool is rebuilt from what it was told; it keeps the region's file and
   the executable's path for the workers it spawns. */
static void become_supervisor(const char *e)
{
    int fd, W, watch, ev, rfd, init_limit, follow, caller;
    unsigned long at;
    unsigned long long mask;
    size_t size, off;
    if (sscanf(e, "%d,%lx,%zu,%zu,%d,%d,%d,%d,%d,%d,%d,%llx", &fd, &at, &size,
               &off, &W, &watch, &ev, &rfd, &init_limit, &follow, &caller,
               &mask) != 12)
        return; /* not one of ours: the program runs as usual */
    /* Ours, and the caller already gone: end, never run main. */
    if (getppid() != caller)
        _exit(0);
    /* Close-on-exec again (posix_spawn cleared it for us): what the
       supervisor spawns keeps only what it is given. */
    const int fds[] = {fd, watch, ev, rfd};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (fds[i] >= 0)
            fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    static mproc_pool pool;
    adopt(fd, at, size, off);
    pool.opt.start = MPROC_START_SPAWN;
    pool.workers = W;
    pool.region = region_start;
    pool.region_size = size;
    pool.region_fd = fd;
    pool.board = (struct mproc__board *)(void *)pool.region;
    pool.program = (struct mproc__program *)(uintptr_t)program;
    pool.zevent = ev;
    pool.lifeline = -1;
    if ((pool.exe_fd = mproc__self_exe()) < 0)
        _exit(MPROC__EXIT_NOMEM);
    sigset_t user;
    mask_of(mask, &user);
    mproc__supervisor_spawned(&pool, watch, rfd, init_limit, follow, &user);
}

/*
 * A fresh run of the program started by the library: become what the
 * environment says, before main. The environment is removed at once, so
 * that what items start never sees it; a run that finds a value it did not
 * expect runs the program as usual.
 */
__attribute__((constructor)) static void spawned(void)
{
    const char *e = getenv(ENV);
    const char *z = getenv(ENV_SUPER);
    char copy[256];
    if (!e && !z)
        return;
    snprintf(copy, sizeof copy, "%s", e ? e : z);
    unsetenv(ENV);
    unsetenv(ENV_SUPER);
    if (e)
        become_worker(copy);
    else
        become_supervisor(copy);
}
