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

/*
 * A run of `count` consecutive items in one call (mproc_job.batch, instead
 * of fn): item k is read at in + k*in_size and its result written at
 * out + k*out_size, as fn would for each. Returns 0 when every item
 * succeeded (status may be left untouched: the library writes the zeros),
 * or nonzero after writing all `count` item codes at status[0..count).
 * `count` is at least 1; the library picks it (the job's chunks, split so
 * that a cancel is seen within about 100 us of work), never the caller.
 * Write the item once and let MPROC_BATCH_FN make the loop, so that the
 * compiler inlines (and may vectorise) it. Runs of a job may be any size,
 * including 1: a batch must give each item the result fn would.
 */
typedef int (*mproc_batch_fn)(const void *in, void *out, size_t count,
                              void *arg, int *status);

typedef struct mproc_pool mproc_pool;
typedef struct mproc_task mproc_task;

/*
 * A run of bytes: an item of a job with MPROC_IN_BYTES, a result of a job
 * with MPROC_OUT_BYTES. `data` may be NULL when `size` is 0.
 */
typedef struct mproc_bytes {
    void *data;
    size_t size;
} mproc_bytes;

/*
 * mproc_job.flags: what the items and the results are, when they are not
 * fixed-size values. Each works in every kind of pool, wherever the caller's
 * data was allocated (before or after the pool opened: process workers and
 * MPI ranks get copies, threads read it in place).
 */
enum {
    /* `in` is n `const char *`, each a NUL-terminated string (in_size is
       sizeof(const char *), or 0 for that). fn's `in` points at a
       `const char *` it can read: `const char *s = *(const char *const *)in`.
       A NULL string fails the call with MPROC_EINVAL, nothing run. */
    MPROC_IN_STRINGS = 1 << 0,
    /* `in` is n mproc_bytes (in_size is sizeof(mproc_bytes), or 0 for
       that). fn's `in` points at an mproc_bytes whose `size` bytes at
       `data` it can read (16-byte aligned in process workers and on MPI
       ranks). {NULL, 0} is an empty item; {NULL, size > 0} fails the call
       with MPROC_EINVAL. */
    MPROC_IN_BYTES = 1 << 1,
    /* `out` is n mproc_bytes (out_size is sizeof(mproc_bytes), or 0 for
       that); fn's `out` is NULL and fn makes its result with mproc_result.
       When the item is handed back (mproc_map or mproc_task_wait returns,
       mproc_task_next gives its index), out[i] is {data, size} of what fn
       made, or {NULL, 0} if it made nothing, crashed, timed out or was
       cancelled. Every `data` belongs to the caller: free() it. With
       `reduce`: MPROC_EINVAL. The caller's out array is cleared to
       {NULL, 0} at submit. */
    MPROC_OUT_BYTES = 1 << 2
};

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
       What fn and init write through stdio reaches its file, pipe or
       terminal before the item's result is handed back: a worker's stdout
       is line-buffered (as on a terminal), so each whole line is written
       as it is printed, and a worker flushes every stream (fflush(NULL))
       after each chunk of items, after init, and before it ends in any way
       but a crash (close, max_items, a failed init). A crashed or timed-out
       item's output is what had been written before it died: every whole
       line it and the items before it printed to stdout, and for other
       streams at least the output of the items before its chunk.

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
       MPROC_ENOTSUP in a program that does not link the MPI backend,
       libmproc_mpi (pkg-config mproc_mpi; CMake mproc::mpi), under fewer
       than 2 ranks, for a second MPI pool, or without MPI_THREAD_MULTIPLE
       on every rank. */
    MPROC_MPI = 2
} mproc_kind;

/* How process workers start (mproc_options.start). */
typedef enum mproc_start {
    /* Forked from a snapshot of the caller taken at open: each worker has
       the program's globals as they were then. The default. */
    MPROC_START_FORK = 0,
    /* Fresh runs of the program's own executable (/proc/self/exe, with the
       caller's environment and its descriptors that are not close-on-exec),
       for programs that are not safe to fork: a caller with threads, locks
       or runtimes (OpenMP, a database client). Python's "spawn" start
       method. A worker enters before main, from a constructor of
       libmproc, so:
       - globals are as static initialisation and init leave them, never as
         the caller changed them; constructors that run after libmproc's
         (a C++ program's own, when libmproc is a shared library) may not
         have run: set up what items need in init.
       - fn, batch, reduce, init and fini cross as their place in the
         program (object, offset, build id), as for MPI: code in an object
         the program dlopen'ed is refused at submit (MPROC_ENOTSUP), code
         made at run time too (MPROC_EINVAL).
       - job.arg needs arg_size (copied) or must lie in the shared arena
         (MPROC_EINVAL otherwise); init_arg must be NULL or the address of
         the program's static data (MPROC_EINVAL at open), and is read
         there as static initialisation left it.
       - a pool or task pointer of the caller is an address of memory the
         worker does not have: mproc_map, mproc_submit (MPROC_EDEADLK),
         mproc_pool_size and mproc_shared_alloc (MPROC_EPERM) on the
         worker's own pool answer without following it; any other call on
         a caller's pointer (a task's, another pool's) is undefined: pass
         none to a spawned worker.
       - libmproc must be part of the program at its start (linked into
         it, or a library it needs): a libmproc the program dlopen'ed is
         refused at open (MPROC_ENOTSUP), since a fresh run would not load
         it. Constructors that run before libmproc's run in every spawned
         process too.
       - a spawned worker has none of the caller's signal handlers: a
         signal the caller handles (Ctrl-C's SIGINT) is at its default
         action there and ends the worker (the item: MPROC_ECRASHED);
         signals the caller ignores stay ignored (SIGCHLD excepted: its
         default), and those it blocks stay blocked.
       The supervisor and the workers are started with posix_spawn, which
       copies no page table: opening does not grow with the caller's
       memory. Crashes, timeouts, max_items, kill, terminate and close are
       as for fork. A run whose loader put something where the caller has
       the pool's shared memory is started again at once (up to 4 times at
       open; then -EADDRINUSE). */
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
       open; memory is committed only as it is touched. 0 (the default): no
       arena, and mproc_shared_alloc returns NULL with ENOMEM. */
    size_t shared_size;
    /* Called once in each worker as it starts, before any item, also in a
       worker that replaces another. A nonzero return during
       mproc_pool_open fails the open with MPROC_EINIT (MPROC_ETIMEDOUT if
       it ran past options.timeout). In a replacement, a failure (nonzero,
       crash, timeout) is retried with backoff (1 ms doubling to 8 s), and
       the items the replacement was to take over go to the workers alive
       instead. Once no worker is alive and every one has failed to start
       five times in a row, every unfinished item is marked MPROC_EINIT
       (its wstatus: how the last start ended); the pool is not broken,
       and serves again as soon as a worker starts. A replacement the
       system refuses to fork is treated the same way (items: the -errno,
       MPROC_EAGAIN, wstatus 0). */
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
 *
 * What a worker sees: in a process pool the workers are copies of the
 * program as it was when the pool opened. The bytes of each item, of arg
 * (with arg_size) and, with job.flags, the strings and byte runs the items
 * point to are copied where workers see them; a raw pointer inside a
 * fixed-size item (or arg without arg_size) is copied as a number, and
 * leads to memory as it was when the pool opened: memory allocated later,
 * or changed since, is not there (reading it faults or gives old bytes).
 * Use MPROC_IN_STRINGS / MPROC_IN_BYTES, or the shared arena.
 *
 * What the caller finds in out after a job, for each item, is what that
 * item's fn wrote there, or what the buffer held before (in every kind;
 * results an MPI rank sends back are zero where fn wrote nothing), never
 * bytes of another job. The same holds for the scratch result a reduction
 * without `out` folds.
 */
typedef struct mproc_job {
    mproc_fn fn;    /* required, unless batch is set (then NULL) */
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
    /* MPROC_IN_STRINGS or MPROC_IN_BYTES, and MPROC_OUT_BYTES (see there);
       0: fixed-size items and results. Other bits: MPROC_EINVAL. */
    unsigned flags;
    /* Seconds each item of this job may run, instead of options.timeout,
       longer or shorter; 0: the pool's. As options.timeout: an item past
       it is killed and marked MPROC_ETIMEDOUT. Negative, NaN, infinite or
       above one year: MPROC_EINVAL; nonzero in a pool that cannot kill a
       running item (threads, MPI): MPROC_ENOTSUP. */
    double timeout;
    /* Instead of fn (exactly one of the two; both or neither:
       MPROC_EINVAL): the job's items are handed to batch a run at a time
       (mproc_batch_fn), so that the call per item goes. Everything else is
       as with fn: results, statuses, reduce (each result of a run is folded
       after the call), cancel (seen between runs), progress,
       mproc_task_next, and every kind (an MPI rank runs the batch). In a
       process pool a crash inside a run costs the item that crashed: the
       replacement worker runs that run again one item per call (count 1),
       so the items before the crashing one run twice, and a run that died
       from outside (a kill, the OOM killer) is run again whole. With a
       timeout, a process pool calls batch with count 1, so that each item
       has its own limit. Strings and byte runs as items work as with fn
       (`in` is their array); MPROC_OUT_BYTES does not (mproc_result makes
       one item's result): MPROC_EINVAL. mproc_item_index() in a batch is
       the index of the run's first item. */
    mproc_batch_fn batch;
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
 *                  MPROC_START_SPAWN with threads or MPI, with a libmproc
 *                  the program dlopen'ed, or a spawned process that does
 *                  not take its role (within 10 s) or lacks the object
 *                  init or fini is in; MPI: see
 *                  MPROC_MPI (libmproc_mpi not linked, one rank only, ...)
 *   MPROC_EINVAL   (MPI) workers more than the other ranks; (spawn)
 *                  init_arg outside the program's static data
 *   -EADDRINUSE    (spawn) no run of the program had the pool's shared
 *                  memory's address free, after 4 tries
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
 * Apply job->fn (or job->batch) to job->n items, in parallel, and return
 * when all are done, results in place and in order. Same as mproc_submit +
 * mproc_task_wait.
 *
 * Thread-safe: several threads may map on one pool at once; their jobs queue
 * in the order submitted and run with no worker idle while any has items.
 *
 * Returns 0 if every item returned 0; > 0, the number of items whose code is
 * nonzero (see job->status), at most INT_MAX (more failed items than that
 * still return INT_MAX); or, with nothing run:
 *   MPROC_EINVAL   pool or job NULL; fn and batch both NULL, or both set;
 *                  in NULL with n and in_size > 0;
 *                  flags with an unknown bit, or both IN flags; with
 *                  MPROC_IN_STRINGS an in_size other than 0 or
 *                  sizeof(const char *), or a NULL string; with
 *                  MPROC_IN_BYTES an in_size other than 0 or
 *                  sizeof(mproc_bytes), or an item {NULL, size > 0}; with
 *                  MPROC_OUT_BYTES an out_size other than 0 or
 *                  sizeof(mproc_bytes), out NULL with n > 0, or reduce;
 *                  n > 2^39; n * in_size or n * out_size overflows; reduce
 *                  without acc or out_size, or with out_size above 2^30;
 *                  acc without reduce; arg_size > 0 with arg NULL; timeout
 *                  negative, NaN or above one year; in an
 *                  MPI pool, also arg without arg_size, item, result or arg
 *                  above 2^30 bytes, or fn or batch (or, without out,
 *                  reduce) not in a loaded object of the program; in a
 *                  spawn pool, arg without arg_size outside the arena, or
 *                  fn, batch or reduce not in an object loaded at open
 *   MPROC_ENOTSUP  a job timeout in a pool that cannot kill items; in a
 *                  spawn pool, fn, batch or reduce in an object a fresh
 *                  run of the program does not load (one it dlopen'ed)
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

/*
 * Inside a process worker mproc_shared_alloc returns NULL with EPERM: the
 * arena's bookkeeping is the caller's, and a heap whose bookkeeping workers
 * wrote would be left broken by one that dies in the middle of it. Results
 * that workers make go through MPROC_OUT_BYTES and mproc_result instead (any
 * size, nothing to guess at open, nothing leaked by a crash); a pointer-rich
 * result travels as one block whose links are offsets from its start.
 */

/* Return a block to the arena; neighbouring free blocks coalesce. NULL is a
   no-op; a pointer not from mproc_shared_alloc of this pool is ignored. */
MPROC_API void mproc_shared_free(mproc_pool *pool, void *p);

/* 0..size-1 inside a worker (in fn and init), -1 elsewhere. A replacement
   worker takes the number of the worker it replaces. */
MPROC_API int mproc_worker_id(void);

/*
 * Inside fn: the index in its job of the item fn is running (0..n-1), in
 * every kind; SIZE_MAX elsewhere (in init, outside a worker). It depends on
 * the item only, never on the worker or on crashes before it, so it makes
 * per-item random seeds that a replacement worker repeats exactly.
 */
MPROC_API size_t mproc_item_index(void);

/*
 * Inside fn, in a job with MPROC_OUT_BYTES: room for this item's result,
 * `size` bytes, 16-byte aligned, for fn to fill; out[i] becomes
 * {that memory's copy, size} when the item is handed back (in a process
 * pool or from an MPI rank, {NULL, 0} if the caller's process cannot
 * allocate that copy). A second call in the same item replaces the first
 * result (its contents are not kept).
 * mproc_result(0) makes an empty result (out[i].data may then be NULL).
 *
 * Where the memory lives: in a thread pool it is malloc'd and handed over
 * as is. In a process pool it is in a region of the pool's results file
 * (a memfd) that belongs to the running worker: allocation is a bump of
 * that worker's offset, made durable only when the item finishes, so a
 * worker that dies mid-allocation or mid-item costs nothing (its successor
 * starts from the last finished item's offset). The caller copies each
 * result into malloc'd memory as it hands the item back, then gives the
 * region's pages back; a worker whose every result was collected starts
 * its region again from the start. Memory in use is thus what the caller
 * has not collected, plus a page or two per worker. On an MPI rank it is
 * the rank's memory, sent back with the chunk (at most 2^30 bytes per
 * result there).
 *
 * Returns the memory (NULL possible for size 0), or NULL with errno:
 * EINVAL outside fn or in a job without MPROC_OUT_BYTES; ENOMEM when the
 * memory cannot be had (process pools: a worker's uncollected results
 * would pass 1 TiB; MPI: size above 2^30). fn may then fail the item with
 * a code of its own; its earlier result of that item, if any, is gone.
 */
MPROC_API void *mproc_result(size_t size);

/* A static, human-readable name for any code this library returns, for any
   -errno, and for 0. Never NULL. */
MPROC_API const char *mproc_strerror(int code);

/*
 * Why this thread's last failed call failed, in one sentence that names the
 * argument or the condition ("job.in is NULL while n = 10 and in_size = 8"),
 * for people; programs test the code. Every call that returns a negative
 * code (or NULL with errno) sets it; a call that succeeds leaves it as it
 * was. The wording is for messages and logs and may change between
 * releases; programs test the code. "" before any call has failed on this
 * thread. Thread-local, so any thread may call it at any time; the string
 * is valid until this thread's next failing call. Never NULL.
 */
MPROC_API const char *mproc_last_error(void);

/*
 * Map with sizes taken from the pointed-to types:
 *     int failed = MPROC_MAP(pool, fn, in, out, n);
 */
#ifndef __cplusplus
#define MPROC_MAP(pool_, fn_, in_, out_, n_)                          \
    mproc_map((pool_), &(const mproc_job){.fn = (fn_),                \
                                          .in = (in_),                \
                                          .in_size = sizeof *(in_),   \
                                          .out = (out_),              \
                                          .out_size = sizeof *(out_), \
                                          .n = (n_)})
#endif

/*
 * Define `static int name(const void *in, void *out, size_t count, void
 * *arg, int *status)`, an mproc_batch_fn that applies `item` to each item
 * of a run. item is a function (best `static inline`) or a macro of the
 * shape
 *     int item(const type_in *in, type_out *out, void *arg);
 * returning 0 or the item's code; being seen, it is inlined into the loop.
 * For example:
 *     static inline int add(const pair *in, int *out, void *arg)
 *     { *out = in->x + in->y; return 0; }
 *     MPROC_BATCH_FN(add_batch, add, pair, int)
 *     ... MPROC_MAP_BATCH(pool, add_batch, in, out, n);
 * C and C++. For a job with out_size 0 (or in_size 0) use `char` for that
 * type and ignore the pointer.
 */
#define MPROC_BATCH_FN(name, item, type_in, type_out)                       \
    static int name(const void *in_, void *out_, size_t count_, void *arg_, \
                    int *status_)                                           \
    {                                                                       \
        const type_in *i_ = (const type_in *)in_;                           \
        type_out *o_ = (type_out *)out_;                                    \
        for (size_t k_ = 0; k_ < count_; k_++) {                            \
            int rc_ = item(i_ + k_, o_ + k_, arg_);                         \
            if (rc_) {                                                      \
                /* The first failure: every code is written from here. */   \
                for (size_t j_ = 0; j_ < k_; j_++)                          \
                    status_[j_] = 0;                                        \
                status_[k_] = rc_;                                          \
                for (k_++; k_ < count_; k_++)                               \
                    status_[k_] = item(i_ + k_, o_ + k_, arg_);             \
                return 1;                                                   \
            }                                                               \
        }                                                                   \
        return 0;                                                           \
    }

/* MPROC_MAP with a batch function: sizes from the pointed-to types. C and
   C++ (through mproc__map_batch, which is not API). */
#define MPROC_MAP_BATCH(pool_, batch_, in_, out_, n_)                 \
    mproc__map_batch((pool_), (batch_), (in_), sizeof *(in_), (out_), \
                     sizeof *(out_), (n_))

static inline int mproc__map_batch(mproc_pool *pool, mproc_batch_fn batch,
                                   const void *in, size_t in_size, void *out,
                                   size_t out_size, size_t n)
{
#ifdef __cplusplus
    mproc_job job = {};
#else
    mproc_job job = {0};
#endif
    job.batch = batch;
    job.in = in;
    job.in_size = in_size;
    job.out = out;
    job.out_size = out_size;
    job.n = n;
    return mproc_map(pool, &job);
}

#ifdef __cplusplus
}

/* C++ has no compound literals (nor, before C++20, designated
   initializers): there MPROC_MAP is this template, with the same arguments
   and result. The sizes come from the pointed-to types as in C; a
   capture-less lambda converts to mproc_fn, and may hold commas outside
   parentheses (the macro takes __VA_ARGS__). Not a name to call directly. */
namespace mproc_detail
{
template <typename In, typename Out>
inline int map(mproc_pool *pool, mproc_fn fn, In *in, Out *out, size_t n)
{
    mproc_job job = mproc_job();
    job.fn = fn;
    job.in = in;
    job.in_size = sizeof *in;
    job.out = out;
    job.out_size = sizeof *out;
    job.n = n;
    return mproc_map(pool, &job);
}
} /* namespace mproc_detail */
#define MPROC_MAP(...) ::mproc_detail::map(__VA_ARGS__)
#endif

#endif /* MPROC_H */
