/* Between the two halves of process pools: the caller's side (processes.c)
   and the supervisor with its workers (supervisor.c). */
#ifndef MPROC_PROCESSES_H
#define MPROC_PROCESSES_H

#include "kind.h"

/* The supervisor's life, in the child forked by the caller at open with the
   registry lock held; caller_fd becomes readable when the caller dies. */
_Noreturn void mproc__supervisor_main(mproc_pool *pool, int caller_fd);

/* How long close gives workers to end once idle before killing them
   (supervisor.c), and, with a margin, the supervisor (processes.c). */
#define MPROC__CLOSE_GRACE (UINT64_C(10) * MPROC__NS)
static inline uint64_t mproc__close_grace(const struct mproc__board *b)
{
    return b->timeout_ns ? b->timeout_ns : MPROC__CLOSE_GRACE;
}

/* In a new supervisor: unmap and close what it inherited of the other open
   pools, then release the registry lock. */
void mproc__forget_others(mproc_pool *self);

#endif
