/*
 * The MPI backend's own declarations, shared by its two sides: rank 0's
 * proxies (mpi.c) and the ranks that serve (mpi_serve.c). Both are
 * libmproc_mpi, never libmproc.
 */
#ifndef MPROC_MPI_H
#define MPROC_MPI_H

#include "kind.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* Work per claim on a rank: a message's cost is microseconds, a network's
   tens. */
#define TARGET_NS    1000000
#define ITEM_MAX     (UINT64_C(1) << 30) /* bytes in one message's part */
#define SPIN_NS      50000
#define PROXY_NAP_NS 200000
#define IDLE_NAP_NS  1000000
#define MSG_BYTES    (8u << 20) /* a chunk is sent in pieces of about this */
#define IN_FLIGHT    2          /* pieces of a claim on the way at once */
#define PIECES       2          /* a claim goes in at least this many */
#define CLAIMS       2          /* claims a rank holds at once: its lanes */

/* Each lane of a rank (one conversation: JOB, CHUNKs, their RESULTs and
   DATA) has tags of its own, lane_tag(TAG_x, lane); STOP is the rank's. */
enum {
    TAG_JOB = 0x6d70,
    TAG_CHUNK,
    TAG_RESULT,
    TAG_DATA,
    LANE_TAGS = 4,
    TAG_STOP = TAG_JOB + CLAIMS * LANE_TAGS
};

static inline int lane_tag(int tag, int lane)
{
    return tag + lane * LANE_TAGS;
}

enum {
    HAS_OUT = 1,    /* results come back item by item */
    HAS_STATUS = 2, /* statuses come back */
    FOLD_THERE = 4, /* the rank folds; one total per chunk comes back */
    IS_BATCH = 8    /* fn is the job's batch function (mproc_batch_fn) */
};

/*
 * Messages are laid out in 64-byte sections, so that items and results on a
 * rank are aligned as they would be in the caller's arrays (the buffers are
 * 64-byte aligned): a header, then each array from the next multiple of 64.
 */
#define SECTION(x) MPROC__ALIGN_UP(x, MPROC__LINE)

/* JOB: followed by arg_size bytes of arg, then, with FOLD_THERE, out_size
   bytes of the reduction's identity. `id` is the job's, so that a rank
   whose lanes both take it says once that its function is missing. */
struct job_msg {
    uint64_t id;
    uint64_t in_size, out_size, arg_size;
    uint32_t flags, data; /* data: mproc_job.flags */
    struct mproc__code fn, reduce;
};

/* CHUNK: one piece of a claim, answered by one RESULT; a lane may have
   IN_FLIGHT of them waiting, and the rank answers them in the order they
   came (each lane's in its own order, the lanes' pieces as they came).
   Followed by len * in_size bytes of items; with MPROC_IN_STRINGS
   or MPROC_IN_BYTES, by len runs instead, each a 16-byte header (its size)
   then its bytes, padded to 16 (a string's run holds its NUL).

   With MPROC_OUT_BYTES the results' part of a RESULT holds len uint64_t
   sizes, and the bytes follow in DATA messages: the results in index
   order, cut in batches of at most MSG_BYTES (or one larger result) by
   batch_end, the same cut on both sides; none for an all-empty batch. */
struct chunk_msg {
    uint64_t start, len;
};

/* RESULT: followed, with HAS_STATUS, by len ints; with HAS_OUT by
   len * out_size bytes of results, with FOLD_THERE by out_size bytes.
   `missing`: the rank has no such function; the items failed with
   MPROC_ENOTSUP and there are no results to take. */
struct result_msg {
    uint64_t failed;
    uint64_t missing;
};

/* Make *buf, 64-byte aligned, hold at least `want` bytes; its contents go.
   At most a message's worth, about MSG_BYTES (or one item): failing to get
   it is failing to get the buffers MPI itself needs, and aborts. */
static inline void grow(char **buf, size_t *cap, size_t want)
{
    if (*cap >= want)
        return;
    size_t size = SECTION(want);
    char *p = aligned_alloc(MPROC__LINE, size);
    if (!p)
        abort();
    free(*buf);
    *buf = p;
    *cap = size;
}

#define RUN_HEAD 16

static inline size_t run_bytes_of(size_t size)
{
    return RUN_HEAD + MPROC__ALIGN_UP(size, RUN_HEAD);
}

/* Item i of a job whose items are strings or runs, as a run. */
static inline mproc_bytes item_run(const struct mproc__job *j, uint64_t i)
{
    if (j->flags & MPROC_IN_STRINGS) {
        const char *s = ((const char *const *)(const void *)j->in)[i];
        return (mproc_bytes){(void *)s, strlen(s) + 1};
    }
    return ((const mproc_bytes *)(const void *)j->in)[i];
}

/* The end of the DATA batch of results that starts at k (see CHUNK). */
static inline uint64_t batch_end(const uint64_t *sizes, uint64_t k,
                                 uint64_t len, size_t *total)
{
    size_t t = 0;
    for (; k < len; k++) {
        if (t && t + sizes[k] > MSG_BYTES)
            break;
        t += sizes[k];
    }
    *total = t;
    return k;
}

/* Bytes of a RESULT for len items, and where its arrays start. */
static inline size_t result_size(uint32_t flags, uint64_t len, size_t osz,
                                 size_t *out_at)
{
    size_t at = SECTION(sizeof(struct result_msg));
    if (flags & HAS_STATUS)
        at += SECTION(len * sizeof(int));
    *out_at = at;
    if (flags & HAS_OUT)
        at += len * osz;
    else if (flags & FOLD_THERE)
        at += osz;
    return at;
}

/* Between two looks at what is awaited since t0: yield the CPU while the
   wait is young, then sleep a sixteenth of it, at most cap. */
static inline void between_looks(uint64_t t0, uint64_t cap)
{
    uint64_t waited = mproc__now() - t0;
    if (waited < SPIN_NS) {
        mproc__yield();
        return;
    }
    uint64_t ns = waited / 16;
    mproc__sleep(ns < cap ? ns : cap);
}

/* A rank other than 0: serve the pool on the communicator *world until
   rank 0 closes it, then leave MPI and exit (mpi_serve.c). */
_Noreturn void mproc__mpi_serve(MPI_Comm *world, int rank, bool working);

/* A rank other than 0 whose pool closed, or never opened: it never returns
   to the program, and leaves MPI as it must before exiting (MPI_Finalize
   waits there for the other ranks, rank 0 last). */
_Noreturn void mproc__mpi_retire(MPI_Comm *world);

#endif /* MPROC_MPI_H */
