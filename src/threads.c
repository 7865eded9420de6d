/*
 * Thread workers: pthreads of the caller's process, each running the board's
 * worker loop in its own slot. The proxies of MPI ranks (mpi.c) are such
 * threads too, whose items run on their rank.
 *
 * Who runs here: the caller opening and closing the pool, and the workers.
 * Shared: the board (ordinary memory, private futexes). A worker announces
 * that it started by bumping `ready` after init (and, when init fails,
 * storing the first error in `open_error` before it); the opener waits for
 * every started worker to have done so. Workers block every signal, so that
 * signals meant for the program reach the program's own threads.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void *thread_main(void *p)
{
    mproc_pool *pool = p;
    struct mproc__board *b = pool->board;
    int w = mproc__self_id;
    struct mproc__worker *wk = &pool->locals[w];

    mproc__self_pool = pool;
    /* A proxy (pool->exec) runs no user code but folds: init is its rank's. */
    if (!pool->exec && pool->opt.init && pool->opt.init(pool->opt.init_arg)) {
        mproc__board_ready(b, MPROC_EINIT, false);
        return NULL;
    }
    atomic_store_explicit(&b->slots[w].state, MPROC__IDLE,
                          memory_order_relaxed);
    mproc__board_ready(b, 0, false);
    mproc__work(wk);
    if (!pool->exec && pool->opt.fini)
        pool->opt.fini(pool->opt.init_arg);
    free(wk->scratch);
    return NULL;
}

/* The thread's id is set before it starts, through a tiny trampoline. */
struct boot {
    mproc_pool *pool;
    int w;
};

static void *boot(void *p)
{
    struct boot bt = *(struct boot *)p;
    free(p);
    mproc__self_id = bt.w;
    return thread_main(bt.pool);
}

int mproc__threads_start(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    int n = pool->workers, err = 0;
    pool->threads = calloc((size_t)n, sizeof *pool->threads);
    pool->locals = calloc((size_t)n, sizeof *pool->locals);
    if (!pool->threads || !pool->locals)
        return mproc__fail(MPROC_ENOMEM, "no memory for %d thread workers", n);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int w = 0; w < n; w++) {
        pool->locals[w] =
            (struct mproc__worker){.b = b, .w = w, .exec = pool->exec};
        struct boot *bt = malloc(sizeof *bt);
        if (!bt) {
            err = mproc__fail(MPROC_ENOMEM, "no memory to start a thread");
            break;
        }
        *bt = (struct boot){pool, w};
        int r = pthread_create(&pool->threads[w], NULL, boot, bt);
        if (r) {
            free(bt);
            err = mproc__fail(-r, "pthread_create of worker %d of %d: %s", w, n,
                              strerror(r));
            break;
        }
        pool->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    for (;;) {
        /* Acquire: pairs with mproc__board_ready's release. */
        uint32_t r = atomic_load_explicit(&b->ready, memory_order_acquire);
        if (r >= (uint32_t)pool->started)
            break;
        mproc__futex_wait(&b->ready, r, 0, false);
    }
    if (!err)
        err = atomic_load_explicit(&b->open_error, memory_order_relaxed);
    if (err == MPROC_EINIT)
        mproc__fail(err, "options.init returned nonzero in a worker");
    return err;
}

void mproc__threads_stop(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    /* Release: pairs with the workers' acquire of `closing` (board.c,
       mproc__work and idle). The bump of epoch wakes the sleepers; its
       order pairs as a post's does (board.c, idle). */
    atomic_store_explicit(&b->closing, 1, memory_order_release);
    atomic_fetch_add_explicit(&b->epoch, 1, memory_order_seq_cst);
    mproc__futex_wake(&b->epoch, INT_MAX, false);
    for (int w = 0; w < pool->started; w++)
        pthread_join(pool->threads[w], NULL);
    free(pool->threads);
    free(pool->locals);
    pool->threads = NULL;
    pool->locals = NULL;
    pool->started = 0;
}

/* ---- the kind ------------------------------------------------------------ */

static int check(const mproc_options *o)
{
    /* A thread cannot be killed on its own: no timeout, no replacement. */
    if (o->timeout > 0)
        return mproc__fail(MPROC_ENOTSUP,
                           "options.timeout is %g s: a thread cannot be "
                           "killed, so a thread pool cannot time items out "
                           "(use MPROC_PROCESSES)",
                           o->timeout);
    if (o->max_items)
        return mproc__fail(MPROC_ENOTSUP,
                           "options.max_items is %lu: a thread pool cannot "
                           "replace a worker (use MPROC_PROCESSES)",
                           o->max_items);
    return 0;
}

static int open_threads(mproc_pool *pool)
{
    pool->workers = pool->opt.workers ? pool->opt.workers : mproc__cpu_count();
    return mproc__pool_map(pool, false);
}

int mproc__threads_sleep(mproc_pool *pool, _Atomic uint32_t *bell, uint32_t val,
                         uint64_t deadline)
{
    (void)pool;
    return mproc__futex_wait(bell, val, deadline, false);
}

bool mproc__threads_alive(mproc_pool *pool)
{
    (void)pool;
    return true;
}

const struct mproc__kind mproc__kind_threads = {
    .name = "threads",
    .isolated = false,
    .check = check,
    .open = open_threads,
    .start = mproc__threads_start,
    .stop = mproc__threads_stop,
    .close = mproc__pool_unmap,
    .sleep = mproc__threads_sleep,
    .alive = mproc__threads_alive,
};
