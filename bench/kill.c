/*
 * The `kill` workload: stopping work that hangs, on a pool of 2 process
 * workers whose every worker runs an item that never returns (pause()).
 *
 *   kill        from mproc_task_kill until mproc_task_wait returns, the two
 *               items marked MPROC_ECANCELED with SIGKILL in their wstatus;
 *               and until the same pool has mapped 2 items again (on the
 *               replacements the supervisor forks);
 *   terminate   from mproc_pool_terminate until it returns, the pool gone
 *               (its task still valid, its items cancelled);
 *
 * and, beside them, Python's Pool.terminate() then join() with every worker
 * in a hung task, in each start method (pool_bench.py kill): Python's Pool
 * has no kill of one task. The clock starts once every hung item runs,
 * which the items count in memory shared with the workers (mapped before
 * the pools open). A repetition's figure is the median of its calls.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define SYSTEM  "mproc processes"

/* arg: the count of items running, shared with the workers. */
static int hang(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
    while (pause() < 0 || true)
        ; /* until the kill */
    return 0;
}

static int one(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(int *)out = 1;
    return 0;
}

static mproc_pool *open_workers(void)
{
    mproc_pool *p;
    int rc = mproc_pool_open(
        &p, &(mproc_options){.kind = MPROC_PROCESSES, .workers = WORKERS});
    if (rc)
        bench_fail("kill: opening a pool of %d: %s", WORKERS,
                   mproc_strerror(rc));
    return p;
}

/* Submit WORKERS hung items, one per worker, and return once all run. */
static mproc_task *submit_hung(mproc_pool *p, _Atomic int *running, int *status,
                               int *ws)
{
    atomic_store(running, 0);
    mproc_task *t;
    int rc = mproc_submit(p,
                          &(mproc_job){.fn = hang,
                                       .n = WORKERS,
                                       .chunk = 1,
                                       .arg = (void *)running,
                                       .status = status,
                                       .wstatus = ws},
                          &t);
    if (rc)
        bench_fail("kill: mproc_submit: %s", mproc_strerror(rc));
    double until = bench_now() + 30;
    while (atomic_load(running) < WORKERS) {
        if (bench_now() > until)
            bench_fail("kill: the hung items never started");
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return t;
}

/* The task's wait returned rc: every item killed, SIGKILL in its wstatus. */
static void check_killed(const char *what, int rc, const int *status,
                         const int *ws)
{
    if (rc != WORKERS)
        bench_fail("kill: %s: the wait returned %d, want %d", what, rc,
                   WORKERS);
    for (int i = 0; i < WORKERS; i++)
        if (status[i] != MPROC_ECANCELED ||
            !(WIFSIGNALED(ws[i]) && WTERMSIG(ws[i]) == SIGKILL))
            bench_fail("kill: %s: item %d: status %d, wstatus %#x", what, i,
                       status[i], ws[i]);
}

/* One mproc_task_kill: seconds until the wait returns, and until the pool
   has mapped again. */
static void kill_once(mproc_pool *p, _Atomic int *running, double *wait_s,
                      double *again_s)
{
    int status[WORKERS], ws[WORKERS], out[WORKERS];
    mproc_task *t = submit_hung(p, running, status, ws);
    double t0 = bench_now();
    int rc = mproc_task_kill(t);
    if (!rc)
        rc = mproc_task_wait(t, -1);
    *wait_s = bench_now() - t0;
    check_killed("mproc_task_kill", rc, status, ws);
    mproc_task_free(t);
    rc = mproc_map(p, &(mproc_job){.fn = one,
                                   .out = out,
                                   .out_size = sizeof out[0],
                                   .n = WORKERS,
                                   .chunk = 1});
    *again_s = bench_now() - t0;
    if (rc || out[0] != 1 || out[WORKERS - 1] != 1)
        bench_fail("kill: the map after the kill: %d", rc);
}

/* One mproc_pool_terminate of a fresh pool: seconds until it returns. */
static double terminate_once(_Atomic int *running)
{
    int status[WORKERS], ws[WORKERS];
    mproc_pool *p = open_workers();
    mproc_task *t = submit_hung(p, running, status, ws);
    double t0 = bench_now();
    int rc = mproc_pool_terminate(p);
    double s = bench_now() - t0;
    if (rc)
        bench_fail("kill: mproc_pool_terminate: %s", mproc_strerror(rc));
    /* The task outlives its pool, its items killed. */
    check_killed("mproc_pool_terminate", mproc_task_wait(t, 0), status, ws);
    mproc_task_free(t);
    return s;
}

static const char *py_method(const char *system)
{
    return !strcmp(system, "pool-fork")         ? "Python Pool (fork)"
           : !strcmp(system, "pool-spawn")      ? "Python Pool (spawn)"
           : !strcmp(system, "pool-forkserver") ? "Python Pool (forkserver)"
                                                : NULL;
}

void bench_kill(struct bench *b)
{
    const int calls = b->quick ? 5 : 20;
    _Atomic int *running = mmap(NULL, sizeof *running, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (running == MAP_FAILED)
        bench_fail("kill: mmap: out of memory");
    double wait_s[BENCH_MAX_REPS], again_s[BENCH_MAX_REPS];
    double term_s[BENCH_MAX_REPS], t1[50], t2[50], lo, hi;

    /* A warm-up round first (k = -1), as every workload. */
    mproc_pool *p = open_workers();
    for (int k = -1; k < b->reps; k++) {
        if (k < 0)
            bench_progress(b, "mproc_task_kill, warm-up");
        else
            bench_progress(b, "mproc_task_kill, run %d of %d", k + 1, b->reps);
        for (int c = 0; c < calls; c++)
            kill_once(p, running, &t1[c], &t2[c]);
        if (k >= 0) {
            bench_stats(t1, calls, &wait_s[k], &lo, &hi);
            bench_stats(t2, calls, &again_s[k], &lo, &hi);
        }
    }
    mproc_pool_close(p);
    for (int k = -1; k < b->reps; k++) {
        if (k < 0)
            bench_progress(b, "mproc_pool_terminate, warm-up");
        else
            bench_progress(b, "mproc_pool_terminate, run %d of %d", k + 1,
                           b->reps);
        for (int c = 0; c < calls; c++)
            t1[c] = terminate_once(running);
        if (k >= 0)
            bench_stats(t1, calls, &term_s[k], &lo, &hi);
    }
    munmap((void *)running, sizeof *running);
    for (int k = 0; k < b->reps; k++) {
        wait_s[k] *= 1e3;
        again_s[k] *= 1e3;
        term_s[k] *= 1e3;
    }
    bench_row("kill", SYSTEM, "kill: wait returns", "ms", wait_s, b->reps);
    bench_row("kill", SYSTEM, "kill: maps again", "ms", again_s, b->reps);
    bench_row("kill", SYSTEM, "terminate", "ms", term_s, b->reps);

    const char *why = b->no_python;
    int n = -1;
    struct bench_py py[8];
    if (b->python) {
        char args[96];
        snprintf(args, sizeof args, "--reps %d --workers %d --calls %d",
                 b->reps, WORKERS, b->quick ? 2 : 5);
        bench_progress(b, "Python (pool_bench.py kill %s)", args);
        n = bench_python(b, "kill", args, py, 8, &why);
    }
    if (n < 0)
        bench_row_missing("kill", "Python Pool", "terminate", why);
    for (int i = 0; i < n; i++) {
        const char *name = py_method(py[i].system);
        if (!name || strcmp(py[i].param, "terminate"))
            continue;
        for (int k = 0; k < py[i].n; k++)
            py[i].s[k] *= 1e3;
        bench_row("kill", name, "terminate", "ms", py[i].s, py[i].n);
    }
    /* Only terminate has peers: the kill rows have no ratio. */
    bench_ratios("kill", SYSTEM, 0);
    bench_find("kill", SYSTEM, "kill: wait returns")->ratio = NAN;
    bench_find("kill", SYSTEM, "kill: maps again")->ratio = NAN;
}
