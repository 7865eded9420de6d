/*
 * The job board: one scheduler for thread and process workers.
 *
 * Who runs here: workers (threads of the caller, or processes forked by the
 * supervisor), the caller when it posts, waits or cancels, and for process
 * pools the supervisor when a worker dies. All of them share the board
 * (ordinary memory for threads, the shared region for processes) and nothing
 * else; no lock is ever taken on it.
 *
 * Posting. The caller fills a job slot, publishes it by storing its id and
 * then advancing `tail`, and bumps `epoch`, waking sleepers. A job is claimed
 * in chunks: a worker adds the chunk length to the job's `claim` counter with
 * one fetch-add and owns the items it skipped over. Chunk lengths are guided
 * (about remaining / 2 workers) and capped by time: each worker measures what
 * an item costs it and claims about 100 us of work, so tiny items come in
 * large chunks, slow ones one by one, and the tail stays balanced. Results are
 * written in place. Finishing a chunk is a second fetch-add, on the job's
 * `fin` word, which counts the items done and reserves the chunk's record in
 * the job's log; the record is then sealed with the job's tag. The finisher
 * that brings the count to n (or any, when a waiter wants every record) bumps
 * the job's `bell` and wakes the caller. Per item there is no atomic, no
 * system call and no lock; per chunk, two fetch-adds.
 *
 * Recycling. A job slot is reused for the job RING positions later once its
 * job is done and harvested. A worker may still be about to claim from it:
 * the counter carries a generation (position / RING) next to the index, and
 * after its fetch-add the claimer validates, seqlock-style against `id`, that
 * the slot still holds the job of that generation and that its index is
 * below that job's n. A claimer that holds items of a job keeps that job from
 * completing, so its slot cannot be recycled under it; a claimer that got
 * nothing learns so and tries again.
 *
 * Crashes (process workers only). A worker publishes every step in its slot
 * before taking it, so that the supervisor, which sees a death at once, knows
 * what the dead worker held:
 *
 *   IDLE       holds nothing.
 *   CLAIMING   about to fetch-add the claim counter of job slot `js`.
 *   RUNNING    holds [start, end) of job `job`; items below commit >> 1 are
 *              done (results, statuses and the partial fold written), the
 *              item at commit >> 1 is running.
 *   FINISHING  about to fetch-add `fin` for [start, end), `failed` of them
 *              failed, then to seal the record.
 *
 * A death in RUNNING is exact: the done prefix gets its record, the running
 * item is marked crashed (or timed out, if the supervisor condemned it), and
 * the rest of the chunk is left in the slot for the worker that replaces the
 * dead one ("inherit"; should that replacement fail to start, the
 * supervisor moves the work to a live worker's slot, where it is taken up
 * the same way: take_up). A batch job's worker runs several items in one
 * call, and says so in `batch_end`; a death there is made exact by its
 * replacement (run_batch). A death in CLAIMING or FINISHING falls between a
 * fetch-add and the store that would have recorded its result, a window of a
 * few instructions that only a kill from outside can hit. The supervisor then
 * reconciles the job: once no live worker is inside such a window for it, a
 * reserved but unsealed record can only be a dead finisher's (it is sealed on
 * its behalf; a finisher with no hole never counted, and is finished anew),
 * and an index below the claim counter that no record, no live chunk and no
 * inherited range covers can only have been claimed by a dead claimer (the
 * gap is given to that claimer's replacement). Every item is thus finished
 * exactly once, whatever dies where. Two hazards: a live worker's slot is
 * read until two readings agree, and the caller may free a complete job's
 * log at any moment, so a reconciliation announces itself in the job's
 * `readers` and the caller, before freeing, announces `gone` and waits
 * (mproc__release_job).
 *
 * The state stores that open a window are seq_cst, as are the fetch-adds
 * they guard: the supervisor reads the states with seq_cst loads, so if it
 * sees a counter moved it also sees the state that announced the move.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MPROC_TEST_HOOKS
void (*mproc__test_hook)(int point);
int (*mproc__test_fork)(void);
#endif

#define TARGET_NS 100000 /* work per claim, unless the board says otherwise */
#define SPIN_NS   50000  /* idle spin before sleeping */

size_t mproc__board_size(int workers)
{
    return sizeof(struct mproc__board) +
           (size_t)(workers + 1) * sizeof(struct mproc__slot);
}

void mproc__board_init(struct mproc__board *b, int workers, bool isolated,
                       uint64_t timeout_ns, unsigned long max_items)
{
    memset(b, 0, mproc__board_size(workers));
    b->workers = workers;
    b->isolated = isolated;
    b->timeout_ns = timeout_ns;
    b->max_items = max_items;
    /* Spinning only pays when every worker can have a CPU of its own. */
    b->spin = workers < mproc__cpu_count() + 1 ? SPIN_NS : 0;
    b->target_ns = TARGET_NS;
    atomic_init(&b->look_ns, timeout_ns);
    for (int i = 0; i < MPROC__RING; i++)
        atomic_init(&b->jobs[i].claim, mproc__claim_word(0, MPROC__IDX_MASK));
}

void mproc__board_ready(struct mproc__board *b, int err, bool shared)
{
    if (err) {
        int32_t none = 0;
        /* Relaxed: the release of `ready` below publishes it. */
        atomic_compare_exchange_strong_explicit(&b->open_error, &none, err,
                                                memory_order_relaxed,
                                                memory_order_relaxed);
    }
    /* Release: publishes open_error; pairs with the opener's acquire of
       `ready` (processes.c, start; threads.c, mproc__threads_start). */
    atomic_fetch_add_explicit(&b->ready, 1, memory_order_release);
    mproc__futex_wake(&b->ready, INT_MAX, shared);
}

/* ---- finishing ------------------------------------------------------- */

void mproc__seal(struct mproc__job *j, uint64_t r, uint64_t start, uint64_t len,
                 uint64_t failed)
{
    /* The log holds every record of a job: one per item at most while n is
       below LOG_MAX, and claims are never shorter than n / (LOG_MAX / 4)
       beyond (chunk_len), which leaves room for the records that cancels
       and deaths split off. A release build keeps the log's bounds even so. */
    assert(r < mproc__log_cap(j));
    if (r >= mproc__log_cap(j))
        return;
    uint64_t tag =
        mproc__tag(atomic_load_explicit(&j->id, memory_order_relaxed));
    struct mproc__rec *rec = &mproc__log(j)[r];
    atomic_store_explicit(&rec->range, mproc__range_word(start, len),
                          memory_order_relaxed);
    /* Release: pairs with the load of the seal in mproc__sealed by whoever
       reads the log (the caller: task.c, task_scan and job_complete, and
       repair.c, salvage; the supervisor: repair.c, sealed_at and
       reconcile); they then see the range, and the results of its items,
       which were written before. seq_cst also: it
       and ring()'s load of `want` against the waiter's update of `want` and
       load of the seal (task.c, await) form a store-buffering pair, so
       either the waiter sees the seal or the finisher sees the waiter. */
    atomic_store_explicit(
        &rec->seal,
        mproc__seal_word(failed & ~MPROC__NORUN, tag, failed & MPROC__NORUN),
        memory_order_seq_cst);
}

void mproc__ring(struct mproc__job *j, bool shared)
{
    /* seq_cst: see mproc__seal. */
    uint32_t want = atomic_load_explicit(&j->want, memory_order_seq_cst);
    if (!want)
        return;
    if (want < MPROC__WANT_EACH) {
        /* seq_cst: the finisher that seals last, whose load of `want` saw
           the waiter (mproc__seal's pair), must ring even when another
           counted last. That other's count comes before its own load of
           `want` in the total order; if that load came after the waiter's
           update, it rang itself, and if before, its count precedes the
           update this finisher saw, and this seq_cst load of fin sees it.
           A relaxed load could see only this finisher's own count, and
           nobody would ring (a lost wake-up in the language's model; x86 and
           ARMv8 order it anyway). */
        uint64_t done = mproc__fin_done(
            atomic_load_explicit(&j->fin, memory_order_seq_cst));
        if (done != atomic_load_explicit(&j->n, memory_order_relaxed))
            return;
    }
    /* Release: pairs with the waiter's acquire of the bell before it
       sleeps (task.c, await); the futex compares the value. */
    atomic_fetch_add_explicit(&j->bell, 1, memory_order_release);
    mproc__futex_wake(&j->bell, INT_MAX, shared);
}

void mproc__finish(struct mproc__job *j, uint64_t start, uint64_t len,
                   uint64_t failed, bool shared)
{
    uint64_t norun = failed & MPROC__NORUN;
    failed &= ~MPROC__NORUN;
    while (len) {
        uint64_t piece = len < MPROC__MAX_LEN ? len : MPROC__MAX_LEN;
        uint64_t f = failed < piece ? failed : piece;
        /* seq_cst: guarded by the FINISHING store before it (see "Crashes"
           above; the other side is mproc__reconcile's seq_cst load of fin,
           then in_window's of the state, repair.c). Also part of await's
           pair (task.c): the waiter's seq_cst loads of fin (task_fin,
           job_complete) come after its update of `want`, and ring's load
           of fin after this. Its release half publishes the items'
           results to whoever acquires the count. */
        uint64_t old = atomic_fetch_add_explicit(
            &j->fin, mproc__fin_word(1, piece), memory_order_seq_cst);
        MPROC__HOOK(MPROC__HOOK_COUNTED);
        mproc__seal(j, mproc__fin_records(old), start, piece, f | norun);
        start += piece;
        len -= piece;
        failed -= f;
    }
    mproc__ring(j, shared);
}

void mproc__fail_range(struct mproc__job *j, uint64_t start, uint64_t len,
                       int code, int wstatus, bool shared)
{
    /* Only where there are codes to write: a job of 2^39 items without
       them is cancelled in one step. */
    for (uint64_t i = start; (j->status || j->wstatus) && i < start + len;
         i++) {
        if (j->status)
            j->status[i] = code;
        if (j->wstatus)
            j->wstatus[i] = wstatus;
    }
    mproc__finish(j, start, len, len | MPROC__NORUN, shared);
}

/* ---- claiming -------------------------------------------------------- */

static uint64_t chunk_len(struct mproc__worker *wk, struct mproc__job *j,
                          uint64_t id, uint64_t idx, uint64_t n)
{
    uint64_t k = atomic_load_explicit(&j->chunk, memory_order_relaxed);
    if (!k) {
        uint64_t w2 = 2 * (uint64_t)wk->b->workers;
        uint64_t rem = n > idx ? n - idx : 1;
        k = (rem + w2 - 1) / w2;
        if (wk->est_id == id && wk->ns_per_item) {
            uint64_t t = wk->b->target_ns * 16 / wk->ns_per_item;
            uint64_t grow = wk->last_len * 8 + 1;
            if (t > grow)
                t = grow;
            if (t < k)
                k = t;
        } else {
            k = 1; /* first claim of this job here: measure one item */
        }
    }
    if (k > MPROC__MAX_LEN)
        k = MPROC__MAX_LEN;
    if (wk->budget && k > wk->budget)
        k = wk->budget;
    /* Keep the number of records within the log, whatever chunk the job
       asked for and whatever a worker's max_items budget has left: a claim
       makes at most two records of its own (what ran, what a cancel
       skipped), and half the log is left for those and for the pieces
       deaths split off (mproc__seal asserts it). So a job of more than
       LOG_MAX / 4 items is claimed at least n / (LOG_MAX / 4) at a time, and
       a worker may then run that many items past max_items (mproc.h). */
    uint64_t least = (n + MPROC__LOG_MAX / 4 - 1) / (MPROC__LOG_MAX / 4);
    if (k < least)
        k = least;
    if (k < 1)
        k = 1;
    return k;
}

/*
 * Kills (mproc_task_kill, task.c): a process worker running a chunk of job
 * `id` says so in its slot's `live` word, and leaves the chunk by a
 * compare-and-swap of that word back to 0. The killer condemns the chunk by
 * a compare-and-swap of id to id | LIVE_KILL, and the supervisor then kills
 * the worker. Whoever swaps first decides: a worker that finds its chunk
 * condemned when it leaves waits for its death (mproc__condemned()), so a kill
 * never lands on another job's items.
 */
static void enter_chunk(struct mproc__board *b, struct mproc__slot *s,
                        struct mproc__job *j, uint64_t id)
{
    if (!b->isolated)
        return;
    /* seq_cst, with the seq_cst load of cancel after it: a store-buffering
       pair with the killer's seq_cst exchange of cancel then load of live
       (task.c, mproc_task_kill). Either the killer sees this chunk live and
       condemns it, or this load sees the cancel, and so does every later
       relaxed load of it in the item loops: no item of the chunk starts. */
    atomic_store_explicit(&s->live, id, memory_order_seq_cst);
    (void)atomic_load_explicit(&j->cancel, memory_order_seq_cst);
}

static bool leave_chunk(struct mproc__board *b, struct mproc__slot *s,
                        uint64_t id)
{
    /* Relaxed: the swap itself decides the race; nothing is published. */
    return !b->isolated ||
           atomic_compare_exchange_strong_explicit(
               &s->live, &id, 0, memory_order_relaxed, memory_order_relaxed);
}

static bool take(struct mproc__worker *wk, uint32_t js, uint64_t id,
                 struct mproc__claim *c)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    struct mproc__job *j = &b->jobs[js];
    uint64_t cl = atomic_load_explicit(&j->claim, memory_order_relaxed);
    uint64_t k = chunk_len(wk, j, id, mproc__claim_next(cl),
                           atomic_load_explicit(&j->n, memory_order_relaxed));

    atomic_store_explicit(&s->js, js, memory_order_relaxed);
    /* seq_cst, both: the window (see "Crashes"). The other side is
       mproc__reconcile's seq_cst load of claim, then in_window's load of
       the state (repair.c): a reconciler that sees the counter moved sees
       CLAIMING, or what followed it. The fetch-add's acquire half also
       pairs with publish's release store of claim (submit.c): a count of
       the new generation comes with that job's id, read below. */
    atomic_store_explicit(&s->state, MPROC__CLAIMING, memory_order_seq_cst);
    MPROC__HOOK(MPROC__HOOK_CLAIMING);
    uint64_t old =
        atomic_fetch_add_explicit(&j->claim, k, memory_order_seq_cst);
    MPROC__HOOK(MPROC__HOOK_CLAIMED);

    /* Whose items are these? Read the slot as a seqlock (see "Recycling"):
       the acquire load of id pairs with publish's release store of id
       (submit.c), after the job's fields; the acquire load of n keeps the
       second load of id after it, and pairs with publish's release store
       of n, which follows its clearing of id, so a new n comes with an id
       that no longer matches. */
    uint64_t id1 = atomic_load_explicit(&j->id, memory_order_acquire);
    uint64_t n = atomic_load_explicit(&j->n, memory_order_acquire);
    uint64_t id2 = atomic_load_explicit(&j->id, memory_order_relaxed);
    uint64_t i0 = mproc__claim_next(old);
    if (!id1 || id1 != id2 || mproc__gen(id1 - 1) != mproc__claim_gen(old) ||
        i0 >= n) {
        /* Release: as settle's IDLE, though here nothing was held, so it
           publishes nothing the readers of the state need. */
        atomic_store_explicit(&s->state, MPROC__IDLE, memory_order_release);
        return false;
    }
    uint64_t e = i0 + k < n ? i0 + k : n;
    assert(i0 < e && e - i0 <= MPROC__MAX_LEN);
    unsigned buf = 0;
    if (j->reduce && b->isolated)
        buf = atomic_load_explicit(&mproc__partial(j, wk->w)->buf,
                                   memory_order_relaxed);
    mproc__slot_hold(s, id1, i0, e, 0, buf);
    /* Release: publishes the hold; pairs with the supervisor's acquire of
       the state once this worker is dead (supervisor.c, on_death), and with
       a reconciler's seq_cst loads of the state (repair.c, held_range). */
    atomic_store_explicit(&s->state, MPROC__RUNNING, memory_order_release);
    enter_chunk(b, s, j, id1);
    *c = (struct mproc__claim){.j = j, .id = id1, .start = i0, .end = e};
    return true;
}

static bool exhausted(struct mproc__job *j, uint64_t p)
{
    /* A slot already holding a later job means this one is long done.
       Acquire: pairs with publish's release store of id (submit.c), so the
       claim, n and cancel read below are this job's or later. */
    if (atomic_load_explicit(&j->id, memory_order_acquire) != p + 1 ||
        atomic_load_explicit(&j->cancel, memory_order_relaxed))
        return true;
    /* Acquire: pairs with the release half of the claimer's seq_cst
       fetch-add (take), so a worker that then moves the head (claim, whose
       compare-and-swap releases it) passes on the claimer's CLAIMING: the
       supervisor, which finds the head at the tail, reads the states after
       it (supervisor.c, busy) and must see that a chunk is out. */
    uint64_t cl = atomic_load_explicit(&j->claim, memory_order_acquire);
    return mproc__claim_gen(cl) == mproc__gen(p) &&
           mproc__claim_next(cl) >=
               atomic_load_explicit(&j->n, memory_order_relaxed);
}

/* Find the oldest job with unclaimed items and claim a chunk of it. */
static bool claim(struct mproc__worker *wk, struct mproc__claim *c)
{
    struct mproc__board *b = wk->b;
    /* Acquire of the head: pairs with the release of the compare-and-swap
       below, by whichever worker moved it, so the tail read next is at
       least the one that worker saw, and h <= t. Acquire of the tail: pairs
       with publish's seq_cst store of tail (submit.c), after the job's id
       and fields (exhausted acquires the id again anyway). */
    uint64_t h = atomic_load_explicit(&b->claim_head, memory_order_acquire);
    uint64_t t = atomic_load_explicit(&b->tail, memory_order_acquire);
    for (uint64_t p = h; p < t; p++) {
        uint32_t js = (uint32_t)(p % MPROC__RING);
        struct mproc__job *j = &b->jobs[js];
        if (!exhausted(j, p) && take(wk, js, p + 1, c))
            return true;
        /* Nothing left at the head: move the head on for everyone. On a lost
           race h becomes the current head and the scan goes on. Release and
           acquire: pair with the acquire of the head above, in other
           workers; the positions skipped are exhausted for good, which
           needs no order, so this only keeps head <= tail for readers. */
        if (p == h && exhausted(j, p) &&
            atomic_compare_exchange_strong_explicit(&b->claim_head, &h, h + 1,
                                                    memory_order_release,
                                                    memory_order_acquire))
            h++;
    }
    return false;
}

static void measure(struct mproc__worker *wk, const struct mproc__claim *c,
                    uint64_t ran, uint64_t ns)
{
    if (!ran)
        return;
    uint64_t per = ns * 16 / ran + 1;
    if (wk->est_id == c->id && wk->ns_per_item)
        per = (wk->ns_per_item + per) / 2;
    wk->est_id = c->id;
    wk->ns_per_item = per;
    wk->last_len = ran;
}

static void settle(struct mproc__worker *wk, const struct mproc__claim *c)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    uint64_t failed = 0;
    uint64_t t0 = mproc__now();
    uint64_t ran = mproc__run_chunk(wk, c, &failed);
    if (!leave_chunk(b, s, c->id))
        mproc__condemned();
    measure(wk, c, ran, mproc__now() - t0);
    if (wk->budget)
        wk->budget -= ran < wk->budget ? ran : wk->budget;
    /* What the items printed reaches its file before their results are
       handed back: a process worker's stdio buffers would otherwise wait
       for an exit that flushes nothing (_exit) or never comes (a crash).
       Once per chunk, and cheap when nothing was written. */
    if (b->isolated)
        fflush(NULL);
    if (ran) {
        /* `end` is cut to what ran; `hold` keeps the chunk's end, so that
           the slot still covers the unstarted rest until it is recorded. */
        atomic_store_explicit(&s->end, c->start + ran, memory_order_relaxed);
        atomic_store_explicit(&s->failed, failed, memory_order_relaxed);
        if (c->start + ran < c->end)
            MPROC__HOOK(MPROC__HOOK_CUT);
        /* seq_cst: opens a window (see "Crashes"): pairs with
           mproc__reconcile's seq_cst load of fin, then in_window's load of
           the state (repair.c). Its release half publishes end and failed
           to the supervisor's acquire of the state (supervisor.c,
           on_death). */
        atomic_store_explicit(&s->state, MPROC__FINISHING,
                              memory_order_seq_cst);
        MPROC__HOOK(MPROC__HOOK_FINISHING);
        mproc__finish(c->j, c->start, ran, failed, b->isolated);
        MPROC__HOOK(MPROC__HOOK_SEALED);
    }
    if (c->start + ran < c->end) {
        /* Cancelled: the items not started get their code, in a record of
           their own that says they produced nothing. */
        uint64_t from = c->start + ran, len = c->end - from;
        if (c->j->status)
            for (uint64_t i = from; i < c->end; i++)
                c->j->status[i] = MPROC_ECANCELED;
        mproc__slot_hold(s, c->id, from, c->end, len | MPROC__NORUN, 0);
        /* seq_cst: opens a window (see "Crashes"), as the FINISHING
           above; its release half publishes the new hold. */
        atomic_store_explicit(&s->state, MPROC__FINISHING,
                              memory_order_seq_cst);
        mproc__finish(c->j, from, len, len | MPROC__NORUN, b->isolated);
    }
    /* Release: the slot lets go of its range only after sealing its
       records. Pairs with a reconciler's seq_cst loads of the state
       (repair.c, held_range and in_window), which read the records after:
       one that sees IDLE sees the seals. */
    atomic_store_explicit(&s->state, MPROC__IDLE, memory_order_release);
}

/* ---- idling ---------------------------------------------------------- */

static void idle(struct mproc__worker *wk, uint32_t e)
{
    struct mproc__board *b = wk->b;
    if (b->spin) {
        uint64_t until = mproc__now() + (uint64_t)b->spin;
        for (unsigned k = 1;; k++) {
            /* Acquire: pairs with the poster's seq_cst bump of epoch
               (submit.c, wake_workers), after its store of tail, which the
               next scan then sees. */
            if (atomic_load_explicit(&b->epoch, memory_order_acquire) != e)
                return;
            mproc__relax();
            if (k % 64 == 0 && mproc__now() > until)
                break;
        }
    }
    /* seq_cst, the count and the look at epoch: a store-buffering pair
       with the poster's seq_cst bump of epoch then load of sleepers
       (submit.c, wake_workers): either it sees us counted and wakes us, or
       we see its new epoch. Acquire of closing: pairs with the release (or
       seq_cst) store of closing at close (threads.c, mproc__threads_stop;
       processes.c, stop); missing it is harmless, since the close bumps
       epoch and wakes every sleeper after. */
    atomic_fetch_add_explicit(&b->sleepers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&b->epoch, memory_order_seq_cst) == e &&
        !atomic_load_explicit(&b->closing, memory_order_acquire))
        mproc__futex_wait(&b->epoch, e, 0, b->isolated);
    atomic_fetch_sub_explicit(&b->sleepers, 1, memory_order_relaxed);
}

/*
 * Take up the work the supervisor left in this worker's slot, if any: the
 * rest of a dead predecessor's chunk, or an offer of what a replacement
 * that could not start was to take over (supervisor.c, rehome). It is run
 * as a claimed chunk would be; returns whether there was any.
 */
static bool take_up(struct mproc__worker *wk)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    /* Acquire: pairs with the supervisor's release of inherit
       (mproc__slot_bequeath), after the inh_ words read next. */
    if (!atomic_load_explicit(&s->inherit, memory_order_acquire))
        return false;
    struct mproc__inheritance in = mproc__slot_inheritance(s);
    struct mproc__claim c = {
        .j = &b->jobs[(in.job - 1) % MPROC__RING],
        .id = in.job,
        .start = in.start,
        .end = in.end,
    };
    unsigned buf = 0;
    if (c.j->reduce && b->isolated)
        buf = atomic_load_explicit(&mproc__partial(c.j, wk->w)->buf,
                                   memory_order_relaxed);
    mproc__slot_hold(s, in.job, in.start, in.end, 0, buf);
    /* A batch that died inside a run: that run again, item by item (see
       run_batch). */
    wk->careful = in.batch_end;
    /* RUNNING before inherit is cleared, both seq_cst: a reconciling
       supervisor reads them in the other order, with seq_cst loads
       (repair.c, held_range), so it sees the range as inherited or as
       running, never neither; and after a death between the two it finds
       the slot RUNNING over its inheritance (repair.c, mproc__take_back).
       The RUNNING store's release half publishes the hold, as take's. */
    atomic_store_explicit(&s->state, MPROC__RUNNING, memory_order_seq_cst);
    atomic_store_explicit(&s->inherit, 0, memory_order_seq_cst);
    enter_chunk(b, s, c.j, in.job);
    settle(wk, &c);
    return true;
}

int mproc__work(struct mproc__worker *wk)
{
    struct mproc__board *b = wk->b;
    for (;;) {
        /* Acquire of epoch: pairs with the poster's seq_cst bump (submit.c,
           wake_workers) or the supervisor's (supervisor.c, rehome), so the
           scan sees the tail of every post counted in e, and take_up an
           offer made before the bump; a later post or offer changes epoch,
           and idle() will not sleep on e. Acquire of closing: pairs with
           the store of closing at close (threads.c, mproc__threads_stop;
           processes.c, stop); it publishes nothing the worker reads, so
           this is stronger than needed. */
        uint32_t e = atomic_load_explicit(&b->epoch, memory_order_acquire);
        if (atomic_load_explicit(&b->closing, memory_order_acquire))
            return MPROC__WORK_CLOSED;
        if (b->max_items && !wk->budget)
            return MPROC__WORK_RETIRE;
        if (take_up(wk))
            continue;
        struct mproc__claim c;
        if (claim(wk, &c))
            settle(wk, &c);
        else
            idle(wk, e);
    }
}

/* ---- the caller's side ------------------------------------------------ */

/*
 * Cancel job j: workers stop starting its items (they check `cancel` per
 * item), and the caller takes every unclaimed item itself and marks it. The
 * caller uses the last slot, with the same states as a worker, so that a
 * reconciling supervisor waits for it.
 */
void mproc__cancel_job(struct mproc__board *b, struct mproc__job *j)
{
    struct mproc__slot *s = &b->slots[b->workers];
    uint64_t id = atomic_load_explicit(&j->id, memory_order_relaxed);
    uint64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
    /* Release, though nothing pairs with it: workers load cancel relaxed
       (run, run_plain*, exhausted), only to stop early; the items they skip
       are accounted through the claim counter and the log. */
    atomic_store_explicit(&j->cancel, 1, memory_order_release);

    atomic_store_explicit(&s->js, (uint32_t)(j - b->jobs),
                          memory_order_relaxed);
    /* seq_cst, the state and the compare-and-swap: the caller's slot opens
       a window as a claimer's does (take): pairs with mproc__reconcile's
       seq_cst load of claim, then in_window's of the state (repair.c). */
    atomic_store_explicit(&s->state, MPROC__CLAIMING, memory_order_seq_cst);
    uint64_t cl = atomic_load_explicit(&j->claim, memory_order_relaxed);
    while (mproc__claim_next(cl) < n &&
           !atomic_compare_exchange_weak_explicit(
               &j->claim, &cl, mproc__claim_word(mproc__claim_gen(cl), n),
               memory_order_seq_cst, memory_order_relaxed))
        ;
    uint64_t from = mproc__claim_next(cl);
    if (from < n) {
        mproc__slot_hold(s, id, from, n, (n - from) | MPROC__NORUN, 0);
        /* seq_cst: opens a window (see "Crashes"): pairs with
           mproc__reconcile's seq_cst load of fin, then in_window's of the
           state (repair.c). */
        atomic_store_explicit(&s->state, MPROC__FINISHING,
                              memory_order_seq_cst);
        mproc__fail_range(j, from, n - from, MPROC_ECANCELED, 0, b->isolated);
    }
    /* Release: as settle's IDLE, after the record is sealed. */
    atomic_store_explicit(&s->state, MPROC__IDLE, memory_order_release);
}
