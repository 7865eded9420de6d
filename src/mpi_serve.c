/*
 * MPI workers, the other side: what a rank other than 0 runs (see mpi.c for
 * the conversation). It serves inside mproc_pool_open: it takes each JOB,
 * runs each CHUNK and sends its RESULT (and, for results of any length,
 * their DATA), until rank 0 closes the pool with STOP; then it runs fini,
 * finalises MPI and exits, never returning to the program.
 *
 * Its CLAIMS lanes are conversations apart, told by their tags: each has
 * its own job, and its answers go with its own tags. The rank takes the
 * messages as they come, whatever their lane, so that a claim queued on
 * one lane runs as soon as the other's is answered.
 *
 * Who runs here: the rank's one thread. Shared: nothing but messages.
 */
#include "mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pool's private communicator, while this rank serves. */
static MPI_Comm comm = MPI_COMM_NULL;
/* The last job whose missing function this rank has said (both lanes may
   take it). */
static uint64_t said;

struct served {
    int lane;
    mproc_fn fn;
    mproc_batch_fn batch; /* IS_BATCH: fn's place holds this */
    void (*reduce)(void *, const void *, void *);
    size_t in_size, out_size;
    uint32_t flags, data;
    char *arg, *identity;
    char *scratch;
    /* Strings or runs: the array fn's `in` points into; results of any
       length: this chunk's, and their DATA batch. */
    char *items, *dbuf;
    size_t icap, dcap;
    mproc_bytes *res;
    size_t rescap;
    /* A batch's codes and results that the messages have no room for,
       kept from chunk to chunk (grow). */
    char *runs;
    size_t runs_cap;
};

/* A 64-byte aligned block of size bytes, as the caller's might be, holding
   a copy of `from` (or nothing yet, when NULL). At most a message's worth,
   which MPI just held: failing to get it is failing to get memory at all. */
static char *aligned_copy(const char *from, size_t size)
{
    char *p = aligned_alloc(MPROC__LINE, SECTION(size));
    if (!p)
        abort();
    if (from)
        memcpy(p, from, size);
    return p;
}

static void take_job(struct served *s, const char *buf, int rank)
{
    const struct job_msg *m = (const struct job_msg *)buf;
    free(s->arg);
    free(s->identity);
    free(s->scratch);
    *s = (struct served){.lane = s->lane,
                         .in_size = m->in_size,
                         .out_size = m->out_size,
                         .flags = m->flags,
                         .data = m->data,
                         .items = s->items,
                         .icap = s->icap,
                         .dbuf = s->dbuf,
                         .dcap = s->dcap,
                         .res = s->res,
                         .rescap = s->rescap,
                         .runs = s->runs,
                         .runs_cap = s->runs_cap};
    s->fn = (mproc_fn)mproc__code_find(&m->fn);
    if (s->fn && (m->flags & IS_BATCH))
        s->batch = (mproc_batch_fn)(void (*)(void))s->fn;
    if (!s->fn && said != m->id)
        fprintf(
            stderr,
            "mproc: rank %d: no function at %s+%#llx in this build of the "
            "program (another binary?); its items fail with MPROC_ENOTSUP\n",
            rank, m->fn.object[0] ? m->fn.object : "(main program)",
            (unsigned long long)m->fn.offset);
    if (!s->fn)
        said = m->id;
    if (m->flags & FOLD_THERE) {
        s->reduce = (void (*)(void *, const void *, void *))mproc__code_find(
            &m->reduce);
        if (!s->reduce)
            s->fn = NULL, s->batch = NULL;
    }
    size_t arg_at = SECTION(sizeof *m), id_at = arg_at + SECTION(m->arg_size);
    if (m->arg_size)
        s->arg = aligned_copy(buf + arg_at, m->arg_size);
    if (m->flags & FOLD_THERE)
        s->identity = aligned_copy(buf + id_at, m->out_size);
    if (m->out_size && !(m->flags & HAS_OUT)) {
        /* Zero: a fold never meets an earlier job's bytes. */
        s->scratch = aligned_copy(NULL, m->out_size);
        memset(s->scratch, 0, m->out_size);
    }
}

/* The strings or runs of a CHUNK, laid out as fn expects its items: an
   array of pointers (or of mproc_bytes) into the message. */
static const char *unpack_runs(struct served *s, const char *at, uint64_t len)
{
    grow(&s->items, &s->icap, len * s->in_size);
    for (uint64_t k = 0; k < len; k++) {
        uint64_t size;
        memcpy(&size, at, sizeof size);
        const char *data = at + RUN_HEAD;
        if (s->data & MPROC_IN_STRINGS)
            ((const char **)(void *)s->items)[k] = data;
        else
            ((mproc_bytes *)(void *)s->items)[k] =
                (mproc_bytes){size ? (void *)data : NULL, (size_t)size};
        at += run_bytes_of((size_t)size);
    }
    return s->items;
}

/* Send this chunk's results of any length in DATA batches (see CHUNK), and
   let them go. */
static void send_results(struct served *s, const uint64_t *sizes, uint64_t len)
{
    for (uint64_t k = 0, e; k < len; k = e) {
        size_t total;
        e = batch_end(sizes, k, len, &total);
        if (!total)
            continue;
        const char *from = s->res[k].data;
        if (e - k > 1) {
            grow(&s->dbuf, &s->dcap, total);
            char *at = s->dbuf;
            for (uint64_t x = k; x < e; x++) {
                if (sizes[x])
                    memcpy(at, s->res[x].data, sizes[x]);
                at += sizes[x];
            }
            from = s->dbuf;
        }
        MPI_Send(from, (int)total, MPI_BYTE, 0, lane_tag(TAG_DATA, s->lane),
                 comm);
    }
    for (uint64_t k = 0; k < len; k++)
        free(s->res[k].data);
}

/* A batch job's chunk: one call for the whole message's items, into the
   message's own arrays where it has them and into scratch where it does
   not (results to fold, codes to count). */
static uint64_t run_batch_chunk(struct served *s, const char *in, uint64_t len,
                                int *status, char *out, char *acc)
{
    size_t osz = s->out_size;
    size_t codes = status ? 0 : SECTION(len * sizeof(int));
    if (codes || (!out && osz)) {
        grow(&s->runs, &s->runs_cap, codes + (out ? 0 : len * osz));
        if (!status)
            status = (int *)(void *)s->runs;
        if (!out && osz) {
            out = s->runs + codes;
            memset(out, 0, len * osz); /* never an earlier chunk's bytes */
        }
    }
    uint64_t failed = 0;
    if (s->batch(in, out, (size_t)len, s->arg, status)) {
        for (uint64_t k = 0; k < len; k++)
            failed += status[k] != 0;
    } else if (!codes) {
        memset(status, 0, (size_t)len * sizeof *status);
    }
    if (acc)
        for (uint64_t k = 0; k < len; k++)
            s->reduce(acc, out + k * osz, s->arg);
    return failed;
}

static void run_chunk(struct served *s, const char *buf, char **rbuf,
                      size_t *rcap)
{
    const struct chunk_msg *cm = (const struct chunk_msg *)buf;
    uint64_t len = cm->len;
    bool bytes_out = s->data & MPROC_OUT_BYTES;
    size_t osz = bytes_out ? sizeof(uint64_t) : s->out_size, out_at;
    size_t rsize = result_size(s->flags, len, osz, &out_at);
    grow(rbuf, rcap, rsize);
    struct result_msg *rm = (struct result_msg *)*rbuf;
    int *status = s->flags & HAS_STATUS
                      ? (int *)(void *)(*rbuf + SECTION(sizeof *rm))
                      : NULL;
    char *out = s->flags & HAS_OUT ? *rbuf + out_at : NULL;
    char *acc = s->flags & FOLD_THERE ? *rbuf + out_at : NULL;
    if (acc)
        memcpy(acc, s->identity, osz);
    /* Results start as zeros: what fn does not write is never stale. */
    if (out)
        memset(out, 0, len * osz);
    const char *in = s->in_size ? buf + SECTION(sizeof *cm) : NULL;
    if (in && (s->data & (MPROC_IN_STRINGS | MPROC_IN_BYTES)))
        in = unpack_runs(s, in, len);
    if (bytes_out) {
        if (s->rescap < len) {
            free(s->res);
            s->res = malloc(len * sizeof *s->res);
            if (!s->res)
                abort(); /* a message's worth: as grow */
            s->rescap = len;
        }
        memset(s->res, 0, len * sizeof *s->res);
        mproc__cur.mode = MPROC__RES_HEAP;
        mproc__cur.max = ITEM_MAX;
    }
    uint64_t failed = 0;
    if (s->batch) {
        mproc__cur.index = cm->start; /* a batch's first item */
        failed = run_batch_chunk(s, in, len, status, out, acc);
    }
    for (uint64_t k = 0; k < len && !s->batch; k++) {
        char *op = out ? out + k * osz : s->scratch;
        mproc__cur.index = cm->start + k;
        if (bytes_out)
            mproc__cur.out = &s->res[k];
        int rc = s->fn ? s->fn(in, osz && !bytes_out ? op : NULL, s->arg)
                       : MPROC_ENOTSUP;
        if (acc && s->fn)
            s->reduce(acc, op, s->arg);
        if (status)
            status[k] = rc;
        failed += rc != 0;
        if (in)
            in += s->in_size;
    }
    mproc__cur.index = UINT64_MAX;
    mproc__cur.out = NULL;
    mproc__cur.mode = MPROC__RES_NONE;
    rm->failed = failed;
    rm->missing = !s->fn;
    if (!s->fn) /* nothing was written: send zeros, not stale bytes */
        memset(*rbuf + out_at, 0, rsize - out_at);
    if (bytes_out)
        for (uint64_t k = 0; k < len; k++)
            ((uint64_t *)(void *)out)[k] = s->res[k].size;
    MPI_Send(*rbuf, (int)rsize, MPI_BYTE, 0, lane_tag(TAG_RESULT, s->lane),
             comm);
    if (bytes_out && s->fn)
        send_results(s, (const uint64_t *)(const void *)out, len);
}

/* A rank other than 0 whose pool closed, or never opened: it never returns
   to the program, and leaves MPI as it must before exiting (MPI_Finalize
   waits there for the other ranks, rank 0 last). */
_Noreturn void mproc__mpi_retire(MPI_Comm *world)
{
    if (*world != MPI_COMM_NULL)
        MPI_Comm_free(world);
    MPI_Finalize();
    exit(0);
}

_Noreturn void mproc__mpi_serve(MPI_Comm *world, int rank, bool working)
{
    comm = *world;
    mproc__sleep_precisely();
    struct served s[CLAIMS] = {0};
    for (int l = 0; l < CLAIMS; l++)
        s[l].lane = l;
    char *buf = NULL, *rbuf = NULL;
    size_t cap = 0, rcap = 0;
    for (;;) {
        /* Wait for rank 0, spinning only while messages come quickly. */
        MPI_Status st;
        uint64_t t0 = mproc__now();
        for (;;) {
            int any = 0;
            MPI_Iprobe(0, MPI_ANY_TAG, comm, &any, &st);
            if (any)
                break;
            between_looks(t0, IDLE_NAP_NS);
        }
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        grow(&buf, &cap, count ? (size_t)count : 1);
        MPI_Recv(buf, count, MPI_BYTE, 0, st.MPI_TAG, comm, MPI_STATUS_IGNORE);
        if (st.MPI_TAG == TAG_STOP)
            break;
        int l = (st.MPI_TAG - TAG_JOB) / LANE_TAGS;
        int what = st.MPI_TAG - l * LANE_TAGS;
        if (l < 0 || l >= CLAIMS || !working)
            continue;
        if (what == TAG_JOB)
            take_job(&s[l], buf, rank);
        else if (what == TAG_CHUNK)
            run_chunk(&s[l], buf, &rbuf, &rcap);
    }
    const mproc_options *o = &mproc__self_pool->opt;
    if (working && o->fini)
        o->fini(o->init_arg);
    for (int l = 0; l < CLAIMS; l++) {
        free(s[l].arg);
        free(s[l].identity);
        free(s[l].scratch);
        free(s[l].items);
        free(s[l].dbuf);
        free(s[l].res);
        free(s[l].runs);
    }
    free(buf);
    free(rbuf);
    mproc__mpi_retire(world);
}
