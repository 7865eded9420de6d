/*
 * Kinds of worker: the one interface behind which threads, processes and MPI
 * ranks differ. Everything else (the board, submit, tasks, repair) is the
 * same for every kind and never asks which kind it serves; it asks the
 * pool's `kind` table instead.
 *
 * A pool's life, as pool.c drives it:
 *
 *   check(opt)      options this kind cannot honour: a code, before anything
 *                   is made (MPROC_ENOTSUP for a feature, MPROC_EINVAL for a
 *                   value).
 *   open(pool)      decide pool->workers and map the pool's memory (with
 *                   mproc__pool_map); an MPI rank other than 0 serves inside
 *                   it and never returns. Undone by close.
 *   start(pool)     the board is laid: start the workers and wait until each
 *                   has run init (or the first failure). On failure pool.c
 *                   calls stop, then close.
 *   stop(pool)      the board says `closing`: end the workers and wait for
 *                   them. Also after a failed start, for what did start.
 *   close(pool)     undo open: unmap, leave registries, release ranks.
 *
 * and, while it is open:
 *
 *   poke(pool, urgent)
 *                   work was posted (after the workers were woken): a kind
 *                   with a supervisor that sleeps without a deadline wakes
 *                   it; with `urgent`, also one that sleeps with a deadline
 *                   (the board's look_ns was lowered). May be NULL.
 *   sleep(pool, bell, val, deadline)
 *                   the caller waits on a job's bell: futex-wait on it while
 *                   it holds val, until the deadline (0: none), and also
 *                   wake if the pool's keeper dies. 0 (woken or spurious),
 *                   -ETIMEDOUT, or MPROC_EBROKEN when the pool can no
 *                   longer finish anything.
 *   alive(pool)     can the pool still finish work (its supervisor lives)?
 *   check_job(pool, job)
 *                   what this kind cannot run of a valid job (MPI: only
 *                   bytes cross). May be NULL.
 *   kill(pool)      mproc_task_kill condemned running chunks (board.c,
 *                   "Kills"): have their workers killed now, whatever the
 *                   keeper is doing. NULL: this kind cannot kill a running
 *                   item (a kill of one is MPROC_ENOTSUP). A kind with kill
 *                   can also enforce item timeouts (job.timeout).
 *
 * `isolated` says whether workers live in address spaces of their own: then
 * the board and the job's data must be in the shared region (staging copies
 * what is not), and futexes are process-shared.
 *
 * Adding a kind: one file with its table, one entry in kind_of (pool.c), and its paragraph in include/mproc.h.
 */
#ifndef MPROC_KIND_H
#define MPROC_KIND_H

#include "internal.h"

struct mproc__kind {
    const char *name;
    bool isolated;
    int (*check)(const mproc_options *opt);
    int (*open)(mproc_pool *pool);
    int (*start)(mproc_pool *pool);
    void (*stop)(mproc_pool *pool);
    void (*close)(mproc_pool *pool);
    void (*poke)(mproc_pool *pool, bool urgent);
    int (*sleep)(mproc_pool *pool, _Atomic uint32_t *bell, uint32_t val,
                 uint64_t deadline);
    bool (*alive)(mproc_pool *pool);
    int (*check_job)(const mproc_pool *pool, const mproc_job *job);
    void (*kill)(mproc_pool *pool);
};

extern const struct mproc__kind mproc__kind_threads;   /* threads.c */
extern const struct mproc__kind mproc__kind_processes; /* processes.c */
/* mpi.c, which is libmproc_mpi, not libmproc: a program has it when it links
   that library, and this weak reference is then set; else it is null and
   the pool refuses the kind with MPROC_ENOTSUP. A static link pulls mpi.o
   in through the -Wl,-u,mproc__kind_mpi that mproc_mpi.pc and mproc::mpi
   add (a weak reference pulls nothing from an archive; CMakeLists.txt). */
extern const struct mproc__kind mproc__kind_mpi __attribute__((weak));

/* Shared by the kinds: pool.c maps and unmaps a pool's memory (the board,
   the arena, the logs and, with `shared`, the staging area, all in one
   MAP_SHARED region), and threads.c runs thread workers, which MPI's
   proxies are too. */
int mproc__pool_map(mproc_pool *pool, bool shared);
void mproc__pool_unmap(mproc_pool *pool);
int mproc__threads_start(mproc_pool *pool);
void mproc__threads_stop(mproc_pool *pool);
int mproc__threads_sleep(mproc_pool *pool, _Atomic uint32_t *bell, uint32_t val,
                         uint64_t deadline);
bool mproc__threads_alive(mproc_pool *pool);

#endif /* MPROC_KIND_H */
