/*
 * Tiny items, a run at a time: job.batch. A map of a million additions
 * where each item costs about a nanosecond spends most of its time in the
 * call per item; MPROC_BATCH_FN writes the loop around an inline item, so
 * the compiler inlines (and vectorises) it, and the pool calls it once per
 * run of items. Results, codes and the fold are as with fn: here every
 * item whose sum is a multiple of a million fails with code 1, and the
 * others are summed.
 *
 *   cc batch_sum.c $(pkg-config --cflags --libs mproc) -o batch_sum
 */
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 1000000 };

struct pair {
    int x, y;
};

static inline int add(const struct pair *in, long *out, void *arg)
{
    (void)arg;
    *out = (long)in->x + in->y;
    return *out % 1000000 == 0; /* fails, as an example of a code */
}

MPROC_BATCH_FN(add_batch, add, struct pair, long)

static void sum(void *acc, const void *result, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)result;
}

int main(void)
{
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &(mproc_options){.shared_size = 64 << 20});
    if (r < 0) {
        fprintf(stderr, "open: %s\n", mproc_strerror(r));
        return 1;
    }
    /* In the arena, the items are not copied for the workers. */
    struct pair *in = mproc_shared_alloc(pool, N * sizeof *in);
    long *out = mproc_shared_alloc(pool, N * sizeof *out);
    if (!in || !out) {
        fprintf(stderr, "arena: out of memory\n");
        return 1;
    }
    for (int i = 0; i < N; i++)
        in[i] = (struct pair){i, 1};
    long total = 0;
    r = mproc_map(pool, &(mproc_job){.batch = add_batch,
                                     .in = in,
                                     .in_size = sizeof *in,
                                     .out = out,
                                     .out_size = sizeof *out,
                                     .n = N,
                                     .reduce = sum,
                                     .acc = &total});
    /* Every item is folded, failed or not: 1 + 2 + ... + N. */
    long want = (long)N * (N + 1) / 2;
    printf("%d items failed (want %d); total %ld (want %ld)\n", r, N / 1000000,
           total, want);
    int bad = r != N / 1000000 || total != want || out[N - 1] != N;
    mproc_shared_free(pool, in);
    mproc_shared_free(pool, out);
    mproc_pool_close(pool);
    return bad;
}
