/*
 * job.arg, the parameters every item of one map shares, two ways.
 * With arg_size > 0 the bytes at arg are copied once per map, so the caller
 * may change its struct right after mproc_submit and submit again with new
 * values. With arg_size 0 the pointer is passed as is: here a table in the
 * shared arena, filled and then changed after the pool opened, which process
 * workers see as it is when each map runs.
 *
 *   cc arg_scale.c $(pkg-config --cflags --libs mproc) -o arg_scale
 */
#include <mproc.h>
#include <stdio.h>

enum { N = 1000, K = 16 };

struct scale {
    long mul, add;
};

static int affine(const void *in, void *out, void *arg)
{
    const struct scale *s = arg;
    *(long *)out = *(const long *)in * s->mul + s->add;
    return 0;
}

static int lookup(const void *in, void *out, void *arg)
{
    const long *table = arg;
    *(long *)out = table[*(const long *)in % K];
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
    static long in[N], a[N], b[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    mproc_pool *pool;
    if (check("open",
              mproc_pool_open(&pool, &(mproc_options){.workers = 2,
                                                      .shared_size = 1 << 16})))
        return 1;
    struct scale s = {.mul = 2, .add = 1};
    mproc_job job = {.fn = affine,
                     .in = in,
                     .in_size = sizeof in[0],
                     .out = a,
                     .out_size = sizeof a[0],
                     .n = N,
                     .arg = &s,
                     .arg_size = sizeof s};
    mproc_task *t1 = NULL, *t2 = NULL;
    int bad = check("submit", mproc_submit(pool, &job, &t1));
    s = (struct scale){.mul = 10, .add = 0}; /* t1 keeps its copy of {2, 1} */
    job.out = b; /* the job struct may be reused too */
    bad = bad || check("submit", mproc_submit(pool, &job, &t2));
    bad = bad || check("wait", mproc_task_wait(t1, -1));
    bad = bad || check("wait", mproc_task_wait(t2, -1));
    for (long i = 0; i < N && !bad; i++)
        bad = a[i] != 2 * i + 1 || b[i] != 10 * i;
    printf("arg copied per map: %s\n",
           bad ? "WRONG" : "a[i] = 2i+1, b[i] = 10i");

    long *table = mproc_shared_alloc(pool, K * sizeof *table);
    if (!table) {
        perror("mproc_shared_alloc");
        bad = 1;
    }
    job = (mproc_job){.fn = lookup,
                      .in = in,
                      .in_size = sizeof in[0],
                      .out = a,
                      .out_size = sizeof a[0],
                      .n = N,
                      .arg = table}; /* arg_size 0 */
    for (int pass = 1; pass <= 2 && !bad; pass++) {
        for (int k = 0; k < K; k++)
            table[k] = pass * 100 + k; /* after open: only the arena is seen */
        bad = check("map", mproc_map(pool, &job));
        for (long i = 0; i < N && !bad; i++)
            bad = a[i] != pass * 100 + i % K;
        printf("arena table, pass %d: %s\n", pass,
               bad ? "WRONG" : "seen as changed");
    }
    mproc_task_free(t1);
    mproc_task_free(t2);
    mproc_shared_free(pool, table);
    bad |= check("close", mproc_pool_close(pool));
    return bad ? 1 : 0;
}
