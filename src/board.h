/*
 * The job board's structures: what every kind of worker, the caller and the
 * supervisor share (board.c, run.c, repair.c), its constants, its packed
 * words and their helpers, and the test hooks inside its protocol windows.
 * docs/internals.md walks through them; board.c's opening comment says
 * what each slot state promises.
 */
#ifndef MPROC_BOARD_H
#define MPROC_BOARD_H

#include "mproc.h"

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPROC__LINE        64
#define MPROC__MAX_WORKERS 1024
#define MPROC__RING        128 /* job slots on the board */
#define MPROC__IDX_BITS    40
#define MPROC__IDX_MASK    ((UINT64_C(1) << MPROC__IDX_BITS) - 1)
#define MPROC__MAX_N       (UINT64_C(1) << 39) /* items per job */
/* items per chunk and record */
#define MPROC__MAX_LEN     ((UINT64_C(1) << 24) - 1)
#define MPROC__LOG_MAX     (UINT64_C(1) << 23) /* records kept per job */
#define MPROC__REC_ONE     (UINT64_C(1) << MPROC__IDX_BITS)
#define MPROC__KILLED      UINT64_MAX          /* slot deadline: condemned */
#define MPROC__LIVE_KILL   (UINT64_C(1) << 63) /* slot live: condemned */
#define MPROC__NS          1000000000ull

#define MPROC__ALIGN_UP(x, a) (((x) + (a)-1) & ~((size_t)(a)-1))

/*
 * Test hooks: points inside the board's protocol windows where the fault
 * tests kill a worker. Compiled in only with MPROC_TEST_HOOKS (a separate
 * build of the library for those tests); nothing otherwise.
 */
enum {
    MPROC__HOOK_CLAIMING,  /* state CLAIMING stored, counter not yet moved */
    MPROC__HOOK_CLAIMED,   /* counter moved, chunk not yet recorded */
    MPROC__HOOK_FINISHING, /* state FINISHING stored, not yet counted */
    MPROC__HOOK_COUNTED,   /* counted, record not yet sealed */
    MPROC__HOOK_SEALED,    /* sealed, state not yet IDLE */
    MPROC__HOOK_CUT,       /* a cancelled chunk's end cut to what ran,
                              state still RUNNING */
    MPROC__HOOK_FORKED     /* a new worker, before it asks to die with
                              the supervisor */
};
#ifdef MPROC_TEST_HOOKS
extern void (*mproc__test_hook)(int point);
#define MPROC__HOOK(p)           \
    do {                         \
        if (mproc__test_hook)    \
            mproc__test_hook(p); \
    } while (0)
/* A fork the system would refuse: the supervisor asks before each fork of
   a worker, and fails it with the -errno returned (0: fork). */
extern int (*mproc__test_fork)(void);
#define MPROC__FORK_FAULT() (mproc__test_fork ? mproc__test_fork() : 0)
#else
#define MPROC__HOOK(p)      ((void)0)
#define MPROC__FORK_FAULT() 0
#endif

/* ---- the job board (board.c) ---------------------------------------- */

/*
 * One finished piece of a job: items [start, start+len) are done and `failed`
 * of them have a nonzero code. Records are appended in finishing order; a
 * record is valid once its seal carries the job's tag, so log memory never
 * needs clearing between jobs.
 */
struct mproc__rec {
    _Atomic uint64_t range; /* mproc__range_word */
    _Atomic uint64_t seal;  /* mproc__seal_word */
};

/* In a record's seal, and in the `failed` passed to mproc__finish: none of
   these items produced a result (cancelled, crashed, timed out), so their
   results must not be copied back to the caller. */
#define MPROC__NORUN    (UINT64_C(1) << 63)
#define MPROC__TAG_MASK ((UINT64_C(1) << 39) - 1)

/*
 * The packed words, each layout written here once (high bits first):
 *
 *   claim   gen:24 | next:40       a job's claim counter: the generation of
 *                                  the job in the slot (position / RING),
 *                                  the next unclaimed index
 *   fin     records:24 | done:40   records reserved in the log, items done;
 *                                  one fetch-add of mproc__fin_word(1, len)
 *                                  moves both
 *   range   len:24 | start:40      a record's items
 *   seal    norun:1 | tag:39 | failed:24
 *                                  a record's outcome, valid for the job
 *                                  whose id has that tag
 *   commit  next:63 | buf:1        a running process worker's next item,
 *                                  and which partial buffer holds its fold
 *
 * 40 bits of index hold MAX_N (2^39) items, 24 bits of length MAX_LEN. The
 * `want` word of a job counts waiters in two 16-bit halves (WANT_DONE,
 * WANT_EACH); `zlock` is the kernel's robust futex word (linux/sync.c).
 */
static inline uint64_t mproc__claim_word(uint64_t gen, uint64_t next)
{
    return gen << MPROC__IDX_BITS | next;
}
static inline uint64_t mproc__claim_gen(uint64_t w)
{
    return w >> MPROC__IDX_BITS;
}
static inline uint64_t mproc__claim_next(uint64_t w)
{
    return w & MPROC__IDX_MASK;
}

static inline uint64_t mproc__fin_word(uint64_t records, uint64_t done)
{
    return records << MPROC__IDX_BITS | done;
}
static inline uint64_t mproc__fin_records(uint64_t w)
{
    return w >> MPROC__IDX_BITS;
}
static inline uint64_t mproc__fin_done(uint64_t w)
{
    return w & MPROC__IDX_MASK;
}

static inline uint64_t mproc__range_word(uint64_t start, uint64_t len)
{
    assert(start <= MPROC__IDX_MASK && len <= MPROC__MAX_LEN);
    return len << MPROC__IDX_BITS | start;
}
static inline uint64_t mproc__range_start(uint64_t w)
{
    return w & MPROC__IDX_MASK;
}
static inline uint64_t mproc__range_len(uint64_t w)
{
    return w >> MPROC__IDX_BITS;
}

static inline uint64_t mproc__seal_word(uint64_t failed, uint64_t tag,
                                        bool norun)
{
    assert(failed <= MPROC__MAX_LEN && tag <= MPROC__TAG_MASK);
    return (norun ? MPROC__NORUN : 0) | tag << 24 | failed;
}
static inline uint64_t mproc__seal_failed(uint64_t w)
{
    return w & MPROC__MAX_LEN;
}
static inline uint64_t mproc__seal_tag(uint64_t w)
{
    return w >> 24 & MPROC__TAG_MASK;
}
static inline bool mproc__seal_norun(uint64_t w)
{
    return w & MPROC__NORUN;
}

static inline uint64_t mproc__commit_word(uint64_t next, unsigned buf)
{
    return next << 1 | (buf & 1);
}
static inline uint64_t mproc__commit_next(uint64_t w)
{
    return w >> 1;
}
static inline unsigned mproc__commit_buf(uint64_t w)
{
    return (unsigned)(w & 1);
}

/* Items [start, end): the one range type of the board and its repair. */
struct mproc__range {
    uint64_t start, end;
};

/*
 * A job slot. The first line is written by the caller before the job is
 * published and is read-only while it runs (`id` works as a seqlock for
 * readers that race with recycling); the other lines are the hot counters,
 * each on its own line.
 */
struct mproc__job {
    alignas(
        MPROC__LINE) _Atomic uint64_t id; /* position + 1; 0 while written */
    mproc_fn fn;
    mproc_batch_fn batch; /* instead of fn: runs of items per call */
    const char *in;
    char *out;
    void *arg;
    size_t in_size, out_size;
    size_t arg_size; /* > 0: arg holds that many bytes (MPI sends them) */
    const void *acc; /* with reduce: the identity (MPI sends it) */
    _Atomic uint64_t n, chunk; /* atomic: read by claimers racing a recycle */
    int *status, *wstatus;
    unsigned flags; /* mproc_job.flags (data.c) */
    void (*reduce)(void *acc, const void *result, void *arg);
    char *partials; /* per worker: header line, buffer 0, buffer 1 */
    size_t pstride; /* bytes per worker in partials */
    struct mproc__rec *_Atomic log; /* atomic as n: read by waiters racing */
    _Atomic uint64_t log_cap;       /* a recycle (task.c, job_complete) */
    _Atomic uint32_t cancel;        /* set once by the caller; read per item */
    uint64_t timeout_ns;            /* per item for this job; 0: the board's */

    /* mproc__claim_word: the generation tells recycled slots apart */
    alignas(MPROC__LINE) _Atomic uint64_t claim;

    /* mproc__fin_word: records reserved, items done */
    alignas(MPROC__LINE) _Atomic uint64_t fin;
    _Atomic uint32_t bell; /* futex: bumped when a waiter may proceed */
    _Atomic uint32_t want; /* waiters: for the end (low 16 bits), for each
                                record (high 16); never reset, since a waiter
                                may leave after its job's slot is reused */

    /* The caller's release of a finished job's memory (log, copies) against
       the supervisor's reconciliation, which reads them: see
       mproc__reconcile. */
    alignas(MPROC__LINE) _Atomic uint64_t gone; /* id whose memory is freed */
    _Atomic uint32_t readers;                   /* reconciliations running */
};

static inline struct mproc__rec *mproc__log(const struct mproc__job *j)
{
    return atomic_load_explicit(&j->log, memory_order_relaxed);
}

static inline uint64_t mproc__log_cap(const struct mproc__job *j)
{
    return atomic_load_explicit(&j->log_cap, memory_order_relaxed);
}

#define MPROC__WANT_DONE 1u
#define MPROC__WANT_EACH (1u << 16)

/* Header of one worker's partial accumulator, in job->partials. */
struct mproc__partial {
    _Atomic uint32_t buf; /* which of the two buffers holds the total */
};

/* States of a worker slot. See board.c for what each promises. */
enum {
    MPROC__FREE = 0, /* no worker */
    MPROC__INIT,     /* starting: init runs */
    MPROC__IDLE,     /* looking for work or asleep */
    MPROC__CLAIMING, /* about to take a chunk of job slot `js` */
    MPROC__RUNNING, /* holds [start, end) of job `job`; `commit` says how far */
    MPROC__FINISHING, /* appending the record of [start, end) */
    MPROC__EXITING    /* leaving (closing or max_items) */
};

/*
 * A worker's slot. The first line is written only by the worker in the slot
 * (or by the supervisor once that worker is dead, or before its replacement
 * starts); the second by the supervisor, but for the worker's clearing of
 * `inherit`.
 */
struct mproc__slot {
    alignas(MPROC__LINE) _Atomic uint32_t state;
    _Atomic uint32_t js;         /* CLAIMING: job slot index */
    _Atomic uint64_t job;        /* RUNNING, FINISHING: job id */
    _Atomic uint64_t start, end; /* the chunk, or the part of it recorded */
    /* The end of the chunk the slot holds. `end` falls short of it only
       while a worker records a cancelled chunk in two parts (board.c,
       settle): what lies in [end, hold) was never started. Coverage
       (repair.c, held_range) and a dead worker's repair read this. */
    _Atomic uint64_t hold;
    _Atomic uint64_t commit;    /* mproc__commit_word */
    _Atomic uint64_t failed;    /* items of [start, commit) that failed */
    _Atomic uint64_t deadline;  /* ns of the running item's limit; KILLED */
    _Atomic uint64_t batch_end; /* RUNNING a batch: [commit, batch_end) are
                                   inside the call; else 0 */
    _Atomic uint64_t live;      /* job id while running a chunk of it; with
                                   MPROC__LIVE_KILL, condemned by a kill */

    alignas(MPROC__LINE) _Atomic int32_t pid;
    /* 1: the inh_ words hold work for the worker in this slot to take up
       before any claim: what a dead worker left (its replacement's), or
       what the supervisor moved here from a slot whose replacement could
       not start (an offer to a live worker). Written, with the inh_ words,
       only by the supervisor while it is 0, and cleared by the worker
       that takes the work up (board.c, take_up). */
    _Atomic uint32_t inherit;
    _Atomic uint64_t inh_job, inh_start, inh_end;
    _Atomic uint64_t inh_batch_end; /* a batch's items below it run one per
                                       call (run.c, careful); else 0 */

    /* MPROC_OUT_BYTES in a process pool: this slot's region of the pool's
       results file (data.c). head and alloc are written by the worker in
       the slot and made durable by its next store of `commit`; freed is
       added to by the caller as it collects. */
    alignas(MPROC__LINE) _Atomic uint64_t r_head, r_alloc;
    alignas(MPROC__LINE) _Atomic uint64_t r_freed;
};

/*
 * The board: everything workers and the caller share. For a process pool it
 * lives at the start of the shared region; for a thread pool in ordinary
 * memory. Followed by workers + 1 slots (the last is the caller's, used when
 * it cancels).
 */
struct mproc__board {
    alignas(MPROC__LINE) _Atomic uint32_t epoch; /* futex: bumped per post */
    _Atomic uint32_t sleepers;

    alignas(MPROC__LINE) _Atomic uint64_t claim_head; /* first position that
                                                          may have items */
    alignas(MPROC__LINE) _Atomic uint64_t tail;       /* next position */

    alignas(MPROC__LINE) _Atomic uint32_t zlock; /* robust futex held by the
                                                     supervisor; see processes.c */
    alignas(MPROC__LINE) _Atomic uint32_t ready; /* futex: workers started */
    _Atomic int32_t open_error;                  /* first error at open */
    _Atomic uint32_t closing;
    _Atomic uint32_t broken; /* supervisor gave up */
    _Atomic uint32_t z_idle; /* supervisor sleeps without
                                                     a deadline */

    /* Read-only after open. */
    int workers;
    bool isolated;      /* process workers */
    int spin;           /* idle spin budget, ns; 0 when oversubscribed */
    uint64_t target_ns; /* work a worker claims at once, ns */
    uint64_t timeout_ns;
    unsigned long max_items;
    /* The shortest item limit of any job posted (and the pool's): how
       often the supervisor must look while work is about. Only lowered. */
    _Atomic uint64_t look_ns;

    struct mproc__job jobs[MPROC__RING];
    struct mproc__slot slots[];
};

size_t mproc__board_size(int workers);
void mproc__board_init(struct mproc__board *b, int workers, bool isolated,
                       uint64_t timeout_ns, unsigned long max_items);

struct mproc__worker;

/*
 * A worker that runs its items elsewhere (an MPI rank, through its proxy
 * thread) has one of these: run items [start, end) of j, write their
 * results, statuses and folds in place as a thread worker would, and return
 * how many ran (fewer when j was cancelled), with *failed set.
 */
typedef uint64_t (*mproc__exec_fn)(struct mproc__worker *wk,
                                   struct mproc__job *j, uint64_t id,
                                   uint64_t start, uint64_t end,
                                   uint64_t *failed);

/* What a worker keeps to itself: chunk sizing and scratch memory. */
struct mproc__worker {
    struct mproc__board *b;
    int w;
    mproc__exec_fn exec;  /* NULL: items run here */
    uint64_t est_id;      /* job the estimate is for */
    uint64_t ns_per_item; /* measured, scaled by 16 */
    uint64_t last_len;
    unsigned long budget; /* items left before retiring; 0: unlimited */
    uint64_t careful;     /* batch jobs: items below this run one per call
                             (the run of a worker that died inside it) */
    char *scratch;
    size_t scratch_cap;
    /* The code of job `code_id` as this process sees it: the job's own
       pointers, or a spawned worker's translation of them (spawn.c). */
    uint64_t code_id;
    mproc_fn fn;
    mproc_batch_fn batch;
    void (*reduce)(void *acc, const void *result, void *arg);
};

enum { MPROC__WORK_CLOSED, MPROC__WORK_RETIRE };

/* A chunk a worker holds: items [start, end) of job id, in slot j. */
struct mproc__claim {
    struct mproc__job *j;
    uint64_t id, start, end;
};

/* A worker whose item the supervisor judged late, or whose chunk a kill
   condemned: nothing more of its may reach the board; it waits for the
   SIGKILL that is on its way (run.c). */
_Noreturn void mproc__condemned(void);

/* Run items [c->start, c->end) and return how many ran; the rest were
   cancelled before they started (run.c). */
uint64_t mproc__run_chunk(struct mproc__worker *wk,
                          const struct mproc__claim *c, uint64_t *failed);

/* Run the worker loop in slot w until the pool closes or the worker must
   retire; returns which. */
int mproc__work(struct mproc__worker *wk);

/* Append a record for [start, start+len) with `failed` failed items, count
   them done, and wake waiters. Used by workers, the supervisor and the
   caller alike. */
void mproc__finish(struct mproc__job *j, uint64_t start, uint64_t len,
                   uint64_t failed, bool shared);

/* Wake the job's waiters, if any wants what has happened. */
void mproc__ring(struct mproc__job *j, bool shared);

/* Seal a reserved log record. */
void mproc__seal(struct mproc__job *j, uint64_t r, uint64_t start, uint64_t len,
                 uint64_t failed);

static inline uint64_t mproc__gen(uint64_t pos)
{
    return (pos / MPROC__RING) & 0xffffff;
}

static inline uint64_t mproc__tag(uint64_t id)
{
    return id & MPROC__TAG_MASK;
}

/* seq_cst: a waiter's look at a seal is half of the store-buffering pair
   in mproc__seal (with the waiter's update of `want`); it is also an
   acquire of the record's range and its items' results. */
static inline bool mproc__sealed(const struct mproc__rec *r, uint64_t tag)
{
    return mproc__seal_tag(
               atomic_load_explicit(&r->seal, memory_order_seq_cst)) == tag;
}

/* The records of a log whose fin word is `fin`, within its capacity. */
static inline uint64_t mproc__records(uint64_t fin, uint64_t cap)
{
    uint64_t r = mproc__fin_records(fin);
    return r < cap ? r : cap;
}

/*
 * A slot's hold on items [start, end) of job `job` (`failed` of those below
 * `commit`'s next failed so far). The stores are relaxed: the caller
 * publishes them with the store that follows, of `state` or `inherit`,
 * whose order it names there.
 */
static inline void mproc__slot_hold(struct mproc__slot *s, uint64_t job,
                                    uint64_t start, uint64_t end,
                                    uint64_t failed, unsigned buf)
{
    assert(job && start <= end);
    atomic_store_explicit(&s->job, job, memory_order_relaxed);
    atomic_store_explicit(&s->start, start, memory_order_relaxed);
    atomic_store_explicit(&s->end, end, memory_order_relaxed);
    atomic_store_explicit(&s->hold, end, memory_order_relaxed);
    atomic_store_explicit(&s->failed, failed, memory_order_relaxed);
    atomic_store_explicit(&s->commit, mproc__commit_word(start, buf),
                          memory_order_relaxed);
}

/*
 * Work a dead worker left for another to take up: items [start, end) of job
 * `job`, of which those below batch_end (a batch job's run in which it died)
 * run one item per call.
 */
struct mproc__inheritance {
    uint64_t job, start, end, batch_end;
};

/*
 * Slot s's inheritance, which the supervisor writes while `inherit` is 0
 * and publishes by setting it; the worker in the slot reads it once it has
 * acquired `inherit`. Release: pairs with that acquire (board.c, take_up;
 * workers.c, worker_main).
 */
static inline void mproc__slot_bequeath(struct mproc__slot *s,
                                        const struct mproc__inheritance *in)
{
    assert(in->job && in->start < in->end &&
           !atomic_load_explicit(&s->inherit, memory_order_relaxed));
    atomic_store_explicit(&s->inh_job, in->job, memory_order_relaxed);
    atomic_store_explicit(&s->inh_start, in->start, memory_order_relaxed);
    atomic_store_explicit(&s->inh_end, in->end, memory_order_relaxed);
    atomic_store_explicit(&s->inh_batch_end, in->batch_end,
                          memory_order_relaxed);
    atomic_store_explicit(&s->inherit, 1, memory_order_release);
}

/* The inh_ words of slot s; read after an acquire of `inherit` (or by the
   supervisor, which wrote them). */
static inline struct mproc__inheritance
mproc__slot_inheritance(struct mproc__slot *s)
{
    return (struct mproc__inheritance){
        .job = atomic_load_explicit(&s->inh_job, memory_order_relaxed),
        .start = atomic_load_explicit(&s->inh_start, memory_order_relaxed),
        .end = atomic_load_explicit(&s->inh_end, memory_order_relaxed),
        .batch_end =
            atomic_load_explicit(&s->inh_batch_end, memory_order_relaxed),
    };
}

/*
 * The start handshake, the same for every kind: a worker that has run init
 * (err 0) or failed (err, the first of which the open returns) counts
 * itself in `ready` and wakes the opener. Release: pairs with the opener's
 * acquire of `ready`, after which it reads open_error.
 */
void mproc__board_ready(struct mproc__board *b, int err, bool shared);

static inline struct mproc__partial *mproc__partial(struct mproc__job *j, int w)
{
    return (struct mproc__partial *)(j->partials + (size_t)w * j->pstride);
}

static inline char *mproc__partial_buf(struct mproc__job *j, int w, unsigned b)
{
    size_t half = (j->pstride - MPROC__LINE) / 2;
    return j->partials + (size_t)w * j->pstride + MPROC__LINE + b * half;
}

/* A worker that died inside a window of the protocol, as its slot was. */
struct mproc__dead {
    int w;
    uint32_t state, js;
    uint64_t job, start, end, failed;
};

void mproc__cancel_job(struct mproc__board *b, struct mproc__job *j);

/* ---- repair after a death (repair.c) -------------------------------- */

bool mproc__repair_running(struct mproc__board *b, int w, int wstatus);
bool mproc__take_back(struct mproc__board *b, int w, uint32_t state,
                      struct mproc__inheritance *out);
void mproc__abandon(struct mproc__board *b, int w, int code, int wstatus);
void mproc__abandon_inheritance(struct mproc__board *b,
                                const struct mproc__inheritance *in, int code,
                                int wstatus);
void mproc__abandon_all(struct mproc__board *b, int code);
void mproc__release_job(struct mproc__board *b, uint32_t js, uint64_t id,
                        bool (*alive)(void *), void *arg);
bool mproc__reconcile(struct mproc__board *b, uint32_t js,
                      const struct mproc__dead *dead, int ndead,
                      const bool *alive, const struct mproc__inheritance *kept,
                      int nkept);

/*
 * The gaps that ranges rs[0..n) leave in [0, top), in order, each handed to
 * gap(ctx, start, end). The ranges are disjoint; they are sorted here.
 */
void mproc__gaps(struct mproc__range *rs, size_t n, uint64_t top,
                 void (*gap)(void *ctx, uint64_t start, uint64_t end),
                 void *ctx);

/* Mark items [start, start+len) of j with `code` (status) and finish them. */
void mproc__fail_range(struct mproc__job *j, uint64_t start, uint64_t len,
                       int code, int wstatus, bool shared);

#endif /* MPROC_BOARD_H */
