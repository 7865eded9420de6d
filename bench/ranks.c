/*
 * The `mpi` workload: mproc on MPI ranks, when `mproc bench` runs under
 * mpirun (main.c opens the MPI pool before anything else, so that every
 * rank but 0 serves in it and rank 0 alone runs the bench). Trivial items
 * with fn and with batch, and a warm map of one item, beside mproc threads
 * on rank 0's machine in the same run. Outside mpirun the rows say how to
 * get them. bench/mpi.sh runs the fuller bench_mpi (mpi.c).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPI_ROW "mproc MPI ranks"

static double map_once(mproc_pool *p, bool batch, const bench_pair *in,
                       int *out, size_t n)
{
    memset(out, 0, n * sizeof *out);
    double t0 = bench_now();
    int rc = mproc_map(p, &(mproc_job){.fn = batch ? NULL : bench_add,
                                       .batch = batch ? bench_add_batch : NULL,
                                       .in = in,
                                       .in_size = sizeof *in,
                                       .out = out,
                                       .out_size = sizeof *out,
                                       .n = n});
    double t = bench_now() - t0;
    if (rc)
        bench_fail("mpi: mproc_map: %s", mproc_strerror(rc));
    for (size_t i = 0; i < n; i++)
        if (out[i] != in[i].x + in[i].y)
            bench_fail("mpi: item %zu is %d, not %d", i, out[i],
                       in[i].x + in[i].y);
    return t;
}

void bench_mpi_ranks(struct bench *b)
{
    static const char *const params[] = {"fn, n=10^6", "batch, n=10^6",
                                         "one item"};
    if (!b->mpi) {
        for (int p = 0; p < 3; p++)
            bench_row_missing("mpi", MPI_ROW, params[p], b->no_mpi);
        return;
    }
    const size_t n = 1000000;
    bench_pair *in = malloc(n * sizeof *in);
    int *out = malloc(n * sizeof *out);
    if (!in || !out)
        bench_fail("mpi: out of memory");
    for (size_t i = 0; i < n; i++)
        in[i] = (bench_pair){(int)i, 1};
    mproc_pool *pools[] = {b->mpi, b->threads};
    const char *names[] = {MPI_ROW, "mproc threads"};
    double s[BENCH_MAX_REPS];
    for (int k = 0; k < 2; k++) {
        for (int batch = 0; batch < 2; batch++) {
            for (int r = -1; r < b->reps; r++) {
                bench_progress(b, "%s %s, run %d of %d", names[k],
                               params[batch], r + 1, b->reps);
                double t = map_once(pools[k], batch, in, out, n);
                if (r >= 0)
                    s[r] = t * 1e9 / (double)n;
            }
            bench_row("mpi", names[k], params[batch], "ns", s, b->reps);
        }
        /* The median of 1000 back-to-back maps of one item, per run. */
        for (int r = -1; r < b->reps; r++) {
            bench_progress(b, "%s one item, run %d of %d", names[k], r + 1,
                           b->reps);
            double lat[1000], lo, hi, med;
            for (int i = 0; i < 1000; i++)
                lat[i] = map_once(pools[k], false, in, out, 1) * 1e6;
            bench_stats(lat, 1000, &med, &lo, &hi);
            if (r >= 0)
                s[r] = med;
        }
        bench_row("mpi", names[k], params[2], "us", s, b->reps);
    }
    free(in);
    free(out);
}
