/*
 * A program that uses OpenMP, and a process pool whose items use OpenMP too.
 *
 * OpenMP keeps a team of threads after its first parallel region. A worker
 * forked from such a program has the runtime's state but none of its
 * threads, and its first parallel region waits for them for ever: with
 * MPROC_START_FORK every item below hangs until the pool's timeout. With
 * MPROC_START_SPAWN each worker is a fresh run of this program, whose
 * OpenMP starts from nothing, and every item is right.
 *
 *   cc -fopenmp openmp_spawn.c $(pkg-config --cflags --libs mproc) -o openmp_spawn
 *   ./openmp_spawn          # spawn: every item right
 *   ./openmp_spawn fork     # fork: every item times out (2 s)
 */
#include <mproc.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The sum 0 + 1 + ... + n-1, by OpenMP threads inside the worker. */
static int omp_sum(const void *in, void *out, void *arg)
{
    (void)arg;
    long n = *(const long *)in, s = 0;
#pragma omp parallel for reduction(+ : s) num_threads(2)
    for (long i = 0; i < n; i++)
        s += i;
    *(long *)out = s;
    return 0;
}

int main(int argc, char **argv)
{
    bool fork_start = argc > 1 && !strcmp(argv[1], "fork");

    /* The program's own OpenMP work, before the pool opens. */
    long warm = 0;
#pragma omp parallel for reduction(+ : warm) num_threads(2)
    for (long i = 0; i < 1000; i++)
        warm += i;

    mproc_pool *pool;
    int r = mproc_pool_open(
        &pool, &(mproc_options){.workers = 2,
                                .timeout = 2,
                                .start = fork_start ? MPROC_START_FORK
                                                    : MPROC_START_SPAWN});
    if (r) {
        fprintf(stderr, "open: %s\n", mproc_last_error());
        return 1;
    }
    enum { N = 8 };
    long in[N], out[N];
    int status[N];
    for (int i = 0; i < N; i++)
        in[i] = 1000L * (i + 1);
    r = mproc_map(pool, &(mproc_job){.fn = omp_sum,
                                     .in = in,
                                     .in_size = sizeof *in,
                                     .out = out,
                                     .out_size = sizeof *out,
                                     .status = status,
                                     .n = N});
    mproc_pool_close(pool);
    int right = 0;
    for (int i = 0; i < N; i++) {
        bool ok = status[i] == 0 && out[i] == in[i] * (in[i] - 1) / 2;
        right += ok;
        if (!ok)
            printf("item %d: %s\n", i, mproc_strerror(status[i]));
    }
    printf("%s: %d of %d OpenMP items right (the caller's own sum: %ld)\n",
           fork_start ? "fork" : "spawn", right, N, warm);
    return r == 0 && right == N && warm == 499500 ? 0 : 1;
}
