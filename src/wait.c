/*
 * Waiting for a task: reading its job's slot (as a seqlock, since a
 * submitter may be recycling it), scanning its sealed records, and
 * sleeping until the records it waits for are sealed.
 *
 * Who runs here: the caller's threads. Shared with workers: the job's slot
 * on the board (fin, bell, want, the log).
 *
 * Waiting: spin briefly, then register in the job's `want` and sleep on its
 * `bell` through the kind (kind.h), which for a process pool also wakes on
 * the supervisor's death. A task still pending behind 128 jobs is waited
 * for by pumping the queue (submit.c, "Pending tasks"). A process pool's
 * waiter also checks now and then that the slot it reads is sane, so that
 * a stray write over the board breaks the pool instead of hanging it.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#define WAIT_SPIN_NS   20000
/* While tasks are pending, a waiter looks at the queue this often. */
#define PENDING_NAP_NS 1000000

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
    return mproc__fail(MPROC_EBROKEN,
                       "the pool's control memory was found written over (a "
                       "stray write from an item?); what finished is kept, "
                       "close the pool");
}

/*
 * Sleep on job slot js until cond(arg) holds or the deadline
 * passes. Returns 0, MPROC_ETIMEDOUT or MPROC_EBROKEN.
 */
int mproc__await(mproc_pool *pool, uint32_t js, uint32_t unit,
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
int mproc__posted_by(mproc_task *t, uint64_t deadline)
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
            return mproc__fail(MPROC_EBROKEN,
                               "the pool broke while the task waited its "
                               "turn; close the pool");
        uint64_t now = mproc__now();
        if (deadline && now >= deadline)
            return MPROC_ETIMEDOUT;
        uint64_t nap = PENDING_NAP_NS;
        if (deadline && deadline - now < nap)
            nap = deadline - now;
        mproc__sleep(nap);
    }
}

bool mproc__cond_done(void *t)
{
    return all_done(t);
}

bool mproc__cond_next(void *t)
{
    return next_ready(t);
}

uint64_t mproc__deadline_of(double timeout)
{
    if (timeout < 0 || isinf(timeout))
        return 0;
    double ns = timeout * 1e9;
    if (ns > 1e18)
        return 0;
    return mproc__now() + (uint64_t)ns + 1;
}
