/*
 * A job onto the board: the checks every kind makes on a job, the staging
 * of what isolated workers could not otherwise see, taking a job slot, and
 * publishing the job.
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
 * can be collected (task.c) at any later time.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A reduction's result: each worker holds two, in partials sized from it. */
#define MAX_ACC (UINT64_C(1) << 30)

/* ---- checking a job ---------------------------------------------------- */

static bool mul_overflows(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r);
}

static int check_job(const mproc_pool *pool, const mproc_job *j)
{
    if (!pool)
        return mproc__fail(MPROC_EINVAL, "pool is NULL");
    /* First: in a worker of this pool (a spawned one included, where the
       pointer is the caller's address and must not be followed), or in a
       forked copy of the caller, nothing else of the pool is read. */
    int err = mproc__usable(pool);
    if (err)
        return err;
    if (!j)
        return mproc__fail(MPROC_EINVAL, "job is NULL");
    if (!j->fn == !j->batch) /* exactly one of the two */
        return mproc__fail(MPROC_EINVAL, j->fn ? "job.fn and job.batch are "
                                                 "both set; give one"
                                               : "job.fn and job.batch are "
                                                 "both NULL");
    size_t bytes;
    if ((uint64_t)j->n > MPROC__MAX_N)
        return mproc__fail(MPROC_EINVAL,
                           "job.n is %zu, more than the 2^39 items a job "
                           "may have",
                           j->n);
    if (!j->in && j->n && j->in_size)
        return mproc__fail(MPROC_EINVAL,
                           "job.in is NULL while n = %zu and in_size = %zu",
                           j->n, j->in_size);
    if (mul_overflows(j->n, j->in_size, &bytes))
        return mproc__fail(MPROC_EINVAL,
                           "job.n * job.in_size (%zu * %zu) overflows size_t",
                           j->n, j->in_size);
    if (mul_overflows(j->n, j->out_size, &bytes))
        return mproc__fail(MPROC_EINVAL,
                           "job.n * job.out_size (%zu * %zu) overflows "
                           "size_t",
                           j->n, j->out_size);
    if (j->reduce && !j->acc)
        return mproc__fail(MPROC_EINVAL,
                           "job.reduce is set and job.acc (the identity "
                           "in, the total out) is NULL");
    if (j->reduce && !j->out_size)
        return mproc__fail(MPROC_EINVAL,
                           "job.reduce is set and job.out_size (the size of "
                           "a result and of acc) is 0");
    if (j->reduce && j->out_size > MAX_ACC)
        return mproc__fail(MPROC_EINVAL,
                           "job.out_size is %zu with job.reduce; a reduction's "
                           "result may have at most 2^30 bytes",
                           j->out_size);
    if (j->acc && !j->reduce)
        return mproc__fail(MPROC_EINVAL,
                           "job.acc is set and job.reduce is NULL");
    if (j->arg_size && !j->arg)
        return mproc__fail(MPROC_EINVAL, "job.arg is NULL while arg_size = %zu",
                           j->arg_size);
    if (isnan(j->timeout) || j->timeout < 0 || j->timeout > 365.0 * 86400)
        return mproc__fail(MPROC_EINVAL,
                           "job.timeout is %g s; it must be 0 (the pool's) "
                           "to one year",
                           j->timeout);
    /* A limit needs a keeper that can kill a running item. */
    if (j->timeout > 0 && !pool->kind->kill)
        return mproc__fail(MPROC_ENOTSUP,
                           "job.timeout is %g s: a %s pool cannot kill a "
                           "running item (use MPROC_PROCESSES)",
                           j->timeout, pool->kind->name);
    if (j->batch && (j->flags & MPROC_OUT_BYTES))
        return mproc__fail(MPROC_EINVAL,
                           "job.batch with MPROC_OUT_BYTES: mproc_result "
                           "makes one item's result, so results of any "
                           "length need job.fn");
    err = mproc__data_check(j);
    if (err)
        return err;
    /* Acquire: pairs with the release stores of `corrupt` and `broken` by
       whoever found the pool unable to go on; only the flags are read. */
    if (atomic_load_explicit(&pool->corrupt, memory_order_acquire) ||
        atomic_load_explicit(&pool->board->broken, memory_order_acquire))
        return mproc__fail(MPROC_EBROKEN,
                           "the pool is broken (its control memory was "
                           "written over); close it");
    return pool->kind->check_job ? pool->kind->check_job(pool, j) : 0;
}

/* ---- staging ------------------------------------------------------------ */

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
    size_t n = u->n, off = 0, payload = 0;
    size_t o_in = 0, o_out = 0, o_st = 0, o_ws = 0, o_arg = 0, o_part = 0,
           o_pay = 0;
    /* Strings and byte runs are copied wherever they are: the pointers to
       them are rewritten anyway (data.c). Results of any length always go
       through staging, where workers write where to find them. */
    bool items = u->flags & (MPROC_IN_STRINGS | MPROC_IN_BYTES);
    bool c_in = items || !shared_mem(pool, u->in, n * u->in_size);
    bool c_arg = u->arg_size && !shared_mem(pool, u->arg, u->arg_size);
    t->copy_out = u->out && ((u->flags & MPROC_OUT_BYTES) ||
                             !shared_mem(pool, u->out, n * u->out_size));
    t->copy_status = u->status && !shared_mem(pool, u->status, n * sizeof(int));
    t->copy_wstatus =
        u->wstatus && !shared_mem(pool, u->wstatus, n * sizeof(int));
    if (items) {
        int err = mproc__data_payload(u, &payload);
        if (err)
            return err;
    }
    size_t sizes[7] = {
        c_in ? n * u->in_size : 0,
        t->copy_out ? n * u->out_size : 0,
        t->copy_status ? n * sizeof(int) : 0,
        t->copy_wstatus ? n * sizeof(int) : 0,
        c_arg ? u->arg_size : 0,
        u->reduce ? (size_t)pool->workers * t->pstride : 0,
        payload,
    };
    size_t *offs[7] = {&o_in, &o_out, &o_st, &o_ws, &o_arg, &o_part, &o_pay};
    for (int i = 0; i < 7; i++) {
        *offs[i] = off;
        size_t sz = MPROC__ALIGN_UP(sizes[i], MPROC__LINE);
        if (sz < sizes[i] || off + sz < off)
            return mproc__fail(MPROC_ENOMEM, "the job's copies for the "
                                             "workers overflow size_t");
        off += sz;
    }
    if (off) {
        t->stage = mproc__heap_alloc(&pool->staging, off);
        if (!t->stage)
            return mproc__fail(MPROC_ENOMEM,
                               "the staging area has no room for the job's "
                               "%zu bytes of copies (data in the shared "
                               "arena is not copied)",
                               off);
    }
    if (items)
        mproc__data_stage(u, t->stage + o_in, t->stage + o_pay);
    else if (c_in)
        memcpy(t->stage + o_in, u->in, sizes[0]);
    if (c_in && t->stage)
        *in = t->stage + o_in;
    if (t->copy_out) {
        /* Staging is reused from job to job, and what it holds for an item
           is copied back whole: start it as the caller's buffer (what a
           thread pool leaves where fn writes nothing), never as an earlier
           job's results. Results of any length start as {NULL, 0}. */
        t->s_out = t->stage + o_out;
        if (u->flags & MPROC_OUT_BYTES)
            memset(t->s_out, 0, sizes[1]);
        else
            mproc__shared_written(memcpy(t->s_out, u->out, sizes[1]), sizes[1]);
    }
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

static bool alive(void *pool)
{
    mproc_pool *p = pool;
    return p->kind->alive(p);
}

void mproc__unstage(mproc_pool *pool, mproc_task *t)
{
    /* A published job of a process pool: the supervisor may be reading its
       log (board.c, mproc__release_job). */
    if (pool->isolated && t->id)
        mproc__release_job(pool->board, t->js, t->id, alive, pool);
    if (t->stage)
        mproc__heap_free(&pool->staging, t->stage);
    bool own_log = atomic_load_explicit(&t->state, memory_order_relaxed) ==
                   MPROC__TASK_DETACHED;
    if (t->log && !own_log)
        mproc__heap_free(&pool->logs, t->log);
    if (!pool->isolated)
        free(t->partials); /* its own, not staged */
    free(t->arg_copy);
    t->arg_copy = NULL;
    t->stage = NULL;
    t->s_out = NULL;
    t->s_status = t->s_wstatus = NULL;
    if (!own_log)
        t->log = NULL;
    t->partials = NULL;
}

/* ---- submitting ----------------------------------------------------------- */

/* Take the slot for the next position if its previous job is complete
   (harvesting that job), without waiting. Called with pool->lock held.
   Returns whether the slot is taken. */
static bool take_slot(mproc_pool *pool)
{
    struct mproc__board *b = pool->board;
    uint32_t js = (uint32_t)(pool->next_pos % MPROC__RING);
    struct mproc__job *j = &b->jobs[js];
    /* Acquire of id: pairs with the release store in publish, by an
       earlier submitter; acquire of retired: with its release store in
       mproc_task_free (task.c). Both were stored under pool->lock, held
       here, so the orders are stronger than needed. */
    uint64_t old = atomic_load_explicit(&j->id, memory_order_acquire);
    if (old &&
        atomic_load_explicit(&pool->retired[js], memory_order_acquire) != old &&
        !mproc__job_complete(j, old))
        return false;
    mproc_task *prev = pool->tasks[js];
    if (prev) {
        /* Acquire of fin: pairs with the release half of the last
           finishers' fetch-adds (board.c, mproc__finish); the job is
           complete, so this is its final count. Release of harvested:
           pairs with its acquire loads (task.c: mproc__task_fin, which then
           reads final_fin; cancel; free). */
        atomic_store_explicit(
            &prev->final_fin,
            atomic_load_explicit(&j->fin, memory_order_acquire),
            memory_order_relaxed);
        atomic_store_explicit(&prev->harvested, true, memory_order_release);
        pool->tasks[js] = NULL;
    }
    return true;
}

static uint64_t timeout_ns(double seconds)
{
    if (!(seconds > 0))
        return 0;
    uint64_t ns = (uint64_t)(seconds * 1e9);
    return ns ? ns : 1;
}

/* A job whose items may run for less than the supervisor sleeps between
   looks lowers the board's look_ns (only ever lowered); returns whether it
   did, so that the supervisor is woken to look sooner. */
static bool lower_look(struct mproc__board *b, uint64_t ns)
{
    uint64_t look = atomic_load_explicit(&b->look_ns, memory_order_relaxed);
    while (ns && (!look || ns < look))
        /* Relaxed: the urgent poke that follows (an eventfd write and the
           supervisor's read) orders it before the supervisor's next look. */
        if (atomic_compare_exchange_weak_explicit(&b->look_ns, &look, ns,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
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
       job) then sees id changed when it looks again. The clearing itself is
       a release too: it follows the harvest (take_slot), and a waiter of
       the old job that sees id changed then reads the final count the
       harvest left in its task (task.c, mproc__task_fin). */
    atomic_store_explicit(&j->id, 0, memory_order_release);
    j->fn = u->fn;
    j->batch = u->batch;
    j->in = u->in_size ? in : NULL;
    j->out = u->out_size ? (t->s_out ? t->s_out : u->out) : NULL;
    j->arg = arg;
    j->in_size = u->in_size;
    j->out_size = u->out_size;
    j->arg_size = u->arg_size;
    j->acc = u->acc;
    /* Release: pairs with the acquire load of n in take (board.c). */
    atomic_store_explicit(&j->n, u->n, memory_order_release);
    atomic_store_explicit(&j->chunk,
                          u->chunk > MPROC__MAX_LEN ? MPROC__MAX_LEN : u->chunk,
                          memory_order_relaxed);
    j->status = t->s_status ? t->s_status : u->status;
    j->wstatus = t->s_wstatus ? t->s_wstatus : u->wstatus;
    j->flags = u->flags;
    j->reduce = u->reduce;
    j->timeout_ns = timeout_ns(u->timeout);
    j->partials = t->partials;
    j->pstride = t->pstride;
    /* Release, as n: pairs with the acquire loads of log and log_cap in
       job_complete (task.c): a waiter of the old job that reads the new log
       then sees id changed. */
    atomic_store_explicit(&j->log, t->log, memory_order_release);
    atomic_store_explicit(&j->log_cap, t->log_cap, memory_order_release);
    /* A task cancelled while pending is cancelled before its job can be
       claimed: the id's release below carries this to every claimer, so
       no item of it starts (post then marks the unclaimed ones). */
    atomic_store_explicit(&j->cancel, t->cancelled ? 1 : 0,
                          memory_order_relaxed);
    /* Release: pairs with the waiters' seq_cst loads of fin (task.c,
       mproc__task_fin and job_complete; repair.c, reconcile). */
    atomic_store_explicit(&j->fin, 0, memory_order_release);
    /* Release: a reader that acquires the id sees the fields (board.c,
       exhausted and take; repair.c, abandon_all and mproc__reconcile;
       task.c, mproc__task_fin and slot_free). */
    atomic_store_explicit(&j->id, pos + 1, memory_order_release);
    /* Release: pairs with the acquire half of the claimers' fetch-add
       (board.c, take), whose count of the new generation then comes with
       the new id. */
    atomic_store_explicit(&j->claim, mproc__claim_word(mproc__gen(pos), 0),
                          memory_order_release);
    /* seq_cst: a store-buffering pair with the supervisor's seq_cst store
       of z_idle then look at tail (supervisor.c, supervise and busy); this
       side's load of z_idle is poke's (processes.c). Its release half also
       pairs with the workers' acquire of tail (board.c, claim). */
    atomic_store_explicit(&b->tail, pos + 1, memory_order_seq_cst);
    t->id = pos + 1;
    t->js = (uint32_t)(pos % MPROC__RING);
}

/*
 * Pending tasks. A task whose job finds no free slot (RING jobs are still
 * unfinished) is queued on the pool, in submission order, and posted as
 * slots free; mproc_submit never waits. The queue is pumped, under the
 * pool's lock, by every submit and by every waiter (task.c, await and
 * mproc__posted), which while tasks are pending looks at the queue every
 * PENDING_NAP. A pending task is `posted` false: it has no slot yet, and
 * a cancel only marks it, to be applied as it is posted.
 */
static void post(mproc_pool *pool, mproc_task *t)
{
    struct mproc__board *b = pool->board;
    uint64_t pos = pool->next_pos;
    publish(pool, t, pos, t->post_in, t->post_arg);
    pool->next_pos = pos + 1;
    pool->tasks[t->js] = t;
    /* Release: pairs with the acquire in mproc__task_fin (progress, from any
       thread), which then reads t->js and t->id. */
    atomic_store_explicit(&t->posted, true, memory_order_release);
    if (t->cancelled)
        mproc__cancel_job(b, &b->jobs[t->js]);
}

/* Post what the queue holds while slots are free; pool->lock held. Returns
   the items posted. */
static size_t pump_locked(mproc_pool *pool)
{
    size_t items = 0;
    while (pool->pend_head && take_slot(pool)) {
        mproc_task *t = pool->pend_head;
        pool->pend_head = t->pend_next;
        if (!pool->pend_head)
            pool->pend_tail = NULL;
        t->pend_next = NULL;
        atomic_fetch_sub_explicit(&pool->npending, 1, memory_order_relaxed);
        post(pool, t);
        items += t->user.n ? t->user.n : 1;
    }
    return items;
}

static void wake_workers(mproc_pool *pool, size_t n, bool urgent);

/* Take a task that will never be posted (salvaged after the pool broke)
   off the queue before it is freed; pool->lock held. */
void mproc__unqueue(mproc_pool *pool, mproc_task *t)
{
    if (atomic_load_explicit(&t->posted, memory_order_relaxed))
        return;
    mproc_task *prev = NULL;
    for (mproc_task *q = pool->pend_head; q; prev = q, q = q->pend_next) {
        if (q != t)
            continue;
        if (prev)
            prev->pend_next = t->pend_next;
        else
            pool->pend_head = t->pend_next;
        if (pool->pend_tail == t)
            pool->pend_tail = prev;
        t->pend_next = NULL;
        atomic_fetch_sub_explicit(&pool->npending, 1, memory_order_relaxed);
        return;
    }
}

void mproc__pump(mproc_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t items = pump_locked(pool);
    pthread_mutex_unlock(&pool->lock);
    if (items)
        wake_workers(pool, items, false);
}

static void wake_workers(mproc_pool *pool, size_t n, bool urgent)
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
    if (pool->kind->poke)
        pool->kind->poke(pool, urgent);
}

static int submit_job(mproc_pool *pool, const mproc_job *job, mproc_task **task)
{
    if (!task)
        return mproc__fail(MPROC_EINVAL,
                           "mproc_submit: task (where the task goes) is NULL");
    *task = NULL;
    mproc_job sized;
    if (job) {
        sized = *job;
        mproc__data_sizes(&sized);
        job = &sized;
    }
    int err = check_job(pool, job);
    if (err)
        return err;

    mproc_task *t = calloc(1, sizeof *t);
    if (!t)
        return mproc__fail(MPROC_ENOMEM, "no memory for a task");
    t->user = *job;
    t->pool = pool;
    size_t n = job->n;
    const char *in = job->in;
    void *arg = job->arg;

    /* The log: at most one record per item, and chunks are sized so that
       a job needs no more than LOG_MAX of them (board.c, chunk_len). */
    t->log_cap = n < MPROC__LOG_MAX ? n : MPROC__LOG_MAX;
    if (t->log_cap) {
        t->log = mproc__heap_alloc(&pool->logs, t->log_cap * sizeof *t->log);
        if (!t->log) {
            err = mproc__fail(MPROC_ENOMEM,
                              "no room for the job's log of %llu records in "
                              "the pool's log area",
                              (unsigned long long)t->log_cap);
            goto fail;
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
            err = t->partials
                      ? 0
                      : mproc__fail(MPROC_ENOMEM, "no memory for the workers' "
                                                  "partial folds");
        }
        /* The same contract as processes: the caller may reuse arg at once. */
        if (!err && job->arg_size) {
            t->arg_copy = malloc(job->arg_size);
            err = t->arg_copy ? 0
                              : mproc__fail(MPROC_ENOMEM,
                                            "no memory for a copy of arg "
                                            "(%zu bytes)",
                                            job->arg_size);
            if (!err)
                arg = memcpy(t->arg_copy, job->arg, job->arg_size);
        }
    }
    if (err)
        goto fail;
    int *ws = t->s_wstatus ? t->s_wstatus : job->wstatus;
    if (ws)
        memset(ws, 0, n * sizeof *ws);
    mproc__data_clear_out(job);
    for (int w = 0; job->reduce && w < pool->workers; w++) {
        struct mproc__partial *h =
            (struct mproc__partial *)(t->partials + (size_t)w * t->pstride);
        atomic_store_explicit(&h->buf, 0, memory_order_relaxed);
        memcpy((char *)h + MPROC__LINE, job->acc, job->out_size);
    }

    t->post_in = in;
    t->post_arg = arg;
    bool urgent = lower_look(pool->board, timeout_ns(job->timeout));
    pthread_mutex_lock(&pool->lock);
    size_t items = pump_locked(pool);
    if (!pool->pend_head && take_slot(pool)) {
        post(pool, t);
        items += n;
    } else {
        if (pool->pend_tail)
            pool->pend_tail->pend_next = t;
        else
            pool->pend_head = t;
        pool->pend_tail = t;
        atomic_fetch_add_explicit(&pool->npending, 1, memory_order_relaxed);
    }
    t->next = pool->live;
    if (t->next)
        t->next->prev = t;
    pool->live = t;
    pthread_mutex_unlock(&pool->lock);

    if (items || urgent)
        wake_workers(pool, items, urgent);
    *task = t;
    return 0;

fail:
    mproc__unstage(pool, t); /* what was made of the log and the copies */
    free(t);
    return err;
}

int mproc_submit(mproc_pool *pool, const mproc_job *job, mproc_task **task)
{
    const mproc_pool *saved;
    int err = mproc__enter(pool, &saved);
    if (err) {
        if (task)
            *task = NULL;
        return err;
    }
    err = submit_job(pool, job, task);
    mproc__leave(saved);
    return err;
}

int mproc_map(mproc_pool *pool, const mproc_job *job)
{
    const mproc_pool *saved;
    int r = mproc__enter(pool, &saved);
    if (r)
        return r;
    mproc_task *t;
    r = submit_job(pool, job, &t);
    if (!r) {
        r = mproc__task_wait(t, -1);
        mproc_task_free(t);
    }
    mproc__leave(saved);
    return r;
}
