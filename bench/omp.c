/*
 * The OpenMP systems: `#pragma omp parallel for` over the items, with a
 * guided or a dynamic schedule, each with OpenMP's default chunk (guided:
 * down to 1; dynamic: 1, what `schedule(dynamic)` gives). Built with
 * -fopenmp when CMake finds OpenMP; without it the rows say unavailable.
 */
#include "bench.h"

#ifdef _OPENMP
#include <omp.h>

long bench_omp_version(void)
{
    return _OPENMP;
}

bool bench_omp(enum bench_sched sched, int threads, const struct bench_map *m)
{
    mproc_fn fn = m->fn;
    const char *in = m->in;
    char *out = m->out;
    size_t isz = m->in_size, osz = m->out_size;
    long n = (long)m->n;

    if (sched == BENCH_GUIDED) {
#pragma omp parallel for schedule(guided) num_threads(threads)
        for (long i = 0; i < n; i++)
            fn(in + (size_t)i * isz, out + (size_t)i * osz, NULL);
    } else {
#pragma omp parallel for schedule(dynamic) num_threads(threads)
        for (long i = 0; i < n; i++)
            fn(in + (size_t)i * isz, out + (size_t)i * osz, NULL);
    }
    return true;
}

bool bench_omp_add_inlined(int threads, const bench_pair *in, int *out,
                           size_t n)
{
    long nn = (long)n;
#pragma omp parallel for schedule(guided) num_threads(threads)
    for (long i = 0; i < nn; i++)
        out[i] = in[i].x + in[i].y;
    return true;
}

#else

bool bench_omp_add_inlined(int threads, const bench_pair *in, int *out,
                           size_t n)
{
    (void)threads;
    (void)in;
    (void)out;
    (void)n;
    return false;
}

long bench_omp_version(void)
{
    return 0;
}

bool bench_omp(enum bench_sched sched, int threads, const struct bench_map *m)
{
    (void)sched;
    (void)threads;
    (void)m;
    return false;
}

#endif
