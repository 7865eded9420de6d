/*
 * A build without MPI: the kind MPROC_MPI is refused when a pool opens, by
 * its check, before anything else of it could be reached.
 */
#include "kind.h"

static int check(const mproc_options *o)
{
    (void)o;
    return MPROC_ENOTSUP;
}

const struct mproc__kind mproc__kind_mpi = {
    .name = "mpi",
    .check = check,
};
