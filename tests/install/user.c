/* A program written from the README and mproc.h alone, built against the
   installed library: it maps on both kinds of pool and checks the results. */
#include <mproc.h>
#include <stdio.h>

static int cube(const void *in, void *out, void *arg)
{
    (void)arg;
    long x = *(const long *)in;
    *(long *)out = x * x * x;
    return 0;
}

int main(void)
{
    long in[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        in[i] = i;
    mproc_kind kinds[] = {MPROC_PROCESSES, MPROC_THREADS};
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool;
        int r = mproc_pool_open(
            &pool, &(mproc_options){.kind = kinds[k], .workers = 3});
        if (r < 0) {
            fprintf(stderr, "open: %s\n", mproc_strerror(r));
            return 1;
        }
        r = MPROC_MAP(pool, cube, in, out, 1000);
        mproc_pool_close(pool);
        if (r != 0) {
            fprintf(stderr, "map: %d\n", r);
            return 1;
        }
        for (int i = 0; i < 1000; i++)
            if (out[i] != (long)i * i * i) {
                fprintf(stderr, "out[%d] = %ld\n", i, out[i]);
                return 1;
            }
    }
    /* Without libmproc_mpi linked, the MPI kind is refused, cleanly. */
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &(mproc_options){.kind = MPROC_MPI});
    if (r != MPROC_ENOTSUP) {
        fprintf(stderr, "MPI open without the backend: %s\n",
                mproc_strerror(r));
        return 1;
    }
    puts("ok");
    return 0;
}
