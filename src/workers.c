/*
 * The worker processes of a process pool: how the supervisor forks one,
 * what a worker does from its first instruction to its exit, and what
 * becomes of the processes its items start.
 *
 * Who runs here: the supervisor (spawn, the process tree) and the workers
 * it forks (worker_main) or spawns (spawn.c), both in mproc__worker_body.
 * Shared: the board, in the pool's shared region.
 */
#define _GNU_SOURCE
#include "processes.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the worker process ------------------------------------------------ */

/* A forked worker: undo what it inherited of the supervisor, then work. */
static _Noreturn void worker_main(struct super *z, int w)
{
    MPROC__HOOK(MPROC__HOOK_FORKED);
    if (mproc__die_with_parent(z->self) != 0)
        _exit(0);
    close(z->caller_fd);
    close(z->event_fd);
    close(z->child_fd);
    sigaction(SIGCHLD, &z->user_chld, NULL);
    sigprocmask(SIG_SETMASK, &z->user_mask, NULL);
    mproc__self_pool = z->pool;
    mproc__worker_body(&z->pool->opt, z->b, w, z->initial, z->results_fd);
}

/*
 * A worker process from the moment it is itself (forked, or spawned and
 * with the region mapped, spawn.c) to its exit. The caller's pool is
 * mproc__self_pool already; o holds init, fini and init_arg as this
 * process sees them.
 */
_Noreturn void mproc__worker_body(const mproc_options *o,
                                  struct mproc__board *b, int w, bool initial,
                                  int results_fd)
{
    struct mproc__slot *s = &b->slots[w];
    /* A fault in an item must end the worker, whatever handler the program
       installed: a handler that returns would fault again for ever, and one
       that longjmps would carry the item on in a broken state. */
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE,
                                 SIGILL,  SIGSYS, SIGTRAP};
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++)
        sigaction(faults[i], &dfl, NULL);
    char name[32];
    snprintf(name, sizeof name, "mproc-w%d", w);
    mproc__set_name(name);
    mproc__self_id = w;

    /* stdout line-buffered, as on a terminal: every whole line an item
       prints is written before the next item starts, so a crash later in
       the same chunk loses none of it (other streams are flushed after
       each chunk). A worker that prints nothing pays nothing; the caller
       flushed every stream before the supervisor was forked (processes.c),
       so the buffer is empty here. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    mproc__results_worker(s, w, results_fd);
    /* What init and the items print is flushed before the worker ends in
       any way but a crash (board.c flushes after each chunk too). */
    /* init runs under options.timeout (spawn set the deadline): as an
       item's, the supervisor's swap to KILLED and ours back to 0 decide
       whether it was late. */
    uint64_t d = atomic_load_explicit(&s->deadline, memory_order_relaxed);
    if (o->init && o->init(o->init_arg)) {
        fflush(NULL);
        if (initial)
            mproc__board_ready(b, MPROC_EINIT, true);
        _exit(EXIT_INIT);
    }
    fflush(NULL);
    if (d && !atomic_compare_exchange_strong_explicit(&s->deadline, &d, 0,
                                                      memory_order_acq_rel,
                                                      memory_order_relaxed))
        for (;;)
            pause(); /* condemned: the kill is on its way */
    /* Acquire: pairs with the supervisor's release of inherit (repair.c,
       supervisor.c), made before this worker was started (the fork or the
       exec orders it anyway); release: pairs with the supervisor's acquire of the state
       when this worker dies (on_death), though an IDLE slot holds nothing
       to publish. */
    if (!atomic_load_explicit(&s->inherit, memory_order_acquire))
        atomic_store_explicit(&s->state, MPROC__IDLE, memory_order_release);
    if (initial)
        mproc__board_ready(b, 0, true);
    struct mproc__worker wk = {.b = b, .w = w, .budget = b->max_items};
    mproc__work(&wk);
    /* Ending normally (close, or max_items): fini runs in the state the
       worker left work in, IDLE, so a crash in it costs no item. */
    if (o->fini)
        o->fini(o->init_arg);
    /* What fini and the items printed is flushed before the worker ends. */
    fflush(NULL);
    /* Release: pairs with on_death's acquire of the state; EXITING holds
       nothing, and the exit orders it anyway, so stronger than needed. */
    atomic_store_explicit(&s->state, MPROC__EXITING, memory_order_release);
    _exit(0);
}

int mproc__spawn(struct super *z, int w)
{
    struct mproc__slot *s = &z->b->slots[w];
    /* init, if any, runs under the pool's item limit, counted from here
       (worker_main). */
    uint64_t limit = z->init_limit ? z->b->timeout_ns : 0;
    atomic_store_explicit(&s->deadline, limit ? mproc__now() + limit : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&s->live, 0, memory_order_relaxed);
    /* Release: pairs with the acquire of the state in on_death and the
       seq_cst loads in busy and held_range, all in this process; the child
       sees it through the fork. Stronger than needed. */
    atomic_store_explicit(&s->state, MPROC__INIT, memory_order_release);
    int refused = MPROC__FORK_FAULT();
    if (refused)
        return refused;
    pid_t pid;
    if (z->pool->opt.start == MPROC_START_SPAWN) {
        pid = mproc__spawn_exec(z->pool, z->results_fd, w, z->initial,
                                &z->user_mask);
        if (pid < 0)
            return (int)pid;
    } else {
        pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0)
            worker_main(z, w);
    }
    z->pid[w] = pid;
    z->alive[w] = true;
    z->retry_at[w] = 0;
    atomic_store_explicit(&s->pid, pid, memory_order_relaxed);
    return 0;
}

/*
 * Process trees. The supervisor is a child subreaper: whatever an item
 * starts and leaves behind (its worker killed for a timeout or a kill,
 * crashed or retired, or a process that outlived its own parent, setsid
 * or not) is re-parented to the supervisor rather than to init. Every
 * child that is not a worker is such an orphan, and is killed whenever
 * the supervisor reaps anything (its own children are re-parented to us
 * as it dies, and killed in turn), and all of them before it exits.
 */
static bool is_worker(struct super *z, pid_t pid)
{
    for (int w = 0; w < z->W; w++)
        if (z->alive[w] && z->pid[w] == pid)
            return true;
    return false;
}

static void kill_orphan(pid_t pid, void *ctx)
{
    if (!is_worker(ctx, pid))
        kill(pid, SIGKILL);
}

/* Kill every child that is not a worker: what items left behind. */
void mproc__kill_orphans(struct super *z)
{
    mproc__each_child(kill_orphan, z);
}

/* Before exiting: kill and reap every descendant left, down the tree. */
void mproc__sweep(struct super *z)
{
    for (;;) {
        mproc__each_child(kill_orphan, z);
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
            return;
    }
}

void mproc__kill_all(struct super *z)
{
    for (int w = 0; w < z->W; w++)
        if (z->alive[w])
            kill(z->pid[w], SIGKILL);
    for (int w = 0; w < z->W; w++)
        if (z->alive[w]) {
            while (waitpid(z->pid[w], NULL, 0) < 0 && errno == EINTR)
                ;
            z->alive[w] = false;
        }
    mproc__sweep(z);
}
