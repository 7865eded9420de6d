/*
 * One program, three kinds of worker: the notebook's CPU-bound map on
 * processes, threads or MPI ranks, chosen by one word.
 *
 *   cc any_kind.c $(pkg-config --cflags --libs mproc) -o any_kind
 *   ./any_kind processes
 *   ./any_kind threads
 *
 * and, linked with the MPI backend (without it, "mpi" is refused):
 *
 *   cc any_kind.c $(pkg-config --cflags --libs mproc_mpi) -o any_kind
 *   mpirun -np 3 ./any_kind mpi      # rank 0 prints; ranks 1 and 2 work
 *
 * Under MPI every rank runs main() from the start and calls mproc_pool_open,
 * which returns on rank 0 only: the code after it is rank 0's. So whatever
 * an item reads (here, `steps`) is set before the open, the same on every
 * rank, and whatever it needs from the caller travels as bytes: the items,
 * and `arg` with its `arg_size`.
 */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

typedef struct pair {
    long x, y;
} pair;

static long steps; /* set before the open: each rank sets its own */

/* The notebook's CPU-bound add: a long loop, then x + y. */
static int add(const void *in, void *out, void *arg)
{
    const pair *xy = in;
    long offset = *(const long *)arg;
    volatile long spin = 0;
    for (long i = 0; i < steps; i++)
        spin = spin + 1;
    *(long *)out = xy->x + xy->y + offset;
    return 0;
}

int main(int argc, char **argv)
{
    const char *word = argc > 1 ? argv[1] : "processes";
    mproc_kind kind = MPROC_PROCESSES;
    if (!strcmp(word, "threads"))
        kind = MPROC_THREADS;
    else if (!strcmp(word, "mpi"))
        kind = MPROC_MPI;
    else if (strcmp(word, "processes")) {
        fprintf(stderr, "usage: any_kind [processes|threads|mpi]\n");
        return 2;
    }
    steps = 3000000;

    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &(mproc_options){.kind = kind});
    if (r < 0) {
        fprintf(stderr, "pool of %s: %s\n", word, mproc_strerror(r));
        return 1;
    }
    pair xy[10];
    long sums[10], offset = 0;
    for (int i = 0; i < 10; i++)
        xy[i] = (pair){10, i + 1};
    r = mproc_map(pool, &(mproc_job){.fn = add,
                                     .in = xy,
                                     .in_size = sizeof *xy,
                                     .out = sums,
                                     .out_size = sizeof *sums,
                                     .n = 10,
                                     .arg = &offset,
                                     .arg_size = sizeof offset});
    printf("%d %s:", mproc_pool_size(pool), word);
    mproc_pool_close(pool);
    if (r != 0) {
        fprintf(stderr, "\nmap: %s\n",
                r < 0 ? mproc_strerror(r) : "items failed");
        return 1;
    }
    for (int i = 0; i < 10; i++) {
        printf(" %ld", sums[i]);
        if (sums[i] != xy[i].x + xy[i].y)
            return 1;
    }
    printf("\n");
    return 0;
}
