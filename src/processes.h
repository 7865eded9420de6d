/* Between the two halves of process pools: the caller's side (processes.c)
   and the supervisor with its workers (supervisor.c). */
#ifndef MPROC_PROCESSES_H
#define MPROC_PROCESSES_H

#include "kind.h"

#include <signal.h>

#define EXIT_INIT 0x6d /* a worker's exit status: its init returned nonzero */

/* The supervisor's own state (supervisor.c, workers.c): it is single-
   threaded, and nothing here is shared with any other process. */
struct super {
    mproc_pool *pool;
    struct mproc__board *b;
    int W;
    pid_t self;
    int caller_fd, event_fd, child_fd;
    int results_fd;  /* the pool's results file, or -1 */
    bool init_limit; /* init runs, under options.timeout */
    sigset_t user_mask;
    struct sigaction user_chld;
    bool initial; /* spawning the first workers */
    pid_t *pid;
    bool *alive;
    bool *held;         /* waits for reconciliation before respawn */
    int *fails;         /* failed starts in a row */
    int cause;          /* the last failed start's code (MPROC_EINIT, -errno) */
    int cause_ws;       /* and its wait status (0: the fork was refused) */
    uint64_t close_at;  /* closing: when workers still alive are killed */
    uint64_t *retry_at; /* 0: no respawn due */
    struct mproc__dead *dead;
    int ndead;
    /* Inheritances that no worker took up (its start failed, or it died
       first), until a live worker's slot or a new worker's takes them
       (supervisor.c, rehome). */
    struct mproc__inheritance *orphans;
    int norphans, orphans_cap;
    /* Job control: time stopped does not count toward a limit. A deadline
       seen when the supervisor was continued is extended by how long it
       had not looked (extra), until the slot's deadline changes. */
    bool follow_stops; /* the program stops on SIGTSTP (default action) */
    uint64_t last_look;
    uint64_t *seen_d, *extra;
};

/* workers.c: fork worker w (0, or the -errno of a refused fork); kill
   every child that is not a worker (what items left: the supervisor is a
   subreaper); kill and reap every worker, then every descendant left. */
int mproc__spawn(struct super *z, int w);
void mproc__kill_orphans(struct super *z);
void mproc__kill_all(struct super *z);
void mproc__sweep(struct super *z);

/* spawn.c: start worker w as a fresh run of the program, with the signal
   mask `mask`: its pid, or -errno. */
pid_t mproc__spawn_exec(const mproc_pool *pool, int results_fd, int w,
                        bool initial, const sigset_t *mask);

/* spawn.c, in the caller: start the supervisor as a fresh run of the
   program, holding `watch` (the caller's lifeline): its pid, or -errno. */
pid_t mproc__spawn_supervisor(const mproc_pool *pool, int watch);

/* The supervisor's life, in the child forked by the caller at open with the
   registry lock held; caller_fd becomes readable when the caller dies. */
_Noreturn void mproc__supervisor_main(mproc_pool *pool, int caller_fd);

/* The same in a supervisor that is a fresh run of the program (spawn.c,
   MPROC_START_SPAWN), which knows of the caller what it was told. */
_Noreturn void mproc__supervisor_spawned(mproc_pool *pool, int caller_fd,
                                         int results_fd, bool init_limit,
                                         bool follow_stops,
                                         const sigset_t *user_mask);

/* How long close gives workers to end once idle before killing them
   (supervisor.c), and, with a margin, the supervisor (processes.c). */
#define MPROC__CLOSE_GRACE (UINT64_C(10) * MPROC__NS)
static inline uint64_t mproc__close_grace(const struct mproc__board *b)
{
    return b->timeout_ns ? b->timeout_ns : MPROC__CLOSE_GRACE;
}

/* In a new supervisor: unmap and close what it inherited of the other open
   pools, then release the registry lock. */
void mproc__forget_others(mproc_pool *self);

#endif
