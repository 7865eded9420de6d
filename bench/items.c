/*
 * The items every system runs, and the serial loops.
 *
 * These live in their own translation unit and are always called through a
 * pointer, so that no system gets them inlined: mproc cannot inline a
 * caller's function, and the comparison is of what it costs to hand items
 * out, not of what the compiler makes of a + b. bench_add_inlined is the
 * exception, kept as a reference for what the hardware does without calls,
 * and so is bench_add_batch: job.batch is how mproc hands the compiler the
 * loop, a run of items per call.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <time.h>

int bench_add(const void *in, void *out, void *arg)
{
    const bench_pair *p = in;
    (void)arg;
    *(int *)out = p->x + p->y;
    return 0;
}

static inline int add_item(const bench_pair *in, int *out, void *arg)
{
    (void)arg;
    *out = in->x + in->y;
    return 0;
}

MPROC_BATCH_FN(add_run, add_item, bench_pair, int)

int bench_add_batch(const void *in, void *out, size_t count, void *arg,
                    int *status)
{
    return add_run(in, out, count, arg, status);
}

/* The notebook's slow add: returns y + y (sic), after a sleep. */
int bench_slow_add(const void *in, void *out, void *arg)
{
    const bench_pair *p = in;
    (void)arg;
    struct timespec ts = {0, BENCH_SLEEP_US * 1000L};
    while (nanosleep(&ts, &ts))
        ;
    *(int *)out = p->y + p->y;
    return 0;
}

uint64_t bench_chain(uint64_t steps)
{
    uint64_t x = steps | 1;
    for (uint64_t i = 0; i < steps; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

int bench_burn(const void *in, void *out, void *arg)
{
    (void)arg;
    *(uint64_t *)out = bench_chain(*(const uint64_t *)in);
    return 0;
}

int bench_big(const void *in, void *out, void *arg)
{
    const unsigned char *a = in;
    unsigned char *b = out;
    (void)arg;
    for (int k = 0; k < BENCH_BIG; k++)
        b[k] = (unsigned char)(a[k] + 1);
    return 0;
}

double bench_calibrate(void)
{
    /* The fastest of a few runs: the chain's speed when nothing interferes,
       which is what the workloads' item costs are meant in. */
    const uint64_t steps = 2000000;
    double best = 1e9;
    for (int i = 0; i < 7; i++) {
        double t0 = bench_now();
        volatile uint64_t sink = bench_chain(steps + (uint64_t)i);
        (void)sink;
        double t = bench_now() - t0;
        if (t < best)
            best = t;
    }
    return (double)steps / (best * 1e6);
}

void bench_serial(const struct bench_map *m)
{
    const char *in = m->in;
    char *out = m->out;
    for (size_t i = 0; i < m->n; i++)
        m->fn(in + i * m->in_size, out + i * m->out_size, NULL);
}

void bench_add_inlined(const bench_pair *in, int *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i].x + in[i].y;
}
