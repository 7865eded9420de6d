/*
 * The supervisor of a process pool: deaths, repair, respawns, timeouts,
 * kills, job control and closing. The workers it forks are workers.c's.
 *
 * Who runs here: the supervisor (one process per pool, forked by the
 * caller at open, see processes.c). The supervisor is
 * single-threaded: everything in `struct super` is its own. Shared with the
 * caller and the workers: the board, in the pool's shared region.
 *
 * The supervisor sleeps in ppoll on: the caller's lifeline (a pidfd of the
 * caller, or a pipe it holds where pidfds are missing: either way readable
 * when the caller dies, and then the supervisor kills the workers, reaps
 * them and exits), an eventfd the caller writes (close, or work arrived
 * while the supervisor slept without a deadline), and a signalfd for
 * SIGCHLD, so it learns of a worker's death at once. It reaps the worker
 * (being its parent, no pid it holds can be reused before), reads its slot
 * and repairs the board (repair.c; board.c: "Crashes"), then forks a
 * replacement, which inherits what the dead worker left of its chunk.
 *
 * A replacement that cannot start (its init fails or times out, or the
 * system refuses its fork) is retried with backoff; what it was to take
 * over is taken back into `orphans` and offered to a live worker, in that
 * worker's slot (rehome), which takes it up before its next claim (board.c,
 * take_up). A worker that dies with an offer it never reached hands it
 * back the same way. Only once no worker is alive and every slot has failed
 * GIVE_UP starts in a row is the work given up, with the cause's code.
 *
 * Items
 * running past options.timeout are condemned by a compare-and-swap on the
 * slot's deadline (the worker's own CAS, when the item returns, decides the
 * race) and killed. The ppoll deadline is the nearest item deadline, and at
 * most `timeout` away while work is on the board: an item that starts after
 * a look has its deadline after the next look.
 *
 * Deaths: workers ask for SIGKILL when the supervisor dies (and check the
 * race where it died first). The supervisor holds `zlock` as a robust
 * futex, which the kernel marks and wakes when it exits (processes.c,
 * sleep_on).
 */
#define _GNU_SOURCE
#include "processes.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Failed starts in a row of every slot, with no worker alive, before the
   work on the board is given up with the cause's code. */
#define GIVE_UP 5

/* How a spawned worker that never reached the board ended, as a code: its
   run had the region's address taken (-EADDRINUSE), lacks the object of
   init or fini (MPROC_ENOTSUP), or had no memory to start
   (MPROC_ENOMEM); 0 for anything else. */
static int spawn_failure(const struct super *z, int st)
{
    if (z->pool->opt.start != MPROC_START_SPAWN || !WIFEXITED(st))
        return 0;
    if (WEXITSTATUS(st) == MPROC__EXIT_PLACE)
        return -EADDRINUSE;
    if (WEXITSTATUS(st) == MPROC__EXIT_CODE)
        return MPROC_ENOTSUP;
    if (WEXITSTATUS(st) == MPROC__EXIT_NOMEM)
        return MPROC_ENOMEM;
    return 0;
}

/* How soon to offer again inheritances that found no live worker's slot
   free of an offer (rehome). */
#define REOFFER_NS 1000000

static bool opened(struct super *z)
{
    /* Acquire: pairs with mproc__board_ready's release (board.c); only the
       count is used here, so relaxed would do. */
    return atomic_load_explicit(&z->b->ready, memory_order_acquire) >=
           (uint32_t)z->W;
}

static void fail_open(struct super *z, int code)
{
    mproc__board_ready(z->b, code, true);
}

/* How long to wait before the next start of a slot after `fails` failed
   starts in a row: 0, then 1 ms doubling to about 8 s. */
static uint64_t backoff(int fails)
{
    if (!fails)
        return 0;
    int f = fails < 14 ? fails : 14;
    return (UINT64_C(1) << f) * 1000000 / 2;
}

/* Keep inheritance `in` until a worker takes it up (rehome, supervise). */
static void keep(struct super *z, const struct mproc__inheritance *in)
{
    if (z->norphans == z->orphans_cap) {
        int cap = z->orphans_cap ? 2 * z->orphans_cap : 4;
        struct mproc__inheritance *more =
            realloc(z->orphans, (size_t)cap * sizeof *more);
        if (!more) {
            /* Never seen; the items must not wait for memory for ever. */
            mproc__abandon_inheritance(z->b, in, MPROC_ENOMEM, 0);
            return;
        }
        z->orphans = more;
        z->orphans_cap = cap;
    }
    z->orphans[z->norphans++] = *in;
}

/* Give up on every inheritance kept. */
static void drop_orphans(struct super *z, int code, int wstatus)
{
    for (int i = 0; i < z->norphans; i++)
        mproc__abandon_inheritance(z->b, &z->orphans[i], code, wstatus);
    z->norphans = 0;
}

/*
 * Offer the kept inheritances to live workers whose slots hold none: an
 * idle worker first, then a busy one (it takes the offer up after its
 * chunk), then one still in init (after its init, or never: then it comes
 * back here). A worker takes an offer up before it claims anything more
 * (board.c, take_up); one that dies first hands it back (on_death). Only
 * this process moves work between slots and this list, so a
 * reconciliation, which runs here too, sees each range in one place.
 */
static void rehome(struct super *z)
{
    struct mproc__board *b = z->b;
    if (!z->norphans || !opened(z))
        return;
    bool offered = false;
    for (int pass = 0; pass < 3 && z->norphans; pass++) {
        for (int w = 0; w < z->W && z->norphans; w++) {
            struct mproc__slot *s = &b->slots[w];
            /* Acquire: pairs with the worker's seq_cst clearing of inherit
               (board.c, take_up), after its reads of the inh_ words that
               mproc__slot_bequeath now overwrites. */
            if (!z->alive[w] ||
                atomic_load_explicit(&s->inherit, memory_order_acquire))
                continue;
            uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            bool fits = pass == 0 ? st == MPROC__IDLE
                        : pass == 1
                            ? st == MPROC__CLAIMING || st == MPROC__RUNNING ||
                                  st == MPROC__FINISHING
                            : st == MPROC__INIT;
            if (!fits)
                continue;
            mproc__slot_bequeath(s, &z->orphans[--z->norphans]);
            offered = true;
        }
    }
    if (offered) {
        /* seq_cst: as a post's bump (submit.c, wake_workers), against idle's
           count of sleepers and look at epoch (board.c); every sleeper is
           woken anyway. Its release half publishes the offers to a worker
           that acquires the new epoch (board.c, mproc__work). */
        atomic_fetch_add_explicit(&b->epoch, 1, memory_order_seq_cst);
        mproc__futex_wake(&b->epoch, INT_MAX, true);
    }
}

/* Worker w has exited with wait status st: repair the board and decide when
   it is replaced. */
static void on_death(struct super *z, int w, int st)
{
    struct mproc__board *b = z->b;
    struct mproc__slot *s = &b->slots[w];
    /* Acquire of the state: pairs with the dead worker's release (or
       seq_cst) stores of it after its hold (board.c, take, settle; here,
       worker_main), so the slot reads below see what the state promises;
       waitpid orders the dead worker's writes too. Acquire of closing:
       pairs with the caller's seq_cst store (processes.c, stop), which
       publishes nothing more, so stronger than needed. */
    uint32_t state = atomic_load_explicit(&s->state, memory_order_acquire);
    bool closing = atomic_load_explicit(&b->closing, memory_order_acquire);

    z->alive[w] = false;
    atomic_store_explicit(&s->pid, 0, memory_order_relaxed);
    /* An inheritance the worker never took up (an offer it had not reached,
       or, in a replacement that failed to start, the work it was to take
       over) goes to a live worker instead (rehome), and the slot is free
       for what this death leaves. */
    struct mproc__inheritance in;
    if (mproc__take_back(b, w, state, &in))
        keep(z, &in);

    switch (state) {
    case MPROC__INIT: {
        bool late = atomic_load_explicit(&s->deadline, memory_order_relaxed) ==
                    MPROC__KILLED;
        atomic_store_explicit(&s->deadline, 0, memory_order_relaxed);
        int spawn_err = spawn_failure(z, st);
        if (!opened(z)) {
            /* A spawned worker whose run of the program had the region's
               address taken: another run lays its objects out elsewhere,
               so try again at once, a few times. */
            if (spawn_err == -EADDRINUSE && ++z->fails[w] < MPROC__PLACE_TRIES) {
                z->initial = true;
                int r = mproc__spawn(z, w);
                z->initial = false;
                if (!r)
                    return;
                spawn_err = r;
            }
            /* A worker of the opening failed: the open fails. */
            if (late)
                fail_open(z, MPROC_ETIMEDOUT);
            else if (spawn_err)
                fail_open(z, spawn_err);
            else if (!(WIFEXITED(st) && WEXITSTATUS(st) == EXIT_INIT))
                fail_open(z, MPROC_ECRASHED);
            z->retry_at[w] = 0;
            return;
        }
        /* A replacement whose init failed (returned nonzero, crashed, or
           ran past options.timeout), or a spawned one that could not take
           its place: retry, more slowly each time. What it was to take
           over was taken back above, for the live workers. */
        z->cause = spawn_err ? spawn_err : MPROC_EINIT;
        z->cause_ws = st;
        z->fails[w]++;
        break;
    }
    case MPROC__RUNNING:
        mproc__repair_running(b, w, st);
        z->fails[w] = 0;
        break;
    case MPROC__CLAIMING:
    case MPROC__FINISHING:
        z->dead[z->ndead++] = (struct mproc__dead){
            .w = w,
            .state = state,
            .js = state == MPROC__CLAIMING
                      ? atomic_load_explicit(&s->js, memory_order_relaxed)
                      : (uint32_t)((atomic_load_explicit(&s->job,
                                                         memory_order_relaxed) -
                                    1) %
                                   MPROC__RING),
            .job = atomic_load_explicit(&s->job, memory_order_relaxed),
            .start = atomic_load_explicit(&s->start, memory_order_relaxed),
            .end = atomic_load_explicit(&s->end, memory_order_relaxed),
            .failed = atomic_load_explicit(&s->failed, memory_order_relaxed),
        };
        z->held[w] = true;
        z->fails[w] = 0;
        break;
    default:
        z->fails[w] = 0;
        break;
    }
    /* Release: pairs with the seq_cst loads of the state in busy and
       held_range (this process) and in_window; a FREE slot's range counts
       only through inherit, stored (released) before by repair_running.
       Stronger than needed. */
    atomic_store_explicit(&s->state, MPROC__FREE, memory_order_release);
    if (closing) {
        mproc__abandon(b, w, MPROC_ECANCELED, 0);
        z->retry_at[w] = 0;
        return;
    }
    z->retry_at[w] = mproc__now() + backoff(z->fails[w]) + 1;
}

/* Reconcile the jobs that dead workers left in a window; release their
   slots for respawn once done. Returns true when nothing is left pending. */
static bool reconcile(struct super *z)
{
    for (int i = 0; i < z->ndead;) {
        uint32_t js = z->dead[i].js;
        struct mproc__dead same[MPROC__MAX_WORKERS];
        int ns = 0;
        for (int k = 0; k < z->ndead; k++)
            if (z->dead[k].js == js)
                same[ns++] = z->dead[k];
        if (!mproc__reconcile(z->b, js, same, ns, z->alive, z->orphans,
                              z->norphans)) {
            i++;
            continue;
        }
        for (int k = 0; k < z->ndead;) {
            if (z->dead[k].js == js) {
                z->held[z->dead[k].w] = false;
                z->dead[k] = z->dead[--z->ndead];
            } else {
                k++;
            }
        }
        i = 0;
    }
    return z->ndead == 0;
}

/* Condemn and kill items past their deadline; returns the nearest deadline
   still ahead (0: none). */
static uint64_t timeouts(struct super *z, uint64_t now)
{
    uint64_t next = 0;
    for (int w = 0; w < z->W; w++) {
        if (!z->alive[w])
            continue;
        struct mproc__slot *s = &z->b->slots[w];
        /* The load pairs with the worker's release store of its deadline,
           the compare-and-swap with the worker's (board.c, run): whichever
           succeeds decides the item. Only the value and the atomicity
           matter here: the orders are stronger than needed (the kill
           follows the swap in this thread, and repair_running reads back
           this process's own KILLED). */
        uint64_t d = atomic_load_explicit(&s->deadline, memory_order_acquire);
        if (!d || d == MPROC__KILLED)
            continue;
        if (d != z->seen_d[w]) {
            z->seen_d[w] = d;
            z->extra[w] = 0;
        }
        /* The swap below is of the slot's own d, which the worker swaps
           back when its item returns; only our view of it is extended. */
        uint64_t due = d + z->extra[w];
        if (now >= due) {
            if (atomic_compare_exchange_strong_explicit(
                    &s->deadline, &d, MPROC__KILLED, memory_order_acq_rel,
                    memory_order_acquire))
                kill(z->pid[w], SIGKILL);
        } else if (!next || due < next) {
            next = due;
        }
    }
    return next;
}

/*
 * Job control. A stop asked of the supervisor (SIGTSTP from the terminal
 * reaches the caller's whole process group; SIGTTIN, SIGTTOU) stops the
 * whole pool: every worker is stopped, replacements forked late included,
 * then the supervisor itself, so nothing runs and nothing is started while
 * the job is suspended. It follows the program: only where the program
 * stops on SIGTSTP (its default action). Once continued, by the shell's
 * SIGCONT to the group or by one to the supervisor alone, it continues its
 * workers and re-arms the running items' limits: each is extended by the
 * time since the supervisor last looked, which covers the time stopped.
 */
static void continued(struct super *z, uint64_t now)
{
    uint64_t gap = now > z->last_look ? now - z->last_look : 0;
    for (int w = 0; w < z->W; w++) {
        if (!z->alive[w])
            continue;
        kill(z->pid[w], SIGCONT);
        uint64_t d = atomic_load_explicit(&z->b->slots[w].deadline,
                                          memory_order_relaxed);
        if (!d || d == MPROC__KILLED)
            continue;
        if (d != z->seen_d[w]) {
            z->seen_d[w] = d;
            z->extra[w] = 0;
        }
        z->extra[w] += gap;
    }
}

static void job_control(struct super *z, unsigned ev)
{
    if ((ev & MPROC__EV_STOP) && z->follow_stops) {
        for (int w = 0; w < z->W; w++)
            if (z->alive[w])
                kill(z->pid[w], SIGSTOP);
        kill(z->self, SIGSTOP);
        ev |= MPROC__EV_CONT;
    }
    if (ev & MPROC__EV_CONT)
        continued(z, mproc__now());
}

/* Kill the workers whose chunk a mproc_task_kill condemned (board.c,
   "Kills"); the caller swapped the word and poked us. A worker killed
   already but not yet reaped is killed again, harmlessly. */
static void kills(struct super *z)
{
    for (int w = 0; w < z->W; w++) {
        if (!z->alive[w])
            continue;
        uint64_t live =
            atomic_load_explicit(&z->b->slots[w].live, memory_order_relaxed);
        if (live & MPROC__LIVE_KILL)
            kill(z->pid[w], SIGKILL);
    }
}

/* Is anything on the board or in a worker's hands? Work inherited or kept
   for a worker counts too: nothing but a start or an offer (no submit, no
   poke) will set it running. */
static bool busy(struct super *z)
{
    struct mproc__board *b = z->b;
    if (z->norphans)
        return true;
    /* seq_cst: called after the seq_cst store of z_idle (supervise), the
       other half of the pair with publish's seq_cst store of tail then
       poke's seq_cst load of z_idle (submit.c, processes.c). A head at the
       tail was moved past the last claim by a worker that acquired the
       claim counter (board.c, exhausted) and released the head, so the
       loads of the states, after the acquire of the head, see the
       claimer's CLAIMING or what followed it. (A cancelled job's head
       moves on the cancel flag alone, read relaxed: a chunk still running
       there was RUNNING, with its deadline, since before the cancel, and
       is seen only by those stores' having become visible since.) */
    if (atomic_load_explicit(&b->claim_head, memory_order_seq_cst) !=
        atomic_load_explicit(&b->tail, memory_order_seq_cst))
        return true;
    for (int w = 0; w < z->W; w++) {
        struct mproc__slot *s = &b->slots[w];
        uint32_t st = atomic_load_explicit(&s->state, memory_order_seq_cst);
        if (st == MPROC__RUNNING || st == MPROC__CLAIMING ||
            atomic_load_explicit(&s->inherit, memory_order_seq_cst))
            return true;
    }
    return false;
}

/* No worker is alive and none could be started GIVE_UP times in a row:
   fail the work on the board with the cause's code (MPROC_EINIT, or the
   system's refusal of a process) and wait status rather than let it hang,
   and keep trying to start workers, with backoff: the pool is not broken,
   and serves again once a worker starts. Work posted meanwhile fails at
   the next look. */
static void give_up_if_hopeless(struct super *z)
{
    for (int w = 0; w < z->W; w++)
        if (z->alive[w] || z->fails[w] < GIVE_UP)
            return;
    struct mproc__board *b = z->b;
    drop_orphans(z, z->cause, z->cause_ws);
    for (int w = 0; w < z->W; w++)
        mproc__abandon(b, w, z->cause, z->cause_ws);
    mproc__abandon_all(b, z->cause);
}

/* Closing: workers end by themselves once idle (the caller waited for
   every task first). A stopped one is continued so that it can; one still
   in init has no work and is killed; whatever is left after the grace
   period (options.timeout, or CLOSE_GRACE without one) is killed. Returns
   when to look again. */
static uint64_t closing_look(struct super *z, uint64_t now)
{
    if (!z->close_at) {
        z->close_at = now + mproc__close_grace(z->b);
        for (int w = 0; w < z->W; w++) {
            if (!z->alive[w])
                continue;
            if (atomic_load_explicit(&z->b->slots[w].state,
                                     memory_order_acquire) == MPROC__INIT)
                kill(z->pid[w], SIGKILL);
            kill(z->pid[w], SIGCONT);
        }
    } else if (now >= z->close_at) {
        for (int w = 0; w < z->W; w++)
            if (z->alive[w])
                kill(z->pid[w], SIGKILL);
        return now + 100000000;
    }
    return z->close_at;
}

/* Reap every worker that has exited and repair after it. */
static void reap(struct super *z)
{
    unsigned ev = mproc__child_events_drain(z->child_fd);
    bool any = false;
    for (;;) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            break;
        any = true;
        for (int w = 0; w < z->W; w++)
            if (z->alive[w] && z->pid[w] == pid) {
                on_death(z, w, st);
                break;
            }
    }
    if (any)
        mproc__kill_orphans(z);
    if (ev)
        job_control(z, ev);
}

static _Noreturn void supervise(struct super *z)
{
    struct mproc__board *b = z->b;
    bool open_done = false;
    for (;;) {
        reap(z);
        /* The opening's starts again after a taken address (on_death) do
           not count against a replacement's later tries. */
        if (!open_done && opened(z)) {
            open_done = true;
            for (int w = 0; w < z->W; w++)
                z->fails[w] = 0;
        }
        kills(z);
        uint64_t now = mproc__now();
        uint64_t wake = timeouts(z, now);
        bool pending = !reconcile(z);
        if (pending && (!wake || wake > now + 100000))
            wake = now + 100000;

        /* Acquire: pairs with the caller's seq_cst store of closing
           (processes.c, stop); stronger than needed, as in on_death. */
        bool closing = atomic_load_explicit(&b->closing, memory_order_acquire);
        if (closing)
            drop_orphans(z, MPROC_ECANCELED, 0);
        /* Kept work goes to the live workers first, and only what none
           can take goes with a new worker below. */
        rehome(z);
        bool live = false;
        for (int w = 0; w < z->W; w++) {
            live |= z->alive[w];
            if (!z->alive[w] && !z->held[w] && z->retry_at[w] && !closing &&
                !atomic_load_explicit(&b->broken, memory_order_relaxed)) {
                if (z->retry_at[w] <= now) {
                    /* With no live worker to take them up, kept work goes
                       with a new worker, which takes it up as it starts.
                       Relaxed: the slot has had no worker since this
                       process last wrote inherit (or waitpid ordered the
                       dead worker's clearing of it). */
                    struct mproc__slot *s = &b->slots[w];
                    if (z->norphans && !atomic_load_explicit(
                                           &s->inherit, memory_order_relaxed))
                        mproc__slot_bequeath(s, &z->orphans[--z->norphans]);
                    int err = mproc__spawn(z, w);
                    if (err) {
                        /* Refused a process: the same backoff and the
                           same giving up as an init that fails; what the
                           new worker was to take over waits for another. */
                        struct mproc__inheritance in;
                        if (mproc__take_back(b, w, MPROC__FREE, &in))
                            keep(z, &in);
                        z->cause = err;
                        z->cause_ws = 0;
                        z->fails[w]++;
                        z->retry_at[w] = now + backoff(z->fails[w]) + 1;
                    } else {
                        live = true;
                    }
                }
                if (z->retry_at[w] && (!wake || z->retry_at[w] < wake))
                    wake = z->retry_at[w];
            }
        }
        if (closing && !live) {
            mproc__sweep(z);
            _exit(0);
        }
        if (closing) {
            uint64_t at = closing_look(z, now);
            if (!wake || at < wake)
                wake = at;
        } else {
            /* What a refused fork left is offered at once. */
            rehome(z);
            give_up_if_hopeless(z);
            /* Work kept while every live worker's slot holds an offer:
               offer it again once one has taken its offer up. */
            if (z->norphans && live && (!wake || wake > now + REOFFER_NS))
                wake = now + REOFFER_NS;
        }

        /* The shortest item limit of any job posted so far: a job that
           lowers it pokes us urgently (processes.c, poke). */
        uint64_t look = atomic_load_explicit(&b->look_ns, memory_order_relaxed);
        if (look) {
            /* Look again within one timeout while work is about; with none,
               sleep until the caller pokes (see poke). seq_cst: a
               store-buffering pair with the submitter, which stores tail
               (seq_cst, submit.c, publish), then loads z_idle (seq_cst,
               processes.c, poke): either busy sees the job, or the poke
               sees us idle and wakes us. */
            atomic_store_explicit(&b->z_idle, 1, memory_order_seq_cst);
            if (busy(z)) {
                atomic_store_explicit(&b->z_idle, 0, memory_order_relaxed);
                if (!wake || wake > now + look)
                    wake = now + look;
            }
        }

        struct pollfd fds[3] = {
            {.fd = z->caller_fd, .events = POLLIN},
            {.fd = z->event_fd, .events = POLLIN},
            {.fd = z->child_fd, .events = POLLIN},
        };
        z->last_look = now;
        struct timespec ts, *tp = NULL;
        if (wake) {
            uint64_t d = wake > now ? wake - now : 0;
            ts = (struct timespec){(time_t)(d / MPROC__NS),
                                   (long)(d % MPROC__NS)};
            tp = &ts;
        }
        if (ppoll(fds, 3, tp, NULL) < 0)
            continue;
        if (fds[0].revents) {
            /* The caller is gone: so is the pool. */
            mproc__kill_all(z);
            _exit(0);
        }
        if (fds[1].revents)
            mproc__event_drain(z->event_fd);
    }
}

/*
 * The supervisor's life once its process is itself: z has the pool, the
 * board, the caller's lifeline and eventfd, and what it knows of the
 * caller's signals (user_mask, user_chld, follow_stops).
 */
static _Noreturn void run(struct super *z)
{
    /* The lifeline needs the supervisor running: one stopped (SIGSTOP)
       when the caller dies would stay, with its workers. The kernel sends
       SIGCONT when the thread that forked (or spawned) us ends, which
       continues a stopped supervisor (blocked or not); it then finds the
       lifeline readable if the caller is gone, and ends everything as
       usual. A thread that ends before the process costs a harmless
       continue. */
    mproc__parent_death_signal(SIGCONT);
    mproc__set_name("mproc-super");
    /* Best effort: without it (a kernel before 3.4) what items leave
       behind goes to init instead, as it would without a pool. */
    (void)mproc__subreaper();
    z->self = getpid();
    z->child_fd = mproc__child_events();
    if (z->child_fd < 0 || mproc__robust_hold(&z->b->zlock) != 0) {
        fail_open(z, z->child_fd < 0 ? z->child_fd : MPROC_ENOTSUP);
        _exit(1);
    }

    size_t W = (size_t)z->W;
    z->pid = calloc(W, sizeof *z->pid);
    z->alive = calloc(W, sizeof *z->alive);
    z->held = calloc(W, sizeof *z->held);
    z->fails = calloc(W, sizeof *z->fails);
    z->seen_d = calloc(W, sizeof *z->seen_d);
    z->extra = calloc(W, sizeof *z->extra);
    z->retry_at = calloc(W, sizeof *z->retry_at);
    z->dead = calloc(W, sizeof *z->dead);
    if (!z->pid || !z->alive || !z->held || !z->fails || !z->retry_at ||
        !z->dead || !z->seen_d || !z->extra) {
        fail_open(z, MPROC_ENOMEM);
        _exit(1);
    }

    z->initial = true;
    for (int w = 0; w < z->W; w++) {
        int r = mproc__spawn(z, w);
        if (r != 0) {
            fail_open(z, r);
            mproc__kill_all(z);
            _exit(1);
        }
    }
    z->initial = false;
    supervise(z);
}

/* Forked: drop what this new process inherited of the other open pools,
   and take the caller's signals as they are. */
_Noreturn void mproc__supervisor_main(mproc_pool *pool, int caller_fd)
{
    struct super z = {
        .pool = pool,
        .b = pool->board,
        .W = pool->workers,
        .caller_fd = caller_fd,
        .event_fd = pool->zevent,
        .results_fd = mproc__results_fd(pool),
        .init_limit = pool->opt.init != NULL,
    };
    mproc__forget_others(pool);
    if (pool->lifeline >= 0)
        close(pool->lifeline);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &z.user_mask);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGCHLD, &dfl, &z.user_chld);
    struct sigaction tstp;
    sigaction(SIGTSTP, NULL, &tstp);
    z.follow_stops = tstp.sa_handler == SIG_DFL;
    run(&z);
}

/* Spawned (spawn.c): a fresh run of the program, started with every signal
   blocked, whose dispositions exec reset; the caller's mask and whether it
   stops on SIGTSTP are told. Nothing of other pools was inherited. */
_Noreturn void mproc__supervisor_spawned(mproc_pool *pool, int caller_fd,
                                         int results_fd, bool init_limit,
                                         bool follow_stops,
                                         const sigset_t *user_mask)
{
    struct super z = {
        .pool = pool,
        .b = pool->board,
        .W = pool->workers,
        .caller_fd = caller_fd,
        .event_fd = pool->zevent,
        .results_fd = results_fd,
        .init_limit = init_limit,
        .follow_stops = follow_stops,
        .user_mask = *user_mask,
    };
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGCHLD, &dfl, &z.user_chld);
    run(&z);
}
