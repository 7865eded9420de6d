/*
 * The public API: argument checks, pool lifecycle, submit, wait, and the
 * copies between the caller's buffers and memory workers see.
 *
 * Who runs here: the caller's threads. Shared with workers: the board.
 * Caller-side state (the next position, the task of each slot, the list of
 * live tasks, the heaps) is guarded by pool->lock, never held while waiting
 * or copying data.
 *
 * A task owns its job slot from submit until the slot is needed again,
 * RING positions later: the submitter taking the slot waits for the old job
 * to be complete (every item counted and every record sealed), then
 * "harvests" it: the final count goes into the old task, if still alive,
 * which from then on never looks at the slot. The task also owns its
 * staging block and its log, which it keeps until freed, so that results
 * can be collected (mproc_task_wait, mproc_task_next) at any later time.
 *
 * Waiting: spin briefly, then register in the job's `want` and sleep on its
 * `bell`; for a process pool also on the supervisor's robust futex, so that
 * the supervisor's death wakes every waiter (see processes.c).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_SPIN_NS  20000
#define LOGS_SIZE     (UINT64_C(2) << 30)
#define MAX_SHARED    (UINT64_C(1) << 46)
#define MPI_ITEM_MAX  (UINT64_C(1) << 30)
/* A reduction's result: each worker holds two, in partials sized from it. */
#define MAX_ACC       (UINT64_C(1) << 30)
/* Work per claim on a rank: a message's cost is microseconds, a network's
   tens. */
#define MPI_TARGET_NS 1000000

_Thread_local int mproc__self_id = -1;
_Thread_local const mproc_pool *mproc__self_pool;
pthread_mutex_t mproc__registry_lock = PTHREAD_MUTEX_INITIALIZER;
mproc_pool *mproc__registry;

struct mproc_task {
    mproc_pool *pool;               /* NULL once detached by close */
    uint64_t id;                    /* position + 1 */
    uint32_t js;                    /* its job slot, until harvested */
    mproc_job user;                 /* as submitted */
    struct mproc_task *prev, *next; /* pool->live */

    char *stage; /* staging block (process pools) */
    char *s_out; /* where workers wrote results */
    int *s_status, *s_wstatus;
    struct mproc__rec *log; /* from pool->logs, or private after close */
    uint64_t log_cap;
    bool log_private;
    char *partials;
    size_t pstride;
    bool partials_private;
    bool copy_out, copy_status, copy_wstatus;

    /* Written by whoever harvests, read by progress from any thread. */
    _Atomic bool harvested;
    _Atomic uint64_t final_fin;
    /* Set once salvage has given every item its final code, for progress,
       which the fin word no longer tells (see salvage). */
    _Atomic bool salvaged;
    void *arg_copy; /* thread pools: the copy of job.arg */

    /* The waiter's own. */
    uint64_t sealed; /* records [0, sealed) are sealed */
    uint64_t failed; /* failed items in those */
    uint64_t norun;  /* records in those that ran nothing */
    bool finished;
    bool cancelled;
    int result;
    uint64_t next_r, next_off;
};

int mproc_worker_id(void)
{
    return mproc__self_id;
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
        return "the pool's supervisor died; close the pool";
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

/* ---- opening and closing ----------------------------------------------- */

static int check_options(const mproc_options *o)
{
    if (o->kind != MPROC_PROCESSES && o->kind != MPROC_THREADS &&
        o->kind != MPROC_MPI)
        return MPROC_EINVAL;
    if (o->workers < 0 || o->workers > MPROC__MAX_WORKERS)
        return MPROC_EINVAL;
    if (isnan(o->timeout) || o->timeout < 0 || o->timeout > 365.0 * 86400)
        return MPROC_EINVAL;
    if (o->shared_size > MAX_SHARED)
        return MPROC_EINVAL;
    if (o->kind == MPROC_MPI && !mproc__mpi_built())
        return MPROC_ENOTSUP;
    if (o->kind != MPROC_PROCESSES && (o->timeout > 0 || o->max_items))
        return MPROC_ENOTSUP;
    return 0;
}

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

/* Address space of a process pool: board, arena, logs, staging. Where the
   address space is short, staging shrinks. */
static int map_region(mproc_pool *p)
{
    size_t page = page_size();
    p->arena_size = MPROC__ALIGN_UP(p->opt.shared_size, page);
    p->logs_size = logs_size();
    size_t fixed = p->board_size + p->arena_size + p->logs_size;
    uint64_t staging = staging_size();
    for (;;) {
        p->region_size = fixed + MPROC__ALIGN_UP((size_t)staging, page);
        p->region = mproc__region_map(p->region_size, true);
        if (p->region)
            break;
        if (staging <= UINT64_C(64) << 20)
            return -errno;
        staging /= 2;
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
    return 0;
}

static int map_private(mproc_pool *p)
{
    p->board = aligned_alloc(MPROC__LINE, p->board_size);
    if (!p->board)
        return MPROC_ENOMEM;
    p->arena_size = MPROC__ALIGN_UP(p->opt.shared_size, page_size());
    if (p->arena_size) {
        p->private_arena = mproc__region_map(p->arena_size, false);
        if (!p->private_arena)
            return -errno;
    }
    mproc__heap_init(&p->arena, p->private_arena, p->arena_size, true, 0,
                     false);
    p->logs_size = logs_size();
    p->private_logs = mproc__region_map(p->logs_size, false);
    if (!p->private_logs)
        return -errno;
    mproc__heap_init(&p->logs, p->private_logs, p->logs_size, false, 64 << 20,
                     false);
    return 0;
}

/* Give back what the pool holds. Its workers are stopped by now: an MPI
   pool's proxies too, so its ranks can be released. */
static void release(mproc_pool *p)
{
    if (p->opt.kind == MPROC_MPI)
        mproc__mpi_close(p);
    mproc__heap_destroy(&p->arena);
    mproc__heap_destroy(&p->logs);
    if (p->region) {
        mproc__heap_destroy(&p->staging);
        mproc__region_unmap(p->region, p->region_size);
    } else {
        free(p->board);
        mproc__region_unmap(p->private_arena, p->arena_size);
        mproc__region_unmap(p->private_logs, p->logs_size);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Release a process pool and leave the registry, in one step under its
   lock: until its region is unmapped, a supervisor forked for another pool
   must still find it there and drop it. */
static void unregister_release(mproc_pool *p)
{
    pthread_mutex_lock(&mproc__registry_lock);
    for (mproc_pool **pp = &mproc__registry; *pp; pp = &(*pp)->next_open)
        if (*pp == p) {
            *pp = p->next_open;
            break;
        }
    release(p);
    pthread_mutex_unlock(&mproc__registry_lock);
}

int mproc_pool_open(mproc_pool **pool, const mproc_options *opt)
{
    if (!pool)
        return MPROC_EINVAL;
    *pool = NULL;
    mproc_options o = opt ? *opt : (mproc_options){0};
    int err = check_options(&o);
    if (err)
        return err;

    mproc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return MPROC_ENOMEM;
    p->opt = o;
    p->isolated = o.kind == MPROC_PROCESSES;
    p->owner = getpid();
    p->zevent = p->lifeline = -1;
    pthread_mutex_init(&p->lock, NULL);
    if (o.kind == MPROC_MPI) {
        /* On ranks other than 0 this serves, and never returns. */
        err = mproc__mpi_open(p);
        if (err) {
            pthread_mutex_destroy(&p->lock);
            free(p);
            return err;
        }
    } else {
        p->workers = o.workers ? o.workers : mproc__cpu_count();
    }
    p->board_size = MPROC__ALIGN_UP(mproc__board_size(p->workers), page_size());

    if (p->isolated) {
        /* Mapped and registered under the registry lock, as the supervisor
           is forked under it (processes.c): a supervisor forked for another
           pool, from another thread, either comes before this mapping or
           finds it in the registry and drops it. */
        pthread_mutex_lock(&mproc__registry_lock);
        err = map_region(p);
        if (!err) {
            p->next_open = mproc__registry;
            mproc__registry = p;
        }
        pthread_mutex_unlock(&mproc__registry_lock);
    } else {
        err = map_private(p);
    }
    if (err) {
        release(p);
        return err;
    }
    uint64_t tns = 0;
    if (o.timeout > 0) {
        tns = (uint64_t)(o.timeout * 1e9);
        if (!tns)
            tns = 1;
    }
    mproc__board_init(p->board, p->workers, p->isolated, tns, o.max_items);
    if (o.kind == MPROC_MPI) {
        p->board->target_ns = MPI_TARGET_NS;
        /* The caller and the proxies spin only on a machine with cores to
           spare beyond its ranks'; else they would take the CPU the ranks
           on it need to answer. */
        if (!mproc__mpi_spare_cores())
            p->board->spin = 0;
    }

    if (p->isolated) {
        err = mproc__procs_start(p);
        if (err) {
            mproc__procs_stop(p);
            unregister_release(p);
            return err;
        }
    } else {
        err = mproc__threads_start(p);
        if (err) {
            mproc__threads_stop(p);
            release(p);
            return err;
        }
    }
    *pool = p;
    return 0;
}

int mproc_pool_size(const mproc_pool *pool)
{
    return pool ? pool->workers : MPROC_EINVAL;
}

/* May this thread use the pool? Not a worker of it (it would wait for
   itself), and not a process forked from the owner (its copy of the pool has
   no workers and no supervisor of its own). */
static int usable(const mproc_pool *pool)
{
    if (mproc__self_pool == pool)
        return MPROC_EDEADLK;
    if (getpid() != pool->owner)
        return MPROC_EPERM;
    return 0;
}

static void finish_task(mproc_task *t);
static void detach(mproc_task *t);

int mproc_pool_close(mproc_pool *pool)
{
    if (!pool)
        return 0;
    int err = usable(pool);
    if (err)
        return err;

    /* Every task still alive is cancelled, waited for, and detached: its
       results are in the caller's buffers and it no longer needs the pool. */
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
        finish_task(t);
        detach(t);
    }

    if (pool->isolated) {
        mproc__procs_stop(pool);
        unregister_release(pool);
    } else {
        mproc__threads_stop(pool);
        release(pool);
    }
    return 0;
}

/* ---- checking a job ------------------------------------------------------- */

static bool mul_overflows(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

/* Can this function be found by a rank running the same program: does it
   lie in a loaded object (not in memory made at run time)? */
static bool crosses(void (*f)(void))
{
    struct mproc__code ref;
    return mproc__code_ref(f, &ref) == 0;
}

static int check_job(const mproc_pool *pool, const mproc_job *j)
{
    if (!pool || !j || !j->fn)
        return MPROC_EINVAL;
    size_t bytes;
    if ((uint64_t)j->n > MPROC__MAX_N)
        return MPROC_EINVAL;
    if (!j->in && j->n && j->in_size)
        return MPROC_EINVAL;
    if (mul_overflows(j->n, j->in_size, &bytes) ||
        mul_overflows(j->n, j->out_size, &bytes))
        return MPROC_EINVAL;
    if (j->reduce && (!j->acc || !j->out_size || j->out_size > MAX_ACC))
        return MPROC_EINVAL;
    if (j->acc && !j->reduce)
        return MPROC_EINVAL;
    if (j->arg_size && !j->arg)
        return MPROC_EINVAL;
    /* Across MPI ranks only bytes travel: a pointer arg would mean nothing
       on the other side, and a message holds at most INT_MAX bytes (a job's
       carries arg and, for a reduction, the identity). */
    if (pool->opt.kind == MPROC_MPI &&
        ((j->arg && !j->arg_size) || j->in_size > MPI_ITEM_MAX ||
         j->out_size > MPI_ITEM_MAX || j->arg_size > MPI_ITEM_MAX ||
         j->arg_size + j->out_size > MPI_ITEM_MAX ||
         !crosses((void (*)(void))j->fn) ||
         (j->reduce && !j->out && !crosses((void (*)(void))j->reduce))))
        return MPROC_EINVAL;
    int err = usable(pool);
    if (err)
        return err;
    if (atomic_load_explicit(&pool->board->broken, memory_order_acquire) ||
        (atomic_load_explicit(&pool->board->zlock, memory_order_acquire) &
         MPROC__OWNER_DIED))
        return MPROC_EBROKEN;
    return 0;
}

/* ---- submitting ------------------------------------------------------------ */

static bool shared_mem(const mproc_pool *p, const void *ptr, size_t size)
{
    return !p->isolated || !size ||
           (p->region && ptr && (const char *)ptr >= p->region &&
            size <= p->region_size &&
            (size_t)((const char *)ptr - p->region) <= p->region_size - size);
}

/* Carve the staging block of a process pool's task: the copies of whatever
   workers could not otherwise see. */
static int stage(mproc_pool *pool, mproc_task *t, const char **in, void **arg)
{
    const mproc_job *u = &t->user;
    size_t n = u->n, off = 0;
    size_t o_in = 0, o_out = 0, o_st = 0, o_ws = 0, o_arg = 0, o_part = 0;
    bool c_in = !shared_mem(pool, u->in, n * u->in_size);
    bool c_arg = u->arg_size && !shared_mem(pool, u->arg, u->arg_size);
    t->copy_out = u->out && !shared_mem(pool, u->out, n * u->out_size);
    t->copy_status = u->status && !shared_mem(pool, u->status, n * sizeof(int));
    t->copy_wstatus =
        u->wstatus && !shared_mem(pool, u->wstatus, n * sizeof(int));
    size_t sizes[6] = {
        c_in ? n * u->in_size : 0,
        t->copy_out ? n * u->out_size : 0,
        t->copy_status ? n * sizeof(int) : 0,
        t->copy_wstatus ? n * sizeof(int) : 0,
        c_arg ? u->arg_size : 0,
        u->reduce ? (size_t)pool->workers * t->pstride : 0,
    };
    size_t *offs[6] = {&o_in, &o_out, &o_st, &o_ws, &o_arg, &o_part};
    for (int i = 0; i < 6; i++) {
        *offs[i] = off;
        size_t sz = MPROC__ALIGN_UP(sizes[i], MPROC__LINE);
        if (sz < sizes[i] || off + sz < off)
            return MPROC_ENOMEM;
        off += sz;
    }
    if (off) {
        t->stage = mproc__heap_alloc(&pool->staging, off);
        if (!t->stage)
            return MPROC_ENOMEM;
    }
    if (c_in) {
        memcpy(t->stage + o_in, u->in, sizes[0]);
        *in = t->stage + o_in;
    }
    if (t->copy_out)
        t->s_out = t->stage + o_out;
    if (t->copy_status)
        t->s_status = (int *)(t->stage + o_st);
    if (t->copy_wstatus)
        t->s_wstatus = (int *)(t->stage + o_ws);
    if (c_arg) {
        memcpy(t->stage + o_arg, u->arg, u->arg_size);
        *arg = t->stage + o_arg;
    }
    if (u->reduce)
        t->partials = t->stage + o_part;
    return 0;
}

static bool supervisor_alive(void *pool)
{
    return mproc__procs_alive(pool);
}

static void unstage(mproc_pool *pool, mproc_task *t)
{
    /* A published job of a process pool: the supervisor may be reading its
       log (board.c, mproc__release_job). */
    if (pool->isolated && t->id)
        mproc__release_job(pool->board, t->js, t->id, supervisor_alive, pool);
    if (t->stage)
        mproc__heap_free(&pool->staging, t->stage);
    if (t->log && !t->log_private)
        mproc__heap_free(&pool->logs, t->log);
    if (t->partials_private)
        free(t->partials);
    free(t->arg_copy);
    t->arg_copy = NULL;
    t->stage = NULL;
    t->s_out = NULL;
    t->s_status = t->s_wstatus = NULL;
    if (!t->log_private)
        t->log = NULL;
    t->partials = NULL;
}

static bool job_complete(struct mproc__job *j, uint64_t id);
static int wait_slot(mproc_pool *pool, uint32_t js, uint64_t id);

/* Take the slot for position pos: its previous job must be complete. Called
   and returns with pool->lock held; may drop it to wait. Returns 0 or
   MPROC_EBROKEN. */
static int take_slot(mproc_pool *pool, uint64_t *pos)
{
    struct mproc__board *b = pool->board;
    for (;;) {
        *pos = pool->next_pos;
        uint32_t js = (uint32_t)(*pos % MPROC__RING);
        struct mproc__job *j = &b->jobs[js];
        uint64_t old = atomic_load_explicit(&j->id, memory_order_acquire);
        if (!old ||
            atomic_load_explicit(&pool->retired[js], memory_order_acquire) ==
                old ||
            job_complete(j, old)) {
            mproc_task *prev = pool->tasks[js];
            if (prev) {
                atomic_store_explicit(
                    &prev->final_fin,
                    atomic_load_explicit(&j->fin, memory_order_acquire),
                    memory_order_relaxed);
                atomic_store_explicit(&prev->harvested, true,
                                      memory_order_release);
                pool->tasks[js] = NULL;
            }
            return 0;
        }
        pthread_mutex_unlock(&pool->lock);
        int err = wait_slot(pool, js, old);
        pthread_mutex_lock(&pool->lock);
        if (err)
            return err;
    }
}

/* Publish the job in slot js (see board.c, "Recycling"): the id is cleared
   while the fields are written, then set; the claim counter is reset last,
   with the new generation, and only then is the job counted in tail. */
static void publish(mproc_pool *pool, mproc_task *t, uint64_t pos,
                    const char *in, void *arg)
{
    struct mproc__board *b = pool->board;
    struct mproc__job *j = &b->jobs[pos % MPROC__RING];
    const mproc_job *u = &t->user;

    /* Release stores of n and fin, after clearing id: a reader of the slot
       that sees the new n (a claimer) or the new fin (a waiter of the old
       job) then sees id changed when it looks again. */
    atomic_store_explicit(&j->id, 0, memory_order_relaxed);
    j->fn = u->fn;
    j->in = u->in_size ? in : NULL;
    j->out = u->out_size ? (t->s_out ? t->s_out : u->out) : NULL;
    j->arg = arg;
    j->in_size = u->in_size;
    j->out_size = u->out_size;
    j->arg_size = u->arg_size;
    j->acc = u->acc;
    atomic_store_explicit(&j->n, u->n, memory_order_release);
    atomic_store_explicit(&j->chunk,
                          u->chunk > MPROC__MAX_LEN ? MPROC__MAX_LEN : u->chunk,
                          memory_order_relaxed);
    j->status = t->s_status ? t->s_status : u->status;
    j->wstatus = t->s_wstatus ? t->s_wstatus : u->wstatus;
    j->reduce = u->reduce;
    j->partials = t->partials;
    j->pstride = t->pstride;
    /* Release, as n: a waiter of the old job that reads the new log then
       sees id changed (job_complete). */
    atomic_store_explicit(&j->log, t->log, memory_order_release);
    atomic_store_explicit(&j->log_cap, t->log_cap, memory_order_release);
    atomic_store_explicit(&j->cancel, 0, memory_order_relaxed);
    atomic_store_explicit(&j->fin, 0, memory_order_release);
    /* Release: a claimer that acquires the id sees the fields. */
    atomic_store_explicit(&j->id, pos + 1, memory_order_release);
    atomic_store_explicit(&j->claim, mproc__gen(pos) << MPROC__IDX_BITS,
                          memory_order_release);
    /* seq_cst: pairs with the supervisor's look at z_idle then tail. */
    atomic_store_explicit(&b->tail, pos + 1, memory_order_seq_cst);
    t->id = pos + 1;
    t->js = (uint32_t)(pos % MPROC__RING);
}

static void wake_workers(mproc_pool *pool, size_t n)
{
    struct mproc__board *b = pool->board;
    /* seq_cst: pairs with the idle worker's seq_cst count then look at
       epoch (board.c, idle). */
    atomic_fetch_add_explicit(&b->epoch, 1, memory_order_seq_cst);
    uint32_t sleepers =
        atomic_load_explicit(&b->sleepers, memory_order_seq_cst);
    if (sleepers)
        mproc__futex_wake(&b->epoch,
                          n < (size_t)pool->workers ? (int)n : INT_MAX,
                          pool->isolated);
    if (pool->isolated && b->timeout_ns)
        mproc__procs_poke(pool);
}

int mproc_submit(mproc_pool *pool, const mproc_job *job, mproc_task **task)
{
    if (!task)
        return MPROC_EINVAL;
    *task = NULL;
    int err = check_job(pool, job);
    if (err)
        return err;

    mproc_task *t = calloc(1, sizeof *t);
    if (!t)
        return MPROC_ENOMEM;
    t->user = *job;
    t->pool = pool;
    size_t n = job->n;
    const char *in = job->in;
    void *arg = job->arg;

    /* The log: at most one record per item, and chunks are sized so that
       a job needs no more than LOG_MAX / 2 of them (board.c, chunk_len). */
    t->log_cap = n < MPROC__LOG_MAX ? n : MPROC__LOG_MAX;
    if (t->log_cap) {
        t->log = mproc__heap_alloc(&pool->logs, t->log_cap * sizeof *t->log);
        if (!t->log) {
            free(t);
            return MPROC_ENOMEM;
        }
    }
    if (job->reduce)
        t->pstride =
            MPROC__LINE + 2 * MPROC__ALIGN_UP(job->out_size, MPROC__LINE);
    if (pool->isolated) {
        err = stage(pool, t, &in, &arg);
    } else {
        if (job->reduce) {
            t->partials =
                aligned_alloc(MPROC__LINE, (size_t)pool->workers * t->pstride);
            t->partials_private = true;
            err = t->partials ? 0 : MPROC_ENOMEM;
        }
        /* The same contract as processes: the caller may reuse arg at once. */
        if (!err && job->arg_size) {
            t->arg_copy = malloc(job->arg_size);
            err = t->arg_copy ? 0 : MPROC_ENOMEM;
            if (!err)
                arg = memcpy(t->arg_copy, job->arg, job->arg_size);
        }
    }
    if (err) {
        unstage(pool, t);
        free(t);
        return err;
    }
    int *ws = t->s_wstatus ? t->s_wstatus : job->wstatus;
    if (ws)
        memset(ws, 0, n * sizeof *ws);
    for (int w = 0; job->reduce && w < pool->workers; w++) {
        struct mproc__partial *h =
            (struct mproc__partial *)(t->partials + (size_t)w * t->pstride);
        atomic_store_explicit(&h->buf, 0, memory_order_relaxed);
        memcpy((char *)h + MPROC__LINE, job->acc, job->out_size);
    }

    pthread_mutex_lock(&pool->lock);
    uint64_t pos;
    err = take_slot(pool, &pos);
    if (err) {
        pthread_mutex_unlock(&pool->lock);
        unstage(pool, t);
        free(t);
        return err;
    }
    publish(pool, t, pos, in, arg);
    pool->next_pos = pos + 1;
    pool->tasks[t->js] = t;
    t->next = pool->live;
    if (t->next)
        t->next->prev = t;
    pool->live = t;
    pthread_mutex_unlock(&pool->lock);

    wake_workers(pool, n);
    *task = t;
    return 0;
}

/* ---- waiting ---------------------------------------------------------------- */

/* The job's fin word, from the slot while it still holds the job, else the
   value saved when it was harvested. */
static uint64_t task_fin(const mproc_task *t)
{
    if (!atomic_load_explicit(&t->harvested, memory_order_acquire)) {
        struct mproc__job *j = &t->pool->board->jobs[t->js];
        /* A seqlock read (see publish); seq_cst on fin for await's pair. */
        uint64_t id1 = atomic_load_explicit(&j->id, memory_order_acquire);
        uint64_t fin = atomic_load_explicit(&j->fin, memory_order_seq_cst);
        uint64_t id2 = atomic_load_explicit(&j->id, memory_order_relaxed);
        if (id1 == t->id && id2 == t->id)
            return fin;
    }
    return atomic_load_explicit(&t->final_fin, memory_order_acquire);
}

static uint64_t records_of(uint64_t fin, uint64_t cap)
{
    uint64_t r = fin >> MPROC__IDX_BITS;
    return r < cap ? r : cap;
}

/*
 * Is job `id` in slot j complete? A waiter for the slot asks without the
 * pool's lock, so another submitter may be recycling the slot (publish) as
 * it reads: a seqlock read, as in task_fin. If the id has changed, the job
 * was over before the slot was taken.
 */
static bool job_complete(struct mproc__job *j, uint64_t id)
{
    uint64_t fin = atomic_load_explicit(&j->fin, memory_order_seq_cst);
    if ((fin & MPROC__IDX_MASK) !=
        atomic_load_explicit(&j->n, memory_order_relaxed))
        return false;
    struct mproc__rec *log =
        atomic_load_explicit(&j->log, memory_order_acquire);
    uint64_t cap = atomic_load_explicit(&j->log_cap, memory_order_acquire);
    uint64_t nrec = records_of(fin, cap), tag = mproc__tag(id);
    if (atomic_load_explicit(&j->id, memory_order_relaxed) != id)
        return true;
    for (uint64_t r = nrec; r-- > 0;)
        if (!mproc__sealed(&log[r], tag))
            return false;
    return true;
}

/* Advance t->sealed over sealed records, adding up what they say. */
static void scan(mproc_task *t, uint64_t fin)
{
    uint64_t nrec = records_of(fin, t->log_cap), tag = mproc__tag(t->id);
    while (t->sealed < nrec && mproc__sealed(&t->log[t->sealed], tag)) {
        uint64_t seal =
            atomic_load_explicit(&t->log[t->sealed].seal, memory_order_relaxed);
        t->failed += seal & MPROC__MAX_LEN;
        t->norun += !!(seal & MPROC__NORUN);
        t->sealed++;
    }
}

static bool all_done(mproc_task *t)
{
    uint64_t fin = task_fin(t);
    if ((fin & MPROC__IDX_MASK) != t->user.n)
        return false;
    scan(t, fin);
    return t->sealed == records_of(fin, t->log_cap);
}

static bool next_ready(mproc_task *t)
{
    uint64_t fin = task_fin(t);
    scan(t, fin);
    return t->next_r < t->sealed || ((fin & MPROC__IDX_MASK) == t->user.n &&
                                     t->sealed == records_of(fin, t->log_cap));
}

/*
 * Sleep on job slot js until cond(arg) holds or the deadline
 * passes. Returns 0, MPROC_ETIMEDOUT or MPROC_EBROKEN.
 */
static int await(mproc_pool *pool, uint32_t js, uint32_t unit,
                 bool (*cond)(void *), void *arg, uint64_t deadline)
{
    struct mproc__board *b = pool->board;
    struct mproc__job *j = &b->jobs[js];
    uint64_t spin_until = mproc__now() + (b->spin ? WAIT_SPIN_NS : 0);
    for (unsigned k = 1;; k++) {
        if (cond(arg))
            return 0;
        if (k % 32 == 0 || !b->spin) {
            uint64_t now = mproc__now();
            if (deadline && now >= deadline)
                return MPROC_ETIMEDOUT;
            if (now >= spin_until)
                break;
        }
        mproc__relax();
    }
    for (;;) {
        uint32_t bell = atomic_load_explicit(&j->bell, memory_order_acquire);
        /* seq_cst, as the loads in cond: the other half of the pair in
           board.c (mproc__seal): either cond sees the record, or its
           finisher sees us in `want` and rings. */
        atomic_fetch_add_explicit(&j->want, unit, memory_order_seq_cst);
        int r = 0;
        if (!cond(arg)) {
            if (atomic_load_explicit(&b->broken, memory_order_acquire)) {
                r = MPROC_EBROKEN;
            } else if (pool->isolated) {
                uint32_t z = atomic_fetch_or_explicit(&b->zlock, MPROC__WAITERS,
                                                      memory_order_acq_rel);
                if (z & MPROC__OWNER_DIED)
                    r = MPROC_EBROKEN;
                else
                    r = mproc__futex_wait2(&j->bell, bell, &b->zlock,
                                           z | MPROC__WAITERS, deadline);
                if (!r && !mproc__procs_alive(pool)) {
                    /* Let the other waiters know too. */
                    mproc__futex_wake(&b->zlock, INT_MAX, true);
                    r = MPROC_EBROKEN;
                }
            } else {
                r = mproc__futex_wait(&j->bell, bell, deadline, false);
            }
        }
        atomic_fetch_sub_explicit(&j->want, unit, memory_order_relaxed);
        if (r == MPROC_EBROKEN)
            return cond(arg) ? 0 : r;
        if (r == -ETIMEDOUT)
            return cond(arg) ? 0 : MPROC_ETIMEDOUT;
        if (cond(arg))
            return 0;
        if (deadline && mproc__now() >= deadline)
            return MPROC_ETIMEDOUT;
    }
}

struct slot_wait {
    struct mproc__job *j;
    _Atomic uint64_t *retired;
    uint64_t id;
};

/* The job in a slot is over once its task was freed (free waits for the
   job), or once the job is complete; its log is only read while its task
   lives, and a log reused by another job never carries this job's tag. */
static bool slot_free(void *p)
{
    struct slot_wait *s = p;
    return atomic_load_explicit(&s->j->id, memory_order_acquire) != s->id ||
           atomic_load_explicit(s->retired, memory_order_acquire) == s->id ||
           job_complete(s->j, s->id);
}

static int wait_slot(mproc_pool *pool, uint32_t js, uint64_t id)
{
    struct slot_wait s = {&pool->board->jobs[js], &pool->retired[js], id};
    return await(pool, js, MPROC__WANT_DONE, slot_free, &s, 0);
}

static bool cond_done(void *t)
{
    return all_done(t);
}

static bool cond_next(void *t)
{
    return next_ready(t);
}

static uint64_t deadline_of(double timeout)
{
    if (timeout < 0 || isinf(timeout))
        return 0;
    double ns = timeout * 1e9;
    if (ns > 1e18)
        return 0;
    return mproc__now() + (uint64_t)ns + 1;
}

/* ---- collecting results ------------------------------------------------------ */

static void copy_range(mproc_task *t, uint64_t start, uint64_t len, bool norun)
{
    const mproc_job *u = &t->user;
    if (t->copy_out && !norun)
        memcpy((char *)u->out + start * u->out_size,
               t->s_out + start * u->out_size, len * u->out_size);
    if (t->copy_status)
        memcpy(u->status + start, t->s_status + start, len * sizeof(int));
    if (t->copy_wstatus)
        memcpy(u->wstatus + start, t->s_wstatus + start, len * sizeof(int));
}

static void copy_record(mproc_task *t, uint64_t r)
{
    uint64_t range =
        atomic_load_explicit(&t->log[r].range, memory_order_relaxed);
    uint64_t seal = atomic_load_explicit(&t->log[r].seal, memory_order_relaxed);
    copy_range(t, range & MPROC__IDX_MASK, range >> MPROC__IDX_BITS,
               seal & MPROC__NORUN);
}

/* The job is complete: copy back what mproc_task_next has not, fold the
   partials, and settle the result. */
static void collect(mproc_task *t)
{
    const mproc_job *u = &t->user;
    bool copies = t->copy_out || t->copy_status || t->copy_wstatus;
    if (copies) {
        /* One copy of everything, unless mproc_task_next took some already
           or some items ran nothing (their results stay untouched). */
        if (!t->next_r && !t->next_off && !t->norun) {
            copy_range(t, 0, u->n, false);
        } else {
            for (uint64_t r = t->next_r + (t->next_off ? 1 : 0); r < t->sealed;
                 r++)
                copy_record(t, r);
        }
    }
    if (u->reduce) {
        for (int w = 0; w < t->pool->workers; w++) {
            char *part = t->partials + (size_t)w * t->pstride;
            uint32_t b = atomic_load_explicit(
                &((struct mproc__partial *)part)->buf, memory_order_acquire);
            size_t half = (t->pstride - MPROC__LINE) / 2;
            u->reduce(u->acc, part + MPROC__LINE + b * half, u->arg);
        }
    }
    uint64_t f = t->failed;
    t->result = f > INT_MAX ? INT_MAX : (int)f;
    t->finished = true;
}

static int by_start(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Mark items [from, to) crashed: they were never finished. */
static void mark_lost(mproc_task *t, uint64_t from, uint64_t to)
{
    if (t->user.status)
        for (uint64_t i = from; i < to; i++)
            t->user.status[i] = MPROC_ECRASHED;
    t->failed += to - from;
}

/*
 * The supervisor died: the workers die with it, so what is not sealed by
 * now never will be. Keep what finished, mark the rest crashed, and make
 * the task final.
 */
static void salvage(mproc_task *t)
{
    uint64_t n = t->user.n, fin = task_fin(t);
    scan(t, fin);
    uint64_t nrec = records_of(fin, t->log_cap), tag = mproc__tag(t->id);
    /* The sealed ranges, as (start, end) pairs sorted by start; the items
       between them are the lost ones (records are disjoint). One pair per
       record: at most LOG_MAX, 128 MiB, as much as the log itself, so
       failing to get them is failing to get memory at all. */
    uint64_t(*ranges)[2] = malloc((nrec ? nrec : 1) * sizeof *ranges);
    if (!ranges)
        abort();
    uint64_t nr = 0;
    for (uint64_t r = 0; r < nrec; r++) {
        if (!mproc__sealed(&t->log[r], tag))
            continue;
        uint64_t range =
            atomic_load_explicit(&t->log[r].range, memory_order_relaxed);
        uint64_t seal =
            atomic_load_explicit(&t->log[r].seal, memory_order_relaxed);
        uint64_t start = range & MPROC__IDX_MASK,
                 len = range >> MPROC__IDX_BITS;
        if (r >= t->next_r + (t->next_off ? 1 : 0))
            copy_range(t, start, len, seal & MPROC__NORUN);
        if (r >= t->sealed)
            t->failed += seal & MPROC__MAX_LEN;
        ranges[nr][0] = start;
        ranges[nr][1] = start + len;
        nr++;
    }
    qsort(ranges, nr, sizeof *ranges, by_start);
    uint64_t at = 0;
    for (uint64_t k = 0; k < nr; k++) {
        mark_lost(t, at, ranges[k][0]);
        at = ranges[k][1];
    }
    mark_lost(t, at, n);
    free(ranges);
    t->next_r = t->sealed = nrec; /* next reports nothing more */
    t->next_off = 0;
    uint64_t f = t->failed;
    t->result = f > INT_MAX ? INT_MAX : (int)f;
    t->finished = true;
    /* The items marked here are never counted in fin: progress must learn
       they are done from this flag. Release: pairs with its acquire. */
    atomic_store_explicit(&t->salvaged, true, memory_order_release);
}

/* Wait for ever and collect: what close and free need. */
static void finish_task(mproc_task *t)
{
    if (t->finished || !t->pool)
        return;
    int r = await(t->pool, t->js, MPROC__WANT_DONE, cond_done, t, 0);
    if (r == MPROC_EBROKEN)
        salvage(t);
    else
        collect(t);
}

int mproc_task_wait(mproc_task *t, double timeout)
{
    if (!t || isnan(timeout))
        return MPROC_EINVAL;
    if (t->finished || !t->pool)
        return t->result;
    int err = usable(t->pool);
    if (err)
        return err;
    int r = await(t->pool, t->js, MPROC__WANT_DONE, cond_done, t,
                  deadline_of(timeout));
    if (r == MPROC_ETIMEDOUT)
        return r;
    if (r == MPROC_EBROKEN)
        salvage(t);
    else
        collect(t);
    return t->result;
}

int mproc_task_next(mproc_task *t, size_t *index, double timeout)
{
    if (!t || !index || isnan(timeout))
        return MPROC_EINVAL;
    for (;;) {
        if (t->next_r < t->sealed) {
            struct mproc__rec *rec = &t->log[t->next_r];
            uint64_t range =
                atomic_load_explicit(&rec->range, memory_order_relaxed);
            uint64_t start = range & MPROC__IDX_MASK,
                     len = range >> MPROC__IDX_BITS;
            if (!t->next_off && !t->finished)
                copy_record(t, t->next_r);
            *index = (size_t)(start + t->next_off);
            if (++t->next_off == len) {
                t->next_r++;
                t->next_off = 0;
            }
            return 0;
        }
        if (t->finished || !t->pool)
            return MPROC_EOF;
        int err = usable(t->pool);
        if (err)
            return err;
        uint64_t fin = task_fin(t);
        scan(t, fin);
        if (t->next_r < t->sealed)
            continue;
        if ((fin & MPROC__IDX_MASK) == t->user.n &&
            t->sealed == records_of(fin, t->log_cap))
            return MPROC_EOF;
        int r = await(t->pool, t->js, MPROC__WANT_EACH, cond_next, t,
                      deadline_of(timeout));
        if (r == MPROC_EBROKEN) {
            salvage(t);
            return MPROC_EBROKEN;
        }
        if (r)
            return r;
    }
}

int mproc_task_progress(const mproc_task *t, size_t *done, size_t *n)
{
    if (!t)
        return MPROC_EINVAL;
    if (done)
        *done =
            t->pool && !atomic_load_explicit(&t->salvaged, memory_order_acquire)
                ? (size_t)(task_fin(t) & MPROC__IDX_MASK)
                : t->user.n;
    if (n)
        *n = t->user.n;
    return 0;
}

int mproc_task_cancel(mproc_task *t)
{
    if (!t)
        return MPROC_EINVAL;
    mproc_pool *pool = t->pool;
    if (!pool || t->finished || t->cancelled)
        return 0;
    if (getpid() != pool->owner)
        return MPROC_EPERM;
    pthread_mutex_lock(&pool->lock);
    if (!atomic_load_explicit(&t->harvested, memory_order_acquire))
        mproc__cancel_job(pool->board, &pool->board->jobs[t->js]);
    t->cancelled = true;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/* The pool is closing: the task keeps its results and what mproc_task_next
   has not handed out yet, in memory of its own. */
static void detach(mproc_task *t)
{
    mproc_pool *pool = t->pool;
    uint64_t left = t->sealed - t->next_r;
    struct mproc__rec *copy = NULL;
    if (left) {
        copy = malloc(left * sizeof *copy);
        if (copy)
            memcpy(copy, t->log + t->next_r, left * sizeof *copy);
        else
            left = 0;
    }
    unstage(pool, t);
    t->log = copy;
    t->log_private = true;
    t->sealed = left;
    t->next_r = 0;
    t->pool = NULL;
}

void mproc_task_free(mproc_task *t)
{
    if (!t)
        return;
    mproc_pool *pool = t->pool;
    if (pool && getpid() != pool->owner) {
        /* A forked copy of the caller: the pool is not this process's to
           touch; only the copy of the task itself is freed. */
        free(t);
        return;
    }
    if (pool) {
        if (!t->finished) {
            mproc_task_cancel(t);
            if (mproc__self_pool == pool) {
                /* A worker of the pool would wait for the pool, perhaps for
                   the very item it is running: the mistake has no code to
                   return, and waiting would hang. */
                fprintf(stderr, "mproc: mproc_task_free of an unfinished task "
                                "called from a worker of its own pool\n");
                abort();
            }
            finish_task(t);
        }
        pthread_mutex_lock(&pool->lock);
        if (t->prev)
            t->prev->next = t->next;
        else
            pool->live = t->next;
        if (t->next)
            t->next->prev = t->prev;
        bool in_slot =
            !atomic_load_explicit(&t->harvested, memory_order_acquire) &&
            pool->tasks[t->js] == t;
        if (in_slot) {
            pool->tasks[t->js] = NULL;
            atomic_store_explicit(&pool->retired[t->js], t->id,
                                  memory_order_release);
        }
        unstage(pool, t);
        pthread_mutex_unlock(&pool->lock);
        if (in_slot) {
            /* A submitter may be waiting for this slot. */
            struct mproc__job *j = &pool->board->jobs[t->js];
            atomic_fetch_add_explicit(&j->bell, 1, memory_order_release);
            mproc__futex_wake(&j->bell, INT_MAX, pool->isolated);
        }
    }
    if (t->log_private)
        free(t->log);
    free(t);
}

int mproc_map(mproc_pool *pool, const mproc_job *job)
{
    mproc_task *t;
    int r = mproc_submit(pool, job, &t);
    if (r)
        return r;
    r = mproc_task_wait(t, -1);
    mproc_task_free(t);
    return r;
}

/* ---- the shared arena ----------------------------------------------------------- */

void *mproc_shared_alloc(mproc_pool *pool, size_t size)
{
    if (!pool || !size) {
        errno = EINVAL;
        return NULL;
    }
    if (getpid() != pool->owner) {
        errno = EPERM;
        return NULL;
    }
    return mproc__heap_alloc(&pool->arena, size);
}

void mproc_shared_free(mproc_pool *pool, void *p)
{
    if (!pool || !p || getpid() != pool->owner)
        return;
    mproc__heap_free(&pool->arena, p);
}
