/*
 * The board after a death: what a dead worker held is finished exactly once,
 * whoever finishes it (board.c, "Crashes", says what each slot state
 * promises), and a task whose pool broke keeps what finished.
 *
 * Who runs here: the supervisor of a process pool (repair_running,
 * take_back, abandon, reconcile), and the caller (release_job before it
 * frees a job's memory; salvage once the pool broke). Both work over ranges
 * of items (struct mproc__range) and ask one question of them, which items
 * no range covers (mproc__gaps).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- repair after a death (the supervisor) ------------------------------ */

/*
 * Worker w died in RUNNING (see "Crashes"): record the done prefix, mark the
 * item it was running (none, if it was inside a batch's run of several: see
 * below), and leave the rest in the slot for its replacement.
 * Returns true when the slot now holds inherited work.
 */
bool mproc__repair_running(struct mproc__board *b, int w, int wstatus)
{
    struct mproc__slot *s = &b->slots[w];
    uint64_t id = atomic_load_explicit(&s->job, memory_order_relaxed);
    struct mproc__job *j = &b->jobs[(id - 1) % MPROC__RING];
    uint64_t start = atomic_load_explicit(&s->start, memory_order_relaxed);
    uint64_t end = atomic_load_explicit(&s->end, memory_order_relaxed);
    uint64_t hold = atomic_load_explicit(&s->hold, memory_order_relaxed);
    /* Acquire: pairs with the dead worker's release of commit (board.c,
       run), after the item's effects. */
    uint64_t commit = atomic_load_explicit(&s->commit, memory_order_acquire);
    uint64_t failed = atomic_load_explicit(&s->failed, memory_order_relaxed);
    bool late = atomic_load_explicit(&s->deadline, memory_order_relaxed) ==
                MPROC__KILLED;
    bool killed = atomic_load_explicit(&s->live, memory_order_relaxed) ==
                  (id | MPROC__LIVE_KILL);
    uint64_t cur = mproc__commit_next(commit);
    uint64_t batch_end =
        atomic_load_explicit(&s->batch_end, memory_order_relaxed);

    atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
    atomic_store_explicit(&s->batch_end, 0, memory_order_relaxed);
    atomic_store_explicit(&s->live, 0, memory_order_relaxed);
    /* The fold so far is in the buffer commit names: the slot's next
       worker goes on from it (board.c, take and take_up). */
    if (j->reduce)
        atomic_store_explicit(&mproc__partial(j, w)->buf,
                              mproc__commit_buf(commit), memory_order_relaxed);
    if (cur > start)
        mproc__finish(j, start, cur - start, failed, true);
    if (cur >= end) {
        /* It died after cutting a cancelled chunk's end to what ran (board.c,
           settle): the rest never started. */
        if (hold > end)
            mproc__fail_range(j, end, hold - end, MPROC_ECANCELED, 0, true);
        return false;
    }
    if (killed && !late) {
        /* mproc_task_kill: the job is cancelled, so what the worker left
           is cancelled too; the item it was in (or about to start: the
           kill cannot tell) carries the kill in its wait status. */
        mproc__fail_range(j, cur, 1, MPROC_ECANCELED, wstatus, true);
        if (cur + 1 < hold)
            mproc__fail_range(j, cur + 1, hold - cur - 1, MPROC_ECANCELED, 0,
                              true);
        return false;
    }
    /* Inside a batch's run of more than one item (board.c, run_batch): the
       item that crashed is one of [cur, batch_end), which one is unknown.
       None is marked; the replacement inherits them all and runs that span
       one item per call, so that a crash that comes again is on one item,
       and this code marks that one. A timeout runs one item per call. */
    if (batch_end > cur + 1 && batch_end <= hold && !late) {
        mproc__slot_bequeath(
            s, &(struct mproc__inheritance){id, cur, hold, batch_end});
        return true;
    }
    mproc__fail_range(j, cur, 1, late ? MPROC_ETIMEDOUT : MPROC_ECRASHED,
                      wstatus, true);
    if (cur + 1 >= hold)
        return false;
    mproc__slot_bequeath(s, &(struct mproc__inheritance){id, cur + 1, hold, 0});
    return true;
}

/*
 * Worker w died in `state`: take back the inheritance its slot holds and it
 * never took up (an offer it had not reached, or what it was to take over as
 * a replacement whose start failed), into *out, and clear the slot for the
 * repair of what it held itself. Returns whether there was one. A worker
 * that died taking its inheritance up (take_up, board.c: it stores RUNNING
 * over the range, then clears inherit) is RUNNING over that very range:
 * its chunk now, which mproc__repair_running repairs, so none is taken
 * back. No other chunk can start where an inheritance does: each item is
 * held by one range at a time.
 */
bool mproc__take_back(struct mproc__board *b, int w, uint32_t state,
                      struct mproc__inheritance *out)
{
    struct mproc__slot *s = &b->slots[w];
    /* Relaxed: the worker is dead, its last stores ordered before this by
       waitpid, and the inh_ words were written by this process. */
    if (!atomic_load_explicit(&s->inherit, memory_order_relaxed))
        return false;
    *out = mproc__slot_inheritance(s);
    atomic_store_explicit(&s->inherit, 0, memory_order_relaxed);
    return !(state == MPROC__RUNNING &&
             atomic_load_explicit(&s->job, memory_order_relaxed) == out->job &&
             atomic_load_explicit(&s->start, memory_order_relaxed) ==
                 out->start);
}

/* Give up on inheritance `in`: mark its items with code (and wstatus, how
   the start that could not take it over ended). */
void mproc__abandon_inheritance(struct mproc__board *b,
                                const struct mproc__inheritance *in, int code,
                                int wstatus)
{
    struct mproc__job *j = &b->jobs[(in->job - 1) % MPROC__RING];
    mproc__fail_range(j, in->start, in->end - in->start, code, wstatus,
                      b->isolated);
}

/* Give up on the work inherited by slot w, whose worker is dead. */
void mproc__abandon(struct mproc__board *b, int w, int code, int wstatus)
{
    struct mproc__slot *s = &b->slots[w];
    /* Relaxed: inherit and the inh_ words were last written by this
       supervisor, or inherit cleared by the slot's worker, whose death
       waitpid ordered before this. */
    if (!atomic_load_explicit(&s->inherit, memory_order_relaxed))
        return;
    struct mproc__inheritance in = mproc__slot_inheritance(s);
    atomic_store_explicit(&s->inherit, 0, memory_order_relaxed);
    mproc__abandon_inheritance(b, &in, code, wstatus);
}

/* Mark every unclaimed item of every queued job with code (the pool can run
   nothing more). */
void mproc__abandon_all(struct mproc__board *b, int code)
{
    /* Acquire of tail: pairs with publish's seq_cst store of tail; of id:
       with publish's release store of id (submit.c), so n and claim are
       this job's. */
    uint64_t t = atomic_load_explicit(&b->tail, memory_order_acquire);
    for (uint64_t p = t > MPROC__RING ? t - MPROC__RING : 0; p < t; p++) {
        struct mproc__job *j = &b->jobs[p % MPROC__RING];
        if (atomic_load_explicit(&j->id, memory_order_acquire) != p + 1)
            continue;
        uint64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
        uint64_t cl = atomic_load_explicit(&j->claim, memory_order_relaxed);
        /* seq_cst, as a claimer's fetch-add (board.c, take), though
           stronger than needed: the window it would guard is against a
           reconciliation, and this supervisor is the reconciler. Only the
           compare-and-swap's atomicity against the claimers matters. */
        while (mproc__claim_next(cl) < n &&
               !atomic_compare_exchange_weak_explicit(
                   &j->claim, &cl, mproc__claim_word(mproc__claim_gen(cl), n),
                   memory_order_seq_cst, memory_order_relaxed))
            ;
        uint64_t from = mproc__claim_next(cl);
        if (from < n)
            mproc__fail_range(j, from, n - from, code, 0, b->isolated);
    }
}

static bool in_window(struct mproc__board *b, int w, uint32_t js)
{
    struct mproc__slot *s = &b->slots[w];
    /* seq_cst: the other half of the window pairs (board.c, take, settle
       and mproc__cancel_job store the window state seq_cst, then move a
       counter seq_cst): called after mproc__reconcile's seq_cst loads of
       the counters, so a move they saw comes with its window state. */
    uint32_t st = atomic_load_explicit(&s->state, memory_order_seq_cst);
    if (st == MPROC__CLAIMING)
        return atomic_load_explicit(&s->js, memory_order_relaxed) == js;
    if (st == MPROC__FINISHING)
        return (atomic_load_explicit(&s->job, memory_order_relaxed) - 1) %
                   MPROC__RING ==
               js;
    return false;
}

/* Is there a sealed record of j starting at start? Records are disjoint, so
   it can only be the one a dead finisher sealed before it died. */
static bool sealed_at(struct mproc__job *j, uint64_t tag, uint64_t start)
{
    /* seq_cst as reconcile's reads of fin; acquire would do: a dead
       finisher's count and seal are ordered before this by its death. */
    uint64_t nrec =
        mproc__fin_records(atomic_load_explicit(&j->fin, memory_order_seq_cst));
    if (nrec > mproc__log_cap(j))
        nrec = mproc__log_cap(j);
    for (uint64_t r = 0; r < nrec; r++)
        if (mproc__sealed(&mproc__log(j)[r], tag) &&
            mproc__range_start(atomic_load_explicit(
                &mproc__log(j)[r].range, memory_order_relaxed)) == start)
            return true;
    return false;
}

/*
 * Order the dead finishers fins[0..nf) so that the first `holes` of them
 * are ones that counted their records: a choice whose lengths add up to
 * `items`, the items the holes counted. (Which of several such choices does
 * not matter: each range is recorded once either way, and the counts add
 * up.) Dead finishers of one job at once are few; beyond 20 the order is
 * left as it is.
 */
static void counted_first(const struct mproc__dead *dead, int *fins, int nf,
                          uint64_t holes, uint64_t items)
{
    if (!holes || holes >= (uint64_t)nf || nf > 20)
        return;
    for (uint32_t mask = 1; mask < UINT32_C(1) << nf; mask++) {
        if ((uint64_t)__builtin_popcount(mask) != holes)
            continue;
        uint64_t sum = 0;
        for (int i = 0; i < nf; i++)
            if (mask >> i & 1)
                sum += dead[fins[i]].end - dead[fins[i]].start;
        if (sum != items)
            continue;
        int chosen[20], rest[20], nc = 0, nr = 0;
        for (int i = 0; i < nf; i++) {
            if (mask >> i & 1)
                chosen[nc++] = fins[i];
            else
                rest[nr++] = fins[i];
        }
        memcpy(fins, chosen, (size_t)nc * sizeof *fins);
        memcpy(fins + nc, rest, (size_t)nr * sizeof *fins);
        return;
    }
}

/*
 * The ranges of job `id` that slot w holds, into r[0..*nr): the chunk its
 * live worker runs or finishes, and the inheritance waiting in the slot (a
 * live worker's slot may hold both: an offer it has not reached yet). A
 * live worker may move on while its slot is read: the reading is repeated
 * until two agree. Returns false if they never do (call again later).
 */
static bool held_range(struct mproc__board *b, int w, bool live, uint64_t id,
                       struct mproc__range r[2], size_t *nr)
{
    struct mproc__slot *s = &b->slots[w];
    for (int tries = 0; tries < 1000; tries++) {
        /* inherit first: a worker taking its inheritance up stores RUNNING
           over it, then clears inherit, both seq_cst (board.c, take_up),
           and these two loads are seq_cst too, so the range is seen as
           inherited or as running. The inh_ words need no order: only this
           supervisor writes them. The state's acquire half pairs with the
           worker's release (or seq_cst) stores of the state after its hold
           (take, take_up, settle), so job, start and end are at least that
           hold. Those three are seq_cst only to keep every load of the
           double reading in its place; acquire would do. */
        bool inherited =
            atomic_load_explicit(&s->inherit, memory_order_seq_cst);
        uint32_t st = atomic_load_explicit(&s->state, memory_order_seq_cst);
        uint64_t job = atomic_load_explicit(&s->job, memory_order_seq_cst);
        uint64_t start = atomic_load_explicit(&s->start, memory_order_seq_cst);
        /* The chunk's whole end: `end` may be cut short while its worker
           records a cancelled chunk in two parts (board.c, settle), and
           the rest is still its own until recorded. */
        uint64_t end = atomic_load_explicit(&s->hold, memory_order_seq_cst);
        if (atomic_load_explicit(&s->state, memory_order_seq_cst) != st ||
            atomic_load_explicit(&s->job, memory_order_seq_cst) != job ||
            atomic_load_explicit(&s->start, memory_order_seq_cst) != start ||
            atomic_load_explicit(&s->hold, memory_order_seq_cst) != end) {
            mproc__relax();
            continue;
        }
        size_t k = 0;
        if (live && (st == MPROC__RUNNING || st == MPROC__FINISHING) &&
            job == id)
            r[k++] = (struct mproc__range){start, end};
        if (inherited) {
            struct mproc__inheritance in = mproc__slot_inheritance(s);
            if (in.job == id)
                r[k++] = (struct mproc__range){in.start, in.end};
        }
        *nr = k;
        return true;
    }
    return false;
}

static int by_start(const void *a, const void *b)
{
    const struct mproc__range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

void mproc__gaps(struct mproc__range *rs, size_t n, uint64_t top,
                 void (*gap)(void *ctx, uint64_t start, uint64_t end),
                 void *ctx)
{
    qsort(rs, n, sizeof *rs, by_start);
    uint64_t at = 0;
    /* Ranges may overlap (a live finisher's slot and the record it just
       sealed): `at` only moves forward. */
    for (size_t i = 0; i < n && at < top; i++) {
        assert(rs[i].start <= rs[i].end);
        if (rs[i].start > at)
            gap(ctx, at, rs[i].start < top ? rs[i].start : top);
        if (rs[i].end > at)
            at = rs[i].end;
    }
    if (at < top)
        gap(ctx, at, top);
}

/*
 * The caller is about to free the memory of job `id` in slot js (its log and
 * copies): make sure no reconciliation reads it. The store of gone then
 * load of readers below, both seq_cst, and mproc__reconcile's count in
 * readers then load of gone, both seq_cst, are a store-buffering pair:
 * either the supervisor sees `gone` and leaves the job alone, or the caller
 * sees it reading and waits for it (and the supervisor's release of
 * readers, when done, orders its reads before the caller's free). `alive` says whether the
 * supervisor still lives (a dead one never finishes its reading).
 */
void mproc__release_job(struct mproc__board *b, uint32_t js, uint64_t id,
                        bool (*alive)(void *), void *arg)
{
    struct mproc__job *j = &b->jobs[js];
    atomic_store_explicit(&j->gone, id, memory_order_seq_cst);
    for (unsigned k = 1;
         atomic_load_explicit(&j->readers, memory_order_seq_cst); k++) {
        if (k % 1024 == 0 && !alive(arg))
            return;
        mproc__relax();
    }
}

static bool reconcile(struct mproc__board *b, uint32_t js, uint64_t id,
                      const struct mproc__dead *dead, int ndead,
                      const bool *alive, const struct mproc__inheritance *kept,
                      int nkept);

/*
 * Reconcile job slot js after workers died inside a window (see "Crashes").
 * `dead` lists them, with the slot contents they died with; `alive[w]` tells
 * which slots have a live worker. Returns false when a live worker is still
 * inside a window for this job: call again shortly. On success the dead
 * workers' slots hold, as inherited work, whatever they had claimed and not
 * finished.
 *
 * The counters are read before the live workers' states. A live worker that
 * had moved a counter before that read had stored its window state before
 * the move (both seq_cst), so if none is in a window now, each has either
 * finished the step or published its result: a hole below the record count
 * read can only be a dead finisher's, and claimed items below the claim
 * count read are either covered by a chunk (read from the slots, which
 * workers leave only after sealing their record, read after) or a dead
 * claimer's.
 */
bool mproc__reconcile(struct mproc__board *b, uint32_t js,
                      const struct mproc__dead *dead, int ndead,
                      const bool *alive, const struct mproc__inheritance *kept,
                      int nkept)
{
    struct mproc__job *j = &b->jobs[js];
    /* seq_cst, the count in readers and the look at gone: the other half of
       mproc__release_job's store-buffering pair (its store of gone, then
       load of readers). id: seq_cst only for its place in that order;
       acquire would do (pairs with publish's release store of id,
       submit.c). */
    atomic_fetch_add_explicit(&j->readers, 1, memory_order_seq_cst);
    uint64_t id = atomic_load_explicit(&j->id, memory_order_seq_cst);
    bool done;
    if (!id)
        done = false;
    else if (atomic_load_explicit(&j->gone, memory_order_seq_cst) == id)
        done = true; /* harvested: it had nothing left to reconcile */
    else
        done = reconcile(b, js, id, dead, ndead, alive, kept, nkept);
    /* Release, at least: pairs with mproc__release_job's seq_cst load of
       readers, so every read of the job's memory here comes before the
       caller frees it. */
    atomic_fetch_sub_explicit(&j->readers, 1, memory_order_seq_cst);
    return done;
}

/* Give a gap of claimed items that nothing covers to the dead claimers'
   slots, for their replacements, a chunk of at most MAX_LEN items each. */
struct refill {
    struct mproc__board *b;
    struct mproc__job *j;
    uint64_t id;
    uint32_t js;
    const struct mproc__dead *dead;
    int ndead, next;
};

static void refill(void *ctx, uint64_t at, uint64_t upto)
{
    struct refill *f = ctx;
    while (at < upto) {
        uint64_t len = upto - at;
        if (len > MPROC__MAX_LEN)
            len = MPROC__MAX_LEN;
        while (f->next < f->ndead && f->dead[f->next].js != f->js)
            f->next++;
        if (f->next < f->ndead) {
            int w = f->dead[f->next++].w;
            /* The slot is free of any inheritance: what it held when its
               worker died was taken back (mproc__take_back), and it has had
               no worker since. */
            mproc__slot_bequeath(&f->b->slots[w], &(struct mproc__inheritance){
                                                      f->id, at, at + len, 0});
        } else {
            /* More gaps than dead workers: never seen, but never hang. */
            mproc__fail_range(f->j, at, len, MPROC_ECRASHED, 0, true);
        }
        at += len;
    }
}

static bool reconcile(struct mproc__board *b, uint32_t js, uint64_t id,
                      const struct mproc__dead *dead, int ndead,
                      const bool *alive, const struct mproc__inheritance *kept,
                      int nkept)
{
    struct mproc__job *j = &b->jobs[js];
    uint64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
    uint64_t tag = mproc__tag(id);
    /* seq_cst, claim then fin: read before the live workers' states
       (in_window), the other half of the window pairs (see above, and
       board.c, "Crashes"). */
    uint64_t cl = atomic_load_explicit(&j->claim, memory_order_seq_cst);
    uint64_t top =
        mproc__claim_gen(cl) == mproc__gen(id - 1) ? mproc__claim_next(cl) : 0;
    if (top > n)
        top = n;
    uint64_t fin = atomic_load_explicit(&j->fin, memory_order_seq_cst);
    uint64_t nrec = mproc__fin_records(fin);
    if (nrec > mproc__log_cap(j))
        nrec = mproc__log_cap(j);
    for (int w = 0; w <= b->workers; w++)
        if ((w == b->workers || alive[w]) && in_window(b, w, js))
            return false;

    /* Dead finishers whose record is not sealed either reserved it (a hole
       below nrec) or never counted. The holes were counted, with as many
       items as `fin` counted beyond the sealed records below nrec (one
       fetch-add counts a record and its items). They are sealed with the
       ranges of dead finishers whose lengths add up to that, in any order,
       and the others are finished anew. */
    int *fins = malloc(((size_t)ndead + 1) * sizeof *fins);
    struct mproc__range *rs =
        malloc((2 * ((size_t)b->workers + 1) + (size_t)nkept) * sizeof *rs);
    if (!fins || !rs) {
        free(fins);
        free(rs);
        return false;
    }
    int nf = 0, takers = 0;
    for (int i = 0; i < ndead; i++) {
        if (dead[i].state == MPROC__FINISHING && dead[i].job == id &&
            !sealed_at(j, tag, dead[i].start))
            fins[nf++] = i;
        takers += dead[i].js == js;
    }
    uint64_t holes = 0, hole_items = mproc__fin_done(fin);
    for (uint64_t r = 0; r < nrec; r++) {
        if (!mproc__sealed(&mproc__log(j)[r], tag))
            holes++;
        else
            hole_items -= mproc__range_len(atomic_load_explicit(
                &mproc__log(j)[r].range, memory_order_relaxed));
    }
    counted_first(dead, fins, nf, holes, hole_items);
    int k = 0;
    for (uint64_t r = 0; r < nrec && k < nf; r++) {
        if (mproc__sealed(&mproc__log(j)[r], tag))
            continue;
        const struct mproc__dead *d = &dead[fins[k++]];
        mproc__seal(j, r, d->start, d->end - d->start, d->failed);
    }
    for (; k < nf; k++) {
        const struct mproc__dead *d = &dead[fins[k]];
        mproc__finish(j, d->start, d->end - d->start, d->failed, true);
    }
    free(fins);

    /* Claimed items below top that nothing covers were claimed by the dead
       (a claimer's whole chunk; or the cancelled tail of a finisher's).
       Coverage: chunks held (running or finishing) or inherited, read from
       the slots first, the inheritances the supervisor keeps for a live
       worker (`kept`), then the sealed records. Each gap goes to one of
       the dead workers' slots, for its replacement. */
    size_t nr = 0;
    for (int w = 0; takers && w <= b->workers; w++) {
        size_t got;
        if (!held_range(b, w, w == b->workers || alive[w], id, &rs[nr], &got)) {
            free(rs);
            return false;
        }
        nr += got;
    }
    for (int i = 0; takers && i < nkept; i++)
        if (kept[i].job == id)
            rs[nr++] = (struct mproc__range){kept[i].start, kept[i].end};
    /* Live workers go on finishing while this runs: every record counted
       by now is read, this reconciliation's own included. seq_cst as the
       reads above; acquire would do (pairs with the fetch-adds of fin in
       mproc__finish). */
    uint64_t nnow =
        mproc__fin_records(atomic_load_explicit(&j->fin, memory_order_seq_cst));
    if (nnow > mproc__log_cap(j))
        nnow = mproc__log_cap(j);
    if (takers) {
        struct mproc__range *more = realloc(rs, (nr + nnow + 1) * sizeof *rs);
        if (!more) {
            free(rs);
            return false;
        }
        rs = more;
    }
    for (uint64_t r = 0; takers && r < nnow; r++) {
        if (!mproc__sealed(&mproc__log(j)[r], tag))
            continue; /* a live finisher's: its slot covered it */
        uint64_t range =
            atomic_load_explicit(&mproc__log(j)[r].range, memory_order_relaxed);
        uint64_t start = mproc__range_start(range);
        if (start < top)
            rs[nr++] =
                (struct mproc__range){start, start + mproc__range_len(range)};
    }

    /* A seqlock read, as a claimer's: if the slot was recycled meanwhile,
       the job was complete, so it has no gap, and what was read of the
       slots and the log may belong to the next job. If it was not, the
       reads were of this job, and a gap found keeps it from completing
       until it is filled. The loads before were all at least acquire, so
       this one comes after them; one that read a newer job's fin or seal
       synchronised with that job's publish (submit.c: release stores of
       fin and log after its clearing of id), so this sees id changed.
       seq_cst is more than that needs. */
    if (atomic_load_explicit(&j->id, memory_order_seq_cst) != id) {
        free(rs);
        return true;
    }

    struct refill f = {b, j, id, js, dead, ndead, 0};
    if (takers)
        mproc__gaps(rs, nr, top, refill, &f);
    free(rs);
    mproc__ring(j, true);
    return true;
}

/* ---- a broken pool (the caller) ------------------------------------------- */

/* Mark items [from, to) crashed: they were never finished. */
static void mark_lost(void *task, uint64_t from, uint64_t to)
{
    mproc_task *t = task;
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
void mproc__salvage(mproc_task *t)
{
    uint64_t n = t->user.n, fin = mproc__task_fin(t);
    mproc__task_scan(t, fin);
    uint64_t nrec = mproc__records(fin, t->log_cap), tag = mproc__tag(t->id);
    /* The sealed ranges, as (start, end) pairs sorted by start; the items
       between them are the lost ones (records are disjoint). One pair per
       record: at most LOG_MAX, 128 MiB, as much as the log itself, so
       failing to get them is failing to get memory at all. */
    struct mproc__range *ranges = malloc((nrec ? nrec : 1) * sizeof *ranges);
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
        uint64_t start = mproc__range_start(range),
                 len = mproc__range_len(range);
        if (r >= t->next_r + (t->next_off ? 1 : 0))
            mproc__task_copy_range(t, start, len, mproc__seal_norun(seal));
        if (r >= t->sealed)
            t->failed += mproc__seal_failed(seal);
        ranges[nr++] = (struct mproc__range){start, start + len};
    }
    mproc__gaps(ranges, nr, n, mark_lost, t);
    free(ranges);
    t->next_r = t->sealed = nrec; /* next reports nothing more */
    t->next_off = 0;
    uint64_t f = t->failed;
    t->result = f > INT_MAX ? INT_MAX : (int)f;
    /* The items marked here are never counted in fin: progress must learn
       they are done from the state. Release: pairs with the acquire in
       mproc_task_progress, which then sees every status written here. */
    atomic_store_explicit(&t->state, MPROC__TASK_SALVAGED,
                          memory_order_release);
}
