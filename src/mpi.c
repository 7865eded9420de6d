/*
 * MPI workers: the other ranks of MPI_COMM_WORLD.
 *
 * Who runs here: every rank, in mproc_pool_open. Rank 0 returns from it with
 * a pool whose workers are proxy threads, CLAIMS per worker rank, running
 * the board's worker loop like thread workers (threads.c); a proxy's items
 * run on a rank. It sends the rank the job once, then each chunk it claims,
 * and writes what comes back in place, so that ordered results, statuses,
 * mproc_task_next, progress, cancel and reductions are the board's own,
 * unchanged. The other ranks serve inside mproc_pool_open: they run init,
 * then whatever chunks the proxies send, until rank 0 closes the pool, and
 * then finalise MPI and exit.
 *
 * Shared: nothing but messages, on a private duplicate of MPI_COMM_WORLD, so
 * that they never meet the program's own. Between rank 0 and rank r there
 * are CLAIMS conversations, r's lanes, each with tags of its own (mpi.h)
 * and held by one proxy at a time; MPI keeps the messages of a pair and a
 * tag in order: JOB (once per job and lane), then CHUNKs, each answered by
 * a RESULT (and its DATA) in the same order; STOP, the rank's, at close.
 * The proxies talk at once: MPI must give MPI_THREAD_MULTIPLE.
 *
 * Two claims a rank. A proxy holds one claim (the board's protocol: a slot
 * holds one chunk), and the next claim is made once this one is settled; a
 * rank with one proxy would idle a round trip between claims. So the board
 * has CLAIMS slots a rank, a proxy in each: the pool's size stays the
 * number of ranks (pool->size; inside an item mproc_worker_id is the
 * rank's, and so in a fold on rank 0, which is of one rank's results), and
 * the board's per-slot figures (partials, chunk estimates) are the
 * proxies'. A proxy is bound to no rank: it takes a lane for each claim
 * (take_lane) on the rank that holds the fewest, so that a job's first
 * claims go one to a rank and the second to a rank comes only once each
 * has one; the rank then finds the next claim's pieces waiting when it
 * answers the last of its current one. Among ranks that hold as few, the
 * one given a claim last takes it: a run of small maps stays on one rank,
 * which answers from its first, quick looks, while the others sleep
 * their longer naps (on a machine whose ranks share its cores, maps that
 * take turns keep every rank and proxy polling, each taking the CPU the
 * others need). The cost: at the end of a job a rank may still hold a
 * queued claim while another has none (at most one claim's work, about
 * TARGET_NS). The board measures a claim from its claim to its settling,
 * which includes the claim ahead of it at the rank, so it is asked for
 * CLAIMS times TARGET_NS.
 *
 * Pieces in flight. A claimed chunk goes to the rank in pieces, at least
 * PIECES of them and each at most a message's worth (MSG_BYTES), IN_FLIGHT
 * on the way at once: while the rank runs one, the next waits in its queue,
 * so that it starts it as soon as it has answered, instead of idling for a
 * round trip (its answer to the proxy, the proxy's wake-up, the next piece
 * copied and sent) per piece; between claims, the other lane's claim waits
 * (above). Each piece in flight has its own pair of buffers. Two receives
 * posted for the same rank and tag match its answers in the order they
 * were posted (MPI's non-overtaking rule), which is the order of the
 * pieces, so the proxy takes them, and their DATA, in order. Cancel is
 * seen before each piece is sent; pieces sent run, and are taken, before
 * the claim is settled, so that no answer outlives it (a cancel thus lets
 * run what is on its way on both of a rank's lanes).
 *
 * What crosses: a function as (loaded object, offset) (linux/code.c), found
 * again on the other side in the same program; arg and a reduction's
 * identity as bytes; items and results as bytes. Without `out`, a reduction
 * folds on the rank and only each chunk's fold comes back; with `out`, the
 * results come back and the proxy folds them, as a thread worker would.
 *
 * Waiting: MPI's blocking calls spin, which would take the CPU from ranks on
 * the same machine, and from the caller. Every wait here tests, then for a
 * few tens of microseconds tests again between yields of the CPU (which cost
 * nothing where a rank has its core, and let the others run where ranks
 * share cores), then sleeps for a sixteenth of the time already waited, up
 * to a cap (200 us for a proxy, 1 ms for an idle rank): a late wake-up
 * costs at most about 6% of the wait, and an idle pool no CPU.
 *
 * What MPI cannot give: a rank that crashes ends the MPI job (so there is no
 * timeout and no max_items), and one MPI pool serves a run of the program:
 * its ranks exit when it closes.
 */
#include "mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One of a rank's CLAIMS conversations with rank 0, held by one proxy at
   a time, for one claim (see "Two claims a rank"). */
struct lane {
    int rank, l;    /* the rank, and which of its lanes (its tags) */
    bool busy;      /* a proxy holds it: under the.lock */
    uint64_t sent;  /* id of the job the rank holds for this lane */
    uint64_t taken; /* when a proxy last took it (the.taken): under the.lock */
    /* A CHUNK's and its RESULT's buffers for each piece in flight; DATA
       is taken one piece at a time, into dbuf. */
    char *sbuf[IN_FLIGHT], *rbuf[IN_FLIGHT], *dbuf;
    size_t scap[IN_FLIGHT], rcap[IN_FLIGHT], dcap;
};

/* One MPI pool a run: its state is the file's. */
static struct {
    MPI_Comm comm;
    int size;
    int local;            /* ranks on rank 0's machine, rank 0 included */
    bool finalize;        /* mproc initialised MPI, and finalises it */
    int ranks;            /* ranks 1 to `ranks` serve */
    pthread_mutex_t lock; /* the lanes' `busy` and `taken` */
    uint64_t taken;       /* lanes taken so far: under lock */
    struct lane *lanes;   /* rank r's are [(r - 1) * CLAIMS, r * CLAIMS) */
} the = {.lock = PTHREAD_MUTEX_INITIALIZER};
static _Atomic bool used;

static void await_request(MPI_Request *req)
{
    uint64_t t0 = mproc__now();
    for (;;) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        between_looks(t0, PROXY_NAP_NS);
    }
}

/* ---- rank 0: the proxies ------------------------------------------------ */

/* Send j to the proxy's rank. Its size fits an int: the pool checked that
   arg and result together are at most MPI_ITEM_MAX (pool.c, check_job). */
static void send_job(struct lane *ln, uint64_t id, const struct mproc__job *j,
                     uint32_t flags)
{
    size_t id_size = flags & FOLD_THERE ? j->out_size : 0;
    size_t arg_at = SECTION(sizeof(struct job_msg));
    size_t id_at = arg_at + SECTION(j->arg_size);
    size_t size = id_at + id_size;
    /* No piece is in flight between claims: sbuf[0] is free. */
    grow(&ln->sbuf[0], &ln->scap[0], size);
    struct job_msg *m = (struct job_msg *)ln->sbuf[0];
    memset(m, 0, sizeof *m);
    m->id = id;
    m->in_size = j->in_size;
    m->out_size = j->out_size;
    m->arg_size = j->arg_size;
    m->flags = flags;
    m->data = j->flags;
    /* The pool checked at submit that both resolve (pool.c, check_job). */
    if (j->batch)
        mproc__code_ref((void (*)(void))j->batch, &m->fn);
    else
        mproc__code_ref((void (*)(void))j->fn, &m->fn);
    if (flags & FOLD_THERE)
        mproc__code_ref((void (*)(void))j->reduce, &m->reduce);
    if (j->arg_size)
        memcpy(ln->sbuf[0] + arg_at, j->arg, j->arg_size);
    if (id_size)
        memcpy(ln->sbuf[0] + id_at, j->acc, id_size);
    MPI_Send(ln->sbuf[0], (int)size, MPI_BYTE, ln->rank,
             lane_tag(TAG_JOB, ln->l), the.comm);
}

/* Take the DATA messages of a RESULT whose results have these sizes into
   out[0..len): each result in memory of its own, the caller's. */
static void take_results(struct lane *ln, mproc_bytes *out,
                         const uint64_t *sizes, uint64_t len)
{
    for (uint64_t k = 0, e; k < len; k = e) {
        size_t total;
        e = batch_end(sizes, k, len, &total);
        if (!total)
            continue;
        /* One result alone is received where it will stay. */
        char *one = e - k == 1 ? malloc(total) : NULL;
        char *into = one;
        if (!into) {
            grow(&ln->dbuf, &ln->dcap, total);
            into = ln->dbuf;
        }
        MPI_Request req;
        MPI_Irecv(into, (int)total, MPI_BYTE, ln->rank,
                  lane_tag(TAG_DATA, ln->l), the.comm, &req);
        await_request(&req);
        if (one) {
            out[k] = (mproc_bytes){one, total};
            continue;
        }
        /* A result the caller's memory cannot hold is {NULL, 0}. */
        for (uint64_t x = k; x < e; x++) {
            void *p = sizes[x] ? malloc(sizes[x]) : NULL;
            if (p)
                memcpy(p, into, sizes[x]);
            out[x] = (mproc_bytes){p, p ? sizes[x] : 0};
            into += sizes[x];
        }
    }
}

/* A piece of a claim on its way to the rank: items [at, at + len), sent
   from sbuf[k] and answered into rbuf[k], k its place in the queue. */
struct flight {
    uint64_t at, len;
    size_t out_at; /* where the RESULT's results start */
    MPI_Request recv, send;
};

/* Send items [at, at + len) of j to the rank as one CHUNK from buffer k,
   its RESULT's receive posted first; returns how many items it holds
   (fewer than len when they are runs that fill a message). */
static uint64_t send_piece(struct lane *ln, const struct mproc__job *j,
                           uint32_t flags, size_t osz, int k, struct flight *f,
                           uint64_t at, uint64_t len)
{
    bool runs = j->flags & (MPROC_IN_STRINGS | MPROC_IN_BYTES);
    size_t isz = j->in_size;
    size_t in_at = SECTION(sizeof(struct chunk_msg));
    size_t ssize = in_at + len * isz;
    if (runs) {
        /* As many runs as fit a message, at least one (at most ITEM_MAX:
           check_job). */
        ssize = in_at;
        uint64_t x = 0;
        for (; x < len; x++) {
            size_t add = run_bytes_of(item_run(j, at + x).size);
            if (x && ssize + add > MSG_BYTES)
                break;
            ssize += add;
        }
        len = x;
    }
    size_t rsize = result_size(flags, len, osz, &f->out_at);
    grow(&ln->sbuf[k], &ln->scap[k], ssize);
    grow(&ln->rbuf[k], &ln->rcap[k], rsize);
    char *sb = ln->sbuf[k];
    struct chunk_msg *cm = (struct chunk_msg *)sb;
    cm->start = at;
    cm->len = len;
    if (runs) {
        char *to = sb + in_at;
        for (uint64_t x = 0; x < len; x++) {
            mproc_bytes r = item_run(j, at + x);
            memset(to, 0, RUN_HEAD);
            memcpy(to, &(uint64_t){r.size}, sizeof(uint64_t));
            if (r.size)
                memcpy(to + RUN_HEAD, r.data, r.size);
            to += run_bytes_of(r.size);
        }
    } else if (isz) {
        memcpy(sb + in_at, j->in + at * isz, len * isz);
    }
    f->at = at;
    f->len = len;
    /* The receive is posted first, so that the rank's answer never waits
       for it. */
    MPI_Irecv(ln->rbuf[k], (int)rsize, MPI_BYTE, ln->rank,
              lane_tag(TAG_RESULT, ln->l), the.comm, &f->recv);
    MPI_Isend(sb, (int)ssize, MPI_BYTE, ln->rank, lane_tag(TAG_CHUNK, ln->l),
              the.comm, &f->send);
    return len;
}

/* Wait for the answer to piece f, sent from buffer k, and write what it
   carries in place: statuses, results (and their DATA), folds. Returns
   how many of its items failed. */
static uint64_t take_piece(struct lane *ln, struct mproc__job *j,
                           uint32_t flags, size_t osz, int k, struct flight *f,
                           char *partial)
{
    await_request(&f->recv);
    /* Answered, so the rank has the CHUNK: its send is complete, or
       completes at this test, and sbuf[k] is free again. */
    await_request(&f->send);
    const char *rb = ln->rbuf[k];
    const struct result_msg *rm = (const struct result_msg *)rb;
    const char *at = rb + f->out_at;
    uint64_t i = f->at, len = f->len;
    if (flags & HAS_STATUS)
        memcpy(j->status + i, rb + SECTION(sizeof *rm), len * sizeof(int));
    if (rm->missing) {
        /* No results: the caller's out keeps what it held. */
    } else if (j->flags & MPROC_OUT_BYTES) {
        take_results(ln, (mproc_bytes *)(void *)j->out + i,
                     (const uint64_t *)(const void *)at, len);
    } else if (flags & HAS_OUT) {
        memcpy(j->out + i * osz, at, len * osz);
        if (j->reduce)
            for (uint64_t x = 0; x < len; x++)
                j->reduce(partial, j->out + (i + x) * osz, j->arg);
    } else if (flags & FOLD_THERE) {
        j->reduce(partial, at, j->arg);
    }
    return rm->failed;
}

/* The lane for a claim of job `id` by proxy w: one of the rank that holds
   the fewest claims (among equals the one whose lane was taken last, else
   the proxy's own rank, w % ranks, then the next ones), one that holds the
   job already if it can. There is always a free one: the proxies are
   CLAIMS a rank, and each holds one lane at most (so while some rank holds
   CLAIMS claims, another holds fewer). */
static struct lane *take_lane(int w, uint64_t id)
{
    pthread_mutex_lock(&the.lock);
    int best = 0, least = CLAIMS + 1;
    uint64_t last = 0;
    for (int k = 0; k < the.ranks; k++) {
        int r = (w + k) % the.ranks, held = 0;
        uint64_t recent = 0;
        for (int l = 0; l < CLAIMS; l++) {
            held += the.lanes[r * CLAIMS + l].busy;
            if (the.lanes[r * CLAIMS + l].taken > recent)
                recent = the.lanes[r * CLAIMS + l].taken;
        }
        if (held < least || (held == least && recent > last))
            best = r, least = held, last = recent;
    }
    struct lane *ln = NULL;
    for (int l = 0; l < CLAIMS; l++) {
        struct lane *c = &the.lanes[best * CLAIMS + l];
        if (!c->busy && (!ln || c->sent == id))
            ln = c;
    }
    if (!ln)
        abort(); /* more proxies than lanes: never (open_mpi) */
    ln->busy = true;
    ln->taken = ++the.taken;
    pthread_mutex_unlock(&the.lock);
    return ln;
}

static void leave_lane(struct lane *ln)
{
    pthread_mutex_lock(&the.lock);
    ln->busy = false;
    pthread_mutex_unlock(&the.lock);
}

/*
 * Run items [start, end) of j on a rank (see mproc__exec_fn), by the lane
 * take_lane gives. The claim goes in pieces, IN_FLIGHT of them on the way
 * at once (see "Pieces in flight" above), their answers taken in the order
 * they were sent.
 */
static uint64_t proxy_exec(struct mproc__worker *wk, struct mproc__job *j,
                           uint64_t id, uint64_t start, uint64_t end,
                           uint64_t *failedp)
{
    static _Thread_local bool precise;
    if (!precise)
        mproc__sleep_precisely(); /* this thread's naps, from its first job */
    precise = true;
    struct lane *ln = take_lane(wk->w, id);
    /* A fold here is of the rank's results: it sees the rank's id, as the
       items did. */
    mproc__self_id = ln->rank - 1;
    bool bytes_out = j->flags & MPROC_OUT_BYTES;
    size_t isz = j->in_size;
    /* With results of any length, a RESULT carries their sizes. */
    size_t osz = bytes_out ? sizeof(uint64_t) : j->out_size;
    uint32_t flags = (j->out ? HAS_OUT : 0) | (j->status ? HAS_STATUS : 0) |
                     (j->reduce && !j->out ? FOLD_THERE : 0) |
                     (j->batch ? IS_BATCH : 0);

    if (ln->sent != id) {
        send_job(ln, id, j, flags);
        ln->sent = id;
    }
    /* A piece is at most a message's worth, and at most 1 / PIECES of the
       claim, so that the rank finds the next one waiting when it answers. */
    size_t per = isz > osz + sizeof(int) ? isz : osz + sizeof(int);
    uint64_t piece = MSG_BYTES / (per ? per : 1);
    uint64_t split = (end - start + PIECES - 1) / PIECES;
    if (split < piece)
        piece = split;
    if (piece < 1)
        piece = 1;
    char *partial = j->reduce ? mproc__partial_buf(j, wk->w, 0) : NULL;
    struct flight q[IN_FLIGHT];
    uint64_t failed = 0, next = start, done = start;
    int head = 0, count = 0;
    for (;;) {
        /* Cancel stops what is not yet sent; what is sent runs, and is
           taken, so that the rank's answers never outlive the claim. */
        while (count < IN_FLIGHT && next < end &&
               !atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
            int k = (head + count) % IN_FLIGHT;
            uint64_t len = end - next < piece ? end - next : piece;
            next += send_piece(ln, j, flags, osz, k, &q[k], next, len);
            count++;
        }
        if (!count)
            break;
        failed += take_piece(ln, j, flags, osz, head, &q[head], partial);
        done = q[head].at + q[head].len;
        head = (head + 1) % IN_FLIGHT;
        count--;
    }
    leave_lane(ln);
    *failedp = failed;
    return done - start;
}

/* ---- opening and closing ------------------------------------------------------- */

/* Rank 0: let go of MPI, as the open found it. */
static void leave(void)
{
    if (the.comm != MPI_COMM_NULL)
        MPI_Comm_free(&the.comm);
    if (the.finalize)
        MPI_Finalize();
    the.finalize = false;
}

static void close_mpi(mproc_pool *pool);

static int open_mpi(mproc_pool *pool)
{
    /* Relaxed: the exchange's atomicity alone decides which open is the
       run's MPI pool; a loser returns at once and reads nothing the winner
       writes. */
    if (atomic_exchange_explicit(&used, true, memory_order_relaxed))
        return mproc__fail(MPROC_ENOTSUP,
                           "an MPI pool was opened already in this run; its "
                           "ranks left when it closed");
    the.comm = MPI_COMM_NULL;
    int inited = 0, finalized = 0, provided = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return mproc__fail(MPROC_ENOTSUP, "MPI was finalised already");
    if (!inited) {
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) !=
            MPI_SUCCESS)
            return mproc__fail(MPROC_ENOTSUP, "MPI_Init_thread failed");
        the.finalize = true;
    } else {
        MPI_Query_thread(&provided);
    }

    /* Every rank decides alike, so that either all serve or rank 0 alone
       returns an error and the others leave: the lowest thread level
       decides for all, and the options and size are the same everywhere. */
    int rank = 0, level = provided;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &the.size);
    MPI_Allreduce(&provided, &level, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    int workers = pool->opt.workers;
    if (!workers)
        workers = the.size - 1 < MPROC__MAX_WORKERS ? the.size - 1
                                                    : MPROC__MAX_WORKERS;
    int err = 0;
    if (level < MPI_THREAD_MULTIPLE)
        err = mproc__fail(MPROC_ENOTSUP,
                          "MPI gives thread level %d on some rank, not "
                          "MPI_THREAD_MULTIPLE",
                          level);
    else if (the.size < 2)
        err = mproc__fail(MPROC_ENOTSUP,
                          "one MPI rank: run the program under mpirun -np N "
                          "with N >= 2 (rank 0 is the caller)");
    else if (workers > the.size - 1)
        err = mproc__fail(MPROC_EINVAL,
                          "options.workers is %d, more than the %d ranks "
                          "other than 0",
                          workers, the.size - 1);
    if (err) {
        if (rank)
            mproc__mpi_retire(&the.comm);
        leave();
        return err;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &the.comm);
    /* A failed call must never be taken for a message: whatever handler
       the program chose for its own communicators, errors here end the
       job, as a crashed rank does. */
    MPI_Comm_set_errhandler(the.comm, MPI_ERRORS_ARE_FATAL);
    MPI_Comm node;
    MPI_Comm_split_type(the.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                        &node);
    MPI_Comm_size(node, &the.local);
    MPI_Comm_free(&node);

    /* init runs on every rank that works; rank 0 learns whether all
       succeeded and tells them whether the pool opened. */
    bool working = rank >= 1 && rank <= workers;
    int mine = 0;
    if (working) {
        mproc__self_id = rank - 1;
        mproc__self_pool = pool;
        if (pool->opt.init && pool->opt.init(pool->opt.init_arg))
            mine = MPROC_EINIT;
    }
    int *all = rank ? NULL : calloc((size_t)the.size, sizeof *all);
    if (!rank && !all)
        abort(); /* a few ints per rank */
    MPI_Gather(&mine, 1, MPI_INT, all, 1, MPI_INT, 0, the.comm);
    for (int r = 1; !rank && r < the.size; r++)
        if (all[r])
            err = mproc__fail(all[r],
                              "options.init returned nonzero on rank %d", r);
    free(all);
    MPI_Bcast(&err, 1, MPI_INT, 0, the.comm);
    if (rank) {
        if (err)
            mproc__mpi_retire(&the.comm);
        mproc__mpi_serve(&the.comm, rank, working);
    }
    if (err) {
        leave();
        return err;
    }
    the.ranks = workers;
    the.lanes = calloc((size_t)workers * CLAIMS, sizeof *the.lanes);
    if (!the.lanes)
        abort(); /* a few bytes per rank */
    for (int k = 0; k < workers * CLAIMS; k++)
        the.lanes[k] = (struct lane){.rank = k / CLAIMS + 1, .l = k % CLAIMS};
    /* The board has a slot, and a proxy, for each lane; the pool's size
       is its ranks (mproc_pool_size, mproc_worker_id). */
    pool->workers = workers * CLAIMS;
    pool->size = workers;
    pool->exec = proxy_exec;
    err = mproc__pool_map(pool, false);
    if (err)
        close_mpi(pool);
    return err;
}

static void close_mpi(mproc_pool *pool)
{
    for (int r = 1; r < the.size; r++)
        MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, the.comm);
    for (int w = 0; the.lanes && w < the.ranks * CLAIMS; w++) {
        for (int k = 0; k < IN_FLIGHT; k++) {
            free(the.lanes[w].sbuf[k]);
            free(the.lanes[w].rbuf[k]);
        }
        free(the.lanes[w].dbuf);
    }
    free(the.lanes);
    the.lanes = NULL;
    leave();
    mproc__pool_unmap(pool);
}

/* ---- the kind ------------------------------------------------------------ */

static int check(const mproc_options *o)
{
    /* A rank that crashes ends the MPI job: nothing to time out, nothing to
       replace. */
    if (o->timeout > 0 || o->max_items)
        return mproc__fail(MPROC_ENOTSUP,
                           "options.%s is set: a rank that crashes ends the "
                           "MPI job, so an MPI pool cannot time items out or "
                           "replace workers",
                           o->timeout > 0 ? "timeout" : "max_items");
    return 0;
}

/* The proxies are thread workers. The caller and the proxies spin only on
   a machine with cores to spare beyond its ranks'; else they would take the
   CPU the ranks on it need to answer. */
static int start(mproc_pool *pool)
{
    /* A claim's time, as the board measures it, includes the claim ahead
       of it at the rank (see "Two claims a rank"). */
    pool->board->target_ns = TARGET_NS * CLAIMS;
    if (mproc__cpu_count() <= the.local)
        pool->board->spin = 0;
    return mproc__threads_start(pool);
}

/* Can this function be found by a rank running the same program: does it
   lie in a loaded object (not in memory made at run time)? */
static bool crosses(void (*f)(void))
{
    struct mproc__code ref;
    return mproc__code_ref(f, &ref) == 0;
}

/* Across ranks only bytes travel: a pointer arg would mean nothing on the
   other side, and a message holds at most INT_MAX bytes (a job's carries
   arg and, for a reduction, the identity). */
static int check_job(const mproc_pool *pool, const mproc_job *j)
{
    (void)pool;
    for (size_t i = 0; i < j->n && (j->flags & MPROC_IN_STRINGS); i++)
        if (strlen(((const char *const *)j->in)[i]) >= ITEM_MAX)
            return mproc__fail(MPROC_EINVAL,
                               "job.in[%zu] is a string of 2^30 bytes or "
                               "more, over what an MPI message part holds",
                               i);
    for (size_t i = 0; i < j->n && (j->flags & MPROC_IN_BYTES); i++)
        if (((const mproc_bytes *)j->in)[i].size > ITEM_MAX)
            return mproc__fail(MPROC_EINVAL,
                               "job.in[%zu].size is %zu, over the 2^30 bytes "
                               "an MPI message part holds",
                               i, ((const mproc_bytes *)j->in)[i].size);
    if (j->arg && !j->arg_size)
        return mproc__fail(MPROC_EINVAL,
                           "job.arg is a pointer with arg_size 0: on an MPI "
                           "rank it would mean nothing; give arg_size");
    if (j->in_size > ITEM_MAX || j->out_size > ITEM_MAX ||
        j->arg_size > ITEM_MAX || j->arg_size + j->out_size > ITEM_MAX)
        return mproc__fail(MPROC_EINVAL,
                           "job.in_size, out_size or arg_size (%zu, %zu, %zu) "
                           "is over the 2^30 bytes an MPI message part holds",
                           j->in_size, j->out_size, j->arg_size);
    if (!crosses(j->batch ? (void (*)(void))j->batch : (void (*)(void))j->fn))
        return mproc__fail(MPROC_EINVAL,
                           "job.%s is not in a loaded object (made at run "
                           "time?), so no MPI rank can find it",
                           j->batch ? "batch" : "fn");
    if (j->reduce && !j->out && !crosses((void (*)(void))j->reduce))
        return mproc__fail(MPROC_EINVAL,
                           "job.reduce is not in a loaded object, so no MPI "
                           "rank can find it to fold there");
    return 0;
}

const struct mproc__kind mproc__kind_mpi = {
    .name = "mpi",
    .isolated = false,
    .check = check,
    .open = open_mpi,
    .start = start,
    .stop = mproc__threads_stop,
    .close = close_mpi,
    .sleep = mproc__threads_sleep,
    .alive = mproc__threads_alive,
    .check_job = check_job,
};
