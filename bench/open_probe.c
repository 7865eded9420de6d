/*
 * Open + close of a process pool from a small caller: this program, which
 * links libmproc alone. The mproc tool that runs the bench loads Open MPI
 * (a few hundred mappings, each copied by every fork), so its own opens
 * measure a large caller; the target for a small caller is measured here.
 * mproc bench runs it and reads its lines, as it reads pool_bench.py's:
 *
 *   mproc-open-probe WORKERS REPS     prints, in milliseconds,
 *   fork workers=N s1 s2 ...
 *   spawn workers=N s1 s2 ...
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int workers = argc > 1 ? atoi(argv[1]) : 8;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (workers < 1 || workers > 1024 || reps < 1 || reps > 50) {
        fprintf(stderr, "usage: mproc-open-probe WORKERS(1-1024) REPS(1-50)\n");
        return 2;
    }
    for (int k = 0; k < 2; k++) {
        mproc_start start = k ? MPROC_START_SPAWN : MPROC_START_FORK;
        printf("%s workers=%d", k ? "spawn" : "fork", workers);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            mproc_pool *p;
            if (mproc_pool_open(&p, &(mproc_options){.workers = workers,
                                                     .start = start})) {
                fprintf(stderr, "mproc-open-probe: %s\n", mproc_last_error());
                return 1;
            }
            mproc_pool_close(p);
            if (r >= 0) /* the first is a warm-up */
                printf(" %.9g", now() - t0);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
