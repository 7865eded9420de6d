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
 * DETACHED when its pool closes first. How a waiter waits is wait.c's.
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
    int r = mproc__posted_by(t, 0);
    if (!r)
        r = mproc__await(t->pool, t->js, MPROC__WANT_DONE, mproc__cond_done, t,
                         0);
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
    uint64_t deadline = mproc__deadline_of(timeout);
    int r = mproc__posted_by(t, deadline);
    if (!r)
        r = mproc__await(t->pool, t->js, MPROC__WANT_DONE, mproc__cond_done, t,
                         deadline);
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
        err = mproc__posted_by(t, mproc__deadline_of(timeout));
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
        int r = mproc__await(t->pool, t->js, MPROC__WANT_EACH, mproc__cond_next,
                             t, mproc__deadline_of(timeout));
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
