/*
 * Real data: strings and byte runs as items (MPROC_IN_STRINGS,
 * MPROC_IN_BYTES), results of any length (MPROC_OUT_BYTES, mproc_result),
 * and the running item's index (mproc_item_index).
 *
 * Who runs here: the caller's threads (checks, staging, collecting), and
 * workers (the item loop of MPROC_OUT_BYTES jobs, mproc_result).
 *
 * Items. A thread worker reads the caller's strings where they are. A
 * process worker cannot: it sees the caller's memory as it was at the fork,
 * so submit (submit.c, stage) copies the strings or byte runs into the
 * staging block, after an array of pointers to the copies that stands in
 * for the caller's `in`; the staging block is at the same address in every
 * process. An MPI proxy sends the bytes themselves (mpi.c).
 *
 * Results in a thread pool are malloc'd by mproc_result and stored in the
 * caller's out[i] at once: nothing to hand over.
 *
 * Results in a process pool. They must outlive the worker that made them
 * (it may crash in its next item, or retire), must not need the caller's
 * help while the item runs (the caller may be busy elsewhere), and must not
 * be bounded by any size decided at open. So the pool keeps one sparse
 * in-memory file (a memfd, created before the supervisor forks, so every
 * worker holds it) of 1 TiB per worker slot, nothing of it committed: slot
 * w owns the region [w * 2^40, (w+1) * 2^40). A worker allocates by bumping
 * its head; the item's result is always at the head as the item started,
 * so a second mproc_result replaces the first in place. The staged out[i]
 * gets {file offset + 1, size}. Only when the item finishes does the worker
 * move the slot's r_head and r_alloc, before its release store of `commit`
 * (board.c): a worker that dies, in mproc_result or anywhere in the item,
 * leaves nothing allocated, and its replacement starts at the last
 * committed head. The caller, as it collects a record (task.c), copies
 * each result into memory it mallocs, adds the bytes to the slot's
 * r_freed, and punches the record's pages out of the file. Each chunk
 * starts its results on a fresh page, so a record's pages are its own and
 * can all go. A worker that sees r_freed equal to its r_alloc when it
 * starts a chunk (every result it made was collected) starts again at
 * offset 0. Memory in use is thus what the caller has not yet collected,
 * plus at most one page per worker.
 *
 * Why not a heap in the shared region, or the shared arena: a heap's
 * bookkeeping would then be written by workers that may die in the middle
 * of it, and its size would be fixed at open. Why not one memfd per result:
 * a descriptor must then cross between processes per result. Here the only
 * shared state is three counters per slot, each with one writer.
 *
 * Ordering: r_head and r_alloc are relaxed, published by the worker's
 * release store of `commit` (and, to the caller, by the record's seal,
 * which the caller acquires before collecting). r_freed is added with
 * release after the caller's copy is done; the worker's acquire load of it
 * pairs with that, so it never reuses bytes the caller still reads.
 */
#define _GNU_SOURCE
#include "kind.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REGION    (UINT64_C(1) << 40) /* file bytes per worker slot */
#define RES_ALIGN 64
#define BYTES_AL  16 /* alignment of a staged byte run */

_Thread_local struct mproc__cur mproc__cur = {.index = UINT64_MAX};

/* ---- checking and staging items ---------------------------------------- */

/* 0 means "the size the flag implies". */
void mproc__data_sizes(mproc_job *j)
{
    if ((j->flags & MPROC_IN_STRINGS) && !j->in_size)
        j->in_size = sizeof(const char *);
    if ((j->flags & MPROC_IN_BYTES) && !j->in_size)
        j->in_size = sizeof(mproc_bytes);
    if ((j->flags & MPROC_OUT_BYTES) && !j->out_size)
        j->out_size = sizeof(mproc_bytes);
}

int mproc__data_check(const mproc_job *j)
{
    unsigned f = j->flags;
    if (f & ~(unsigned)MPROC__DATA_FLAGS)
        return mproc__fail(MPROC_EINVAL, "job.flags has unknown bits 0x%x",
                           f & ~(unsigned)MPROC__DATA_FLAGS);
    if ((f & MPROC_IN_STRINGS) && (f & MPROC_IN_BYTES))
        return mproc__fail(MPROC_EINVAL,
                           "job.flags has both MPROC_IN_STRINGS and "
                           "MPROC_IN_BYTES");
    if (f & MPROC_OUT_BYTES) {
        if (j->out_size != sizeof(mproc_bytes))
            return mproc__fail(MPROC_EINVAL,
                               "job.out_size is %zu with MPROC_OUT_BYTES; it "
                               "must be sizeof(mproc_bytes) or 0",
                               j->out_size);
        if (j->reduce)
            return mproc__fail(MPROC_EINVAL,
                               "job.reduce is set with MPROC_OUT_BYTES: "
                               "results of any length cannot be folded");
        if (!j->out && j->n)
            return mproc__fail(MPROC_EINVAL,
                               "job.out is NULL with MPROC_OUT_BYTES and "
                               "n = %zu: the results need n mproc_bytes",
                               j->n);
    }
    if (f & MPROC_IN_STRINGS) {
        if (j->in_size != sizeof(const char *))
            return mproc__fail(MPROC_EINVAL,
                               "job.in_size is %zu with MPROC_IN_STRINGS; it "
                               "must be sizeof(const char *) or 0",
                               j->in_size);
        const char *const *s = j->in;
        for (size_t i = 0; i < j->n; i++)
            if (!s[i])
                return mproc__fail(MPROC_EINVAL, "job.in[%zu] is a NULL string",
                                   i);
    }
    if (f & MPROC_IN_BYTES) {
        if (j->in_size != sizeof(mproc_bytes))
            return mproc__fail(MPROC_EINVAL,
                               "job.in_size is %zu with MPROC_IN_BYTES; it "
                               "must be sizeof(mproc_bytes) or 0",
                               j->in_size);
        const mproc_bytes *b = j->in;
        for (size_t i = 0; i < j->n; i++)
            if (!b[i].data && b[i].size)
                return mproc__fail(MPROC_EINVAL,
                                   "job.in[%zu] is {NULL, %zu}: a run of "
                                   "bytes with no data",
                                   i, b[i].size);
    }
    return 0;
}

/* Bytes the copies of the items' strings or runs take in staging. */
int mproc__data_payload(const mproc_job *j, size_t *bytes)
{
    size_t total = 0, one;
    for (size_t i = 0; i < j->n; i++) {
        if (j->flags & MPROC_IN_STRINGS)
            one = strlen(((const char *const *)j->in)[i]) + 1;
        else
            one =
                MPROC__ALIGN_UP(((const mproc_bytes *)j->in)[i].size, BYTES_AL);
        if (__builtin_add_overflow(total, one, &total))
            return mproc__fail(MPROC_ENOMEM, "the items' strings or byte "
                                             "runs add up to more than "
                                             "size_t holds");
    }
    *bytes = total;
    return 0;
}

/* Copy the items' strings or runs to `payload` and write, at `in`, the
   array of pointers to the copies that fn will see. */
void mproc__data_stage(const mproc_job *j, char *in, char *payload)
{
    char *at = payload;
    for (size_t i = 0; i < j->n; i++) {
        if (j->flags & MPROC_IN_STRINGS) {
            const char *s = ((const char *const *)j->in)[i];
            size_t len = strlen(s) + 1;
            memcpy(at, s, len);
            ((const char **)(void *)in)[i] = at;
            at += len;
        } else {
            mproc_bytes b = ((const mproc_bytes *)j->in)[i];
            if (b.size)
                memcpy(at, b.data, b.size);
            ((mproc_bytes *)(void *)in)[i] =
                (mproc_bytes){b.size ? at : NULL, b.size};
            at += MPROC__ALIGN_UP(b.size, BYTES_AL);
        }
    }
}

/* MPROC_OUT_BYTES: every entry starts as {NULL, 0}, which is what an item
   that makes nothing (or never runs) hands back. */
void mproc__data_clear_out(const mproc_job *j)
{
    if ((j->flags & MPROC_OUT_BYTES) && j->n)
        memset(j->out, 0, j->n * sizeof(mproc_bytes));
}

/* ---- inside fn ----------------------------------------------------------- */

size_t mproc_item_index(void)
{
    const struct mproc__cur *c = &mproc__cur;
    if (c->index != UINT64_MAX)
        return (size_t)c->index;
    /* A process worker inside fn: its slot is RUNNING, and the item at
       `commit` is the one running (its own stores; relaxed is enough). */
    if (c->slot && atomic_load_explicit(&c->slot->state,
                                        memory_order_relaxed) == MPROC__RUNNING)
        return (size_t)mproc__commit_next(
            atomic_load_explicit(&c->slot->commit, memory_order_relaxed));
    return SIZE_MAX;
}

/* A process worker's region of the results file; one worker per process. */
static struct {
    struct mproc__slot *s;
    int fd;
    uint64_t base; /* the region's offset in the file */
    char *view;    /* [base, base + len) of the file, mapped */
    size_t len;
    uint64_t head; /* the next free byte of the region */
    uint64_t item; /* the running item's result starts here */
} reg = {.fd = -1};

static void *result_in_file(mproc_bytes *out, size_t size)
{
    uint64_t need = MPROC__ALIGN_UP((uint64_t)size, RES_ALIGN);
    *out = (mproc_bytes){NULL, 0};
    if (size > REGION || reg.item + need > REGION) {
        mproc__fail(0,
                    "mproc_result: %zu bytes would take this worker's "
                    "uncollected results past 1 TiB",
                    size);
        errno = ENOMEM;
        return NULL;
    }
    if (reg.item + need > reg.len) {
        uint64_t len = reg.len ? 2 * (uint64_t)reg.len : 0;
        uint64_t want = MPROC__ALIGN_UP(reg.item + need, UINT64_C(2) << 20);
        if (len < want)
            len = want;
        if (len > REGION)
            len = REGION;
        char *v = mproc__file_map(reg.fd, reg.base, (size_t)len);
        if (!v) {
            mproc__fail(0, "mproc_result: mapping %llu bytes of results: %s",
                        (unsigned long long)len, strerror(errno));
            errno = ENOMEM;
            return NULL;
        }
        mproc__region_unmap(reg.view, reg.len);
        reg.view = v;
        reg.len = (size_t)len;
    }
    *out = (mproc_bytes){(void *)(uintptr_t)(reg.base + reg.item + 1), size};
    return reg.view + reg.item;
}

void *mproc_result(size_t size)
{
    static alignas(RES_ALIGN) char empty[RES_ALIGN];
    struct mproc__cur *c = &mproc__cur;
    if (c->mode == MPROC__RES_NONE || !c->out) {
        mproc__fail(0, "mproc_result: called %s",
                    mproc_item_index() == SIZE_MAX
                        ? "outside fn"
                        : "in a job without MPROC_OUT_BYTES");
        errno = EINVAL;
        return NULL;
    }
    if (c->mode == MPROC__RES_FILE) {
        if (!size) {
            *c->out = (mproc_bytes){NULL, 0};
            return empty;
        }
        return result_in_file(c->out, size);
    }
    /* In the caller's own memory (or an MPI rank's): out[i] was cleared at
       submit, so what it holds is this item's earlier result. */
    free(c->out->data);
    *c->out = (mproc_bytes){NULL, 0};
    if (!size)
        return empty;
    if (c->max && size > c->max) {
        mproc__fail(0,
                    "mproc_result: %zu bytes, over the %zu a result may "
                    "have here (an MPI message part)",
                    size, (size_t)c->max);
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(size);
    if (!p) {
        mproc__fail(0, "mproc_result: no memory for %zu bytes", size);
        errno = ENOMEM;
        return NULL;
    }
    *c->out = (mproc_bytes){p, size};
    return p;
}

/* ---- the item loop of MPROC_OUT_BYTES ------------------------------------ */

/* A process worker starts a chunk: its results start on a fresh page (so
   that a record's pages are its own), or at 0 if all it made was taken. */
static void region_chunk(void)
{
    struct mproc__slot *s = reg.s;
    uint64_t alloc = atomic_load_explicit(&s->r_alloc, memory_order_relaxed);
    /* Acquire: pairs with the caller's release add to r_freed, made after
       it copied the results out. */
    if (atomic_load_explicit(&s->r_freed, memory_order_acquire) == alloc)
        reg.head = 0;
    else
        reg.head = MPROC__ALIGN_UP(reg.head, (uint64_t)sysconf(_SC_PAGESIZE));
}

/*
 * Run items [start, end) of a job with MPROC_OUT_BYTES (see board.c, run,
 * whose general loop this follows: status, failures, deadline, and for a
 * process worker each item made durable by `commit` before the next).
 */
uint64_t mproc__run_bytes(struct mproc__worker *wk, struct mproc__job *j,
                          uint64_t start, uint64_t end, uint64_t *failedp)
{
    struct mproc__board *b = wk->b;
    struct mproc__slot *s = &b->slots[wk->w];
    bool iso = b->isolated;
    mproc_bytes *out = (mproc_bytes *)(void *)j->out;
    size_t isz = j->in_size;
    const char *ip = j->in ? j->in + start * isz : NULL;
    uint64_t limit = iso ? (j->timeout_ns ? j->timeout_ns : b->timeout_ns) : 0;
    unsigned buf = mproc__commit_buf(
        atomic_load_explicit(&s->commit, memory_order_relaxed));
    uint64_t failed = 0, i = start;
    struct mproc__cur *c = &mproc__cur;

    if (iso) {
        assert(reg.s == s);
        region_chunk();
    }
    c->mode = iso ? MPROC__RES_FILE : MPROC__RES_HEAP;
    for (; i < end; i++) {
        if (atomic_load_explicit(&j->cancel, memory_order_relaxed))
            break;
        c->index = i;
        c->out = &out[i];
        if (iso)
            reg.item = reg.head;
        uint64_t d = 0;
        if (limit) {
            d = mproc__now() + limit;
            atomic_store_explicit(&s->deadline, d, memory_order_release);
        }
        int rc = wk->fn(ip, NULL, j->arg);
        if (limit && !atomic_compare_exchange_strong_explicit(
                         &s->deadline, &d, 0, memory_order_acq_rel,
                         memory_order_acquire))
            mproc__condemned();
        if (j->status)
            j->status[i] = rc;
        failed += rc != 0;
        if (iso) {
            if (rc)
                atomic_store_explicit(&s->failed, failed, memory_order_relaxed);
            if (out[i].size) {
                uint64_t used = MPROC__ALIGN_UP(out[i].size, RES_ALIGN);
                reg.head = reg.item + used;
                atomic_store_explicit(&s->r_head, reg.head,
                                      memory_order_relaxed);
                atomic_store_explicit(
                    &s->r_alloc,
                    atomic_load_explicit(&s->r_alloc, memory_order_relaxed) +
                        used,
                    memory_order_relaxed);
            }
            /* Release: the supervisor, after our death, and the caller see
               the item's result, status and the region's counters. */
            atomic_store_explicit(&s->commit, mproc__commit_word(i + 1, buf),
                                  memory_order_release);
        }
        ip += isz;
    }
    c->index = UINT64_MAX;
    c->out = NULL;
    c->mode = MPROC__RES_NONE;
    *failedp = failed;
    return i - start;
}

/* ---- the results file: the caller's side -------------------------------- */

struct view {
    char *_Atomic p; /* [w * REGION, w * REGION + len) of the file */
    _Atomic size_t len;
};

struct old_view {
    char *p;
    size_t len;
    struct old_view *next;
};

struct mproc__results {
    int fd;
    int workers;
    size_t page;
    pthread_mutex_t lock; /* growing a view */
    struct old_view *old; /* views outgrown, unmapped at close: another
                             thread may still be copying from one */
    struct view views[];
};

int mproc__results_open(mproc_pool *pool)
{
    int W = pool->workers;
    struct mproc__results *r =
        calloc(1, sizeof *r + (size_t)W * sizeof(struct view));
    if (!r)
        return mproc__fail(MPROC_ENOMEM, "no memory for the results file's "
                                         "bookkeeping");
    r->fd = mproc__file_open("mproc-results", (uint64_t)W * REGION);
    if (r->fd < 0) {
        int err = -errno;
        free(r);
        return mproc__fail(err, "the results file (a memfd): %s",
                           mproc_strerror(err));
    }
    r->workers = W;
    r->page = (size_t)sysconf(_SC_PAGESIZE);
    pthread_mutex_init(&r->lock, NULL);
    pool->results = r;
    return 0;
}

/* Unmap every view of the results file this process holds and close its
   descriptor; the bookkeeping of old views is freed only if it is ours
   (`own`), not a forked copy. */
static void drop_views(struct mproc__results *r, bool own)
{
    for (int w = 0; w < r->workers; w++)
        mproc__region_unmap(atomic_load(&r->views[w].p),
                            atomic_load(&r->views[w].len));
    for (struct old_view *o = r->old, *next; o; o = next) {
        next = o->next;
        mproc__region_unmap(o->p, o->len);
        if (own)
            free(o);
    }
    close(r->fd);
}

void mproc__results_close(mproc_pool *pool)
{
    struct mproc__results *r = pool->results;
    if (!r)
        return;
    drop_views(r, true);
    pthread_mutex_destroy(&r->lock);
    free(r);
    pool->results = NULL;
}

/* In another pool's new supervisor: drop the descriptor and the views it
   inherited of this pool's results file, which would otherwise keep the
   file alive after this pool closed. Its bookkeeping is a copy; leave it. */
void mproc__results_forget(mproc_pool *pool)
{
    struct mproc__results *r = pool->results;
    if (r)
        drop_views(r, false);
}

/* In a new worker process: its slot is s (number w), and so is its region of the
   results file fd (-1: the pool has none). */
void mproc__results_worker(struct mproc__slot *s, int w, int fd)
{
    mproc__cur.slot = s;
    if (fd < 0)
        return;
    reg.s = s;
    reg.fd = fd;
    reg.base = (uint64_t)w * REGION;
    reg.view = NULL;
    reg.len = 0;
    reg.head = atomic_load_explicit(&reg.s->r_head, memory_order_relaxed);
}

int mproc__results_fd(const mproc_pool *pool)
{
    return pool->results ? pool->results->fd : -1;
}

/* The caller's view of slot w's region, covering [0, end); NULL if it
   cannot be mapped. */
static const char *view_of(struct mproc__results *r, int w, uint64_t end)
{
    struct view *v = &r->views[w];
    /* Acquire: pairs with the release store of len below, after p. */
    size_t len = atomic_load_explicit(&v->len, memory_order_acquire);
    if (end <= len)
        return atomic_load_explicit(&v->p, memory_order_relaxed);
    pthread_mutex_lock(&r->lock);
    len = atomic_load_explicit(&v->len, memory_order_relaxed);
    char *p = atomic_load_explicit(&v->p, memory_order_relaxed);
    if (end > len) {
        uint64_t want = MPROC__ALIGN_UP(end, UINT64_C(2) << 20);
        if (want < 2 * (uint64_t)len)
            want = 2 * (uint64_t)len;
        if (want > REGION)
            want = REGION;
        struct old_view *o = p ? malloc(sizeof *o) : NULL;
        char *np = p && !o ? NULL
                           : mproc__file_map(r->fd, (uint64_t)w * REGION,
                                             (size_t)want);
        if (!np) {
            free(o);
            p = NULL;
        } else {
            if (o) {
                *o = (struct old_view){p, len, r->old};
                r->old = o;
            }
            p = np;
            atomic_store_explicit(&v->p, np, memory_order_relaxed);
            atomic_store_explicit(&v->len, (size_t)want, memory_order_release);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return p;
}

/*
 * Hand over the results of one record, items [start, start+len), that ran:
 * copy each into memory of its own in the caller's out, count the bytes
 * freed in their slot's region, and give the record's pages back. The
 * record was made by one worker slot in one chunk, so its results lie in
 * one run of that region, which starts on a page of its own.
 */
void mproc__results_collect(mproc_task *t, uint64_t start, uint64_t len)
{
    struct mproc__results *r = t->pool->results;
    const mproc_bytes *staged = (const mproc_bytes *)(void *)t->s_out;
    mproc_bytes *out = t->user.out;
    int w = -1;
    uint64_t lo = UINT64_MAX, hi = 0, freed = 0;
    for (uint64_t i = start; i < start + len; i++) {
        mproc_bytes e = staged[i];
        out[i] = (mproc_bytes){NULL, 0};
        if (!e.data || !e.size)
            continue;
        uint64_t f = (uint64_t)(uintptr_t)e.data - 1;
        int ew = (int)(f / REGION);
        uint64_t off = f % REGION;
        assert(ew >= 0 && ew < r->workers && (w < 0 || ew == w));
        w = ew;
        uint64_t used = MPROC__ALIGN_UP(e.size, RES_ALIGN);
        freed += used;
        if (off < lo)
            lo = off;
        if (off + used > hi)
            hi = off + used;
        const char *v = view_of(r, w, off + used);
        void *p = v ? malloc(e.size) : NULL;
        if (p) {
            memcpy(p, v + off, e.size);
            out[i] = (mproc_bytes){p, e.size};
        }
    }
    if (w < 0)
        return;
    uint64_t page = r->page;
    mproc__file_punch(r->fd, (uint64_t)w * REGION + (lo & ~(page - 1)),
                      MPROC__ALIGN_UP(hi, page) - (lo & ~(page - 1)));
    /* Release: pairs with the worker's acquire in region_chunk; our copies
       are done before it may write these bytes again. */
    atomic_fetch_add_explicit(&t->pool->board->slots[w].r_freed, freed,
                              memory_order_release);
}
