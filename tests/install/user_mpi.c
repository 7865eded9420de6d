/* A user's MPI program, built against the installed library and its MPI
   backend (find_package(mproc COMPONENTS mpi), or pkg-config mproc_mpi):
   under mpirun, rank 0 maps on the other ranks and checks the results. */
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
    mproc_pool *pool;
    /* Returns on rank 0 only; the other ranks serve until it closes. */
    int r = mproc_pool_open(&pool, &(mproc_options){.kind = MPROC_MPI});
    if (r < 0) {
        fprintf(stderr, "open: %s\n", mproc_strerror(r));
        return 1;
    }
    int workers = mproc_pool_size(pool);
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
    printf("ok on %d ranks\n", workers);
    return 0;
}
