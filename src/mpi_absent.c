/*
 * A build without MPI: the kind MPROC_MPI is refused when a pool opens
 * (pool.c, check_options), before anything here could be reached.
 */
#include "internal.h"

bool mproc__mpi_built(void)
{
    return false;
}

int mproc__mpi_open(mproc_pool *pool)
{
    (void)pool;
    return MPROC_ENOTSUP;
}

void mproc__mpi_close(mproc_pool *pool)
{
    (void)pool;
}

bool mproc__mpi_spare_cores(void)
{
    return false;
}
