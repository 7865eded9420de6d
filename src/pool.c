/*
 * A pool's life: the options, opening and closing, the memory a pool maps,
 * and the one table that maps a kind of worker to its code (kind.h).
 *
 * Who runs here: the caller's threads. Opening checks what every kind
 * shares, then hands over to the kind: open (workers, memory), the board
 * laid here, start. Closing cancels and waits for every live task, detaches
 * it (task.c), then stops the workers and closes the kind. Nothing here
 * branches on the kind.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGS_SIZE  (UINT64_C(2) << 30)
#define MAX_SHARED (UINT64_C(1) << 46)

_Thread_local int mproc__self_id = -1;
_Thread_local const mproc_pool *mproc__self_pool;
_Thread_local const mproc_pool *mproc__inside;

int mproc_worker_id(void)
{
    return mproc__self_id;
}

/* ---- kinds and options ------------------------------------------------- */

static const struct mproc__kind *kind_of(mproc_kind kind)
{
    switch (kind) {
    case MPROC_PROCESSES:
        return &mproc__kind_processes;
    case MPROC_THREADS:
        return &mproc__kind_threads;
    case MPROC_MPI:
        return &mproc__kind_mpi;
    }
    return NULL;
}

/* What every kind checks; the kind's own check follows. */
static int check_options(const mproc_options *o)
{
    if (!kind_of(o->kind) && o->kind != MPROC_MPI)
        return mproc__fail(MPROC_EINVAL,
                           "options.kind is %d, not MPROC_PROCESSES, "
                           "MPROC_THREADS or MPROC_MPI",
                           (int)o->kind);
    if (o->workers < 0 || o->workers > MPROC__MAX_WORKERS)
        return mproc__fail(MPROC_EINVAL,
                           "options.workers is %d; it must be 0 (one per "
                           "CPU) to %d",
                           o->workers, MPROC__MAX_WORKERS);
    if (isnan(o->timeout) || o->timeout < 0 || o->timeout > 365.0 * 86400)
        return mproc__fail(MPROC_EINVAL,
                           "options.timeout is %g s; it must be 0 (none) "
                           "to one year",
                           o->timeout);
    if (o->shared_size > MAX_SHARED)
        return mproc__fail(MPROC_EINVAL,
                           "options.shared_size is %zu bytes, more than the "
                           "%llu an arena may reserve",
                           o->shared_size, (unsigned long long)MAX_SHARED);
    if (o->start != MPROC_START_FORK && o->start != MPROC_START_SPAWN)
        return mproc__fail(MPROC_EINVAL,
                           "options.start is %d, not MPROC_START_FORK or "
                           "MPROC_START_SPAWN",
                           (int)o->start);
    if (!kind_of(o->kind))
        return mproc__fail(MPROC_ENOTSUP,
                           "options.kind is MPROC_MPI, and this program does "
                           "not link libmproc_mpi (pkg-config mproc_mpi, or "
                           "CMake's mproc::mpi)");
    if (o->start == MPROC_START_SPAWN && o->kind != MPROC_PROCESSES)
        return mproc__fail(MPROC_ENOTSUP,
                           "options.start is MPROC_START_SPAWN, which only "
                           "process pools take (threads and MPI ranks are "
                           "not forked)");
    return kind_of(o->kind)->check(o);
}

/* ---- a pool's memory -------------------------------------------------- */

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Sizes of the reserved areas. Staging is as large as physical memory (a
   copy larger could not fit anyway). Under valgrind, whose memory checker
   scans every mapped byte of every process at its exit, both stay small:
   48 and 16 MiB (enough for the tests' million-item maps) cost a process
   about 0.3 s there, 256 and 64 MiB cost 2.7 s. */
static size_t logs_size(void)
{
    return mproc__under_valgrind() ? (size_t)16 << 20 : (size_t)LOGS_SIZE;
}

static uint64_t staging_size(void)
{
    uint64_t s = mproc__ram();
    if (s > UINT64_C(64) << 30)
        s = UINT64_C(64) << 30;
    return mproc__under_valgrind() ? UINT64_C(48) << 20 : s;
}

/* The least that logs and staging shrink to where address space is short
   (ulimit -v): a pool still opens, and a job whose log or copies do not
   fit fails its submit with MPROC_ENOMEM. */
#define MIN_LOGS    ((size_t)4 << 20)
#define MIN_STAGING ((size_t)8 << 20)

/* Address space of a process pool: board, arena, logs, staging. Where the
   address space is short, staging shrinks, then the logs. */
static int map_shared(mproc_pool *p)
{
    size_t page = page_size();
    p->arena_size = MPROC__ALIGN_UP(p->opt.shared_size, page);
    p->logs_size = logs_size();
    uint64_t staging = staging_size();
    for (;;) {
        p->region_size = p->board_size + p->arena_size + p->logs_size +
                         MPROC__ALIGN_UP((size_t)staging, page);
        /* Spawned workers map the region from its file (spawn.c). */
        p->region = mproc__region_map(
            p->region_size, true,
            p->opt.start == MPROC_START_SPAWN ? &p->region_fd : NULL);
        if (p->region)
            break;
        if (staging > MIN_STAGING)
            staging /= 2;
        else if (p->logs_size > MIN_LOGS)
            p->logs_size /= 2;
        else
            return mproc__fail(-errno,
                               "could not reserve %zu bytes of address "
                               "space for the pool's shared region: %s",
                               p->region_size, strerror(errno));
    }
    char *at = p->region + p->board_size;
    mproc__heap_init(&p->arena, at, p->arena_size, true, 0, true);
    at += p->arena_size;
    mproc__no_dump(at, (size_t)(p->region + p->region_size - at));
    mproc__heap_init(&p->logs, at, p->logs_size, false, 64 << 20, true);
    at += p->logs_size;
    mproc__heap_init(&p->staging, at, (size_t)(p->region + p->region_size - at),
                     false, (size_t)(mproc__ram() / 8), true);
    p->board = (struct mproc__board *)p->region;
    return mproc__results_open(p);
}

static int map_private(mproc_pool *p)
{
    p->board = aligned_alloc(MPROC__LINE, p->board_size);
    if (!p->board)
        return mproc__fail(MPROC_ENOMEM,
                           "no memory for the pool's board "
                           "(%zu bytes)",
                           p->board_size);
    p->arena_size = MPROC__ALIGN_UP(p->opt.shared_size, page_size());
    if (p->arena_size) {
        p->private_arena = mproc__region_map(p->arena_size, false, NULL);
        if (!p->private_arena)
            return mproc__fail(-errno,
                               "could not reserve the arena's %zu bytes: %s",
                               p->arena_size, strerror(errno));
    }
    mproc__heap_init(&p->arena, p->private_arena, p->arena_size, true, 0,
                     false);
    p->logs_size = logs_size();
    while (!(p->private_logs = mproc__region_map(p->logs_size, false, NULL)))
        if ((p->logs_size /= 2) < MIN_LOGS)
            return mproc__fail(-errno,
                               "could not reserve address space for job "
                               "logs: %s",
                               strerror(errno));
    mproc__heap_init(&p->logs, p->private_logs, p->logs_size, false, 64 << 20,
                     false);
    return 0;
}

int mproc__pool_map(mproc_pool *p, bool shared)
{
    p->board_size = MPROC__ALIGN_UP(mproc__board_size(p->workers), page_size());
    int err = shared ? map_shared(p) : map_private(p);
    if (err)
        mproc__pool_unmap(p);
    return err;
}

/* Give back what mproc__pool_map made, whatever part of it was made. */
void mproc__pool_unmap(mproc_pool *p)
{
    mproc__heap_destroy(&p->arena);
    mproc__heap_destroy(&p->logs);
    mproc__results_close(p);
    if (p->region_fd >= 0)
        close(p->region_fd);
    if (p->exe_fd >= 0)
        close(p->exe_fd);
    p->region_fd = p->exe_fd = -1;
    p->program = NULL;
    if (p->region) {
        mproc__heap_destroy(&p->staging);
        mproc__region_unmap(p->region, p->region_size);
    } else {
        free(p->board);
        mproc__region_unmap(p->private_arena, p->arena_size);
        mproc__region_unmap(p->private_logs, p->logs_size);
    }
    p->region = p->private_arena = p->private_logs = NULL;
    p->board = NULL;
}

/* ---- opening and closing ---------------------------------------------- */

/* The pools this process opened: a spawned worker's pool pointer is the
   caller's address, which a pool opened here may have too (spawn.c). */
static pthread_mutex_t here_lock = PTHREAD_MUTEX_INITIALIZER;
static mproc_pool *opened;

static void note_open(mproc_pool *p)
{
    pthread_mutex_lock(&here_lock);
    p->next_here = opened;
    opened = p;
    pthread_mutex_unlock(&here_lock);
}

static void note_close(mproc_pool *p)
{
    pthread_mutex_lock(&here_lock);
    for (mproc_pool **pp = &opened; *pp; pp = &(*pp)->next_here)
        if (*pp == p) {
            *pp = p->next_here;
            break;
        }
    pthread_mutex_unlock(&here_lock);
}

bool mproc__opened_here(const mproc_pool *pool)
{
    pthread_mutex_lock(&here_lock);
    const mproc_pool *p = opened;
    while (p && p != pool)
        p = p->next_here;
    pthread_mutex_unlock(&here_lock);
    return p != NULL;
}

int mproc_pool_open(mproc_pool **pool, const mproc_options *opt)
{
    if (!pool)
        return mproc__fail(MPROC_EINVAL,
                           "mproc_pool_open: pool (where the pool goes) is "
                           "NULL");
    *pool = NULL;
    mproc_options o = opt ? *opt : (mproc_options){0};
    int err = check_options(&o);
    if (err)
        return err;

    mproc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return mproc__fail(MPROC_ENOMEM, "no memory for a pool");
    p->opt = o;
    p->kind = kind_of(o.kind);
    p->isolated = p->kind->isolated;
    p->owner = getpid();
    p->zevent = p->lifeline = p->region_fd = p->exe_fd = -1;
    pthread_mutex_init(&p->lock, NULL);

    /* On MPI ranks other than 0 this serves, and never returns. */
    err = p->kind->open(p);
    if (err)
        goto fail;
    uint64_t tns = 0;
    if (o.timeout > 0) {
        tns = (uint64_t)(o.timeout * 1e9);
        if (!tns)
            tns = 1;
    }
    mproc__board_init(p->board, p->workers, p->isolated, tns, o.max_items);
    err = p->kind->start(p);
    if (err) {
        p->kind->stop(p);
        p->kind->close(p);
        goto fail;
    }
    note_open(p);
    *pool = p;
    return 0;

fail:
    pthread_mutex_destroy(&p->lock);
    free(p);
    return err;
}

/* In a spawned worker, its pool's pointer is the caller's address. */
static int foreign(const char *call)
{
    return mproc__fail(MPROC_EPERM,
                       "%s: called in a spawned worker of the pool, which "
                       "has none of the caller's memory (the pool is the "
                       "caller's)",
                       call);
}

int mproc_pool_size(const mproc_pool *pool)
{
    if (mproc__foreign_pool(pool))
        return foreign("mproc_pool_size");
    if (!pool)
        return mproc__fail(MPROC_EINVAL, "mproc_pool_size: pool is NULL");
    return pool->size ? pool->size : pool->workers;
}

/* May this thread use the pool? Not a worker of it (it would wait for
   itself), and not a process forked from the owner (its copy of the pool has
   no workers and no supervisor of its own). */
int mproc__usable(const mproc_pool *pool)
{
    if (mproc__self_pool == pool || mproc__foreign_pool(pool))
        return mproc__fail(MPROC_EDEADLK,
                           "called inside a worker of the same pool, which "
                           "would wait for itself");
    if (getpid() != pool->owner)
        return mproc__fail(MPROC_EPERM,
                           "the pool belongs to process %d; this is process "
                           "%d, a copy forked from it",
                           (int)pool->owner, (int)getpid());
    return 0;
}

static int close_pool(mproc_pool *pool)
{
    int err = mproc__usable(pool);
    if (err)
        return err;

    /* Every task still alive is cancelled (all first, so that pending
       tasks post as cancelled jobs), waited for, and detached: its results
       are in the caller's buffers and it no longer needs the pool. Close
       runs alone, so the list holds still. */
    for (mproc_task *t = pool->live; t; t = t->next)
        mproc_task_cancel(t);
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        mproc_task *t = pool->live;
        if (t) {
            pool->live = t->next;
            if (t->next)
                t->next->prev = NULL;
            t->next = t->prev = NULL;
        }
        pthread_mutex_unlock(&pool->lock);
        if (!t)
            break;
        mproc_task_cancel(t);
        mproc__task_finish(t);
        mproc__task_detach(t);
    }

    pool->kind->stop(pool);
    pool->kind->close(pool);
    note_close(pool);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    return 0;
}

int mproc_pool_close(mproc_pool *pool)
{
    if (!pool)
        return 0;
    const mproc_pool *saved;
    int err = mproc__enter(pool, &saved);
    if (err)
        return err;
    err = close_pool(pool);
    mproc__leave(saved);
    return err;
}

static int terminate_pool(mproc_pool *pool);

int mproc_pool_terminate(mproc_pool *pool)
{
    if (!pool)
        return 0;
    const mproc_pool *saved;
    int err = mproc__enter(pool, &saved);
    if (err)
        return err;
    err = terminate_pool(pool);
    mproc__leave(saved);
    return err;
}

static int terminate_pool(mproc_pool *pool)
{
    int err = mproc__usable(pool);
    if (err)
        return err;
    /* Kill every live task's running items, then close as usual: the
       waits in close then end as soon as the killed workers are reaped. */
    int r = 0;
    pthread_mutex_lock(&pool->lock);
    for (mproc_task *t = pool->live; t; t = t->next)
        if (!mproc__task_final(t))
            r |= mproc__task_kill_locked(t);
    pthread_mutex_unlock(&pool->lock);
    if (r & MPROC__KILL_CONDEMNED)
        pool->kind->kill(pool);
    return close_pool(pool);
}

/* ---- the shared arena ----------------------------------------------------------- */

void *mproc_shared_alloc(mproc_pool *pool, size_t size)
{
    if (!pool || !size) {
        mproc__fail(0, "mproc_shared_alloc: %s",
                    pool ? "size is 0" : "pool is NULL");
        errno = EINVAL;
        return NULL;
    }
    if (mproc__foreign_pool(pool)) {
        foreign("mproc_shared_alloc");
        errno = EPERM;
        return NULL;
    }
    if (getpid() != pool->owner) {
        mproc__fail(0,
                    "mproc_shared_alloc: called in process %d, not in the "
                    "process that opened the pool (%d)",
                    (int)getpid(), (int)pool->owner);
        errno = EPERM;
        return NULL;
    }
    void *p = mproc__heap_alloc(&pool->arena, size);
    if (!p)
        mproc__fail(0,
                    "mproc_shared_alloc: the arena (options.shared_size = "
                    "%zu) has no free block of %zu bytes",
                    pool->opt.shared_size, size);
    return p;
}

void mproc_shared_free(mproc_pool *pool, void *p)
{
    if (!pool || !p || mproc__foreign_pool(pool) || getpid() != pool->owner)
        return;
    mproc__heap_free(&pool->arena, p);
}
