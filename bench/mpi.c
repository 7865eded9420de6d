/*
 * mproc on MPI ranks, measured: the workloads of mproc bench that make sense
 * across ranks, run on the pool of every rank but 0, beside serial C on
 * rank 0 in the same run. Run by bench/mpi.sh under mpirun; prints markdown.
 *
 * Every rank calls mproc_pool_open; the other ranks serve in it and exit
 * when rank 0 closes the pool, so main's code after the open is rank 0's.
 * Figures: the median of REPS repetitions, with their spread.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 7

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct figure {
    double median, lo, hi;
};

static struct figure summary(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return (struct figure){v[n / 2], v[0], v[n - 1]};
}

static void row(const char *what, const char *unit, struct figure f,
                const char *note)
{
    printf("| %s | %.4g %s | %.4g-%.4g | %s |\n", what, f.median, unit, f.lo,
           f.hi, note);
}

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "mpi bench: %s: %s\n", what,
                r < 0 ? mproc_strerror(r) : "items failed");
        exit(1);
    }
}

/* Spin for the item's own cost, in microseconds, on the clock. */
static int spin_us(const void *in, void *out, void *arg)
{
    (void)arg;
    double until = now() + (double)*(const int *)in / 1e6;
    while (now() < until)
        ;
    *(int *)out = 1;
    return 0;
}

int main(void)
{
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &(mproc_options){.kind = MPROC_MPI});
    if (r) {
        fprintf(stderr,
                "mpi bench: open: %s (run under mpirun, 2 ranks or more)\n",
                mproc_strerror(r));
        return 1;
    }
    int w = mproc_pool_size(pool);
    printf("mproc on MPI ranks: %d worker ranks (rank 0 is the caller); "
           "each figure the median of %d runs\n\n",
           w, REPS);
    printf("| workload | median | spread | reference |\n|---|---|---|---|\n");
    double v[REPS];

    /* Trivial items: what handing out an item costs. */
    size_t n = 1000000;
    bench_pair *pairs = malloc(n * sizeof *pairs);
    int *sums = malloc(n * sizeof *sums);
    for (size_t i = 0; i < n; i++)
        pairs[i] = (bench_pair){(int)i, 1};
    for (int k = 0; k < REPS; k++) {
        double t0 = now();
        check(MPROC_MAP(pool, bench_add, pairs, sums, n), "trivial");
        v[k] = (now() - t0) / (double)n * 1e9;
        for (size_t i = 0; i < n; i++)
            if (sums[i] != (int)i + 1)
                check(1, "trivial: a wrong sum");
    }
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        bench_add(&pairs[i], &sums[i], NULL);
    double serial = (now() - t0) / (double)n * 1e9;
    char note[160];
    snprintf(note, sizeof note,
             "serial C on rank 0: %.3g ns; 8 bytes in, 4 out per item", serial);
    row("trivial items (a + b), 10^6, per item", "ns", summary(v, REPS), note);

    /* A warm map of one item: the round trip to a rank. */
    for (int k = 0; k < REPS; k++) {
        double lat[1001];
        for (int i = 0; i < 1001; i++) {
            double a = now();
            check(MPROC_MAP(pool, bench_add, pairs, sums, 1), "latency");
            lat[i] = (now() - a) * 1e6;
        }
        v[k] = summary(lat, 1001).median;
    }
    row("a warm map of one item", "us", summary(v, REPS),
        "median of 1001 maps per run");

    /* CPU-bound: the notebook's cell, 10 items of ~70 ms, then one per rank. */
    uint64_t steps[64], outs[64];
    double steps_per_us = bench_calibrate();
    size_t cn = 10;
    for (size_t i = 0; i < cn; i++)
        steps[i] = (uint64_t)(70000 * steps_per_us);
    t0 = now();
    for (size_t i = 0; i < cn; i++)
        bench_burn(&steps[i], &outs[i], NULL);
    double cserial = now() - t0;
    for (int k = 0; k < REPS; k++) {
        double a = now();
        check(MPROC_MAP(pool, bench_burn, steps, outs, cn), "cpu");
        v[k] = cserial / (now() - a);
    }
    snprintf(note, sizeof note, "serial on rank 0 %.3f s; ideal min(%d, cores)",
             cserial, w);
    row("CPU-bound cell, speedup over serial", "x", summary(v, REPS), note);

    /* Uneven items: 1 to 100 us drawn, efficiency against their sum. */
    size_t un = 4000;
    int *cost = malloc(un * sizeof *cost), *done = malloc(un * sizeof *done);
    double sum = 0;
    srand(7);
    for (size_t i = 0; i < un; i++) {
        cost[i] = 1 + rand() % 100;
        sum += cost[i] / 1e6;
    }
    for (int k = 0; k < REPS; k++) {
        double a = now();
        check(MPROC_MAP(pool, spin_us, cost, done, un), "uneven");
        v[k] = 100.0 * sum / ((now() - a) * w);
    }
    row("uneven items (1-100 us), efficiency", "%", summary(v, REPS),
        "sum of item costs over workers x time");

    /* The notebook's sleep cell: 10 x 100 ms. */
    bench_pair ten[10];
    int tres[10];
    for (int i = 0; i < 10; i++)
        ten[i] = (bench_pair){10, i + 1};
    for (int k = 0; k < REPS; k++) {
        double a = now();
        check(MPROC_MAP(pool, bench_slow_add, ten, tres, 10), "sleep");
        v[k] = now() - a;
    }
    snprintf(note, sizeof note, "ideal %.3f s: 10 sleeps of 0.1 s on %d ranks",
             0.1 * (double)((10 + w - 1) / w), w);
    row("the notebook's sleep cell", "s", summary(v, REPS), note);

    free(pairs);
    free(sums);
    free(cost);
    free(done);
    mproc_pool_close(pool);
    return 0;
}
