/*
 * A reduction on worker processes: the sum and the largest of the squares of
 * 1..1000000, folded into one struct with no atomics and no array of results
 * (out = NULL). Each worker folds its own items into a private partial; the
 * caller folds the partials into acc, so reduce must be associative and
 * commutative, and acc starts as its identity.
 *
 *   cc reduce_sum.c $(pkg-config --cflags --libs mproc) -o reduce_sum
 */
#include <limits.h>
#include <mproc.h>
#include <stdio.h>

enum { N = 1000000 };

struct stats {
    long sum, max;
};

static int square(const void *in, void *out, void *arg)
{
    long v = *(const long *)in;
    (void)arg;
    *(struct stats *)out = (struct stats){v * v, v * v};
    return 0;
}

static void fold(void *acc, const void *result, void *arg)
{
    struct stats *a = acc;
    const struct stats *r = result;
    (void)arg;
    a->sum += r->sum;
    if (r->max > a->max)
        a->max = r->max;
}

int main(void)
{
    static long in[N];
    for (long i = 0; i < N; i++)
        in[i] = i + 1;
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, NULL); /* processes, one per CPU */
    if (r < 0) {
        fprintf(stderr, "open: %s\n", mproc_strerror(r));
        return 1;
    }
    struct stats total = {.sum = 0, .max = LONG_MIN}; /* the identity */
    r = mproc_map(pool,
                  &(mproc_job){.fn = square,
                               .in = in,
                               .in_size = sizeof in[0],
                               .out = NULL, /* results are not kept ... */
                               .out_size = sizeof total, /* ... but sized */
                               .n = N,
                               .reduce = fold,
                               .acc = &total});
    int c = mproc_pool_close(pool);
    if (r != 0 || c != 0) {
        fprintf(stderr, "map: %s, close: %s\n",
                r > 0 ? "items failed" : mproc_strerror(r), mproc_strerror(c));
        return 1;
    }
    long n = N, want = n * (n + 1) * (2 * n + 1) / 6;
    printf("sum of squares of 1..%ld: %ld, largest %ld\n", n, total.sum,
           total.max);
    return total.sum == want && total.max == n * n ? 0 : 1;
}
