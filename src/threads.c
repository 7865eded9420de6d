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
#include "internal.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>

static void *thread_main(void *p)
{
    mproc_pool *pool = p;
    struct mproc__board *b = pool->board;
    int w = mproc__self_id;
    struct mproc__worker *wk = &pool->locals[w];

    mproc__self_pool = pool;
    /* A proxy (pool->exec) runs no user code but folds: init is its rank's. */
    if (!pool->exec && pool->opt.init && pool->opt.init(pool->opt.init_arg)) {
        int32_t none = 0;
        atomic_compare_exchange_strong(&b->open_error, &none, MPROC_EINIT);
        atomic_fetch_add_explicit(&b->ready, 1, memory_order_release);
        mproc__futex_wake(&b->ready, INT_MAX, false);
        return NULL;
    }
    atomic_store_explicit(&b->slots[w].state, MPROC__IDLE,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&b->ready, 1, memory_order_release);
    mproc__futex_wake(&b->ready, INT_MAX, false);
    mproc__work(wk);
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
        return MPROC_ENOMEM;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int w = 0; w < n; w++) {
        pool->locals[w] =
            (struct mproc__worker){.b = b, .w = w, .exec = pool->exec};
        struct boot *bt = malloc(sizeof *bt);
        if (!bt) {
            err = MPROC_ENOMEM;
            break;
        }
        *bt = (struct boot){pool, w};
        int r = pthread_create(&pool->threads[w], NULL, boot, bt);
        if (r) {
            free(bt);
            err = -r;
            break;
        }
        pool->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    for (;;) {
        uint32_t r = atomic_load_explicit(&b->ready, memory_order_acquire);
        if (r >= (uint32_t)pool->started)
            break;
        mproc__futex_wait(&b->ready, r, 0, false);
    }
    if (!err)
        err = atomic_load_explicit(&b->open_error, memory_order_relaxed);
    return err;
}

void mproc__threads_stop(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
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
