/*
 * Private declarations of libmproc: the heaps, the pool and its tasks,
 * errors, and what data.c shares. The board's structures are in board.h,
 * the system's interface in os.h. See docs/internals.md for the map; each
 * .c file opens with the design of its own part.
 */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include "mproc.h"
#include "os.h"
#include "board.h"

#include <pthread.h>
#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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
    struct mproc__extent *free, *used; /* used: from used[ulo] on */
    size_t nfree, nused, capfree, capused, ulo;
    pthread_mutex_t lock;
};

void mproc__heap_init(struct mproc__heap *h, char *base, size_t size, bool zero,
                      size_t keep, bool shared);
void mproc__heap_destroy(struct mproc__heap *h);
void *mproc__heap_alloc(struct mproc__heap *h, size_t size);
void mproc__heap_free(struct mproc__heap *h, void *p);
bool mproc__heap_owns(const struct mproc__heap *h, const void *p, size_t size);

/* ---- the pool and tasks (pool.c, submit.c, task.c) ------------------ */

struct mproc__kind;

struct mproc_pool {
    mproc_options opt;
    const struct mproc__kind *kind; /* kind.h */
    int workers;   /* slots on the board, each a worker (or an MPI proxy) */
    int size;      /* mproc_pool_size, when not `workers`: an MPI pool's
                    ranks, each served by more than one proxy (mpi.c) */
    bool isolated; /* kind->isolated */
    pid_t owner;   /* process that opened the pool */
    struct mproc__board *board;
    size_t board_size;

    /* Address space: board, arena, logs, staging (mproc__pool_map). With
       workers of their own address space, one MAP_SHARED region; else the
       board is allocated and the arena and logs are private ranges. */
    char *region;
    size_t region_size;
    struct mproc__heap arena;
    struct mproc__heap staging;         /* isolated pools: job data copies */
    struct mproc__heap logs;            /* job logs, and nothing else, so stale
                                           memory never looks like a record */
    char *private_arena, *private_logs; /* shared-memory pools: the ranges */
    size_t arena_size, logs_size;

    /* Caller side: submit, harvest, cancel, and the task of each slot. */
    pthread_mutex_t lock;
    uint64_t next_pos;                        /* position of the next job */
    struct mproc_task *tasks[MPROC__RING];    /* task of each slot, if alive */
    _Atomic uint64_t retired[MPROC__RING];    /* id of a freed task's job: its
                                              slot is free, whatever its log */
    struct mproc_task *live;                  /* every task not yet freed */
    struct mproc_task *pend_head, *pend_tail; /* tasks waiting for a slot */
    _Atomic size_t npending; /* their number, read without the lock */

    /* Thread workers, and the proxy threads of MPI ranks (with exec). */
    pthread_t *threads;
    struct mproc__worker *locals;
    int started;
    mproc__exec_fn exec;

    /* Process pools: the results file of MPROC_OUT_BYTES (data.c). */
    struct mproc__results *results;

    /* Spawned workers (spawn.c): the region's file, kept open for them to
       map, the executable they run, and the program's objects. */
    int region_fd; /* -1 unless options.start is MPROC_START_SPAWN */
    int exe_fd;    /* the executable (mproc__self_exe), until it started */
    struct mproc__program *program; /* in the region */

    /* The supervisor of a process pool (processes.c). */
    pid_t zpid;                   /* 0 once reaped */
    _Atomic bool corrupt;         /* the board was found written over */
    int zevent;                   /* eventfd: close, or work for a sleeper */
    int lifeline;                 /* pipe write end the supervisor watches,
                     where pidfds are missing; else -1 */
    struct mproc_pool *next_open; /* registry of open process pools */
    struct mproc_pool *next_here; /* every pool this process opened */
};

/*
 * A task's life, from the waiter's side. RUNNING until its results are
 * collected (COLLECTED), or given up on after the pool broke (SALVAGED:
 * what finished is kept, the rest is marked crashed); DETACHED once the
 * pool closed and the task keeps, in memory of its own, what
 * mproc_task_next has not handed out. Only forward. `cancelled` is apart:
 * a running task may be cancelled.
 */
enum mproc__task_state {
    MPROC__TASK_RUNNING,
    MPROC__TASK_COLLECTED,
    MPROC__TASK_SALVAGED,
    MPROC__TASK_DETACHED
};

struct mproc_task {
    mproc_pool *pool;               /* NULL once detached by close */
    uint64_t id;                    /* position + 1 */
    uint32_t js;                    /* its job slot, until harvested */
    mproc_job user;                 /* as submitted */
    struct mproc_task *prev, *next; /* pool->live */

    /* Written by the waiter, read by progress from any thread. */
    _Atomic int state; /* enum mproc__task_state */
    bool cancelled;

    /* Until posted (submit.c, "Pending tasks"), queued on the pool; id and
       js are set when it is posted, with the job's data pointers kept
       here until then. */
    _Atomic bool posted;
    struct mproc_task *pend_next;
    const char *post_in;
    void *post_arg;

    /* Memory it owns until freed (submit.c, stage and unstage). */
    char *stage; /* staging block (isolated pools) */
    char *s_out; /* where workers wrote results */
    int *s_status, *s_wstatus;
    struct mproc__rec *log; /* from pool->logs, or its own once DETACHED */
    uint64_t log_cap;
    char *partials; /* staged, or its own (shared-memory pools) */
    size_t pstride;
    bool copy_out, copy_status, copy_wstatus;
    void *arg_copy; /* shared-memory pools: the copy of job.arg */

    /* Written by whoever harvests, read by progress from any thread. */
    _Atomic bool harvested;
    _Atomic uint64_t final_fin;

    /* The waiter's own. */
    uint64_t sealed; /* records [0, sealed) are sealed */
    uint64_t failed; /* failed items in those */
    uint64_t norun;  /* records in those that ran nothing */
    int result;
    uint64_t next_r, next_off;
};

static inline bool mproc__task_final(const mproc_task *t)
{
    return atomic_load_explicit(&t->state, memory_order_relaxed) !=
           MPROC__TASK_RUNNING;
}

/* error.c: record why this thread's call fails, in one sentence for
   mproc_last_error (printf format), and return code. errno is kept. */
int mproc__fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* pool.c */
int mproc__usable(const mproc_pool *pool);

/* submit.c */
void mproc__unstage(mproc_pool *pool, mproc_task *t);
void mproc__pump(mproc_pool *pool);
void mproc__unqueue(mproc_pool *pool, mproc_task *t);

/* wait.c */
int mproc__await(mproc_pool *pool, uint32_t js, uint32_t unit,
                 bool (*cond)(void *), void *arg, uint64_t deadline);
bool mproc__cond_done(void *task); /* every item counted, every record read */
bool mproc__cond_next(void *task); /* a record to hand out, or the end */
int mproc__posted_by(mproc_task *t, uint64_t deadline);
uint64_t mproc__deadline_of(double timeout); /* 0: none */
uint64_t mproc__task_fin(const mproc_task *t);
void mproc__task_scan(mproc_task *t, uint64_t fin);
bool mproc__job_complete(struct mproc__job *j, uint64_t id);

/* task.c */
void mproc__task_copy_range(mproc_task *t, uint64_t start, uint64_t len,
                            bool norun);
void mproc__task_finish(mproc_task *t);
void mproc__task_detach(mproc_task *t);
enum { MPROC__KILL_CONDEMNED = 1, MPROC__KILL_RUNNING = 2 };
int mproc__task_kill_locked(mproc_task *t);
int mproc__task_wait(mproc_task *t, double timeout);

/* repair.c: the pool broke; keep what finished, mark the rest crashed. */
void mproc__salvage(mproc_task *t);

/* Inside a worker: its id and its pool (pool.c). */
extern _Thread_local int mproc__self_id;
extern _Thread_local const mproc_pool *mproc__self_pool;

/* A spawned worker's own pool pointer is the caller's address, never its
   memory (spawn.c): calls on it must not follow it. A pool this process
   opened may have the same address (pool.c keeps the list). */
bool mproc__foreign_pool(const mproc_pool *pool);
bool mproc__opened_here(const mproc_pool *pool);

/* ---- strings, byte runs, results of any length (data.c) ------------- */

/* The item a thread is running, for mproc_item_index and mproc_result. */
enum { MPROC__RES_NONE, MPROC__RES_HEAP, MPROC__RES_FILE };
struct mproc__cur {
    uint64_t index;   /* UINT64_MAX outside an item */
    mproc_bytes *out; /* MPROC_OUT_BYTES: the running item's entry */
    int mode;         /* MPROC__RES_*: where mproc_result takes memory */
    uint64_t max;     /* bytes a result may have; 0: no limit */
    /* A process worker's slot: while it is RUNNING, its commit word says
       which item runs (board.c, run_plain_isolated), and `index` stays
       UINT64_MAX. */
    const struct mproc__slot *slot;
};
extern _Thread_local struct mproc__cur mproc__cur;

#define MPROC__DATA_FLAGS (MPROC_IN_STRINGS | MPROC_IN_BYTES | MPROC_OUT_BYTES)

void mproc__data_sizes(mproc_job *j);
int mproc__data_check(const mproc_job *j);
int mproc__data_payload(const mproc_job *j, size_t *bytes);
void mproc__data_stage(const mproc_job *j, char *in, char *payload);
void mproc__data_clear_out(const mproc_job *j);
uint64_t mproc__run_bytes(struct mproc__worker *wk, struct mproc__job *j,
                          uint64_t start, uint64_t end, uint64_t *failed);
int mproc__results_open(mproc_pool *pool);
void mproc__results_close(mproc_pool *pool);
void mproc__results_forget(mproc_pool *pool);
void mproc__results_worker(struct mproc__slot *s, int w, int fd);
int mproc__results_fd(const mproc_pool *pool); /* -1: none */
void mproc__results_collect(mproc_task *t, uint64_t start, uint64_t len);

/* ---- spawned workers (spawn.c) ---------------------------------------- */

/* The caller at open: the executable and the program's objects, in the
   region; init, fini and init_arg checked. On a spawn pool's submit: the
   job's code and arg checked. (The supervisor's start of a worker is in
   processes.h.) */
int mproc__spawn_prepare(mproc_pool *pool);
int mproc__spawn_check_job(const mproc_pool *pool, const mproc_job *job);

/* In any worker: the job's code as this process sees it, for chunks of
   job c->id; false when a spawned worker cannot find it. */
bool mproc__code_view(struct mproc__worker *wk, const struct mproc__claim *c);

/* The part of a process worker's life after its process is set up: init,
   the items, fini (workers.c); spawned workers enter it from spawn.c. */
_Noreturn void mproc__worker_body(const mproc_options *o,
                                  struct mproc__board *b, int w, bool initial,
                                  int results_fd);

/* A spawned worker's exit statuses, before it could reach the board. */
#define MPROC__EXIT_PLACE 0x6e /* the region's address is taken here */
#define MPROC__EXIT_CODE  0x6f /* init or fini is not loaded here */
#define MPROC__EXIT_NOMEM 0x70 /* no memory (or address space) to start */

/* Starts at open of a spawned process whose run found the region's
   address taken, before the open fails with -EADDRINUSE. */
#define MPROC__PLACE_TRIES 4

/*
 * The pool whose map, submit, wait, next, close or terminate this thread is
 * inside (pool.c). A signal handler that interrupts one of them and calls
 * one on the same pool would wait for the call it interrupted, or for a
 * lock it holds: enter says MPROC_EDEADLK instead. Only this thread reads
 * and writes it, so a plain thread-local will do, also in a handler.
 */
extern _Thread_local const mproc_pool *mproc__inside;

static inline int mproc__enter(const mproc_pool *pool, const mproc_pool **saved)
{
    *saved = mproc__inside;
    if (pool && mproc__inside == pool)
        return mproc__fail(MPROC_EDEADLK,
                           "called inside another call on the same pool "
                           "(from a signal handler?), which it would wait "
                           "for");
    mproc__inside = pool;
    return 0;
}

static inline void mproc__leave(const mproc_pool *saved)
{
    mproc__inside = saved;
}

#endif /* MPROC_INTERNAL_H */
