/*
 * mproc: Python's multiprocessing.Pool, in C.
 *
 * Map a function over an array in parallel, on a pool of worker processes
 * (isolated: a crash or a hang costs one item) or worker threads (shared
 * memory, lowest overhead), with results in order, a code per item, and
 * reductions, shared memory and asynchronous maps.
 *
 *     static int square(const void *in, void *out, void *arg)
 *     {
 *         *(long *)out = *(const long *)in * *(const long *)in;
 *         return 0;
 *     }
 *
 *     mproc_pool *pool;
 *     mproc_pool_open(&pool, NULL);              // processes, one per CPU
 *     int failed = MPROC_MAP(pool, square, in, out, n);
 *     mproc_pool_close(pool);
 *
 * Signals: no function of this library is async-signal-safe. Call none
 * from a signal handler. One mistake is caught: mproc_map, mproc_submit,
 * mproc_task_wait, mproc_task_next, mproc_pool_close and
 * mproc_pool_terminate called on a pool while the same thread is inside one
 * of them on that pool (a handler that interrupted it, or a reduce running
 * in the caller's wait) return MPROC_EDEADLK instead of waiting for
 * themselves.
 *
 * Conventions, as in every function below:
 * - A call that can fail returns 0 (or a count) on success and a negative
 *   code on failure: -errno for system conditions (MPROC_EINVAL == -EINVAL),
 *   or one of the library's own codes below. mproc_strerror() names each.
 * - A call that fails with a negative code has changed nothing: no item ran,
 *   no memory or process is left behind.
 * - Destroying functions accept NULL.
 */
#ifndef MPROC_H
#define MPROC_H

#include <errno.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(MPROC_STATIC)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

/*
 * Codes. System conditions keep their errno value, negated. The library's own
 * codes sit in a reserved range below -5000, outside every errno.
 *
 * Item codes (written to mproc_job.status) are the function's own return
 * value, or one of MPROC_ECRASHED, MPROC_ETIMEDOUT, MPROC_ECANCELED (and
 * MPROC_ENOTSUP on an MPI rank that runs another program; MPROC_EINIT or
 * MPROC_EAGAIN when no process worker could be started to run the item).
 * A function's own codes should be positive so that they never collide.
 */
enum {
    MPROC_EPERM = -EPERM,   /* pool used from a process that did not open it */
    MPROC_EAGAIN = -EAGAIN, /* the system refused a process or thread;
                               item: so often that no worker could be
                               started to run it (other -errno alike) */
    MPROC_ENOMEM = -ENOMEM, /* out of memory, or the staging area is full */
    MPROC_EINVAL = -EINVAL, /* a bad argument */
    MPROC_EDEADLK = -EDEADLK, /* called from a worker of the same pool, or
                                 from within a call on it (see Signals) */

    MPROC_ECRASHED = -5001,  /* item: its worker died (signal, _exit, OOM) */
    MPROC_ETIMEDOUT = -5002, /* item: ran past options.timeout and was killed;
                                     call: a wait ran out of time */
    MPROC_ECANCELED = -5003, /* item: cancelled before it started, or
                                     killed by mproc_task_kill or
                                     mproc_pool_terminate (wstatus says) */
    MPROC_EOF = -5004,       /* mproc_task_next: every item was handed out */
    MPROC_ENOTSUP = -5005,   /* option or kind this pool cannot do;
                                     item: an MPI rank did not find fn */
    MPROC_EINIT = -5006,     /* options.init returned nonzero in a worker;
                                     item: no worker could be started to
                                     run it, init failing (nonzero, crash
                                     or timeout) in every try */
    MPROC_EBROKEN = -5007    /* the pool can serve no more: its supervisor
                                     died, or an item wrote over the pool's
                                     control memory; close the pool */
};

/*
 * The function applied to each item. It reads one item at `in` and writes one
 * result at `out` (NULL when the job has out_size 0), and returns 0 or its own
 * code, stored as the item's status. `arg` is the job's arg.
 *
 * In a process pool, `in`, `out` and `arg` point into memory the worker sees
 * (the caller's data is copied there, unless it already lives in the shared
 * arena). In a thread pool they point at the caller's own memory.
 */
typedef int (*mproc_fn)(const void *in, void *out, void *arg);

typedef struct mproc_pool mproc_pool;
typedef struct mproc_task mproc_task;

typedef enum mproc_kind {
    /* Worker processes, forked when the pool opens. Each sees the program's
       globals as they were at that moment, never changes made afterwards by
       the caller or by other workers. A crash, an abort or a hang (with
       options.timeout) costs the item that caused it; the worker is replaced.
       Item data is copied to and from memory the workers share.
       In a worker, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGSYS and SIGTRAP have
       their default action whatever handler the program installed, so that
       a fault ends the worker; other handlers are inherited as fork leaves
       them. The pool adds one child to the caller, its supervisor
       ("mproc-super"), from open to close; the workers are the supervisor's
       children, never the caller's, so a program's own wait()/waitpid(-1)
       and SIGCHLD handling see only the supervisor, and only when it exits
       at close (mproc_pool_close copes with the program reaping it).
       Nothing an item starts outlives it: the supervisor is a child
       subreaper, and kills every process an item left behind (orphaned,
       setsid or not, or whose worker was killed or replaced) as soon as it
       sees a death in the pool, and all of them at close or when the
       caller dies; an item cannot start a process meant to outlive the
       pool. Job control: where the program stops on SIGTSTP (its default
       action), a stop of the caller's process group (Ctrl-Z) stops the
       whole pool, and time stopped does not count toward item limits. */
    MPROC_PROCESSES = 0,
    /* Worker threads of the caller's process: shared address space, lowest
       overhead, no isolation (a crash ends the program). CPU-bound items run
       truly in parallel. */
    MPROC_THREADS = 1,
    /* Workers are the other ranks of MPI_COMM_WORLD, on as many machines as
       mpirun gives. Every rank calls mproc_pool_open; it returns on rank 0
       only: the other ranks run init, serve items, and exit (after
       MPI_Finalize) when rank 0 closes the pool, so the code after the
       open is rank 0's. The same program runs on threads, processes or
       ranks. Only bytes cross: items, results and arg (which needs
       arg_size) are sent in messages; fn (and a reduction without `out`,
       which then folds on the ranks) is sent as its place in the program
       and must be a function of the program or of a library it loaded.
       mproc initialises MPI (MPI_THREAD_MULTIPLE) unless the program did,
       with at least that level, and then finalises it at close: open and
       close the pool on the program's main thread. One MPI pool per run of
       the program; no timeout, no max_items (a rank that crashes ends the
       MPI job); the arena is rank 0's ordinary memory. A function another
       build of the program (MPMD, a stale copy on a node) does not have
       fails its items with MPROC_ENOTSUP. An open that fails returns its
       code on rank 0; the other ranks finalise MPI and exit. It returns
       MPROC_ENOTSUP in a build without MPI, under fewer than 2 ranks, for
       a second MPI pool, or without MPI_THREAD_MULTIPLE on every rank. */
    MPROC_MPI = 2
} mproc_kind;

/* How process workers start (mproc_options.start). */
typedef enum mproc_start {
    /* Forked from a snapshot of the caller taken at open: each worker has
       the program's globals as they were then. The default. */
    MPROC_START_FORK = 0,
    /* Fresh runs of the program's own executable, for programs that are not
       safe to fork (threads, locks, OpenMP runtimes). Not available in this
       build: mproc_pool_open returns MPROC_ENOTSUP. */
    MPROC_START_SPAWN = 1
} mproc_start;

/*
 * Pool options. All-zero means defaults; a NULL pointer means all-zero.
 */
typedef struct mproc_options {
    /* Kind of worker; MPROC_PROCESSES when zero. */
    mproc_kind kind;
    /* Number of workers, 1 to 1024; 0: the CPUs this process may use (its
       affinity mask, lowered to its cgroup's CPU quota where one is set).
       More workers than CPUs is allowed and useful for items that wait.
       MPI: ranks 1 to `workers` serve (others only wait for the close);
       0: every rank but 0, at most 1024. */
    int workers;
    /* Seconds one item may run (mproc_job.timeout may say otherwise for a
       job), and one worker's init; 0: no limit. A process worker running an
       item past its limit is killed, the item marked MPROC_ETIMEDOUT and the
       worker replaced; one whose init runs past it is killed as an init
       that failed. Also the grace period close gives workers to end (10 s
       without a timeout), after which they are killed. Threads cannot be killed safely: a thread pool refuses
       a nonzero timeout with MPROC_ENOTSUP. Negative, NaN, infinite or above
       one year: MPROC_EINVAL. */
    double timeout;
    /* Items a process worker runs before it is replaced by a fresh one (for
       code that leaks); 0: never. In a job of more than 2^21 items a worker
       claims at least n / 2^21 items at once (see mproc_job.chunk) and may
       run that many past its limit. Thread pools refuse it with
       MPROC_ENOTSUP. */
    unsigned long max_items;
    /* Bytes reserved for mproc_shared_alloc. Address space is reserved at
       open; memory is committed only as it is touched. 0: no arena. */
    size_t shared_size;
    /* Called once in each worker as it starts, before any item, also in a
       worker that replaces another. A nonzero return during
       mproc_pool_open fails the open with MPROC_EINIT (MPROC_ETIMEDOUT if
       it ran past options.timeout). In a replacement, a failure (nonzero,
       crash, timeout) is retried with backoff (1 ms doubling to 8 s); after
       five failures in a row the items the replacement was to take over
       are marked MPROC_EINIT, and while no worker at all is alive every
       unfinished item is; the pool is not broken, and serves again as
       soon as a worker starts. A replacement the system refuses to fork
       is retried the same way (items: the -errno, MPROC_EAGAIN). */
    int (*init)(void *arg);
    /* Passed to init and fini. */
    void *init_arg;
    /* How process workers start; MPROC_START_FORK when zero. Threads and
       MPI take only MPROC_START_FORK (MPROC_ENOTSUP). */
    mproc_start start;
    /* Called once in each worker as it ends normally, after its last item:
       when the pool closes (or terminates, for a worker that was not
       killed), and in a process worker retired by max_items. Not in a
       worker that crashed, timed out or was killed, nor in one whose init
       failed. With init_arg. Use it to release what init acquired; the
       pool's close waits for it. MPI: on each serving rank at close. */
    void (*fini)(void *arg);
} mproc_options;

/*
 * A job: fn applied to n items. Item i is read at in + i*in_size and its
 * result written at out + i*out_size. The caller's buffers must stay valid
 * and untouched until the job is finished (mproc_map returns, or
 * mproc_task_wait / mproc_task_next hands the results back). `in` and
 * `out` must not overlap (nor status, wstatus or acc either of them): a
 * thread pool reads and writes them in place while a process pool works on
 * copies, so an item could read another's result on one and not the other.
 * Nothing checks it.
 */
typedef struct mproc_job {
    mproc_fn fn;    /* required */
    const void *in; /* n items; may be NULL only if n is 0 or in_size is 0 */
    size_t in_size; /* bytes per item; fn gets NULL `in` when 0 */
    /* n results; NULL: results are not kept (with reduce, fn writes into a
       per-worker scratch) */
    void *out;
    size_t out_size; /* bytes per result; fn gets NULL `out` when 0 */
    size_t n;        /* number of items, at most 2^39 */
    /* Passed to every call of fn. With arg_size > 0, the arg_size bytes at
       arg are copied once per job (in every kind; in process pools not at
       all if they lie in the shared arena), so the caller may reuse them as
       soon as the job is submitted. With arg_size 0 the
       pointer is passed as is: valid in threads, for memory in the shared
       arena, and for memory that existed, unchanged, when the pool opened. */
    void *arg;
    size_t arg_size;
    /* Items per claim; 0: automatic (guided, sized from measured item
       cost). A job of more than 2^21 items is claimed at least n / 2^21 at a
       time whatever this says, so that its record of finished pieces keeps
       a bounded size. */
    size_t chunk;
    /* Optional: n item codes (0, fn's code, or MPROC_ECRASHED /
       MPROC_ETIMEDOUT / MPROC_ECANCELED / MPROC_EINIT / -errno; MPI:
       MPROC_ENOTSUP). See the codes above. */
    int *status;
    /* Optional fold: results are folded into acc, which holds out_size bytes:
       the identity on entry, the total when the job finishes. Each worker
       folds its own results into a private partial; the caller then folds
       the partials into acc, so reduce must be associative and commutative.
       reduce(acc, result, arg) must not fail. */
    void (*reduce)(void *acc, const void *result, void *arg);
    void *acc;
    /* Optional: n wait statuses. For an item marked MPROC_ECRASHED or
       MPROC_ETIMEDOUT, how its worker ended, as waitpid(2) reports it: test
       with WIFSIGNALED/WTERMSIG and WIFEXITED/WEXITSTATUS; for an item
       killed by mproc_task_kill or mproc_pool_terminate (MPROC_ECANCELED),
       the kill. 0 for every other item. */
    int *wstatus;
    /* Seconds each item of this job may run, instead of options.timeout,
       longer or shorter; 0: the pool's. As options.timeout: an item past
       it is killed and marked MPROC_ETIMEDOUT. Negative, NaN, infinite or
       above one year: MPROC_EINVAL; nonzero in a pool that cannot kill a
       running item (threads, MPI): MPROC_ENOTSUP. */
    double timeout;
} mproc_job;

/*
 * Open a pool of workers. `opt` may be NULL (defaults). On success *pool is
 * the new pool and the call returns 0 once every worker has run init and is
 * ready. A process pool flushes stdio (fflush(NULL)) before it forks, so that
 * buffered output is not written twice.
 *
 * Thread-safe: several pools, of any kinds, may be open at once, opened from
 * any thread.
 *
 * Returns 0, or:
 *   MPROC_EINVAL   pool is NULL, kind unknown, workers < 0 or > 1024, timeout
 *                  negative/NaN/too large, start unknown
 *   MPROC_ENOTSUP  timeout / max_items with threads or MPI;
 *                  MPROC_START_SPAWN (not in this build); MPI: see
 *                  MPROC_MPI (no MPI in this build, one rank only, ...)
 *   MPROC_EINVAL   (MPI) workers more than the other ranks
 *   MPROC_EINIT    init returned nonzero in a worker
 *   MPROC_ETIMEDOUT init ran past options.timeout in a worker
 *   MPROC_ECRASHED a worker died during init
 *   MPROC_ENOMEM, MPROC_EAGAIN, other -errno: the system refused memory,
 *                  a process or a thread
 */
MPROC_API int mproc_pool_open(mproc_pool **pool, const mproc_options *opt);

/*
 * Close a pool: cancel what is still queued (unstarted items are marked
 * MPROC_ECANCELED), wait for running items to finish (in a process pool,
 * options.timeout bounds that; mproc_pool_terminate does not wait), stop
 * the workers and release everything (an MPI pool's ranks exit). Then, in
 * a process pool, the end is bounded whatever state the processes are in:
 * stopped workers and a stopped supervisor (SIGSTOP) are continued, a
 * worker still in init is killed, and workers that have not ended (fini
 * included) within the grace period (options.timeout, or 10 s) are
 * killed, as is the supervisor 2 s after that. Tasks not yet freed
 * stay valid for mproc_task_wait/next/progress/free, which then see the final
 * state. Must not run concurrently with other calls on the same pool.
 *
 * Returns 0, MPROC_EDEADLK from a worker of this pool, or MPROC_EPERM in a
 * process that did not open the pool. NULL is a no-op returning 0.
 */
MPROC_API int mproc_pool_close(mproc_pool *pool);

/*
 * Terminate a pool: as mproc_pool_close, but items running now are not
 * waited for. In a process pool their workers are killed (SIGKILL) at once,
 * each such item is marked MPROC_ECANCELED with the kill in its wstatus
 * (WIFSIGNALED), and unstarted items MPROC_ECANCELED; Python's
 * Pool.terminate(). Tasks not yet freed stay valid exactly as after close.
 * A thread pool cannot kill a running thread: there running items finish,
 * as in close. Must not run concurrently with other calls on the same pool.
 *
 * Returns 0, MPROC_EDEADLK from a worker of this pool, or MPROC_EPERM in a
 * process that did not open the pool. NULL is a no-op returning 0.
 */
MPROC_API int mproc_pool_terminate(mproc_pool *pool);

/* Number of workers, or MPROC_EINVAL for NULL. Thread-safe. */
MPROC_API int mproc_pool_size(const mproc_pool *pool);

/*
 * Apply job->fn to job->n items, in parallel, and return when all are done,
 * results in place and in order. Same as mproc_submit + mproc_task_wait.
 *
 * Thread-safe: several threads may map on one pool at once; their jobs queue
 * in the order submitted and run with no worker idle while any has items.
 *
 * Returns 0 if every item returned 0; > 0, the number of items whose code is
 * nonzero (see job->status), at most INT_MAX (more failed items than that
 * still return INT_MAX); or, with nothing run:
 *   MPROC_EINVAL   pool, job or fn NULL; in NULL with n and in_size > 0;
 *                  n > 2^39; n * in_size or n * out_size overflows; reduce
 *                  without acc or out_size, or with out_size above 2^30;
 *                  acc without reduce; arg_size > 0 with arg NULL; timeout
 *                  negative, NaN or above one year; in an
 *                  MPI pool, also arg without arg_size, item, result or arg
 *                  above 2^30 bytes, or fn (or, without out, reduce) not in
 *                  a loaded object of the program
 *   MPROC_ENOTSUP  a job timeout in a pool that cannot kill items
 *   MPROC_EDEADLK  called from inside a worker of this pool
 *   MPROC_EPERM    called in a process that did not open the pool
 *   MPROC_ENOMEM   the copies of the data do not fit in memory
 *   MPROC_EBROKEN  the pool's supervisor died
 */
MPROC_API int mproc_map(mproc_pool *pool, const mproc_job *job);

/*
 * Queue a job and return at once with *task, which the caller must free with
 * mproc_task_free. It never waits, however many jobs are unfinished: the
 * board holds 128 jobs at once, and later ones wait in a queue of the pool,
 * in submission order, posted as jobs finish (by later submits, frees and
 * waits; a waiter looks at the queue every millisecond while it is not
 * empty). The job struct itself may be reused at once; the buffers it
 * points to must stay valid until the task is waited for (or freed).
 * Errors as mproc_map, plus MPROC_EINVAL for NULL task.
 */
MPROC_API int mproc_submit(mproc_pool *pool, const mproc_job *job,
                           mproc_task **task);

/*
 * Wait until every item of the task is done, then return as mproc_map would
 * (0, or the number of failed items), with results, statuses and the reduced
 * acc in the caller's buffers. `timeout` is in seconds; a negative timeout
 * waits for ever. May be called again after it returned.
 *
 * Returns that count, or MPROC_ETIMEDOUT (nothing lost: wait again),
 * MPROC_EINVAL (NULL task, NaN timeout), MPROC_EDEADLK (called from a worker
 * of the task's pool) or MPROC_EPERM (called in a process that did not open
 * the pool). If the pool's supervisor died, the
 * items that had not finished are marked MPROC_ECRASHED and counted in the
 * result; later submits on the pool return MPROC_EBROKEN.
 * A task may be waited on by one thread at a time.
 */
MPROC_API int mproc_task_wait(mproc_task *task, double timeout);

/*
 * Hand back one finished item: *index is set to an item whose result and
 * status are in the caller's buffers, each item once, in the order items
 * finish (items of one claimed chunk come back together, in index order).
 * `timeout` as in mproc_task_wait.
 *
 * Returns 0 with *index set, MPROC_EOF when all items were handed out,
 * MPROC_ETIMEDOUT, MPROC_EINVAL (NULL argument), MPROC_EDEADLK and
 * MPROC_EPERM (as mproc_task_wait), or MPROC_EBROKEN (the
 * pool's supervisor died: mproc_task_wait then gives every item not handed
 * out its final code).
 */
MPROC_API int mproc_task_next(mproc_task *task, size_t *index, double timeout);

/*
 * Read how many items are finished (*done, any outcome) and the total (*n).
 * Monotonic; callable from any thread while another waits. Either pointer
 * may be NULL. A task whose job waits for a free job slot (more than 128
 * unfinished jobs on the pool, see mproc_submit) reads 0 done. Returns 0,
 * MPROC_EINVAL (NULL task) or MPROC_EPERM (called in another process than
 * the pool's opener, such as a process worker of another pool).
 */
MPROC_API int mproc_task_progress(const mproc_task *task, size_t *done,
                                  size_t *n);

/*
 * Cancel a task: items not yet started are marked MPROC_ECANCELED and never
 * run; items running now finish. The task still has to be waited for (which
 * returns soon) or freed. May be called from any thread of the caller's
 * process, also from a worker of a thread pool. Returns 0, MPROC_EINVAL
 * (NULL task) or MPROC_EPERM (called in another process).
 */
MPROC_API int mproc_task_cancel(mproc_task *task);

/*
 * Kill a task: cancel it (as mproc_task_cancel) and, in a process pool,
 * kill its running items now: each worker running one is killed (SIGKILL)
 * and replaced, and the item is marked MPROC_ECANCELED with the kill in its
 * wstatus (WIFSIGNALED, WTERMSIG SIGKILL). The other items of the job keep
 * their outcome: finished ones their code, unstarted ones MPROC_ECANCELED
 * (a worker killed just as it was between two items may mark the next,
 * unstarted, one with the kill's wstatus). Returns at once; the task still
 * has to be waited for (which returns as soon as the killed workers are
 * reaped, milliseconds) or freed. Other jobs' items are never touched, and
 * the pool goes on serving. Same callers as mproc_task_cancel.
 *
 * Returns 0 (also for a task already finished, or cancelled), MPROC_EINVAL
 * (NULL task), MPROC_EPERM (called in another process), or MPROC_ENOTSUP
 * when the pool cannot kill running items (threads, MPI ranks) and some
 * were running: they finish, unstarted items are cancelled all the same.
 */
MPROC_API int mproc_task_kill(mproc_task *task);

/*
 * Free a task. An unfinished task is cancelled and waited for first, so that
 * no worker touches the caller's buffers afterwards. NULL is a no-op.
 * Freeing an unfinished task from a worker of its own pool would wait for
 * that worker: the library reports the mistake on stderr and aborts. In a
 * process other than the pool's opener it frees only that process's copy.
 */
MPROC_API void mproc_task_free(mproc_task *task);

/*
 * Allocate size bytes, 64-byte aligned, in the pool's shared arena
 * (options.shared_size). In a process pool the memory is mapped at the same
 * address in the caller and in every worker, replacements included, so
 * pointers into it are valid everywhere, C11 atomics on it work across
 * processes, and a job whose in, out, status or arg lie in it is run with no
 * copy. In a thread pool it is ordinary memory with the same contract.
 * Every block is zero when handed out, reused memory included.
 *
 * Call from the process that opened the pool (any thread); not from inside
 * a process worker. Returns NULL with errno set: EINVAL (NULL pool, size 0),
 * ENOMEM (the arena is exhausted; no block is that large), EPERM (called in
 * another process).
 */
MPROC_API void *mproc_shared_alloc(mproc_pool *pool, size_t size);

/* Return a block to the arena; neighbouring free blocks coalesce. NULL is a
   no-op; a pointer not from mproc_shared_alloc of this pool is ignored. */
MPROC_API void mproc_shared_free(mproc_pool *pool, void *p);

/* 0..size-1 inside a worker (in fn and init), -1 elsewhere. A replacement
   worker takes the number of the worker it replaces. */
MPROC_API int mproc_worker_id(void);

/* A static, human-readable name for any code this library returns, for any
   -errno, and for 0. Never NULL. */
MPROC_API const char *mproc_strerror(int code);

/*
 * Map with sizes taken from the pointed-to types:
 *     int failed = MPROC_MAP(pool, fn, in, out, n);
 */
#define MPROC_MAP(pool_, fn_, in_, out_, n_)                          \
    mproc_map((pool_), &(const mproc_job){.fn = (fn_),                \
                                          .in = (in_),                \
                                          .in_size = sizeof *(in_),   \
                                          .out = (out_),              \
                                          .out_size = sizeof *(out_), \
                                          .n = (n_)})

#ifdef __cplusplus
}
#endif

#endif /* MPROC_H */
