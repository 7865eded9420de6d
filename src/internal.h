/*
 * Private declarations of libmproc. See DESIGN.md for the model; each .c file
 * opens with the design of its own part.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include "mproc.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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
#define MPROC__KILLED      UINT64_MAX /* slot deadline: condemned */
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
#else
#define MPROC__HOOK(p) ((void)0)
#endif

/* ---- the job board (board.c) ---------------------------------------- */

/*
 * One finished piece of a job: items [start, start+len) are done and `failed`
 * of them have a nonzero code. Records are appended in finishing order; a
 * record is valid once its seal carries the job's tag, so log memory never
 * needs clearing between jobs.
 */
struct mproc__rec {
    _Atomic uint64_t range; /* start | len << 40 */
    _Atomic uint64_t seal;  /* failed | tag << 24 | MPROC__NORUN */
};

/* In a record's seal, and in the `failed` passed to mproc__finish: none of
   these items produced a result (cancelled, crashed, timed out), so their
   results must not be copied back to the caller. */
#define MPROC__NORUN    (UINT64_C(1) << 63)
#define MPROC__TAG_MASK ((UINT64_C(1) << 39) - 1)

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
    const char *in;
    char *out;
    void *arg;
    size_t in_size, out_size;
    size_t arg_size; /* > 0: arg holds that many bytes (MPI sends them) */
    const void *acc; /* with reduce: the identity (MPI sends it) */
    _Atomic uint64_t n, chunk; /* atomic: read by claimers racing a recycle */
    int *status, *wstatus;
    void (*reduce)(void *acc, const void *result, void *arg);
    char *partials; /* per worker: header line, buffer 0, buffer 1 */
    size_t pstride; /* bytes per worker in partials */
    struct mproc__rec *_Atomic log; /* atomic as n: read by waiters racing */
    _Atomic uint64_t log_cap;       /* a recycle (pool.c, job_complete) */
    _Atomic uint32_t cancel;        /* set once by the caller; read per item */

    /* gen << 40 | next unclaimed index; gen tells recycled slots apart */
    alignas(MPROC__LINE) _Atomic uint64_t claim;

    /* records << 40 | items done */
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
 * starts); the second by the supervisor.
 */
struct mproc__slot {
    alignas(MPROC__LINE) _Atomic uint32_t state;
    _Atomic uint32_t js;         /* CLAIMING: job slot index */
    _Atomic uint64_t job;        /* RUNNING, FINISHING: job id */
    _Atomic uint64_t start, end; /* the chunk */
    _Atomic uint64_t commit;     /* next item << 1 | partial buffer */
    _Atomic uint64_t failed;     /* items of [start, commit) that failed */
    _Atomic uint64_t deadline;   /* ns of the running item's limit; KILLED */

    alignas(MPROC__LINE) _Atomic int32_t pid;
    _Atomic uint32_t inherit; /* 1: job/start/end is work left by the
                                     worker this one replaces */
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
    char *scratch;
    size_t scratch_cap;
};

enum { MPROC__WORK_CLOSED, MPROC__WORK_RETIRE };

/* Run the worker loop in slot w until the pool closes or the worker must
   retire; returns which. */
int mproc__work(struct mproc__worker *wk);

/* Append a record for [start, start+len) with `failed` failed items, count
   them done, and wake waiters. Used by workers, the supervisor and the
   caller alike. */
void mproc__finish(struct mproc__job *j, uint64_t start, uint64_t len,
                   uint64_t failed, bool shared);

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

/* seq_cst: a waiter's look at a seal is half of the pair in mproc__seal. */
static inline bool mproc__sealed(const struct mproc__rec *r, uint64_t tag)
{
    return (atomic_load_explicit(&r->seal, memory_order_seq_cst) >> 24 &
            MPROC__TAG_MASK) == tag;
}

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
bool mproc__repair_running(struct mproc__board *b, int w, int wstatus);
void mproc__abandon(struct mproc__board *b, int w, int code);
void mproc__abandon_all(struct mproc__board *b, int code);
void mproc__release_job(struct mproc__board *b, uint32_t js, uint64_t id,
                        bool (*alive)(void *), void *arg);
bool mproc__reconcile(struct mproc__board *b, uint32_t js,
                      const struct mproc__dead *dead, int ndead,
                      const bool *alive);

/* Mark items [start, start+len) of j with `code` (status) and finish them. */
void mproc__fail_range(struct mproc__job *j, uint64_t start, uint64_t len,
                       int code, int wstatus, bool shared);

/* ---- the shared region and its allocator (shared.c) ----------------- */

/*
 * A heap over a fixed range of address space: first fit by address, 64-byte
 * alignment, free blocks coalesce. Its bookkeeping lives in the caller's own
 * memory, never in the range, so untouched memory stays uncommitted.
 */
struct mproc__heap {
    char *base;
    size_t size;
    bool zero;   /* freed memory is given back zeroed */
    bool shared; /* the range is MAP_SHARED */
    size_t page;
    size_t keep;  /* freed bytes kept committed before discarding */
    size_t dirty; /* freed bytes not yet discarded */
    struct mproc__extent *free, *used;
    size_t nfree, nused, capfree, capused;
    pthread_mutex_t lock;
};

void mproc__heap_init(struct mproc__heap *h, char *base, size_t size, bool zero,
                      size_t keep, bool shared);
void mproc__heap_destroy(struct mproc__heap *h);
void *mproc__heap_alloc(struct mproc__heap *h, size_t size);
void mproc__heap_free(struct mproc__heap *h, void *p);
bool mproc__heap_owns(const struct mproc__heap *h, const void *p, size_t size);

/* ---- a function's address, in terms any process of the program shares -- */

/*
 * A code address as (loaded object, offset), so that a process whose objects
 * are loaded elsewhere (ASLR), an MPI rank running the same program, finds
 * the same function. The main program's object is "". The object's build
 * id, where it has one, tells a different build of the same file (another
 * binary under MPMD, a node with a stale copy), whose offset would point
 * at other code.
 */
struct mproc__code {
    uint64_t offset;
    uint32_t id_len;
    unsigned char id[36];
    char object[464];
};

int mproc__code_ref(void (*fn)(void), struct mproc__code *ref);
void (*mproc__code_find(const struct mproc__code *ref))(void);

/* ---- the pool and tasks (pool.c) ------------------------------------- */

struct mproc_pool {
    mproc_options opt;
    int workers;
    bool isolated;
    pid_t owner; /* process that opened the pool */
    struct mproc__board *board;
    size_t board_size;

    /* Address space of a process pool: board, arena, staging. */
    char *region;
    size_t region_size;
    struct mproc__heap arena;
    struct mproc__heap staging;         /* process pools: copies of job data */
    struct mproc__heap logs;            /* job logs, and nothing else, so stale
                                        memory never looks like a record */
    char *private_arena, *private_logs; /* thread pools: their ranges */
    size_t arena_size, logs_size;

    /* Caller side: submit, harvest, cancel, and the task of each slot. */
    pthread_mutex_t lock;
    uint64_t next_pos;                     /* position of the next job */
    struct mproc_task *tasks[MPROC__RING]; /* task of each slot, if alive */
    _Atomic uint64_t retired[MPROC__RING]; /* id of a freed task's job: its
                                              slot is free, whatever its log */
    struct mproc_task *live;               /* every task not yet freed */

    /* Thread workers, and the proxy threads of MPI ranks (with exec). */
    pthread_t *threads;
    struct mproc__worker *locals;
    int started;
    mproc__exec_fn exec;

    /* The supervisor of a process pool. */
    pid_t zpid;   /* 0 once reaped */
    int zevent;   /* eventfd: close, or work for a sleeper */
    int lifeline; /* pipe write end the supervisor watches,
                                    where pidfds are missing; else -1 */

    struct mproc_pool *next_open; /* registry of open process pools */
};

/* ---- workers --------------------------------------------------------- */

/* threads.c */
int mproc__threads_start(mproc_pool *pool);
void mproc__threads_stop(mproc_pool *pool);

/* mpi.c, which is libmproc_mpi, not libmproc: a program has it when it
   links that library, and these weak references are then set; else they are
   null, mproc__mpi_built is false and the pool refuses the kind before
   calling the others. A static link pulls mpi.o in through the
   -Wl,-u,mproc__mpi_open that mproc_mpi.pc and mproc::mpi add (a weak
   reference pulls nothing from an archive; see CMakeLists.txt).
   mproc__mpi_open sets up MPI and pool->workers and pool->exec, and returns
   on rank 0 only: the other ranks serve inside it and exit when rank 0
   closes the pool. The proxies are then started as thread workers;
   mproc__mpi_close, after they stopped, releases the ranks. */
__attribute__((weak)) int mproc__mpi_open(mproc_pool *pool);
__attribute__((weak)) bool mproc__mpi_spare_cores(void);
__attribute__((weak)) void mproc__mpi_close(mproc_pool *pool);
static inline bool mproc__mpi_built(void)
{
    return mproc__mpi_open != NULL;
}

/* processes.c */
int mproc__procs_start(mproc_pool *pool);
void mproc__procs_stop(mproc_pool *pool);
void mproc__procs_poke(mproc_pool *pool);
bool mproc__procs_alive(mproc_pool *pool);

extern _Thread_local int mproc__self_id;
extern _Thread_local const mproc_pool *mproc__self_pool;

/* Open process pools, so that a new supervisor drops what it inherits of
   the others. */
extern pthread_mutex_t mproc__registry_lock;
extern mproc_pool *mproc__registry;

/* ---- the operating system (os_linux.c) ------------------------------ */

uint64_t mproc__now(void);
void mproc__sleep(uint64_t ns);
void mproc__relax(void);
void mproc__yield(void);
void mproc__sleep_precisely(void);
int mproc__futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t deadline,
                      bool shared);
void mproc__futex_wake(_Atomic uint32_t *w, int n, bool shared);
int mproc__futex_wait2(_Atomic uint32_t *w, uint32_t val, _Atomic uint32_t *w2,
                       uint32_t val2, uint64_t deadline);
int mproc__robust_hold(_Atomic uint32_t *word);
#define MPROC__OWNER_DIED 0x40000000u
#define MPROC__WAITERS    0x80000000u

int mproc__cpu_count(void);
int mproc__cpu_count_at(const char *root);
uint64_t mproc__ram(void);
bool mproc__under_valgrind(void);

void *mproc__region_map(size_t size, bool shared);
void mproc__region_unmap(void *p, size_t size);
void mproc__no_dump(void *p, size_t size);
void mproc__discard(void *p, size_t size, bool shared);

int mproc__lifeline(int *keep);
int mproc__child_events(void);
void mproc__child_events_drain(int fd);
bool mproc__child_exited(pid_t pid);
int mproc__die_with_parent(pid_t parent);
void mproc__set_name(const char *name);
int mproc__event_open(void);
int mproc__event_post(int fd);
void mproc__event_drain(int fd);

#endif /* MPROC_INTERNAL_H */
