/*
 * The notebook's shared total, done right. Eight items each add 5 on a pool
 * of worker processes: a plain global stays 0 in the caller (each worker adds
 * to its own copy, made when the pool opened), while an _Atomic long in the
 * pool's shared arena is one memory in every process and ends at 40. Then a
 * bigger map whose input and output arrays live in the arena: nothing copied.
 *
 *   cc arena_total.c $(pkg-config --cflags --libs mproc) -o arena_total
 */
#include <mproc.h>
#include <stdatomic.h>
#include <stdio.h>

enum { N = 100000 };

static long plain_total; /* each worker process has its own copy */

static int add(const void *in, void *out, void *arg)
{
    _Atomic long *total = arg; /* in the arena: the same object everywhere */
    (void)out;
    plain_total += *(const int *)in;
    atomic_fetch_add_explicit(total, *(const int *)in, memory_order_relaxed);
    return 0;
}

static int square(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in * *(const long *)in;
    return 0;
}

static int check(const char *what, int r)
{
    if (r != 0)
        fprintf(stderr, "%s: %s\n", what,
                r < 0 ? mproc_strerror(r) : "items failed");
    return r != 0;
}

int main(void)
{
    mproc_pool *pool;
    int r = mproc_pool_open(
        &pool, &(mproc_options){.workers = 2, .shared_size = 4 << 20});
    if (check("open", r))
        return 1;
    int ok = 0;
    void *total = mproc_shared_alloc(pool, sizeof(_Atomic long)); /* zeroed */
    long *in = mproc_shared_alloc(pool, N * sizeof *in);
    long *out = mproc_shared_alloc(pool, N * sizeof *out);
    if (!total || !in || !out) {
        perror("mproc_shared_alloc");
        goto done;
    }
    int fives[8] = {5, 5, 5, 5, 5, 5, 5, 5};
    r = mproc_map(pool, &(mproc_job){.fn = add,
                                     .in = fives,
                                     .in_size = sizeof fives[0],
                                     .n = 8,
                                     .arg = total}); /* arg_size 0: as is */
    if (check("map add", r))
        goto done;
    long shared = atomic_load((_Atomic long *)total);
    printf("plain global: %ld, shared total: %ld\n", plain_total, shared);

    for (long i = 0; i < N; i++)
        in[i] = i; /* written after open: workers see it, it is the arena */
    r = MPROC_MAP(pool, square, in, out,
                  N); /* zero copy: in and out in the arena */
    if (check("map square", r))
        goto done;
    long bad = 0;
    for (long i = 0; i < N; i++)
        bad += out[i] != i * i;
    printf("%d squares in the arena, %ld wrong\n", N, bad);
    ok = plain_total == 0 && shared == 40 && bad == 0;
done:
    mproc_shared_free(pool, out);
    mproc_shared_free(pool, in);
    mproc_shared_free(pool, total);
    if (check("close", mproc_pool_close(pool)))
        ok = 0;
    return ok ? 0 : 1;
}
