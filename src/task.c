/*
 * A task's life on the caller's side: waiting for it, collecting its
 * results (copied back from staging, folded), handing them out one by one,
 * progress, cancel, and freeing it.
 *
 * Who runs here: the caller's threads; a task is used by one thread at a
 * time, except mproc_task_progress, which may run anywhere meanwhile.
 * Shared with workers: the job's slot on the board (fin, bell, want, the
 * log), read as a seqlock where a submitter may be recycling it.
 *
 * A task goes RUNNING, then COLLECTED or SALVAGED (internal.h), and
 * DETACHED when its pool closes first. Waiting: spin briefly, then register
 * in the job's `want` and sleep on its `bell` through the kind (kind.h),
 * which for a process pool also wakes on the supervisor's death.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_SPIN_NS   20000
/* While tasks are pending, a waiter looks at the queue this often. */
#define PENDING_NAP_NS 1000000

/* ---- waiting ------------------------------------------------------------ */

/* The job's fin word, from the slot while it still holds the job, else the
   value saved when it was harvested. */
uint64_t mproc__task_fin(const mproc_task *t)
{
    /* Acquire: pairs with the release of posted (submit.c, post). */
    if (!atomic_load_explicit(&t->posted, memory_order_acquire))
        return 0;
    if (!atomic_load_explicit(&t->harvested, memory_order_acquire)) {
        struct mproc__job *j = &t->pool->board->jobs[t->js];
        /* A seqlock read (see publish); seq_cst on fin for await's pair.
           Both loads of id acquire: whichever sees it changed (cleared or
           reused, both release stores in publish, submit.c) synchronises
           with the submitter after its harvest, so final_fin, read below
           instead, holds the final count. */
        uint64_t id1 = atomic_load_explicit(&j->id, memory_order_acquire);
        uint64_t fin = atomic_load_explicit(&j->fin, memory_order_seq_cst);
        uint64_t id2 = atomic_load_explicit(&j->id, memory_order_acquire);
        if (id1 == t->id && id2 == t->id)
            return fin;
    }
    /* Acquire, though it pairs with nothing (take_slot stores final_fin
       relaxed): the value is ordered by an acquire above, of harvested or
       of a changed id. */
    return atomic_load_explicit(&t->final_fin, memory_order_acquire);
}

/*
 * Is job `id` in slot j complete? A waiter for the slot asks without the
 * pool's lock, so another submitter may be recycling the slot (publish) as
 * it reads: a seqlock read, as in task_fin. If the id has changed, the job
 * was over before the slot was taken.
 */
bool mproc__job_complete(struct mproc__job *j, uint64_t id)
{
    /* seq_cst on fin: await's pair (board.c, mproc__seal); its acquire
       half pairs with publish's release store of fin (submit.c), so a new
       job's count comes with the new n and id. Acquire of log and log_cap:
       pairs with publish's release stores of them, after its clearing of
       id, so a new log comes with an id that no longer matches. */
    uint64_t fin = atomic_load_explicit(&j->fin, memory_order_seq_cst);
    if (mproc__fin_done(fin) !=
        atomic_load_explicit(&j->n, memory_order_relaxed))
        return false;
    struct mproc__rec *log =
        atomic_load_explicit(&j->log, memory_order_acquire);
    uint64_t cap = atomic_load_explicit(&j->log_cap, memory_order_acquire);
    uint64_t nrec = mproc__records(fin, cap), tag = mproc__tag(id);
    if (atomic_load_explicit(&j->id, memory_order_relaxed) != id)
        return true;
    for (uint64_t r = nrec; r-- > 0;)
        if (!mproc__sealed(&log[r], tag))
            return false;
    return true;
}

/* Advance t->sealed over sealed records, adding up what they say. */
void mproc__task_scan(mproc_task *t, uint64_t fin)
{
    uint64_t nrec = mproc__records(fin, t->log_cap), tag = mproc__tag(t->id);
    while (t->sealed < nrec && mproc__sealed(&t->log[t->sealed], tag)) {
        uint64_t seal =
            atomic_load_explicit(&t->log[t->sealed].seal, memory_order_relaxed);
        t->failed += mproc__seal_failed(seal);
        t->norun += mproc__seal_norun(seal);
        t->sealed++;
    }
}

static bool all_done(mproc_task *t)
{
    uint64_t fin = mproc__task_fin(t);
    if (mproc__fin_done(fin) != t->user.n)
        return false;
    mproc__task_scan(t, fin);
    return t->sealed == mproc__records(fin, t->log_cap);
}

static bool next_ready(mproc_task *t)
{
    uint64_t fin = mproc__task_fin(t);
    mproc__task_scan(t, fin);
    return t->next_r < t->sealed ||
           (mproc__fin_done(fin) == t->user.n &&
            t->sealed == mproc__records(fin, t->log_cap));
}

/*
 * What the caller trusts in shared memory, looked at while it waits: an item
 * of a process pool can write over the board (a stray write), and a job
 * whose counters are garbage would never wake its waiter. A sleeping waiter
 * looks every SANITY_NS; a slot that no longer holds the task's job, or
 * whose counts are impossible, breaks the pool (MPROC_EBROKEN: the task is
 * salvaged, later calls fail with MPROC_EBROKEN and close ends it). What
 * the words can hold and still look sane is the residual limit.
 */
#define SANITY_NS (UINT64_C(1) << 30) /* about a second */

static bool slot_sane(const mproc_task *t)
{
    mproc_pool *pool = t->pool;
    if (!pool->isolated ||
        atomic_load_explicit(&t->harvested, memory_order_acquire))
        return true;
    const struct mproc__job *j = &pool->board->jobs[t->js];
    uint64_t id = atomic_load_explicit(&j->id, memory_order_acquire);
    uint64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
    uint64_t fin = atomic_load_explicit(&j->fin, memory_order_relaxed);
    uint64_t cap = atomic_load_explicit(&j->log_cap, memory_order_relaxed);
    if (atomic_load_explicit(&t->harvested, memory_order_acquire))
        return true; /* recycled meanwhile: harvested before */
    return id == t->id && n == t->user.n && mproc__fin_done(fin) <= n &&
           mproc__fin_records(fin) <= cap + 1 && cap == t->log_cap;
}

static int corrupt(mproc_pool *pool)
{
    /* Release: pairs with the acquire of broken in submit (check_job) and
       in await; the pool serves no more. */
    atomic_store_explicit(&pool->board->broken, 1, memory_order_release);
    atomic_store_explicit(&pool->corrupt, true, memory_order_release);
    return MPROC_EBROKEN;
}

/*
 * Sleep on job slot js until cond(arg) holds or the deadline
 * passes. Returns 0, MPROC_ETIMEDOUT or MPROC_EBROKEN.
 */
static int await(mproc_pool *pool, uint32_t js, uint32_t unit,
                 bool (*cond)(void *), void *arg, uint64_t deadline)
{
    const mproc_task *t = arg;
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
        /* Acquire: pairs with the release bumps of the bell (board.c,
           mproc__ring; mproc_task_free). The wake-up itself rests on the
           futex comparing this value. */
        /* Tasks pending behind this one's job: post what has room, and
           look again soon (submit.c, "Pending tasks"). */
        uint64_t until = deadline, now = mproc__now();
        if (atomic_load_explicit(&pool->npending, memory_order_relaxed)) {
            mproc__pump(pool);
            uint64_t nap = now + PENDING_NAP_NS;
            if (!until || nap < until)
                until = nap;
        }
        if (pool->isolated) {
            if (!slot_sane(t))
                return cond(arg) ? 0 : corrupt(pool);
            if (!until || now + SANITY_NS < until)
                until = now + SANITY_NS;
        }
        uint32_t bell = atomic_load_explicit(&j->bell, memory_order_acquire);
        /* seq_cst, as the loads in cond: the other half of the pair in
           board.c (mproc__seal): either cond sees the record, or its
           finisher sees us in `want` and rings. */
        atomic_fetch_add_explicit(&j->want, unit, memory_order_seq_cst);
        int r = 0;
        /* Acquire: pairs with the release store of `broken` by the
           supervisor that gave up on the pool (supervisor.c,
           give_up_if_hopeless), made before it marks the items: the waiter
           then salvages what is sealed and marks the rest itself. */
        if (!cond(arg))
            r = atomic_load_explicit(&b->broken, memory_order_acquire)
                    ? MPROC_EBROKEN
                    : pool->kind->sleep(pool, &j->bell, bell, until);
        atomic_fetch_sub_explicit(&j->want, unit, memory_order_relaxed);
        if (r == MPROC_EBROKEN)
            return cond(arg) ? 0
                             : mproc__fail(r, "the pool's supervisor died "
                                              "(killed from outside?): what "
                                              "finished is kept, the rest is "
                                              "MPROC_ECRASHED; close the "
                                              "pool");
        if (r == -ETIMEDOUT && until == deadline)
            return cond(arg) ? 0 : MPROC_ETIMEDOUT;
        if (cond(arg))
            return 0;
        if (deadline && mproc__now() >= deadline)
            return MPROC_ETIMEDOUT;
    }
}

/*
 * Wait until a pending task is posted (submit.c, "Pending tasks"), pumping
 * the queue every PENDING_NAP: its turn comes as the jobs before it finish.
 * Returns 0, MPROC_ETIMEDOUT, or MPROC_EBROKEN (the pool can finish
 * nothing: the task then salvages, marking every item).
 */
static int posted_by(mproc_task *t, uint64_t deadline)
{
    mproc_pool *pool = t->pool;
    for (;;) {
        /* Acquire: pairs with the release of posted (submit.c, post). */
        if (atomic_load_explicit(&t->posted, memory_order_acquire))
            return 0;
        mproc__pump(pool);
        if (atomic_load_explicit(&t->posted, memory_order_acquire))
            return 0;
        if (atomic_load_explicit(&pool->board->broken, memory_order_acquire) ||
            !pool->kind->alive(pool))
            return MPROC_EBROKEN;
        uint64_t now = mproc__now();
        if (deadline && now >= deadline)
            return MPROC_ETIMEDOUT;
        uint64_t nap = PENDING_NAP_NS;
        if (deadline && deadline - now < nap)
            nap = deadline - now;
        mproc__sleep(nap);
    }
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

/* ---- collecting results -------------------------------------------------- */

void mproc__task_copy_range(mproc_task *t, uint64_t start, uint64_t len,
                            bool norun)
{
    const mproc_job *u = &t->user;
    if (t->copy_out && !norun && (u->flags & MPROC_OUT_BYTES))
        mproc__results_collect(t, start, len);
    else if (t->copy_out && !norun)
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
    mproc__task_copy_range(t, mproc__range_start(range),
                           mproc__range_len(range), mproc__seal_norun(seal));
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
        if (!t->next_r && !t->next_off && !t->norun &&
            !(u->flags & MPROC_OUT_BYTES)) {
            mproc__task_copy_range(t, 0, u->n, false);
        } else {
            for (uint64_t r = t->next_r + (t->next_off ? 1 : 0); r < t->sealed;
                 r++)
                copy_record(t, r);
        }
    }
    if (u->reduce) {
        for (int w = 0; w < t->pool->workers; w++) {
            char *part = t->partials + (size_t)w * t->pstride;
            /* Acquire, though it pairs with nothing (workers and
               repair_running store buf relaxed): each store comes before
               its worker's seal, whose acquire (all_done) orders it. */
            uint32_t b = atomic_load_explicit(
                &((struct mproc__partial *)part)->buf, memory_order_acquire);
            size_t half = (t->pstride - MPROC__LINE) / 2;
            u->reduce(u->acc, part + MPROC__LINE + b * half, u->arg);
        }
    }
    uint64_t f = t->failed;
    t->result = f > INT_MAX ? INT_MAX : (int)f;
    atomic_store_explicit(&t->state, MPROC__TASK_COLLECTED,
                          memory_order_relaxed);
}

/* Wait for ever and collect: what close and free need. */
void mproc__task_finish(mproc_task *t)
{
    if (mproc__task_final(t) || !t->pool)
        return;
    int r = posted_by(t, 0);
    if (!r)
        r = await(t->pool, t->js, MPROC__WANT_DONE, cond_done, t, 0);
    if (r == MPROC_EBROKEN)
        mproc__salvage(t);
    else
        collect(t);
}

/* The sentences of the task calls' argument errors. */
static int bad_task_args(const char *call, const mproc_task *t, double timeout)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "%s: task is NULL", call);
    return mproc__fail(MPROC_EINVAL, "%s: timeout is %g", call, timeout);
}

static int timed_out(const char *call, const mproc_task *t, double timeout)
{
    return mproc__fail(
        MPROC_ETIMEDOUT, "%s: %g s passed with %llu of %zu items done", call,
        timeout, (unsigned long long)mproc__fin_done(mproc__task_fin(t)),
        t->user.n);
}

int mproc_task_wait(mproc_task *t, double timeout)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "mproc_task_wait: task is NULL");
    const mproc_pool *saved;
    int r = mproc__enter(t->pool, &saved);
    if (r)
        return r;
    r = mproc__task_wait(t, timeout);
    mproc__leave(saved);
    return r;
}

int mproc__task_wait(mproc_task *t, double timeout)
{
    if (!t || isnan(timeout))
        return bad_task_args("mproc_task_wait", t, timeout);
    if (mproc__task_final(t) || !t->pool)
        return t->result;
    int err = mproc__usable(t->pool);
    if (err)
        return err;
    uint64_t deadline = deadline_of(timeout);
    int r = posted_by(t, deadline);
    if (!r)
        r = await(t->pool, t->js, MPROC__WANT_DONE, cond_done, t, deadline);
    if (r == MPROC_ETIMEDOUT)
        return timed_out("mproc_task_wait", t, timeout);
    if (r == MPROC_EBROKEN)
        mproc__salvage(t);
    else
        collect(t);
    return t->result;
}

static int task_next(mproc_task *t, size_t *index, double timeout);

int mproc_task_next(mproc_task *t, size_t *index, double timeout)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "mproc_task_next: task is NULL");
    const mproc_pool *saved;
    int r = mproc__enter(t->pool, &saved);
    if (r)
        return r;
    r = task_next(t, index, timeout);
    mproc__leave(saved);
    return r;
}

static int task_next(mproc_task *t, size_t *index, double timeout)
{
    if (isnan(timeout))
        return bad_task_args("mproc_task_next", t, timeout);
    if (!index)
        return mproc__fail(MPROC_EINVAL, "mproc_task_next: index is NULL");
    for (;;) {
        if (t->next_r < t->sealed) {
            struct mproc__rec *rec = &t->log[t->next_r];
            uint64_t range =
                atomic_load_explicit(&rec->range, memory_order_relaxed);
            uint64_t start = mproc__range_start(range),
                     len = mproc__range_len(range);
            if (!t->next_off && !mproc__task_final(t))
                copy_record(t, t->next_r);
            *index = (size_t)(start + t->next_off);
            if (++t->next_off == len) {
                t->next_r++;
                t->next_off = 0;
            }
            return 0;
        }
        if (mproc__task_final(t) || !t->pool)
            return MPROC_EOF;
        int err = mproc__usable(t->pool);
        if (err)
            return err;
        err = posted_by(t, deadline_of(timeout));
        if (err == MPROC_EBROKEN) {
            mproc__salvage(t);
            return MPROC_EBROKEN;
        }
        if (err)
            return err;
        uint64_t fin = mproc__task_fin(t);
        mproc__task_scan(t, fin);
        if (t->next_r < t->sealed)
            continue;
        if (mproc__fin_done(fin) == t->user.n &&
            t->sealed == mproc__records(fin, t->log_cap))
            return MPROC_EOF;
        int r = await(t->pool, t->js, MPROC__WANT_EACH, cond_next, t,
                      deadline_of(timeout));
        if (r == MPROC_EBROKEN) {
            mproc__salvage(t);
            return MPROC_EBROKEN;
        }
        if (r == MPROC_ETIMEDOUT)
            return timed_out("mproc_task_next", t, timeout);
        if (r)
            return r;
    }
}

int mproc_task_progress(const mproc_task *t, size_t *done, size_t *n)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "mproc_task_progress: task is NULL");
    /* A forked copy of the caller (a process worker of another pool, say)
       holds a copy of the task whose pool memory it may not have mapped. */
    if (t->pool && getpid() != t->pool->owner)
        return mproc__fail(MPROC_EPERM,
                           "mproc_task_progress: the task's pool belongs to "
                           "process %d; this is process %d",
                           (int)t->pool->owner, (int)getpid());
    /* Acquire: pairs with salvage's release store of SALVAGED (repair.c). */
    if (done)
        *done =
            t->pool && atomic_load_explicit(&t->state, memory_order_acquire) !=
                           MPROC__TASK_SALVAGED
                ? (size_t)mproc__fin_done(mproc__task_fin(t))
                : t->user.n;
    if (n)
        *n = t->user.n;
    return 0;
}

int mproc_task_cancel(mproc_task *t)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "mproc_task_cancel: task is NULL");
    mproc_pool *pool = t->pool;
    if (!pool || mproc__task_final(t) || t->cancelled)
        return 0;
    if (getpid() != pool->owner)
        return mproc__fail(MPROC_EPERM,
                           "mproc_task_cancel: the pool belongs to process "
                           "%d; this is process %d, a copy forked from it",
                           (int)pool->owner, (int)getpid());
    pthread_mutex_lock(&pool->lock);
    /* A pending task is cancelled as it is posted (submit.c, post). Acquire
       of harvested: pairs with take_slot's release store (submit.c), made
       under the lock held here: stronger than needed. */
    if (atomic_load_explicit(&t->posted, memory_order_relaxed) &&
        !atomic_load_explicit(&t->harvested, memory_order_acquire))
        mproc__cancel_job(pool->board, &pool->board->jobs[t->js]);
    t->cancelled = true;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/*
 * Kill with pool->lock held: cancel the job, then condemn every chunk of it
 * that a worker is running (board.c, "Kills"). Returns KILL_CONDEMNED when
 * some chunk was condemned (the kind must then be asked to kill), and
 * KILL_RUNNING when the kind cannot kill and some item of the job runs.
 */
int mproc__task_kill_locked(mproc_task *t)
{
    mproc_pool *pool = t->pool;
    struct mproc__board *b = pool->board;
    if (!atomic_load_explicit(&t->posted, memory_order_relaxed)) {
        t->cancelled = true; /* nothing of it runs; cancelled when posted */
        return 0;
    }
    if (atomic_load_explicit(&t->harvested, memory_order_acquire))
        return 0; /* complete: nothing of it runs */
    struct mproc__job *j = &b->jobs[t->js];
    if (!t->cancelled)
        mproc__cancel_job(b, j);
    t->cancelled = true;
    /* seq_cst: the exchange and the loads (compare-and-swaps) of `live`
       below are the killer's half of the store-buffering pair in board.c
       (enter_chunk): a worker entering a chunk now either is seen live
       here, or sees the cancel and starts nothing. The value is unchanged. */
    atomic_exchange_explicit(&j->cancel, 1, memory_order_seq_cst);
    int r = 0;
    for (int w = 0; w < pool->workers; w++) {
        struct mproc__slot *s = &b->slots[w];
        if (pool->kind->kill) {
            uint64_t live = t->id;
            if (atomic_compare_exchange_strong_explicit(
                    &s->live, &live, t->id | MPROC__LIVE_KILL,
                    memory_order_seq_cst, memory_order_relaxed))
                r |= MPROC__KILL_CONDEMNED;
        } else if (atomic_load_explicit(&s->state, memory_order_acquire) ==
                       MPROC__RUNNING &&
                   atomic_load_explicit(&s->job, memory_order_relaxed) ==
                       t->id) {
            r |= MPROC__KILL_RUNNING;
        }
    }
    return r;
}

int mproc_task_kill(mproc_task *t)
{
    if (!t)
        return mproc__fail(MPROC_EINVAL, "mproc_task_kill: task is NULL");
    mproc_pool *pool = t->pool;
    if (!pool || mproc__task_final(t))
        return 0;
    if (getpid() != pool->owner)
        return mproc__fail(MPROC_EPERM,
                           "mproc_task_kill: the pool belongs to process "
                           "%d; this is process %d, a copy forked from it",
                           (int)pool->owner, (int)getpid());
    pthread_mutex_lock(&pool->lock);
    int r = mproc__task_kill_locked(t);
    pthread_mutex_unlock(&pool->lock);
    if (r & MPROC__KILL_CONDEMNED)
        pool->kind->kill(pool);
    return r & MPROC__KILL_RUNNING
               ? mproc__fail(MPROC_ENOTSUP,
                             "mproc_task_kill: a %s pool cannot kill a "
                             "running item; its unstarted items are "
                             "cancelled, the running ones go on",
                             pool->kind->name)
               : 0;
}

/* The pool is closing: the task keeps its results and what mproc_task_next
   has not handed out yet, in memory of its own. */
void mproc__task_detach(mproc_task *t)
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
    pthread_mutex_lock(&pool->lock);
    mproc__unqueue(pool, t);
    pthread_mutex_unlock(&pool->lock);
    mproc__unstage(pool, t);
    t->log = copy;
    atomic_store_explicit(&t->state, MPROC__TASK_DETACHED,
                          memory_order_relaxed);
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
        if (!mproc__task_final(t)) {
            mproc_task_cancel(t);
            if (mproc__self_pool == pool) {
                /* A worker of the pool would wait for the pool, perhaps for
                   the very item it is running: the mistake has no code to
                   return, and waiting would hang. */
                fprintf(stderr, "mproc: mproc_task_free of an unfinished task "
                                "called from a worker of its own pool\n");
                abort();
            }
            mproc__task_finish(t);
        }
        pthread_mutex_lock(&pool->lock);
        mproc__unqueue(pool, t);
        if (t->prev)
            t->prev->next = t->next;
        else
            pool->live = t->next;
        if (t->next)
            t->next->prev = t->prev;
        /* Acquire of harvested: as in mproc_task_cancel, under the lock.
           Release of retired: pairs with the acquire loads in take_slot
           (submit.c, under the lock too) and slot_free (a submitter waiting
           for the slot, without it). */
        bool in_slot =
            atomic_load_explicit(&t->posted, memory_order_relaxed) &&
            !atomic_load_explicit(&t->harvested, memory_order_acquire) &&
            pool->tasks[t->js] == t;
        if (in_slot) {
            pool->tasks[t->js] = NULL;
            atomic_store_explicit(&pool->retired[t->js], t->id,
                                  memory_order_release);
        }
        mproc__unstage(pool, t);
        pthread_mutex_unlock(&pool->lock);
        if (in_slot) {
            /* A submitter may be waiting for this slot. */
            struct mproc__job *j = &pool->board->jobs[t->js];
            /* Release: pairs with await's acquire of the bell; the retired
               store above is what the woken submitter looks for. */
            atomic_fetch_add_explicit(&j->bell, 1, memory_order_release);
            mproc__futex_wake(&j->bell, INT_MAX, pool->isolated);
            /* Its slot is free: a pending task may take it at once. */
            if (atomic_load_explicit(&pool->npending, memory_order_relaxed))
                mproc__pump(pool);
        }
    }
    if (atomic_load_explicit(&t->state, memory_order_relaxed) ==
        MPROC__TASK_DETACHED)
        free(t->log);
    free(t);
}
