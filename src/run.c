/*
 * Running a claimed chunk's items: the item loops of the board.
 *
 * Who runs here: a worker (a thread of the caller, or a process forked by
 * the supervisor), on the chunk it claimed or inherited (board.c). What it
 * shares while it runs is its own slot (commit, failed, deadline,
 * batch_end), read by the supervisor once the worker is dead, and the job's
 * cancel flag, read per item.
 *
 * The loops are kept apart by what a chunk needs, so that the common case
 * keeps its values in registers: a thread's plain loop, a process worker's
 * durable loop (each item's effects made durable before the next starts,
 * so a death costs the running item only), the general loop (reductions,
 * deadlines), the batched loop (runs of items per call), and, in data.c,
 * the loop of results of any length.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room for results that are not kept (out NULL): NULL when the system
   refuses it (a job's out_size may be anything up to its n * out_size). */
static char *scratch(struct mproc__worker *wk, size_t size)
{
    if (wk->scratch_cap < size) {
        char *p = realloc(wk->scratch, size);
        if (!p)
            return NULL;
        wk->scratch = p;
        wk->scratch_cap = size;
    }
    return wk->scratch;
}

/* Every item of the chunk fails with code without running, counted as run
   so that the code stands: no scratch memory (MPROC_ENOMEM), or a spawned
   worker without the job's code (MPROC_ENOTSUP). */
static uint64_t fail_chunk(const struct mproc__claim *c, int *status, int code,
                           uint64_t *failedp)
{
    for (uint64_t i = c->start; status && i < c->end; i++)
        status[i] = code;
    *failedp = c->end - c->start;
    return c->end - c->start;
}

_Noreturn void mproc__condemned(void)
{
    /* The supervisor has judged this item late and is killing us; nothing
       more of ours may reach the board. */
    for (;;)
        pause();
}

/*
 * The item loops of the common case, a job without a reduction (and, for
 * process workers, a pool without a timeout), each in a function of its own:
 * few enough values live across the call to fn that they stay in registers.
 * In run()'s general loop they spill to the stack and are reloaded around
 * every call, which cost 0.2 ns per trivial item on a thread worker and 0.6
 * on a process worker (1.3 against 1.1 ns, 1.8 against 1.2 ns, one worker,
 * best of 200 maps of 10^6 items).
 *
 * A thread worker stores each item's index for mproc_item_index through
 * `cur` (noclone: propagated as a constant it became a __tls_get_addr call
 * per item); a process worker stores nothing more, since its `commit`
 * already says which item runs (data.c, mproc_item_index).
 *
 * run_plain starts on a cache line: where the linker happened to put it
 * moved its loop across a 64-byte boundary, and the trivial map's figure
 * by 20% between two builds whose loop was the same code (1.86 against
 * 2.23 ns, threads, 10^7 items, three alternating runs each).
 */
static __attribute__((noinline, noclone, aligned(64))) uint64_t
run_plain(mproc_fn fn, const char *ip, char *op, void *arg, size_t isz,
          size_t ostep, int *status, uint64_t i, uint64_t len,
          const _Atomic uint32_t *cancel, uint64_t *cur, uint64_t *failedp)
{
    uint64_t failed = 0, k = 0;
    for (; k < len; k++) {
        if (atomic_load_explicit(cancel, memory_order_relaxed))
            break;
        *cur = i + k; /* mproc_item_index */
        int rc = fn(ip, op, arg);
        if (status)
            status[k] = rc;
        failed += rc != 0;
        ip += isz;
        op += ostep;
    }
    *failedp = failed;
    return k;
}

/* A process worker makes each item durable (status, failure count, then
   `commit`) before the next starts; see run(). */
static __attribute__((noinline)) uint64_t
run_plain_isolated(mproc_fn fn, const char *ip, char *op, void *arg, size_t isz,
                   size_t ostep, int *status, uint64_t i, uint64_t end,
                   const _Atomic uint32_t *cancel, struct mproc__slot *s,
                   unsigned buf, uint64_t *failedp)
{
    uint64_t failed = 0, start = i;
    for (; i < end; i++) {
        if (atomic_load_explicit(cancel, memory_order_relaxed))
            break;
        int rc = fn(ip, op, arg);
        if (status)
            status[i] = rc;
        if (rc)
            atomic_store_explicit(&s->failed, ++failed, memory_order_relaxed);
        /* Release: pairs with the acquire of commit in repair_running
           (repair.c), the supervisor's after our death, which then sees
           the item's effects (result, status, failed, fold). */
        atomic_store_explicit(&s->commit, mproc__commit_word(i + 1, buf),
                              memory_order_release);
        ip += isz;
        op += ostep;
    }
    *failedp = failed;
    return i - start;
}

/*
 * A job with a batch function: its chunk is run as a few runs of items, one
 * call each, with the cancel check between runs (each about target_ns of
 * work once the worker has measured the job; before that 1, 8, 64, ...
 * items). The library writes the zeros of a run that returned 0, counts
 * the failures of one that did not, and folds each result after the call.
 * A job without status gets its codes in scratch memory, and one without
 * out its results; both bound a run (BATCH_SCRATCH).
 *
 * Process workers make each run durable as the item loops do each item:
 * statuses, failures, the fold into the other partial buffer, then
 * `commit` past the run. Before the call they publish the run's end in
 * `batch_end`, so that the supervisor, after a death, knows that the item
 * that crashed is somewhere in [commit, batch_end), not at commit: it
 * leaves the whole rest of the chunk to the replacement, which runs that
 * span one item per call (wk->careful) and so dies, if the crash comes
 * again, on that item alone (repair.c, mproc__repair_running). With a
 * timeout every call is of one item, each with its deadline.
 */
#define BATCH_SCRATCH (64u << 10) /* bytes of scratch codes or results */

static uint64_t run_batch(struct mproc__worker *wk,
                          const struct mproc__claim *c, uint64_t *failedp)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    struct mproc__job *j = c->j;
    mproc_batch_fn batch = wk->batch;
    void *arg = j->arg;
    int *status = j->status;
    void (*reduce)(void *, const void *, void *) = wk->reduce;
    size_t isz = j->in_size, osz = j->out_size;
    const char *ip = j->in ? j->in + c->start * isz : NULL;
    char *op = j->out ? j->out + c->start * osz : NULL;
    uint64_t limit =
        b->isolated ? (j->timeout_ns ? j->timeout_ns : b->timeout_ns) : 0;

    /* The longest run: about target_ns of work, or growing from 1 while
       the job is not yet measured here; scratch bounds it further. */
    uint64_t cap = 1, grow = 8;
    if (wk->est_id == c->id && wk->ns_per_item) {
        cap = b->target_ns * 16 / wk->ns_per_item;
        grow = 0;
    }
    uint64_t most = MPROC__MAX_LEN;
    if (!status)
        most = BATCH_SCRATCH / sizeof(int);
    if (!j->out && osz && BATCH_SCRATCH / osz < most)
        most = BATCH_SCRATCH / osz;
    if (most < 1)
        most = 1;
    if (limit)
        cap = most = 1;
    char *codes_at = NULL, *results = NULL;
    if (!status || (!j->out && osz)) {
        size_t at =
            MPROC__ALIGN_UP(status ? 0 : most * sizeof(int), MPROC__LINE);
        codes_at = scratch(wk, at + (j->out ? 0 : most * osz));
        results = codes_at + at;
    }
    int *codes = (int *)(void *)codes_at;
    if (!j->out && osz)
        op = results;
    size_t ostep = j->out ? osz : 0;

    unsigned buf = 0;
    char *acc = NULL;
    if (reduce && !b->isolated)
        acc = mproc__partial_buf(j, wk->w, 0);
    if (b->isolated)
        buf = mproc__commit_buf(
            atomic_load_explicit(&s->commit, memory_order_relaxed));

    uint64_t failed = 0, i = c->start;
    while (i < c->end) {
        if (atomic_load_explicit(&j->cancel, memory_order_relaxed))
            break;
        uint64_t cnt = c->end - i;
        uint64_t room = i < wk->careful ? 1 : cap < most ? cap : most;
        if (room < 1)
            room = 1;
        if (cnt > room)
            cnt = room;
        assert(cnt >= 1 && i + cnt <= c->end);
        int *st = status ? status + i : codes;
        uint64_t d = 0;
        if (b->isolated) {
            /* Relaxed: the supervisor reads it only once this process is
               dead, as the hold's other words. */
            atomic_store_explicit(&s->batch_end, i + cnt, memory_order_relaxed);
            if (limit) {
                /* Release: pairs with the supervisor's acquire of the
                   deadline when it looks for late items (supervisor.c). */
                d = mproc__now() + limit;
                atomic_store_explicit(&s->deadline, d, memory_order_release);
            }
        }
        /* mproc_item_index in a batch: its first item (process workers
           read it from commit, which names it already). */
        if (!b->isolated)
            mproc__cur.index = i;
        int rc = batch(ip, op, (size_t)cnt, arg, st);
        /* acq_rel: the item's return against the supervisor's CAS that
           condemns it; whichever comes first decides (as in run()). */
        if (limit && !atomic_compare_exchange_strong_explicit(
                         &s->deadline, &d, 0, memory_order_acq_rel,
                         memory_order_acquire))
            mproc__condemned();
        if (rc) {
            for (uint64_t k = 0; k < cnt; k++)
                failed += st[k] != 0;
        } else if (status) {
            memset(st, 0, (size_t)cnt * sizeof *st);
        }
        if (reduce && !b->isolated) {
            for (uint64_t k = 0; k < cnt; k++)
                reduce(acc, op + k * osz, arg);
        } else if (reduce) {
            char *from = mproc__partial_buf(j, wk->w, buf);
            char *to = mproc__partial_buf(j, wk->w, buf ^ 1);
            memcpy(to, from, osz);
            for (uint64_t k = 0; k < cnt; k++)
                reduce(to, op + k * osz, arg);
            buf ^= 1;
        }
        i += cnt;
        if (b->isolated) {
            atomic_store_explicit(&s->failed, failed, memory_order_relaxed);
            /* Release: a reader of commit (the supervisor, after our
               death) also sees the run's effects. */
            atomic_store_explicit(&s->commit, mproc__commit_word(i, buf),
                                  memory_order_release);
        }
        if (ip)
            ip += cnt * isz;
        if (op)
            op += cnt * ostep;
        if (grow && cap < MPROC__MAX_LEN / grow)
            cap *= grow;
    }
    if (b->isolated) {
        atomic_store_explicit(&s->batch_end, 0, memory_order_relaxed);
        if (reduce)
            atomic_store_explicit(&mproc__partial(j, wk->w)->buf, buf,
                                  memory_order_relaxed);
    }
    wk->careful = 0; /* it was this chunk's, whatever ran of it */
    mproc__cur.index = UINT64_MAX;
    *failedp = failed;
    return i - c->start;
}

/*
 * Run items [c->start, c->end) and return how many ran; the rest were
 * cancelled before they started. Thread workers fold straight into their
 * partial. Process workers make each item's effects durable before moving
 * on (status, failed count, fold into the other partial buffer, then
 * `commit`), so that a death anywhere loses only the item that was running.
 * Jobs without a reduction (or deadline) take the lean loops above. A
 * worker whose items run elsewhere (an MPI rank's proxy) hands the chunk to
 * its exec, which writes everything in place as a thread worker would.
 */
uint64_t mproc__run_chunk(struct mproc__worker *wk,
                          const struct mproc__claim *c, uint64_t *failedp)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    struct mproc__job *j = c->j;
    if (wk->exec)
        return wk->exec(wk, j, c->id, c->start, c->end, failedp);
    if (wk->code_id != c->id && !mproc__code_view(wk, c))
        return fail_chunk(c, j->status, MPROC_ENOTSUP, failedp);
    if (wk->batch)
        return run_batch(wk, c, failedp);
    if (j->flags & MPROC_OUT_BYTES)
        return mproc__run_bytes(wk, j, c->start, c->end, failedp);
    mproc_fn fn = wk->fn;
    void *arg = j->arg;
    int *status = j->status;
    void (*reduce)(void *, const void *, void *) = wk->reduce;
    size_t isz = j->in_size, osz = j->out_size;
    const char *ip = j->in ? j->in + c->start * isz : NULL;
    char *op = NULL;
    size_t ostep = 0;
    if (j->out) {
        op = j->out + c->start * osz;
        ostep = osz;
    } else if (osz) {
        op = scratch(wk, osz);
        if (!op)
            return fail_chunk(c, status, MPROC_ENOMEM, failedp);
        /* Zeroed, so that a reduction never folds another job's bytes when
           fn writes nothing. */
        memset(op, 0, osz);
    }
    uint64_t failed = 0, i = c->start;
    uint64_t *cur = &mproc__cur.index;

    if (!b->isolated && !reduce) {
        uint64_t ran =
            run_plain(fn, ip, op, arg, isz, ostep, status ? status + i : NULL,
                      i, c->end - i, &j->cancel, cur, failedp);
        *cur = UINT64_MAX;
        return ran;
    }
    if (!b->isolated) {
        char *acc = mproc__partial_buf(j, wk->w, 0);
        for (; i < c->end; i++) {
            if (atomic_load_explicit(&j->cancel, memory_order_relaxed))
                break;
            *cur = i;
            int rc = fn(ip, op, arg);
            if (status)
                status[i] = rc;
            failed += rc != 0;
            reduce(acc, op, arg);
            ip += isz;
            op += ostep;
        }
        *cur = UINT64_MAX;
        *failedp = failed;
        return i - c->start;
    }

    uint64_t limit = j->timeout_ns ? j->timeout_ns : b->timeout_ns;
    unsigned buf = mproc__commit_buf(
        atomic_load_explicit(&s->commit, memory_order_relaxed));
    if (!limit && !reduce)
        return run_plain_isolated(fn, ip, op, arg, isz, ostep, status, i,
                                  c->end, &j->cancel, s, buf, failedp);
    for (; i < c->end; i++) {
        if (atomic_load_explicit(&j->cancel, memory_order_relaxed))
            break;
        uint64_t d = 0;
        if (limit) {
            d = mproc__now() + limit;
            /* Release: pairs with the supervisor's acquire load of the
               deadline (supervisor.c, timeouts). Stronger than needed: the
               supervisor uses only the value, and the race is decided by
               the two compare-and-swaps below and there. */
            atomic_store_explicit(&s->deadline, d, memory_order_release);
        }
        int rc = fn(ip, op, arg);
        /* Pairs with the supervisor's compare-and-swap to KILLED
           (supervisor.c, timeouts): whichever succeeds decides the item.
           The acquire half keeps this item's status and commit writes after
           the decision, so a condemned item publishes nothing; the release
           half is more than needed. */
        if (limit && !atomic_compare_exchange_strong_explicit(
                         &s->deadline, &d, 0, memory_order_acq_rel,
                         memory_order_acquire))
            mproc__condemned();
        if (status)
            status[i] = rc;
        if (rc)
            atomic_store_explicit(&s->failed, ++failed, memory_order_relaxed);
        if (reduce) {
            char *from = mproc__partial_buf(j, wk->w, buf);
            char *to = mproc__partial_buf(j, wk->w, buf ^ 1);
            memcpy(to, from, osz);
            reduce(to, op, arg);
            buf ^= 1;
        }
        /* Release: pairs with the acquire of commit in repair_running
           (repair.c), the supervisor's after our death, which then sees
           the item's effects (result, status, failed, fold). */
        atomic_store_explicit(&s->commit, mproc__commit_word(i + 1, buf),
                              memory_order_release);
        ip += isz;
        op += ostep;
    }
    if (reduce)
        atomic_store_explicit(&mproc__partial(j, wk->w)->buf, buf,
                              memory_order_relaxed);
    *failedp = failed;
    return i - c->start;
}
