/*
 * Process workers, the caller's side: opening (the shared region, the
 * registry of open process pools, the supervisor's fork), closing, poking,
 * and waiting with the supervisor's death in view. The supervisor and the
 * workers themselves are in supervisor.c.
 *
 * Who runs here: the caller's threads.
 *
 * Opening forks one process, the supervisor, which forks the workers. The
 * supervisor is a snapshot of the caller taken at open, and single-threaded,
 * so every worker it forks, first or replacement, sees the program's globals
 * exactly as they were at open, and no fork ever happens later from the
 * caller's possibly multi-threaded process. Workers are the supervisor's
 * children, never the caller's: the program's own waitpid(-1) and SIGCHLD
 * handling never see them.
 *
 * The registry: a supervisor forked for one pool inherits the mappings and
 * descriptors of every other pool the caller has open, and must drop them
 * (mproc__forget_others), or a pool's region would outlive its close in
 * another pool's workers. Mapping and registering, forking, and unmapping
 * and leaving each happen under the registry lock, so that a supervisor
 * sees either none of a pool or all of it in the registry.
 *
 * Deaths: the supervisor watches the caller's lifeline (a pidfd, or a pipe
 * whose write end the caller holds), which unlike PR_SET_PDEATHSIG fires on
 * the death of the process, not of the thread that opened the pool. The
 * caller learns of the supervisor's death from the kernel: the supervisor
 * holds `zlock` as a robust futex, which the kernel marks and wakes when it
 * exits, and every wait of the caller's waits on it too (futex_waitv).
 */
#define _GNU_SOURCE
#include "processes.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Open process pools, so that a new supervisor drops what it inherits of
   the others (mproc__forget_others). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mproc_pool *registry;

void mproc__forget_others(mproc_pool *self)
{
    for (mproc_pool *p = registry; p; p = p->next_open) {
        if (p == self)
            continue;
        if (p->region)
            munmap(p->region, p->region_size);
        mproc__results_forget(p);
        if (p->region_fd >= 0)
            close(p->region_fd);
        if (p->exe_fd >= 0)
            close(p->exe_fd);
        if (p->zevent >= 0)
            close(p->zevent);
        if (p->lifeline >= 0)
            close(p->lifeline);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- the caller's side --------------------------------------------------- */

/* How long a spawned supervisor has to take its role (spawn.c). */
#define SPAWN_ROLE_NS (UINT64_C(10) * MPROC__NS)

static int start(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    fflush(NULL);

    /* The registry lock is held from the making of this pool's descriptors
       to the fork, so that the supervisor inherits a consistent list (it
       unlocks its own copy), and so that no supervisor forked for another
       pool, from another thread, inherits descriptors of this one that the
       registry does not list yet (see forget_others). */
    pthread_mutex_lock(&registry_lock);
    int watch = mproc__lifeline(&pool->lifeline);
    if (watch < 0) {
        pthread_mutex_unlock(&registry_lock);
        return mproc__fail(watch,
                           "no descriptor to watch the caller's life "
                           "with: %s",
                           mproc_strerror(watch));
    }
    int ev = mproc__event_open();
    if (ev < 0) {
        close(watch);
        if (pool->lifeline >= 0)
            close(pool->lifeline);
        pool->lifeline = -1;
        pthread_mutex_unlock(&registry_lock);
        return mproc__fail(ev, "eventfd for the supervisor: %s",
                           mproc_strerror(ev));
    }
    pool->zevent = ev;
    bool spawn = pool->opt.start == MPROC_START_SPAWN;
    pid_t pid;
    int err = 0;
    if (spawn) {
        /* A fresh run of the program: nothing of this process is copied,
           so the lock is not needed past here, and the lifeline is kept
           until the supervisor is known to be in place (a run that found
           the region's address taken is started again). */
        pthread_mutex_unlock(&registry_lock);
        pid = mproc__spawn_supervisor(pool, watch);
        err = pid < 0 ? (int)pid : 0;
    } else {
        pid = fork();
        if (pid == 0)
            mproc__supervisor_main(pool, watch);
        err = pid < 0 ? -errno : 0;
        close(watch);
        pthread_mutex_unlock(&registry_lock);
    }
    if (err) {
        if (spawn)
            close(watch);
        return mproc__fail(err, "%s of the pool's supervisor: %s",
                           spawn ? "posix_spawn" : "fork", mproc_strerror(err));
    }
    pool->zpid = pid;

    /* Wait until every worker has run init, or the open failed. The
       supervisor might die before it holds zlock, so look at it between
       short sleeps rather than trusting the robust futex here. A spawned
       supervisor takes its role in libmproc's constructor: one that ends,
       or does not hold zlock in time, without doing so is a run of the
       program that does not load libmproc at its start. */
    uint64_t role_by = mproc__now() + SPAWN_ROLE_NS;
    bool no_role = false;
    for (int tries = 1;;) {
        /* Acquire of ready: pairs with mproc__board_ready's release
           (board.c), after its store of open_error. Acquire of open_error:
           it is stored relaxed (board_ready, before its release of ready),
           so this pairs with nothing; only the value is used. */
        uint32_t r = atomic_load_explicit(&b->ready, memory_order_acquire);
        if (r >= (uint32_t)pool->workers ||
            atomic_load_explicit(&b->open_error, memory_order_acquire))
            break;
        /* Relaxed: only whether the supervisor ever held it. */
        bool held = atomic_load_explicit(&b->zlock, memory_order_relaxed);
        bool late = spawn && !held && mproc__now() > role_by;
        if (late)
            kill(pid, SIGKILL);
        if (late || mproc__child_exited(pid)) {
            int32_t code = MPROC_ECRASHED, none = 0;
            if (spawn) {
                int st = 0;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                    ;
                pool->zpid = 0;
                int ex = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                if (ex == MPROC__EXIT_PLACE &&
                    tries++ < MPROC__PLACE_TRIES) {
                    pid = mproc__spawn_supervisor(pool, watch);
                    if (pid > 0) {
                        pool->zpid = pid;
                        role_by = mproc__now() + SPAWN_ROLE_NS;
                        continue;
                    }
                    code = (int32_t)pid;
                } else if (ex == MPROC__EXIT_PLACE) {
                    code = -EADDRINUSE;
                } else if (ex == MPROC__EXIT_NOMEM) {
                    code = MPROC_ENOMEM;
                } else if (!held) {
                    code = MPROC_ENOTSUP;
                    no_role = true;
                }
            }
            /* Relaxed: only the compare-and-swap's atomicity matters, so
               that a worker's first error (board_ready), should one still
               come, and this one do not overwrite each other; this thread
               alone reads the word after, below. */
            atomic_compare_exchange_strong_explicit(
                &b->open_error, &none, code, memory_order_relaxed,
                memory_order_relaxed);
            break;
        }
        mproc__futex_wait(&b->ready, r, mproc__now() + 10000000, true);
    }
    if (spawn) {
        /* Only the supervisor's start needed them. */
        close(watch);
        close(pool->exe_fd);
        pool->exe_fd = -1;
    }
    /* Acquire, as above: only the value. */
    err = atomic_load_explicit(&b->open_error, memory_order_acquire);
    if (no_role)
        return mproc__fail(err,
                           "the spawned supervisor, a fresh run of %s, did "
                           "not take its role: MPROC_START_SPAWN needs "
                           "libmproc linked into the program and loaded at "
                           "its start (not dlopen'ed, not run through ld.so)",
                           program_invocation_name);
    if (err == MPROC_EINIT)
        return mproc__fail(err, "options.init returned nonzero in a worker");
    if (err == MPROC_ECRASHED)
        return mproc__fail(err, "a worker or the supervisor died while the "
                                "pool opened");
    if (err == -EADDRINUSE)
        return mproc__fail(err, "a spawned process found the address of the "
                                "pool's shared memory taken in its own run "
                                "of the program, %d times",
                           MPROC__PLACE_TRIES);
    if (err == MPROC_ENOTSUP && pool->opt.start == MPROC_START_SPAWN)
        return mproc__fail(err, "a spawned worker does not load the object "
                                "options.init, options.fini or "
                                "options.init_arg lies in (the program "
                                "dlopen'ed it?)");
    if (err)
        return mproc__fail(err, "a worker could not be started: %s",
                           mproc_strerror(err));
    return 0;
}

/*
 * Wait for the closing supervisor to exit, in bounded time whatever state it
 * is in: continued if it was stopped (SIGSTOP, or a job control stop that
 * reached it alone), and killed if it has not exited within the workers'
 * grace period and a margin; its workers then die with it (they asked for
 * SIGKILL at its death). The kernel wakes us on the robust futex it holds
 * as it exits; the short naps cover a supervisor that died before holding
 * it.
 */
static void await_supervisor(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    kill(pool->zpid, SIGCONT);
    uint64_t until = mproc__now() + mproc__close_grace(b) + 2 * MPROC__NS;
    for (;;) {
        /* acq_rel: as in sleep_on, our waiter bit for the kernel, and the
           kernel's OWNER_DIED. */
        uint32_t z = atomic_fetch_or_explicit(&b->zlock, MPROC__WAITERS,
                                              memory_order_acq_rel);
        if (z & MPROC__OWNER_DIED || mproc__child_exited(pool->zpid))
            return;
        uint64_t now = mproc__now();
        if (now >= until) {
            kill(pool->zpid, SIGKILL);
            return;
        }
        uint64_t nap = now + 10000000;
        mproc__futex_wait(&b->zlock, z | MPROC__WAITERS,
                          nap < until ? nap : until, true);
    }
}

static void stop(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    if (pool->zpid > 0) {
        /* closing: pairs with the acquire loads of it by the workers
           (board.c, mproc__work and idle) and the supervisor (supervisor.c,
           supervise and on_death); seq_cst is stronger than needed (release
           would do, as in threads.c). epoch: seq_cst as a post's bump
           (submit.c, wake_workers), against idle's count of sleepers and
           look at epoch; every sleeper is woken anyway. */
        atomic_store_explicit(&b->closing, 1, memory_order_seq_cst);
        atomic_fetch_add_explicit(&b->epoch, 1, memory_order_seq_cst);
        mproc__futex_wake(&b->epoch, INT_MAX, true);
        mproc__event_post(pool->zevent);
        await_supervisor(pool);
        /* ECHILD: the program reaped it already (its own waitpid(-1), or
           SIGCHLD ignored); it has exited either way. */
        while (waitpid(pool->zpid, NULL, 0) < 0 && errno == EINTR)
            ;
        pool->zpid = 0;
    }
    /* Under the registry lock: a supervisor forked meanwhile for another
       pool closes the descriptors the registry lists for this one, and must
       never see a number already closed here and given to a new file. */
    pthread_mutex_lock(&registry_lock);
    if (pool->zevent >= 0)
        close(pool->zevent);
    if (pool->lifeline >= 0)
        close(pool->lifeline);
    pool->zevent = pool->lifeline = -1;
    pthread_mutex_unlock(&registry_lock);
}

static void poke(mproc_pool *pool, bool urgent)
{
    struct mproc__board *b = pool->board;
    if (urgent) {
        /* A job's items have a shorter limit than the supervisor may be
           sleeping for: the eventfd stays readable until it looks again. */
        mproc__event_post(pool->zevent);
        return;
    }
    if (!atomic_load_explicit(&b->look_ns, memory_order_relaxed))
        return; /* the supervisor has no deadline to keep */
    /* seq_cst: pairs with the supervisor's seq_cst store of z_idle then
       look at the board (supervise, busy); the submitter's seq_cst store of
       tail came before this load. Either the supervisor sees the new job,
       or this sees it idle and wakes it. */
    if (atomic_load_explicit(&b->z_idle, memory_order_seq_cst) &&
        atomic_exchange_explicit(&b->z_idle, 0, memory_order_relaxed))
        mproc__event_post(pool->zevent);
}

static bool alive(mproc_pool *pool)
{
    /* Acquire: pairs with the kernel's marking of the robust futex when the
       supervisor exits (as in check_job below). */
    uint32_t z =
        atomic_load_explicit(&pool->board->zlock, memory_order_acquire);
    return !(z & MPROC__OWNER_DIED) && !mproc__child_exited(pool->zpid);
}

/* The supervisor kills what mproc_task_kill condemned as soon as it looks:
   wake it whether or not it sleeps with a deadline. */
static void kill_condemned(mproc_pool *pool)
{
    mproc__event_post(pool->zevent);
}

/* ---- the kind ------------------------------------------------------------ */

static int check(const mproc_options *o)
{
    (void)o;
    return 0;
}

/* The region is mapped and registered under the registry lock, as the
   supervisor is forked under it (start): a supervisor forked for another
   pool, from another thread, either comes before this mapping or finds it
   in the registry and drops it. */
static int open_processes(mproc_pool *pool)
{
    pool->workers = pool->opt.workers ? pool->opt.workers : mproc__cpu_count();
    pthread_mutex_lock(&registry_lock);
    int err = mproc__pool_map(pool, true);
    if (!err && pool->opt.start == MPROC_START_SPAWN) {
        err = mproc__spawn_prepare(pool);
        if (err)
            mproc__pool_unmap(pool);
    }
    if (!err) {
        pool->next_open = registry;
        registry = pool;
    }
    pthread_mutex_unlock(&registry_lock);
    return err;
}

/* Unmap and leave the registry in one step under its lock: until the
   region is unmapped, a supervisor forked for another pool must still find
   it there and drop it. */
static void close_processes(mproc_pool *pool)
{
    pthread_mutex_lock(&registry_lock);
    for (mproc_pool **pp = &registry; *pp; pp = &(*pp)->next_open)
        if (*pp == pool) {
            *pp = pool->next_open;
            break;
        }
    mproc__pool_unmap(pool);
    pthread_mutex_unlock(&registry_lock);
}

/* The caller waits on the job's bell and on the supervisor's robust futex
   at once (futex_waitv), so that the supervisor's death wakes it. */
static int sleep_on(mproc_pool *pool, _Atomic uint32_t *bell, uint32_t val,
                    uint64_t deadline)
{
    struct mproc__board *b = pool->board;
    /* acq_rel: the release half publishes our waiter bit to the kernel's
       view of the word (the supervisor's exit reads it); the acquire half
       pairs with the kernel's setting of OWNER_DIED. */
    uint32_t z = atomic_fetch_or_explicit(&b->zlock, MPROC__WAITERS,
                                          memory_order_acq_rel);
    if (z & MPROC__OWNER_DIED)
        return MPROC_EBROKEN; /* the sentence is the waiter's (task.c) */
    int r =
        mproc__futex_wait2(bell, val, &b->zlock, z | MPROC__WAITERS, deadline);
    if (!r && !alive(pool)) {
        /* Let the other waiters know too. */
        mproc__futex_wake(&b->zlock, INT_MAX, true);
        return MPROC_EBROKEN;
    }
    return r;
}

static int check_job(const mproc_pool *pool, const mproc_job *job)
{
    int err = mproc__spawn_check_job(pool, job);
    if (err)
        return err;
    /* Acquire: pairs with the kernel's marking of the robust futex when the
       supervisor exits. */
    if (atomic_load_explicit(&pool->board->zlock, memory_order_acquire) &
        MPROC__OWNER_DIED)
        return mproc__fail(MPROC_EBROKEN,
                           "the pool's supervisor died (killed from "
                           "outside?); close the pool");
    return 0;
}

const struct mproc__kind mproc__kind_processes = {
    .name = "processes",
    .isolated = true,
    .check = check,
    .open = open_processes,
    .start = start,
    .stop = stop,
    .close = close_processes,
    .poke = poke,
    .sleep = sleep_on,
    .alive = alive,
    .check_job = check_job,
    .kill = kill_condemned,
};
