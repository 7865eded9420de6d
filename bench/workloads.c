/*
 * The workloads, each on every system. Each system runs a warm-up (except
 * in the sleep cell, timed cold as in the notebook) and then its
 * repetitions back to back, on the same data as the others, its results
 * cleared before each run and checked after; then the next system. So each
 * figure is what repeated maps cost, with a little work of the caller's
 * between them, as in a program that maps in a loop.
 *
 * Systems are not interleaved run by run: on a virtual machine every idle
 * pause makes the next run start colder (the host parks an idle vCPU), and
 * interleaving needs pauses, because OpenMP's threads spin for
 * milliseconds after a region (libgomp's GOMP_SPINCOUNT) and would take a
 * core from the next system. The bench pauses once after each OpenMP
 * system instead; mproc's idle workers spin for 50 us only.
 *
 * mproc's own pools of `cores` workers are opened once for the whole run
 * (b->threads, b->procs); workloads that need other worker counts open
 * their own, outside the timed region. Opening is measured on its own.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

enum sys {
    SERIAL,
    SERIAL_INLINED,
    OMP_GUIDED,
    OMP_DYNAMIC,
    OMP_INLINED,
    THREADS,
    PROCS
};

static const char *const names[] = {
    [SERIAL] = "serial C",
    [SERIAL_INLINED] = "serial C, a + b inlined",
    [OMP_GUIDED] = "OpenMP guided",
    [OMP_DYNAMIC] = "OpenMP dynamic",
    [OMP_INLINED] = "OpenMP guided, a + b inlined",
    [THREADS] = "mproc threads",
    [PROCS] = "mproc processes",
};

#define PROCS_COPIED  "mproc processes, data copied"
#define PROCS_SHARED  "mproc processes, shared arena"
#define THREADS_BATCH "mproc threads, batch"
#define PROCS_BATCH   "mproc processes, arena, batch"
#define PROCS_SPAWN   "mproc processes, spawn"
#define PROCS_SMALL   "mproc processes, small caller"
#define PROCS_SPAWN_SMALL "mproc spawn, small caller"
#define PY_POOL       "Python Pool"
#define PY_SPAWN      "Python Pool, spawn"
#define PY_FORKSERVER "Python Pool, forkserver"
#define PY_THREADPOOL "Python ThreadPool"

/* What one system runs: the map, and where. */
struct run {
    enum sys sys;
    const char *name; /* row name; NULL: names[sys] */
    mproc_pool *pool; /* THREADS, PROCS */
    int threads;      /* OMP_*: threads */
    struct bench_map m;
    int reps; /* 0: b->reps */
    /* Set by run_all: whether the system is in this build, and the seconds
       of each repetition. */
    bool ok;
    double s[BENCH_MAX_REPS];
};

static const char *name_of(const struct run *r)
{
    return r->name ? r->name : names[r->sys];
}

static mproc_pool *open_started(mproc_kind kind, int workers,
                                mproc_start start)
{
    mproc_pool *p;
    int rc = mproc_pool_open(
        &p, &(mproc_options){.kind = kind, .workers = workers, .start = start});
    if (rc)
        bench_fail("opening a pool of %d: %s", workers, mproc_last_error());
    return p;
}

static mproc_pool *open_pool(mproc_kind kind, int workers)
{
    return open_started(kind, workers, MPROC_START_FORK);
}

static void settle(enum sys s)
{
    /* libgomp's threads spin after a region (GOMP_SPINCOUNT, 300000
       pauses: about 5 ms of CPU on the machine of docs/performance.md)
       before they sleep. */
    if (s == OMP_GUIDED || s == OMP_DYNAMIC || s == OMP_INLINED) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Run once; seconds, or -1 when the system is not in this build. */
static double once(const struct run *r)
{
    const struct bench_map *m = &r->m;
    double t0 = bench_now();
    switch (r->sys) {
    case SERIAL:
        bench_serial(m);
        break;
    case SERIAL_INLINED:
        bench_add_inlined(m->in, m->out, m->n);
        break;
    case OMP_GUIDED:
    case OMP_DYNAMIC:
        if (!bench_omp(r->sys == OMP_GUIDED ? BENCH_GUIDED : BENCH_DYNAMIC,
                       r->threads, m))
            return -1;
        break;
    case OMP_INLINED:
        if (!bench_omp_add_inlined(r->threads, m->in, m->out, m->n))
            return -1;
        break;
    case THREADS:
    case PROCS: {
        int rc = mproc_map(r->pool, &(mproc_job){.fn = m->batch ? NULL : m->fn,
                                                 .batch = m->batch,
                                                 .in = m->in,
                                                 .in_size = m->in_size,
                                                 .out = m->out,
                                                 .out_size = m->out_size,
                                                 .n = m->n});
        if (rc)
            bench_fail("%s: mproc_map: %s", name_of(r), mproc_strerror(rc));
        break;
    }
    }
    return bench_now() - t0;
}

/* Run each system of runs[] in turn: a warm-up unless cold, then b->reps
   runs (or the run's own reps), calling reset before each (to clear the
   results) and check after. See the top of this file. */
static void run_all(struct bench *b, struct run *runs, size_t nruns,
                    const char *param, bool cold,
                    void (*reset)(const struct bench_map *m),
                    void (*check)(const struct bench_map *m, const char *who))
{
    for (size_t i = 0; i < nruns; i++) {
        struct run *r = &runs[i];
        r->ok = true;
        if (!r->reps)
            r->reps = b->reps;
        for (int k = cold ? 0 : -1; r->ok && k < r->reps; k++) {
            if (k < 0)
                bench_progress(b, "%s %s, warm-up", name_of(r), param);
            else
                bench_progress(b, "%s %s, run %d of %d", name_of(r), param,
                               k + 1, r->reps);
            reset(&r->m);
            double t = once(r);
            r->ok = t >= 0;
            if (r->ok)
                check(&r->m, name_of(r));
            if (k >= 0)
                r->s[k] = t;
        }
        settle(r->sys);
    }
}

#define NO_OPENMP "unavailable: built without OpenMP"

/* Add run r's row: each repetition's seconds t as t * factor, or as
   factor / t (inverse: rates, speedups), in unit; or why it has none. */
static void add_row(const char *wl, const struct run *r, const char *param,
                    const char *unit, double factor, bool inverse)
{
    if (!r->ok) {
        bench_row_missing(wl, name_of(r), param, NO_OPENMP);
        return;
    }
    double v[BENCH_MAX_REPS];
    for (int k = 0; k < r->reps; k++)
        v[k] = inverse ? factor / r->s[k] : r->s[k] * factor;
    bench_row(wl, name_of(r), param, unit, v, r->reps);
}

static void scale(double *s, int n, double factor)
{
    for (int i = 0; i < n; i++)
        s[i] *= factor;
}

static const char *n_param(char *buf, size_t size, size_t n)
{
    size_t p = 1;
    int k = 0;
    while (p < n) {
        p *= 10;
        k++;
    }
    if (p == n)
        snprintf(buf, size, "n=10^%d", k);
    else
        snprintf(buf, size, "n=%zu", n);
    return buf;
}

/* ---- Python --------------------------------------------------------------- */

static const char *py_name(const char *system)
{
    return !strcmp(system, "pool")         ? PY_POOL
           : !strcmp(system, "threadpool") ? PY_THREADPOOL
           : !strcmp(system, "pool-spawn") ? PY_SPAWN
           : !strcmp(system, "pool-forkserver") ? PY_FORKSERVER
                                                : NULL;
}

/* Run the Python side of a workload; on failure its rows say why. */
static int python(struct bench *b, const char *wl, const char *args,
                  struct bench_py *rows, int max)
{
    const char *why = b->no_python;
    int n = -1;
    if (b->python) {
        bench_progress(b, "Python (pool_bench.py %s %s)", wl, args);
        n = bench_python(b, wl, args, rows, max, &why);
    }
    if (n < 0) {
        bench_row_missing(wl, PY_POOL, "", why);
        bench_row_missing(wl, PY_THREADPOOL, "", why);
    }
    return n;
}

/* The usual conversion: each Python row's seconds times `factor` of its
   param (from params/factors), in `unit`. */
static void python_scaled(const char *wl, struct bench_py *rows, int n,
                          const char *const *params, const double *factors,
                          int np, const char *unit)
{
    for (int i = 0; i < n; i++) {
        const char *name = py_name(rows[i].system);
        for (int p = 0; name && p < np; p++) {
            if (strcmp(rows[i].param, params[p]))
                continue;
            scale(rows[i].s, rows[i].n, factors[p]);
            bench_row(wl, name, rows[i].param, unit, rows[i].s, rows[i].n);
        }
    }
}

/* ---- the notebook's sleep cell ---------------------------------------------- */

static void clear_ints(const struct bench_map *m)
{
    memset(m->out, 0, m->n * sizeof(int));
}

/* The notebook's slow add returns y + y. */
static void check_doubles(const struct bench_map *m, const char *who)
{
    const bench_pair *in = m->in;
    const int *out = m->out;
    for (size_t i = 0; i < m->n; i++)
        if (out[i] != 2 * in[i].y)
            bench_fail("sleep cell: %s: wrong result", who);
}

static void sleep_cell(struct bench *b)
{
    bench_pair in[10];
    int out[10];
    for (int i = 0; i < 10; i++)
        in[i] = (bench_pair){10, i + 1};
    struct bench_map m = {bench_slow_add, NULL, in, sizeof *in, out,
                          sizeof *out,    10};
    mproc_pool *tp = open_pool(MPROC_THREADS, 5),
               *pp = open_pool(MPROC_PROCESSES, 5);
    struct run runs[] = {
        {.sys = SERIAL, .m = m},
        {.sys = OMP_GUIDED, .threads = 5, .m = m},
        {.sys = OMP_DYNAMIC, .threads = 5, .m = m},
        {.sys = THREADS, .pool = tp, .m = m},
        {.sys = PROCS, .pool = pp, .m = m},
    };
    const size_t nruns = sizeof runs / sizeof *runs;
    /* One serial repetition in a quick run: it is the notebook's 1 s
       baseline, not a figure with a target. */
    runs[0].reps = b->quick ? 1 : 0;
    run_all(b, runs, nruns, "workers=5", true, clear_ints, check_doubles);
    for (size_t i = 0; i < nruns; i++)
        add_row("sleep", &runs[i], i ? "workers=5" : "", "s", 1, false);
    mproc_pool_close(tp);
    mproc_pool_close(pp);

    struct bench_py py[8];
    char args[64];
    snprintf(args, sizeof args, "--reps %d", b->reps);
    int n = python(b, "sleep", args, py, 8);
    const char *params[] = {"workers=5"};
    python_scaled("sleep", py, n, params, (double[]){1}, 1, "s");

    bench_ratios("sleep", NULL, 0.2);
    bench_target("sleep", names[THREADS], "workers=5", BENCH_WITHIN, 0.2,
                 0.002);
    bench_target("sleep", names[PROCS], "workers=5", BENCH_WITHIN, 0.2, 0.002);
}

/* ---- the notebook's CPU-bound cell ---------------------------------------- */

/* The results every system must reproduce, computed once beforehand. */
static uint64_t *expected;

static void clear_u64(const struct bench_map *m)
{
    memset(m->out, 0, m->n * sizeof(uint64_t));
}

static void check_expected(const struct bench_map *m, const char *who)
{
    if (memcmp(m->out, expected, m->n * sizeof *expected))
        bench_fail("%s: wrong results", who);
}

static void cpu_cell(struct bench *b)
{
    const double item_us = b->quick ? 5000 : 20000;
    uint64_t in[10], out[10];
    for (int i = 0; i < 10; i++)
        in[i] = (uint64_t)(item_us * b->spins_per_us) + (uint64_t)i;
    struct bench_map m = {bench_burn, NULL,        in, sizeof *in,
                          out,        sizeof *out, 10};
    int maxw = 2 * b->cores;
    double t1[4] = {0}, lo, hi, v[BENCH_MAX_REPS];
    char param[24];
    uint64_t want[10];
    expected = want;
    for (int i = 0; i < 10; i++)
        want[i] = bench_chain(in[i]);

    /* Each system's speedup is over its own time on 1 worker, as in the
       notebook (Pool(1), then Pool(10)). */
    for (int w = 1; w <= maxw; w++) {
        snprintf(param, sizeof param, "workers=%d", w);
        struct run runs[] = {
            {.sys = SERIAL, .m = m},
            {.sys = OMP_GUIDED, .threads = w, .m = m},
            {.sys = OMP_DYNAMIC, .threads = w, .m = m},
            {.sys = THREADS, .pool = open_pool(MPROC_THREADS, w), .m = m},
            {.sys = PROCS, .pool = open_pool(MPROC_PROCESSES, w), .m = m},
        };
        const size_t nruns = w == 1 ? 5 : 4, first = w == 1 ? 0 : 1;
        run_all(b, runs + first, nruns, param, false, clear_u64,
                check_expected);
        mproc_pool_close(runs[3].pool);
        mproc_pool_close(runs[4].pool);
        if (w == 1)
            add_row("cpu", &runs[0], "", "ms", 1e3, false);
        for (size_t i = 1; i < 5; i++) {
            const struct run *r = &runs[i];
            if (!r->ok) {
                if (w == 1)
                    add_row("cpu", r, "", "", 0, false);
                continue;
            }
            if (w == 1) {
                memcpy(v, r->s, (size_t)r->reps * sizeof *v);
                bench_stats(v, r->reps, &t1[i - 1], &lo, &hi);
            }
            add_row("cpu", r, param, "x", t1[i - 1], true);
        }
    }

    struct bench_py py[16];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --max-workers %d --loop %d", b->reps,
             maxw, b->quick ? 300000 : 3000000);
    int n = python(b, "cpu", args, py, 16);
    for (int i = 0; i < n; i++) {
        const char *name = py_name(py[i].system);
        if (!name || strcmp(py[i].param, "workers=1"))
            continue;
        double base;
        bench_stats(py[i].s, py[i].n, &base, &lo, &hi);
        for (int j = 0; j < n; j++) {
            if (strcmp(py[j].system, py[i].system))
                continue;
            for (int k = 0; k < py[j].n; k++)
                py[j].s[k] = base / py[j].s[k];
            bench_row("cpu", name, py[j].param, "x", py[j].s, py[j].n);
        }
    }

    /* Ratios: the speedup over the ideal, min(workers, cores). */
    for (int w = 1; w <= maxw; w++) {
        snprintf(param, sizeof param, "workers=%d", w);
        const char *all[] = {names[OMP_GUIDED], names[OMP_DYNAMIC],
                             names[THREADS],    names[PROCS],
                             PY_POOL,           PY_THREADPOOL};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            struct bench_row *r = bench_find("cpu", all[i], param);
            if (r && !r->note)
                r->ratio = r->median / (w < b->cores ? w : b->cores);
        }
    }
    snprintf(param, sizeof param, "workers=%d", b->cores);
    bench_target("cpu", names[THREADS], param, BENCH_AT_LEAST, 0.97 * b->cores,
                 0);
    bench_target("cpu", names[PROCS], param, BENCH_AT_LEAST, 0.97 * b->cores,
                 0);
}

/* ---- trivial items ------------------------------------------------------------- */

static void check_sums(const struct bench_map *m, const char *who)
{
    const bench_pair *in = m->in;
    const int *out = m->out;
    for (size_t i = 0; i < m->n; i++)
        if (out[i] != in[i].x + in[i].y)
            bench_fail("trivial items: %s: item %zu is %d, not %d", who, i,
                       out[i], in[i].x + in[i].y);
}

static void trivial(struct bench *b)
{
    const size_t ns[] = {1000000, 10000000}, nmax = 10000000;
    bench_pair *in = malloc(nmax * sizeof *in);
    int *out = malloc(nmax * sizeof *out);
    bench_pair *s_in = mproc_shared_alloc(b->procs, nmax * sizeof *s_in);
    int *s_out = mproc_shared_alloc(b->procs, nmax * sizeof *s_out);
    if (!in || !out || !s_in || !s_out)
        bench_fail("trivial items: out of memory");
    for (size_t i = 0; i < nmax; i++)
        in[i] = s_in[i] = (bench_pair){(int)i, 1};
    char param[24];
    const char *params[2];
    double per_item[2];

    for (int p = 0; p < 2; p++) {
        size_t n = ns[p];
        n_param(param, sizeof param, n);
        struct bench_map m = {bench_add, NULL,        in, sizeof *in,
                              out,       sizeof *out, n};
        struct bench_map sm = {bench_add, NULL,          s_in, sizeof *s_in,
                               s_out,     sizeof *s_out, n};
        struct bench_map bm = m, bsm = sm;
        bm.batch = bsm.batch = bench_add_batch;
        struct run runs[] = {
            {.sys = SERIAL, .m = m},
            {.sys = SERIAL_INLINED, .m = m},
            {.sys = OMP_GUIDED, .threads = b->cores, .m = m},
            {.sys = OMP_DYNAMIC, .threads = b->cores, .m = m},
            {.sys = OMP_INLINED, .threads = b->cores, .m = m},
            {.sys = THREADS, .pool = b->threads, .m = m},
            {.sys = THREADS,
             .name = THREADS_BATCH,
             .pool = b->threads,
             .m = bm},
            {.sys = PROCS, .name = PROCS_COPIED, .pool = b->procs, .m = m},
            {.sys = PROCS, .name = PROCS_SHARED, .pool = b->procs, .m = sm},
            {.sys = PROCS, .name = PROCS_BATCH, .pool = b->procs, .m = bsm},
        };
        const size_t nruns = sizeof runs / sizeof *runs;
        run_all(b, runs, nruns, param, false, clear_ints, check_sums);
        for (size_t i = 0; i < nruns; i++)
            add_row("trivial", &runs[i], param, "ns", 1e9 / (double)n, false);
        params[p] = p ? "n=10^7" : "n=10^6";
        per_item[p] = 1e9 / (double)n;
    }
    free(in);
    free(out);
    mproc_shared_free(b->procs, s_in);
    mproc_shared_free(b->procs, s_out);

    /* Python's 10^7 takes it about 10 s a repetition: not in a quick run. */
    struct bench_py py[8];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --workers %d --n %s", b->reps,
             b->cores, b->quick ? "1000000" : "1000000,10000000");
    int n = python(b, "trivial", args, py, 8);
    python_scaled("trivial", py, n, params, per_item, 2, "ns");
    if (b->quick && n >= 0) {
        bench_row_missing("trivial", PY_POOL, "n=10^7", "skipped in --quick");
        bench_row_missing("trivial", PY_THREADPOOL, "n=10^7",
                          "skipped in --quick");
    }

    bench_ratios("trivial", names[OMP_GUIDED], 0);
    for (int p = 0; p < 2; p++) {
        bench_target("trivial", names[THREADS], params[p], BENCH_RATIO_AT_MOST,
                     1.5, 0);
        bench_target("trivial", PROCS_SHARED, params[p], BENCH_RATIO_AT_MOST, 2,
                     0);
        bench_target("trivial", PROCS_COPIED, params[p], BENCH_BELOW, 5, 0);
        /* job.batch: OpenMP's per-item cost (issue 13). */
        bench_target("trivial", THREADS_BATCH, params[p], BENCH_RATIO_AT_MOST,
                     1.2, 0);
        bench_target("trivial", PROCS_BATCH, params[p], BENCH_RATIO_AT_MOST,
                     1.2, 0);
    }
}

/* ---- latency: a map of one item on a warm pool --------------------------------- */

static void latency(struct bench *b)
{
    const int calls = b->quick ? 1000 : 5000;
    bench_pair in = {1, 2};
    int out = 0;
    bench_pair *s_in = mproc_shared_alloc(b->procs, sizeof *s_in);
    int *s_out = mproc_shared_alloc(b->procs, sizeof *s_out);
    double *t = malloc((size_t)calls * sizeof *t), s[BENCH_MAX_REPS], lo, hi;
    if (!s_in || !s_out || !t)
        bench_fail("latency: out of memory");
    *s_in = in;
    struct bench_map m = {bench_add, NULL, &in, sizeof in, &out, sizeof out, 1};
    struct bench_map sm = {bench_add, NULL,          s_in, sizeof *s_in,
                           s_out,     sizeof *s_out, 1};
    struct run runs[] = {
        {.sys = SERIAL, .m = m},
        {.sys = OMP_GUIDED, .threads = b->cores, .m = m},
        {.sys = OMP_DYNAMIC, .threads = b->cores, .m = m},
        {.sys = THREADS, .pool = b->threads, .m = m},
        {.sys = PROCS, .name = PROCS_COPIED, .pool = b->procs, .m = m},
        {.sys = PROCS, .name = PROCS_SHARED, .pool = b->procs, .m = sm},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const char *name = name_of(&runs[i]);
        int *o = runs[i].m.out;
        bool ok = true;
        /* A repetition is `calls` maps back to back, each timed; its figure
           is their median, robust to the odd preemption. */
        for (int k = -1; ok && k < b->reps; k++) {
            if (k < 0)
                bench_progress(b, "%s, warm-up", name);
            else
                bench_progress(b, "%s, run %d of %d", name, k + 1, b->reps);
            for (int c = 0; ok && c < calls; c++) {
                *o = 0;
                t[c] = once(&runs[i]);
                ok = t[c] >= 0;
                if (ok && *o != 3)
                    bench_fail("latency: %s: wrong result %d", name, *o);
            }
            if (ok && k >= 0)
                bench_stats(t, calls, &s[k], &lo, &hi);
        }
        settle(runs[i].sys);
        if (ok) {
            scale(s, b->reps, 1e6);
            bench_row("latency", name, "n=1", "us", s, b->reps);
        } else {
            bench_row_missing("latency", name, "n=1", NO_OPENMP);
        }
    }
    free(t);
    mproc_shared_free(b->procs, s_in);
    mproc_shared_free(b->procs, s_out);

    struct bench_py py[8];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --workers %d --calls %d", b->reps,
             b->cores, b->quick ? 200 : 1000);
    int n = python(b, "latency", args, py, 8);
    const char *params[] = {"n=1"};
    python_scaled("latency", py, n, params, (double[]){1e6}, 1, "us");

    bench_ratios("latency", names[OMP_GUIDED], 0);
    bench_target("latency", names[THREADS], "n=1", BENCH_BELOW, 5, 0);
    bench_target("latency", PROCS_COPIED, "n=1", BENCH_BELOW, 10, 0);
    bench_target("latency", PROCS_SHARED, "n=1", BENCH_BELOW, 10, 0);
}

/* ---- cancelling a long map ---------------------------------------------------- */

/*
 * How long mproc_task_wait takes to return once mproc_task_cancel is called
 * on a map far from done. Items already running finish (cancel never
 * interrupts fn), so the figure is bounded below by what is left of them:
 * with 1 ms items, between 0 and 1 ms, and, with several workers, the
 * largest of their remainders. The cancel lands at a different point of the
 * running items each time (the delay before it steps through an item's
 * length), and a repetition's figure is the median of its cancels. OpenMP's
 * `cancel for` needs OMP_CANCELLATION set before the program starts, and
 * Python's Pool.map has no cancel: mproc's systems only.
 */
static void cancel_case(struct bench *b, const char *param, double item_us,
                        size_t n, int calls)
{
    uint64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    uint64_t *s_in = mproc_shared_alloc(b->procs, n * sizeof *s_in);
    uint64_t *s_out = mproc_shared_alloc(b->procs, n * sizeof *s_out);
    int *status = malloc(n * sizeof *status);
    double *t = malloc((size_t)calls * sizeof *t), s[BENCH_MAX_REPS], lo, hi;
    if (!in || !out || !s_in || !s_out || !status || !t)
        bench_fail("cancel: out of memory");
    /* Four item lengths a step apart, so that four results tell every
       item's right answer without running them all beforehand. */
    uint64_t want[4], steps = (uint64_t)(item_us * b->spins_per_us);
    for (int k = 0; k < 4; k++)
        want[k] = bench_chain(steps + (uint64_t)k);
    for (size_t i = 0; i < n; i++)
        in[i] = s_in[i] = steps + i % 4;
    struct bench_map m = {bench_burn, NULL,        in, sizeof *in,
                          out,        sizeof *out, n};
    struct bench_map sm = {bench_burn, NULL,          s_in, sizeof *s_in,
                           s_out,      sizeof *s_out, n};
    struct run runs[] = {
        {.sys = THREADS, .pool = b->threads, .m = m},
        {.sys = PROCS, .name = PROCS_COPIED, .pool = b->procs, .m = m},
        {.sys = PROCS, .name = PROCS_SHARED, .pool = b->procs, .m = sm},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const struct run *r = &runs[i];
        const char *name = name_of(r);
        uint64_t *o = r->m.out;
        for (int k = -1; k < b->reps; k++) {
            if (k < 0)
                bench_progress(b, "%s %s, warm-up", name, param);
            else
                bench_progress(b, "%s %s, run %d of %d", name, param, k + 1,
                               b->reps);
            for (int c = 0; c < calls; c++) {
                memset(o, 0, n * sizeof *o);
                for (size_t j = 0; j < n; j++)
                    status[j] = INT_MIN;
                mproc_task *task;
                int rc = mproc_submit(r->pool,
                                      &(mproc_job){.fn = bench_burn,
                                                   .in = r->m.in,
                                                   .in_size = sizeof *in,
                                                   .out = o,
                                                   .out_size = sizeof *o,
                                                   .n = n,
                                                   .status = status},
                                      &task);
                if (rc)
                    bench_fail("cancel: %s: mproc_submit: %s", name,
                               mproc_strerror(rc));
                /* 2 ms for the map to be well under way, then a step of
                   0.379 item lengths per call: the cancel's phase within
                   the running items goes round, not the same each time. */
                double delay_us =
                    2000 + item_us * (double)((c * 379) % 1000) / 1000;
                struct timespec ts = {0, (long)(delay_us * 1000)};
                nanosleep(&ts, NULL);
                double t0 = bench_now();
                rc = mproc_task_cancel(task);
                if (!rc)
                    rc = mproc_task_wait(task, -1);
                t[c] = bench_now() - t0;
                mproc_task_free(task);
                if (rc < 0)
                    bench_fail("cancel: %s: %s", name, mproc_strerror(rc));
                /* Every item has its code: 0 with its result, or cancelled;
                   the wait counts the cancelled ones. */
                size_t cancelled = 0;
                for (size_t j = 0; j < n; j++) {
                    if (status[j] == MPROC_ECANCELED)
                        cancelled++;
                    else if (status[j] || o[j] != want[j % 4])
                        bench_fail("cancel: %s: item %zu: status %d, result %s",
                                   name, j, status[j],
                                   o[j] == want[j % 4] ? "right" : "wrong");
                }
                if (!cancelled || cancelled != (size_t)rc)
                    bench_fail("cancel: %s: %zu items cancelled, the wait "
                               "returned %d",
                               name, cancelled, rc);
            }
            if (k >= 0)
                bench_stats(t, calls, &s[k], &lo, &hi);
        }
        scale(s, b->reps, 1e6);
        struct bench_row *row =
            bench_row("cancel", name, param, "us", s, b->reps);
        row->ratio = row->median / item_us;
    }
    free(in);
    free(out);
    free(status);
    free(t);
    mproc_shared_free(b->procs, s_in);
    mproc_shared_free(b->procs, s_out);
}

static void cancel(struct bench *b)
{
    const int calls = b->quick ? 5 : 20;
    cancel_case(b, "item=1ms", 1000, 2000, calls);
    cancel_case(b, "item=10us", 10, 200000, calls);
}

/* ---- opening and closing a pool ------------------------------------------------ */

static void open_close(struct bench *b)
{
    const int ws[] = {1, 2, 8, 32};
    /* Processes first: opening one forks, which copies the caller's page
       tables, and a pool of 32 threads leaves 32 cached stacks behind. */
    const mproc_kind kinds[] = {MPROC_PROCESSES, MPROC_PROCESSES,
                                MPROC_THREADS};
    const mproc_start starts[] = {MPROC_START_FORK, MPROC_START_SPAWN,
                                  MPROC_START_FORK};
    const char *params[4];
    char pbuf[4][24];
    double s[BENCH_MAX_REPS];
    for (int k = 0; k < 3; k++) {
        const char *name = kinds[k] == MPROC_THREADS ? names[THREADS]
                           : starts[k] == MPROC_START_SPAWN ? PROCS_SPAWN
                                                            : names[PROCS];
        for (int i = 0; i < 4; i++) {
            snprintf(pbuf[i], sizeof pbuf[i], "workers=%d", ws[i]);
            params[i] = pbuf[i];
            for (int r = -1; r < b->reps; r++) {
                if (r < 0)
                    bench_progress(b, "%s %s, warm-up", name, params[i]);
                else
                    bench_progress(b, "%s %s, run %d of %d", name, params[i],
                                   r + 1, b->reps);
                double t0 = bench_now();
                mproc_pool *p = open_started(kinds[k], ws[i], starts[k]);
                mproc_pool_close(p);
                if (r >= 0)
                    s[r] = (bench_now() - t0) * 1e3;
            }
            bench_row("open", name, params[i], "ms", s, b->reps);
        }
    }

    struct bench_py py[16];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --n 1,2,8,32", b->reps);
    int n = python(b, "open", args, py, 16);
    python_scaled("open", py, n, params, (double[]){1e3, 1e3, 1e3, 1e3}, 4,
                  "ms");

    /* The target is for a small caller: the probe, which links libmproc
       alone (this bench's process loads Open MPI, whose mappings every fork
       copies). */
    const char *why = NULL;
    int np = bench_probe(b, 8, py, 16, &why);
    if (np < 0) {
        bench_row_missing("open", PROCS_SMALL, "workers=8", why);
        bench_row_missing("open", PROCS_SPAWN_SMALL, "workers=8", why);
    }
    for (int i = 0; i < np; i++) {
        scale(py[i].s, py[i].n, 1e3);
        bench_row("open",
                  !strcmp(py[i].system, "spawn") ? PROCS_SPAWN_SMALL
                                                 : PROCS_SMALL,
                  py[i].param, "ms", py[i].s, py[i].n);
    }
    bench_target("open", PROCS_SMALL, "workers=8", BENCH_BELOW, 3, 0);
}

/* ---- opening from a large caller ---------------------------------------------- */

/*
 * Opening a process pool forks the supervisor from the caller and the
 * workers from the supervisor: each fork copies the page tables of the
 * caller's private memory (memory the workers must see as it was at open),
 * and each exit tears its copy down. So open + close grows with what the
 * caller holds. The anchor is one fork + _exit + waitpid of the same
 * caller: open + close of 8 workers costs about 9 of them. The spawn start
 * forks only the supervisor; its workers are posix_spawn'ed fresh runs,
 * whose cost is the program's start-up, not the caller's size.
 */
static double fork_once(void)
{
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        bench_fail("large caller: fork: %s", strerror(errno));
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return bench_now() - t0;
}

static void large_open(struct bench *b)
{
    const size_t mbs[] = {10, 100, 500, 2000};
    const int nmb = b->quick ? 2 : 4;
    double s[BENCH_MAX_REPS];
    char param[24];
    for (int i = 0; i < nmb; i++) {
        size_t size = mbs[i] << 20;
        char *held = malloc(size);
        if (!held)
            bench_fail("large caller: out of memory (%zu MB)", mbs[i]);
        memset(held, 1, size); /* resident, as a program's data is */
        snprintf(param, sizeof param, "caller=+%zuMB", mbs[i]);
        for (int r = -1; r < b->reps; r++) {
            bench_progress(b, "fork of a caller of +%zu MB, run %d", mbs[i],
                           r + 1);
            double t = fork_once();
            if (r >= 0)
                s[r] = t * 1e3;
        }
        bench_row("large_open", "fork + exit + wait", param, "ms", s, b->reps);
        for (int r = -1; r < b->reps; r++) {
            bench_progress(b, "8 process workers, caller of +%zu MB, run %d",
                           mbs[i], r + 1);
            double t0 = bench_now();
            mproc_pool *p = open_pool(MPROC_PROCESSES, 8);
            mproc_pool_close(p);
            if (r >= 0)
                s[r] = (bench_now() - t0) * 1e3;
        }
        bench_row("large_open", "mproc processes, workers=8", param, "ms", s,
                  b->reps);
        for (int r = -1; r < b->reps; r++) {
            bench_progress(b, "8 spawned workers, caller of +%zu MB, run %d",
                           mbs[i], r + 1);
            double t0 = bench_now();
            mproc_pool *p = open_started(MPROC_PROCESSES, 8, MPROC_START_SPAWN);
            mproc_pool_close(p);
            if (r >= 0)
                s[r] = (bench_now() - t0) * 1e3;
        }
        bench_row("large_open", "mproc processes, spawn, workers=8", param,
                  "ms", s, b->reps);
        free(held);
    }
    /* Ratio: open + close over one fork of the same caller. */
    bench_ratios("large_open", "fork + exit + wait", 0);
}

/* ---- uneven items ---------------------------------------------------------------- */

/* The uneven workload's "ideal" line: the sum of Python's item costs. */
static double python_ideal(const struct bench_py *rows, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].system, "ideal"))
            return rows[i].s[0];
    return 0;
}

static void uneven(struct bench *b)
{
    const size_t n = b->quick ? 1000 : 4000;
    uint64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    expected = malloc(n * sizeof *expected);
    if (!in || !out || !expected)
        bench_fail("uneven items: out of memory");
    /* Costs uniform in [1, 100] us, from a fixed seed (xorshift64). */
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double us = 1 + 99 * (double)(x >> 11) / 9007199254740992.0;
        in[i] = (uint64_t)(us * b->spins_per_us);
    }
    for (size_t i = 0; i < n; i++)
        expected[i] = bench_chain(in[i]);
    uint64_t *s_in = mproc_shared_alloc(b->procs, n * sizeof *s_in);
    uint64_t *s_out = mproc_shared_alloc(b->procs, n * sizeof *s_out);
    if (!s_in || !s_out)
        bench_fail("uneven items: out of memory");
    memcpy(s_in, in, n * sizeof *in);
    struct bench_map m = {bench_burn, NULL,        in, sizeof *in,
                          out,        sizeof *out, n};
    struct bench_map sm = {bench_burn, NULL,          s_in, sizeof *s_in,
                           s_out,      sizeof *s_out, n};
    char param[24];
    n_param(param, sizeof param, n);
    double serial, lo, hi, v[BENCH_MAX_REPS];
    struct run runs[] = {
        {.sys = SERIAL, .m = m},
        {.sys = OMP_GUIDED, .threads = b->cores, .m = m},
        {.sys = OMP_DYNAMIC, .threads = b->cores, .m = m},
        {.sys = THREADS, .pool = b->threads, .m = m},
        {.sys = PROCS, .name = PROCS_COPIED, .pool = b->procs, .m = m},
        {.sys = PROCS, .name = PROCS_SHARED, .pool = b->procs, .m = sm},
    };
    const size_t nruns = sizeof runs / sizeof *runs;
    run_all(b, runs, nruns, param, false, clear_u64, check_expected);
    add_row("uneven", &runs[0], param, "ms", 1e3, false);
    memcpy(v, runs[0].s, (size_t)runs[0].reps * sizeof *v);
    bench_stats(v, runs[0].reps, &serial, &lo, &hi);
    /* Efficiency: the serial time over workers x the time taken. */
    for (size_t i = 1; i < nruns; i++)
        add_row("uneven", &runs[i], param, "%", 100 * serial / b->cores, true);
    free(in);
    free(out);
    free(expected);
    mproc_shared_free(b->procs, s_in);
    mproc_shared_free(b->procs, s_out);

    struct bench_py py[8];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --workers %d --n %zu", b->reps,
             b->cores, n);
    int np = python(b, "uneven", args, py, 8);
    double ideal = python_ideal(py, np);
    for (int i = 0; i < np && ideal > 0; i++) {
        const char *name = py_name(py[i].system);
        if (!name)
            continue;
        for (int k = 0; k < py[i].n; k++)
            py[i].s[k] = 100 * ideal / (b->cores * py[i].s[k]);
        bench_row("uneven", name, py[i].param, "%", py[i].s, py[i].n);
    }

    /* Ratios: efficiency is already over the ideal. */
    const char *all[] = {names[OMP_GUIDED], names[OMP_DYNAMIC], names[THREADS],
                         PROCS_COPIED,      PROCS_SHARED,       PY_POOL,
                         PY_THREADPOOL};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        struct bench_row *row = bench_find("uneven", all[i], param);
        if (row && !row->note)
            row->ratio = row->median / 100;
    }
    bench_target("uneven", names[THREADS], param, BENCH_AT_LEAST, 95, 0);
    bench_target("uneven", PROCS_COPIED, param, BENCH_AT_LEAST, 95, 0);
    bench_target("uneven", PROCS_SHARED, param, BENCH_AT_LEAST, 95, 0);
}

/* ---- large items ----------------------------------------------------------------- */

static void clear_big(const struct bench_map *m)
{
    memset(m->out, 0, m->n * BENCH_BIG);
}

static void check_big(const struct bench_map *m, const char *who)
{
    const unsigned char *in = m->in, *out = m->out;
    for (size_t i = 0; i < m->n * BENCH_BIG; i++)
        if (out[i] != (unsigned char)(in[i] + 1))
            bench_fail("large items: %s: byte %zu is wrong", who, i);
}

static void large(struct bench *b)
{
    const size_t n = b->quick ? 4096 : 16384, bytes = n * BENCH_BIG;
    unsigned char *in = malloc(bytes), *out = malloc(bytes);
    unsigned char *s_in = mproc_shared_alloc(b->procs, bytes);
    unsigned char *s_out = mproc_shared_alloc(b->procs, bytes);
    if (!in || !out || !s_in || !s_out)
        bench_fail("large items: out of memory");
    for (size_t i = 0; i < bytes; i++)
        in[i] = s_in[i] = (unsigned char)(i * 7 + i / BENCH_BIG);
    struct bench_map m = {bench_big, NULL, in, BENCH_BIG, out, BENCH_BIG, n};
    struct bench_map sm = {bench_big, NULL,      s_in, BENCH_BIG,
                           s_out,     BENCH_BIG, n};
    char param[24];
    n_param(param, sizeof param, n);
    /* Bytes in plus bytes out, per second. */
    const double gbs = 2.0 * (double)bytes / 1e9;
    struct run runs[] = {
        {.sys = SERIAL, .m = m},
        {.sys = OMP_GUIDED, .threads = b->cores, .m = m},
        {.sys = OMP_DYNAMIC, .threads = b->cores, .m = m},
        {.sys = THREADS, .pool = b->threads, .m = m},
        {.sys = PROCS, .name = PROCS_COPIED, .pool = b->procs, .m = m},
        {.sys = PROCS, .name = PROCS_SHARED, .pool = b->procs, .m = sm},
    };
    const size_t nruns = sizeof runs / sizeof *runs;
    run_all(b, runs, nruns, param, false, clear_big, check_big);
    for (size_t i = 0; i < nruns; i++)
        add_row("large", &runs[i], param, "GB/s", gbs, true);
    free(in);
    free(out);
    mproc_shared_free(b->procs, s_in);
    mproc_shared_free(b->procs, s_out);

    struct bench_py py[8];
    char args[96];
    snprintf(args, sizeof args, "--reps %d --workers %d --n %zu", b->reps,
             b->cores, n);
    int np = python(b, "large", args, py, 8);
    for (int i = 0; i < np; i++) {
        const char *name = py_name(py[i].system);
        if (!name || strcmp(py[i].param, param))
            continue;
        for (int k = 0; k < py[i].n; k++)
            py[i].s[k] = gbs / py[i].s[k];
        bench_row("large", name, param, "GB/s", py[i].s, py[i].n);
    }
    bench_ratios("large", names[OMP_GUIDED], 0);
}

const struct bench_workload bench_workloads[] = {
    {"sleep", "the notebook's sleep cell: 10 x 100 ms on 5 workers, seconds",
     "median over the ideal, 0.200 s", sleep_cell},
    {"cpu", "the notebook's CPU-bound cell: 10 items, speedup over 1 worker",
     "speedup over the ideal, min(workers, cores)", cpu_cell},
    {"trivial", "trivial items: a + b, nanoseconds per item",
     "time over OpenMP guided's", trivial},
    {"latency", "a map of one item on a warm pool: microseconds",
     "time over OpenMP guided's (a parallel for of one item)", latency},
    {"cancel",
     "cancelling a long map: microseconds from mproc_task_cancel until "
     "mproc_task_wait returns (mproc only)",
     "median over one item's time (items running finish first)", cancel},
    {"kill",
     "stopping hung items, one per worker of 2: milliseconds from "
     "mproc_task_kill until mproc_task_wait returns, and until the pool has "
     "mapped again; from mproc_pool_terminate (Python: Pool.terminate() and "
     "join()) until it returns",
     "time over mproc_pool_terminate's", bench_kill},
    {"open", "opening and closing a pool: milliseconds", NULL, open_close},
    {"large_open",
     "opening and closing 8 process workers from a large caller (the "
     "caller's resident memory on top of the bench's): milliseconds",
     "time over one fork + exit + wait of the same caller", large_open},
    {"uneven",
     "uneven items (1 to 100 us each): efficiency, serial C time over "
     "workers x time",
     "efficiency over the ideal, 100%", uneven},
    {"large", "large items (4 KiB in, 4 KiB out): GB/s in and out",
     "throughput over OpenMP guided's", large},
    {"run",
     "commands, 2 at a time (mproc run, xargs -P, GNU parallel): "
     "microseconds per command that does nothing (true); seconds and peak "
     "MB for 20 commands printing 10 MB each (10MB out)",
     "over xargs -P's", bench_run_commands},
    {"mpi",
     "mproc on MPI ranks (under mpirun) beside threads: ns per trivial item "
     "with fn and with batch; us for a warm map of one item",
     NULL, bench_mpi_ranks},
    {"claims",
     "a stand-in for many cores: millions of claims (a fetch-add and 40 "
     "ns of work) a second, all threads together, on one counter and on a "
     "counter each; ns per handoff of the counter's line",
     NULL, bench_claims},
};
const int bench_nworkloads = sizeof bench_workloads / sizeof *bench_workloads;
