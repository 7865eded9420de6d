/*
 * The shared arena and reductions, on both kinds of pool: memory every
 * worker sees at the caller's addresses, the allocator behind
 * mproc_shared_alloc, jobs that run on the caller's data with no copy, and
 * results folded into an accumulator.
 */
#define _GNU_SOURCE
#include "util.h"

#include "internal.h" /* the staging heap of a process pool */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static mproc_pool *open_shared(mproc_kind kind, int workers, size_t shared_size)
{
    mproc_pool *p = NULL;
    int r = mproc_pool_open(&p, &(mproc_options){.kind = kind,
                                                 .workers = workers,
                                                 .shared_size = shared_size});
    if (r)
        fail_msg("open (%s): %s", tu_kind_name(kind), mproc_strerror(r));
    assert_non_null(p);
    return p;
}

static void *alloc_ok(mproc_pool *p, size_t size)
{
    void *m = mproc_shared_alloc(p, size);
    if (!m)
        fail_msg("mproc_shared_alloc(%zu): %s", size, strerror(errno));
    return m;
}

/* Item counts shrink under valgrind (MPROC_TEST_SLOW), where every item
   costs a hundred times more. */
static size_t scaled(size_t n)
{
    return tu_slow() > 1.0 ? n / 16 : n;
}

/* A worker waits for the caller (or for other workers) with this limit, so
   that a broken test fails instead of hanging. */
static double worker_deadline(void)
{
    return tu_now() + 30.0 * tu_slow();
}

/* ---- the notebook's total, done right ---- */

/* The notebook's `total`, a global: each process worker has its own copy. */
static long global_total;

/* In the arena. */
struct notebook {
    _Atomic long total;
    pid_t caller;
};

static int increment(const void *in, void *out, void *arg)
{
    struct notebook *nb = arg;
    long amt = *(const long *)in;
    long now =
        atomic_fetch_add_explicit(&nb->total, amt, memory_order_relaxed) + amt;
    if (out)
        *(long *)out = now;
    if (getpid() != nb->caller)
        global_total += amt; /* a process worker's copy of ours */
    return 0;
}

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void arena_atomics_notebook_total(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 2, 1 << 16);
        struct notebook *nb = alloc_ok(p, sizeof *nb);
        assert_int_equal(atomic_load(&nb->total), 0);
        nb->caller = getpid();
        global_total = 0;

        long fives[8] = {5, 5, 5, 5, 5, 5, 5, 5}, sub[8];
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = increment,
                                                   .in = fives,
                                                   .in_size = sizeof fives[0],
                                                   .out = sub,
                                                   .out_size = sizeof sub[0],
                                                   .n = 8,
                                                   .arg = nb,
                                                   .chunk = 1}),
                         0);
        assert_int_equal(atomic_load(&nb->total), 40);
        /* Every sub total once: 5, 10, ..., 40 (the notebook's processes
           printed 5 twice, each adding to its own copy). */
        qsort(sub, 8, sizeof sub[0], by_value);
        for (int i = 0; i < 8; i++)
            assert_int_equal(sub[i], 5 * (i + 1));
        assert_int_equal(global_total,
                         0); /* the lesson: a global is not shared */

        /* Under contention: many one-item claims racing on the counter. */
        size_t n = scaled(100000);
        long *ones = malloc(n * sizeof *ones);
        for (size_t i = 0; i < n; i++)
            ones[i] = 1;
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = increment,
                                                   .in = ones,
                                                   .in_size = sizeof ones[0],
                                                   .n = n,
                                                   .arg = nb,
                                                   .chunk = 1}),
                         0);
        assert_int_equal(atomic_load(&nb->total), 40 + (long)n);
        free(ones);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- pointers into the arena ---- */

/* Lives in the arena; `data` points into the arena too, and is written by
   the caller after the pool opened. */
struct chain {
    const long *data;
    _Atomic int arrived; /* a barrier: every worker holds one item at once */
    int workers;
    double deadline;
};

struct seen {
    long v;
    int worker;
};

static int follow(const void *in, void *out, void *arg)
{
    struct chain *c = arg;
    size_t i = *(const size_t *)in;
    struct seen *s = out;
    /* With one item per claim, no worker can take a second item before all
       have arrived: each of the `workers` items runs in a different worker. */
    atomic_fetch_add(&c->arrived, 1);
    while (atomic_load(&c->arrived) < c->workers) {
        if (tu_now() > c->deadline)
            return 1;
        usleep(100);
    }
    s->v = c->data[i];
    s->worker = mproc_worker_id();
    return 0;
}

static void arena_pointer_valid_in_every_worker(void **state)
{
    (void)state;
    enum { W = 4 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], W, 1 << 16);
        struct chain *c = alloc_ok(p, sizeof *c);
        for (int round = 0; round < 2; round++) {
            /* A fresh block each round, allocated and written long after
               the workers were forked. */
            long *data = alloc_ok(p, W * sizeof *data);
            for (int i = 0; i < W; i++)
                data[i] = 1000 * (round + 1) + 7 * i;
            c->data = data;
            c->workers = W;
            c->deadline = worker_deadline();
            atomic_store(&c->arrived, 0);

            size_t idx[W];
            struct seen out[W];
            for (int i = 0; i < W; i++) {
                idx[i] = (size_t)i;
                out[i] = (struct seen){-1, -1};
            }
            int status[W];
            int r = mproc_map(p, &(mproc_job){.fn = follow,
                                              .in = idx,
                                              .in_size = sizeof idx[0],
                                              .out = out,
                                              .out_size = sizeof out[0],
                                              .n = W,
                                              .arg = c,
                                              .chunk = 1,
                                              .status = status});
            assert_int_equal(r, 0);
            unsigned workers_seen = 0;
            for (int i = 0; i < W; i++) {
                if (out[i].v != data[i])
                    fail_msg("%s round %d: item %d read %ld, want %ld",
                             tu_kind_name(tu_kinds[k]), round, i, out[i].v,
                             data[i]);
                assert_in_range(out[i].worker, 0, W - 1);
                workers_seen |= 1u << out[i].worker;
            }
            assert_int_equal(workers_seen, (1u << W) - 1);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- jobs run in place ---- */

/* Where fn sees its item and result: the arena addresses of the caller's
   own arrays, or copies. */
struct where {
    const long *in;
    long *out;
};

enum { IN_COPIED = 1, OUT_COPIED = 2 };

static int check_place(const void *in, void *out, void *arg)
{
    const struct where *w = arg;
    long i = *(const long *)in;
    int rc = 0;
    if ((const long *)in != w->in + i)
        rc |= IN_COPIED;
    if ((long *)out != w->out + i)
        rc |= OUT_COPIED;
    *(long *)out = 3 * i + 1;
    return rc;
}

/* Map check_place over in/out and return the map's result, with every
   result checked. */
static int map_in_place(mproc_pool *p, long *in, long *out, size_t n,
                        int *status)
{
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        out[i] = -1;
    }
    struct where w = {in, out};
    int r = mproc_map(p, &(mproc_job){.fn = check_place,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = n,
                                      .arg = &w,
                                      .arg_size = sizeof w,
                                      .status = status});
    for (size_t i = 0; i < n; i++)
        if (out[i] != 3 * (long)i + 1)
            fail_msg("out[%zu] = %ld, want %ld", i, out[i], 3 * (long)i + 1);
    return r;
}

static void zero_copy_map_million(void **state)
{
    (void)state;
    size_t n = scaled((size_t)1 << 20);
    for (int k = 0; k < 2; k++) {
        mproc_kind kind = tu_kinds[k];
        mproc_pool *p = open_shared(
            kind, 2, n * (2 * sizeof(long) + sizeof(int)) + (1 << 16));
        long *in = alloc_ok(p, n * sizeof *in),
             *out = alloc_ok(p, n * sizeof *out);
        int *status = alloc_ok(p, n * sizeof *status);
        /* Both in the arena: fn sees the caller's own addresses. */
        assert_int_equal(map_in_place(p, in, out, n, status), 0);

        /* The control: the same check does see copies of private memory in
           a process pool (and never in a thread pool). */
        size_t m = 1000;
        long *pin = malloc(m * sizeof *pin), *pout = malloc(m * sizeof *pout);
        int *pst = malloc(m * sizeof *pst);
        struct {
            long *in, *out;
            int want;
        } mix[] = {
            {pin, pout, IN_COPIED | OUT_COPIED},
            {pin, out, IN_COPIED},
            {in, pout, OUT_COPIED},
        };
        for (size_t c = 0; c < sizeof mix / sizeof mix[0]; c++) {
            int want = kind == MPROC_PROCESSES ? mix[c].want : 0;
            int r = map_in_place(p, mix[c].in, mix[c].out, m, pst);
            assert_int_equal(r, want ? (int)m : 0);
            for (size_t i = 0; i < m; i++)
                if (pst[i] != want)
                    fail_msg("%s case %zu: item %zu status %d, want %d",
                             tu_kind_name(kind), c, i, pst[i], want);
        }
        free(pin);
        free(pout);
        free(pst);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* Results and statuses in the arena are the caller's as soon as an item
   finishes; in private memory of a process pool they arrive only when a
   wait or next hands them back. */
struct hold {
    _Atomic int open;
    double deadline;
};

static int first_then_held(const void *in, void *out, void *arg)
{
    struct hold *h = arg;
    long i = *(const long *)in;
    if (i == 1) {
        while (!atomic_load(&h->open)) {
            if (tu_now() > h->deadline)
                return 99;
            usleep(200);
        }
    }
    *(long *)out = 42 + i;
    return i == 0 ? 7 : 0;
}

static void wait_done(mproc_task *t, size_t want)
{
    double until = tu_now() + 30.0 * tu_slow();
    size_t done = 0;
    while (mproc_task_progress(t, &done, NULL) == 0 && done < want) {
        if (tu_now() > until)
            fail_msg("only %zu of %zu items finished", done, want);
        usleep(1000);
    }
}

static void zero_copy_results_visible_while_running(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_kind kind = tu_kinds[k];
        mproc_pool *p = open_shared(kind, 2, 1 << 16);
        struct hold *h = alloc_ok(p, sizeof *h);
        long in[2] = {0, 1};
        long *aout = alloc_ok(p, 2 * sizeof *aout);
        int *ast = alloc_ok(p, 2 * sizeof *ast);
        long pout[2];
        int pst[2];
        for (int arena = 1; arena >= 0; arena--) {
            long *out = arena ? aout : pout;
            int *st = arena ? ast : pst;
            out[0] = out[1] = -1;
            st[0] = st[1] = -1;
            atomic_store(&h->open, 0);
            h->deadline = worker_deadline();
            mproc_task *t;
            assert_int_equal(
                mproc_submit(p,
                             &(mproc_job){.fn = first_then_held,
                                          .in = in,
                                          .in_size = sizeof in[0],
                                          .out = out,
                                          .out_size = sizeof out[0],
                                          .n = 2,
                                          .arg = h,
                                          .chunk = 1,
                                          .status = st},
                             &t),
                0);
            wait_done(t, 1); /* item 0 finished; item 1 is held */
            if (arena || kind == MPROC_THREADS) {
                assert_int_equal(out[0], 42);
                assert_int_equal(st[0], 7);
            } else {
                /* No worker can write the caller's private memory. */
                assert_int_equal(out[0], -1);
                assert_int_equal(st[0], -1);
            }
            assert_int_equal(out[1], -1);
            atomic_store(&h->open, 1);
            assert_int_equal(mproc_task_wait(t, -1), 1);
            assert_int_equal(out[0], 42);
            assert_int_equal(out[1], 43);
            assert_int_equal(st[0], 7);
            assert_int_equal(st[1], 0);
            mproc_task_free(t);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* A job whose in, out, status and arg all live in the arena is run where it
   lies: a process pool stages nothing for it, not even while it runs. */
struct held_last {
    _Atomic int open;
    double deadline;
    long n;
};

static int odd_hold_last(const void *in, void *out, void *arg)
{
    struct held_last *h = arg;
    long i = *(const long *)in;
    if (i == h->n - 1) {
        while (!atomic_load(&h->open)) {
            if (tu_now() > h->deadline)
                return 99;
            usleep(200);
        }
    }
    *(long *)out = 2 * i + 1;
    return 0;
}

/* Submit odd_hold_last over in/out/status (item n-1 held until the gate
   opens) and return the staging heap's block count twice while the task is
   in flight (at once, and once every other item is done) and once after it
   is freed; every result is checked. */
static void staged_blocks(mproc_pool *p, struct held_last *h, long *in,
                          long *out, int *status, size_t n, size_t used[3])
{
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        out[i] = -1;
        status[i] = -1;
    }
    atomic_store(&h->open, 0);
    h->deadline = worker_deadline();
    h->n = (long)n;
    mproc_task *t;
    assert_int_equal(mproc_submit(p,
                                  &(mproc_job){.fn = odd_hold_last,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = n,
                                               .status = status,
                                               .arg = h},
                                  &t),
                     0);
    size_t done = SIZE_MAX;
    assert_int_equal(mproc_task_progress(t, &done, NULL), 0);
    assert_true(done < n); /* the last item is held */
    used[0] = p->staging.nused;
    wait_done(t, n - 1);
    assert_int_equal(mproc_task_progress(t, &done, NULL), 0);
    assert_int_equal(done, n - 1);
    used[1] = p->staging.nused;
    atomic_store(&h->open, 1);
    assert_int_equal(mproc_task_wait(t, -1), 0);
    mproc_task_free(t);
    used[2] = p->staging.nused;
    for (size_t i = 0; i < n; i++)
        if (out[i] != 2 * (long)i + 1 || status[i] != 0)
            fail_msg("item %zu: out %ld, status %d; want %ld, 0", i, out[i],
                     status[i], 2 * (long)i + 1);
}

static void zero_copy_uses_no_staging(void **state)
{
    (void)state;
    size_t n = scaled((size_t)1 << 20);
    mproc_pool *p = open_shared(
        MPROC_PROCESSES, 2, n * (2 * sizeof(long) + sizeof(int)) + (1 << 16));
    struct held_last *h = alloc_ok(p, sizeof *h);
    long *in = alloc_ok(p, n * sizeof *in), *out = alloc_ok(p, n * sizeof *out);
    int *status = alloc_ok(p, n * sizeof *status);
    assert_int_equal(p->staging.nused, 0);
    size_t used[3];
    staged_blocks(p, h, in, out, status, n, used);
    for (int i = 0; i < 3; i++)
        if (used[i] != 0)
            fail_msg("arena job, look %d: %zu staging blocks, want 0", i,
                     used[i]);

    /* The control: the same job on private memory is staged while it runs
       (so the check above can fail), and the block is gone after. */
    long *pin = malloc(n * sizeof *pin), *pout = malloc(n * sizeof *pout);
    int *pst = malloc(n * sizeof *pst);
    staged_blocks(p, h, pin, pout, pst, n, used);
    for (int i = 0; i < 2; i++)
        if (used[i] != 1)
            fail_msg("private job, look %d: %zu staging blocks, want 1", i,
                     used[i]);
    assert_int_equal(used[2], 0);
    free(pin);
    free(pout);
    free(pst);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* ---- the job's arg ---- */

struct params {
    long mul, add;
    struct hold *gate; /* in the arena; may be NULL */
    char pad[200];     /* more than a pointer's worth */
};

struct arg_seen {
    long v;
    uintptr_t arg;
};

static int use_params(const void *in, void *out, void *arg)
{
    const struct params *pa = arg;
    struct arg_seen *s = out;
    if (pa->gate) {
        while (!atomic_load(&pa->gate->open)) {
            if (tu_now() > pa->gate->deadline)
                return 99;
            usleep(200);
        }
    }
    s->v = *(const long *)in * pa->mul + pa->add;
    s->arg = (uintptr_t)arg;
    for (size_t i = 0; i < sizeof pa->pad; i++)
        if (pa->pad[i] != (char)i)
            return 98;
    return 0;
}

/* Map use_params with arg_size > 0 and check each result; returns the
   address fn saw, the same for every item. */
static uintptr_t map_params(mproc_pool *p, struct params *pa, long mul,
                            long add)
{
    enum { N = 200 };
    long in[N];
    struct arg_seen out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = use_params,
                                               .in = in,
                                               .in_size = sizeof in[0],
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = N,
                                               .arg = pa,
                                               .arg_size = sizeof *pa,
                                               .chunk = 3}),
                     0);
    for (int i = 0; i < N; i++) {
        if (out[i].v != i * mul + add)
            fail_msg("item %d: %ld, want %ld", i, out[i].v, i * mul + add);
        assert_true(out[i].arg == out[0].arg);
    }
    return out[0].arg;
}

static void fill_pad(struct params *pa)
{
    for (size_t i = 0; i < sizeof pa->pad; i++)
        pa->pad[i] = (char)i;
}

static void arg_copied_per_map(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_kind kind = tu_kinds[k];
        mproc_pool *p = open_shared(kind, 2, 1 << 16);
        /* Set after the pool opened: process workers know it only through
           the copy. */
        struct params pa = {.mul = 3, .add = 5};
        fill_pad(&pa);
        /* Both kinds copy, so that the caller may reuse pa at once. */
        uintptr_t at = map_params(p, &pa, 3, 5);
        assert_true(at != (uintptr_t)&pa);
        /* A new copy for each map. */
        pa.mul = -4;
        pa.add = 11;
        map_params(p, &pa, -4, 11);

        /* In a process pool's arena already: passed as is, even with
           arg_size > 0. */
        struct params *shared = alloc_ok(p, sizeof *shared);
        *shared = pa;
        shared->mul = 6;
        at = map_params(p, shared, 6, 11);
        if (kind == MPROC_PROCESSES)
            assert_true(at == (uintptr_t)shared);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void arg_reusable_once_submitted(void **state)
{
    (void)state;
    /* arg is copied at submit, so the caller may reuse it at once. */
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 2, 1 << 16);
        struct hold *gate = alloc_ok(p, sizeof *gate);
        gate->deadline = worker_deadline();
        struct params pa = {.mul = 2, .add = 1, .gate = gate};
        fill_pad(&pa);
        enum { N = 50 };
        long in[N];
        struct arg_seen out[N];
        for (int i = 0; i < N; i++)
            in[i] = i;
        mproc_task *t;
        assert_int_equal(mproc_submit(p,
                                      &(mproc_job){.fn = use_params,
                                                   .in = in,
                                                   .in_size = sizeof in[0],
                                                   .out = out,
                                                   .out_size = sizeof out[0],
                                                   .n = N,
                                                   .arg = &pa,
                                                   .arg_size = sizeof pa},
                                      &t),
                         0);
        /* No item can have read arg yet: all wait at the gate. */
        memset(&pa, 0x5a, sizeof pa);
        atomic_store(&gate->open, 1);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(out[i].v, 2 * i + 1);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* arg_size 0: the pointer itself, valid for arena memory in every kind. */
struct tally {
    long base;
    long hits[100];
};

static int write_tally(const void *in, void *out, void *arg)
{
    struct tally *ta = arg;
    long i = *(const long *)in;
    (void)out;
    ta->hits[i] = ta->base + i;
    return 0;
}

static void arg_pointer_into_arena(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 1 << 16);
        struct tally *ta = alloc_ok(p, sizeof *ta);
        ta->base = 7000; /* after open */
        long in[100];
        for (int i = 0; i < 100; i++)
            in[i] = i;
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = write_tally,
                                                   .in = in,
                                                   .in_size = sizeof in[0],
                                                   .n = 100,
                                                   .arg = ta}),
                         0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(ta->hits[i], 7000 + i);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- the allocator ---- */

static bool all_bytes(const void *m, size_t size, unsigned char c)
{
    const unsigned char *b = m;
    for (size_t i = 0; i < size; i++)
        if (b[i] != c)
            return false;
    return true;
}

static void arena_aligns_and_zeroes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1,     7,     63,   64,    65,   100,
                                   127,   128,   1000, 4095,  4096, 4097,
                                   10000, 65536, 3,    200000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 1, 1 << 20);
        unsigned char *m[N];
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < N; i++) {
                m[i] = alloc_ok(p, sizes[i]);
                if ((uintptr_t)m[i] % 64)
                    fail_msg("block of %zu at %p: not 64-byte aligned",
                             sizes[i], (void *)m[i]);
                /* Zero, also where an earlier round wrote. */
                if (!all_bytes(m[i], sizes[i], 0))
                    fail_msg("round %d: block of %zu not zero", round,
                             sizes[i]);
                memset(m[i], 0x10 + i, sizes[i]);
            }
            /* No block overlaps another. */
            for (int i = 0; i < N; i++)
                assert_true(
                    all_bytes(m[i], sizes[i], (unsigned char)(0x10 + i)));
            /* Free in a different order each round. */
            for (int i = 0; i < N; i++)
                mproc_shared_free(p, m[round == 1 ? N - 1 - i : i]);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void expect_enomem(mproc_pool *p, size_t size)
{
    errno = 0;
    void *m = mproc_shared_alloc(p, size);
    if (m)
        fail_msg("mproc_shared_alloc(%zu) = %p, want NULL", size, m);
    assert_int_equal(errno, ENOMEM);
}

/* A worker dirties a block; freed and handed out again, it reads as zero in
   the caller and in the workers. */
struct dirty {
    unsigned char *block;
    size_t size;
    unsigned char with;
};

static int dirty_or_check(const void *in, void *out, void *arg)
{
    const struct dirty *d = arg;
    (void)in;
    (void)out;
    if (d->with) {
        memset(d->block, d->with, d->size);
        return 0;
    }
    return all_bytes(d->block, d->size, 0) ? 0 : 1;
}

static void arena_memory_is_zero_when_handed_out(void **state)
{
    (void)state;
    const size_t S = 1 << 16;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 2, S);
        /* The whole arena, then a block with edges inside pages. */
        for (int shape = 0; shape < 2; shape++) {
            /* Shape 1: head, b, tail fill the arena (blocks start 64-byte
               aligned, so b takes 5056 bytes of it). */
            unsigned char *head = shape ? alloc_ok(p, 64) : NULL;
            size_t size = shape ? 5000 : S;
            unsigned char *b = alloc_ok(p, size);
            unsigned char *tail = shape ? alloc_ok(p, S - 64 - 5056) : NULL;
            expect_enomem(p, 1);
            struct dirty d = {b, size, 0xab};
            assert_int_equal(mproc_map(p, &(mproc_job){.fn = dirty_or_check,
                                                       .n = 1,
                                                       .arg = &d,
                                                       .arg_size = sizeof d}),
                             0);
            assert_true(all_bytes(b, size, 0xab));
            mproc_shared_free(p, b);
            unsigned char *again = alloc_ok(p, size);
            assert_ptr_equal(again, b); /* the only place it fits */
            assert_true(all_bytes(again, size, 0));
            d.with = 0;
            assert_int_equal(mproc_map(p, &(mproc_job){.fn = dirty_or_check,
                                                       .n = 4,
                                                       .arg = &d,
                                                       .arg_size = sizeof d,
                                                       .chunk = 1}),
                             0);
            mproc_shared_free(p, again);
            mproc_shared_free(p, head);
            mproc_shared_free(p, tail);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void arena_free_coalesces(void **state)
{
    (void)state;
    const size_t S = 1 << 16, q = S / 4;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 1, S);
        /* Four quarters fill the arena, so they lie side by side. */
        char *b[4];
        for (int i = 0; i < 4; i++)
            b[i] = alloc_ok(p, q);
        expect_enomem(p, 64);
        for (int i = 0; i < 4; i++)
            for (int j = i + 1; j < 4; j++)
                if (b[j] < b[i]) {
                    char *x = b[i];
                    b[i] = b[j];
                    b[j] = x;
                }
        for (int i = 1; i < 4; i++)
            assert_ptr_equal(b[i], b[i - 1] + q);

        /* Two neighbours freed (the later first): one block of both. */
        mproc_shared_free(p, b[1]);
        mproc_shared_free(p, b[0]);
        expect_enomem(p, 2 * q + 1);
        char *two = alloc_ok(p, 2 * q);
        assert_ptr_equal(two, b[0]);
        expect_enomem(p, 64);

        /* A hole each side of b[2], then b[2]: all three merge, and with
           b[3] gone too, the whole arena is one block again. */
        mproc_shared_free(p, two);
        mproc_shared_free(p, b[3]);
        expect_enomem(p, 2 * q + 1);
        mproc_shared_free(p, b[2]);
        char *all = alloc_ok(p, S);
        assert_ptr_equal(all, b[0]);
        mproc_shared_free(p, all);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static int add_one(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in + 1;
    return 0;
}

/* The pool maps as before, from private memory and from the arena. */
static void pool_still_maps(mproc_pool *p, long *arena_buf, size_t n)
{
    long in[64], out[64];
    for (int i = 0; i < 64; i++)
        in[i] = i;
    assert_int_equal(MPROC_MAP(p, add_one, in, out, 64), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(out[i], i + 1);
    for (size_t i = 0; i < n; i++)
        arena_buf[i] = (long)i * 2;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = add_one,
                                               .in = arena_buf,
                                               .in_size = sizeof *arena_buf,
                                               .out = arena_buf,
                                               .out_size = sizeof *arena_buf,
                                               .n = n,
                                               .chunk = 1}),
                     0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(arena_buf[i], (long)i * 2 + 1);
}

static void arena_exhaustion_and_fragmentation(void **state)
{
    (void)state;
    const size_t S = 1 << 16, e = S / 16;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 2, S);
        expect_enomem(p, S + 1);
        /* Sixteen blocks fill it. */
        char *b[16];
        for (int i = 0; i < 16; i++)
            b[i] = alloc_ok(p, e);
        expect_enomem(p, 1);
        /* The pool works with its arena full (copies have their own area). */
        pool_still_maps(p, (long *)b[0], e / sizeof(long));

        /* Every other block freed: half the arena is free, in holes of e. */
        for (int i = 0; i < 16; i += 2)
            mproc_shared_free(p, b[i]);
        expect_enomem(p, e + 1);
        expect_enomem(p, 2 * e);
        char *small[8];
        for (int i = 0; i < 8; i++) {
            small[i] = alloc_ok(p, e);
            bool in_a_hole = false;
            for (int j = 0; j < 16; j += 2)
                in_a_hole |= small[i] == b[j];
            assert_true(in_a_hole);
        }
        expect_enomem(p, 1);
        pool_still_maps(p, (long *)small[3], e / sizeof(long));

        /* Everything back: one block of the whole arena. */
        for (int i = 0; i < 8; i++)
            mproc_shared_free(p, small[i]);
        for (int i = 1; i < 16; i += 2)
            mproc_shared_free(p, b[i]);
        char *all = alloc_ok(p, S);
        pool_still_maps(p, (long *)all, S / sizeof(long));
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void arena_bad_sizes_and_foreign_frees(void **state)
{
    (void)state;
    const size_t S = 1 << 16;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 1, S);
        mproc_pool *other = open_shared(tu_kinds[k], 1, S);

        errno = 0;
        assert_null(mproc_shared_alloc(p, 0));
        assert_int_equal(errno, EINVAL);
        size_t absurd[] = {SIZE_MAX,        SIZE_MAX - 63, SIZE_MAX / 2,
                           (size_t)1 << 62, S + 1,         S + 64};
        for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++)
            expect_enomem(p, absurd[i]);

        /* The whole arena in one block, and the other pool's too. */
        char *x = alloc_ok(p, S), *y = alloc_ok(other, S);
        memset(x, 0x11, S);
        memset(y, 0x22, S);
        mproc_shared_free(p, NULL);
        int local;
        char *heap = malloc(64);
        void *foreign[] = {&local, heap,   x + 64, x + S - 64,
                           x + S,  x - 64, y,      (void *)(uintptr_t)64};
        for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
            mproc_shared_free(p, foreign[i]);
        mproc_shared_free(other, x);
        free(heap);
        /* Each ignored: both arenas are still full, their blocks intact. */
        expect_enomem(p, 64);
        expect_enomem(other, 64);
        assert_true(all_bytes(x, S, 0x11));
        assert_true(all_bytes(y, S, 0x22));

        mproc_shared_free(p, x);
        assert_ptr_equal(alloc_ok(p, S), x);
        assert_int_equal(mproc_pool_close(other), 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* Any thread of the opening process may allocate; a process worker may not. */
struct from_worker {
    mproc_pool *pool;
};

static int alloc_in_worker(const void *in, void *out, void *arg)
{
    const struct from_worker *fw = arg;
    (void)in;
    errno = 0;
    void *m = mproc_shared_alloc(fw->pool, 128);
    *(int *)out = m ? 0 : errno;
    if (m) {
        if (((uintptr_t)m % 64) || !all_bytes(m, 128, 0))
            return 1;
        mproc_shared_free(fw->pool, m);
    }
    return 0;
}

static void arena_alloc_inside_workers(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 2, 1 << 16);
        struct from_worker fw = {p};
        int err[4];
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = alloc_in_worker,
                                                   .out = err,
                                                   .out_size = sizeof err[0],
                                                   .n = 4,
                                                   .arg = &fw,
                                                   .arg_size = sizeof fw,
                                                   .chunk = 1}),
                         0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(err[i],
                             tu_kinds[k] == MPROC_PROCESSES ? EPERM : 0);
        assert_non_null(alloc_ok(p, 1 << 16)); /* nothing leaked in the arena */
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

struct churn {
    mproc_pool *pool;
    int id;
    int bad;
};

static void *churn(void *arg)
{
    struct churn *c = arg;
    unsigned seed = (unsigned)c->id * 7919u + 1;
    unsigned char *live[8] = {0};
    size_t sizes[8] = {0};
    for (int it = 0; it < 2000; it++) {
        int s = (int)(rand_r(&seed) % 8);
        if (live[s]) {
            if (!all_bytes(live[s], sizes[s],
                           (unsigned char)(c->id * 8 + s + 1)))
                c->bad++;
            mproc_shared_free(c->pool, live[s]);
            live[s] = NULL;
            continue;
        }
        sizes[s] = 1 + rand_r(&seed) % 3000;
        live[s] = mproc_shared_alloc(c->pool, sizes[s]);
        if (!live[s] || (uintptr_t)live[s] % 64 ||
            !all_bytes(live[s], sizes[s], 0)) {
            c->bad++;
            live[s] = NULL;
            continue;
        }
        memset(live[s], c->id * 8 + s + 1, sizes[s]);
    }
    for (int s = 0; s < 8; s++)
        mproc_shared_free(c->pool, live[s]);
    return NULL;
}

static void arena_alloc_from_many_threads(void **state)
{
    (void)state;
    enum { T = 4 };
    for (int k = 0; k < 2; k++) {
        const size_t S = 1 << 20;
        mproc_pool *p = open_shared(tu_kinds[k], 1, S);
        pthread_t th[T];
        struct churn c[T];
        for (int i = 0; i < T; i++) {
            c[i] = (struct churn){p, i, 0};
            assert_int_equal(pthread_create(&th[i], NULL, churn, &c[i]), 0);
        }
        for (int i = 0; i < T; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(c[i].bad, 0);
        }
        /* All returned and coalesced. */
        mproc_shared_free(p, alloc_ok(p, S));
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- committing memory ---- */

/* Resident kB of the whole process (Rss of /proc/self/smaps_rollup, else
   VmRSS). */
static long process_rss_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    const char *key = "Rss:";
    if (!f) {
        f = fopen("/proc/self/status", "r");
        key = "VmRSS:";
    }
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            kb = strtol(line + strlen(key), NULL, 10);
    fclose(f);
    assert_true(kb >= 0);
    return kb;
}

/* Resident kB of the mappings that overlap [lo, hi). */
static long range_rss_kb(const void *lo, const void *hi)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    bool in = false;
    long kb = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t a, z;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &z) == 2 &&
            strchr(line, ' ') > strchr(line, '-')) {
            in = a < (uintptr_t)hi && z > (uintptr_t)lo;
        } else if (in && !strncmp(line, "Rss:", 4)) {
            kb += strtol(line + 4, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

/* The arena reserves address space; memory is committed only where it is
   touched, in both kinds. */
static void arena_committed_only_when_touched(void **state)
{
    (void)state;
    const size_t size = (size_t)1 << 30, touch = (size_t)64 << 20;
    const long small_kb = 32 << 10, touched_kb = 60 << 10;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int k = 0; k < 2; k++) {
        const char *kind = tu_kind_name(tu_kinds[k]);
        long before = process_rss_kb();
        mproc_pool *p = open_shared(tu_kinds[k], 2, size);
        long opened = process_rss_kb();
        if (opened - before >= small_kb)
            fail_msg("%s: open with a 1 GiB arena: RSS %ld kB -> %ld kB", kind,
                     before, opened);
        char *m = alloc_ok(p, size);
        long allocated = process_rss_kb(), arena = range_rss_kb(m, m + size);
        if (allocated - before >= small_kb || arena >= small_kb)
            fail_msg("%s: 1 GiB allocated: RSS %ld kB -> %ld kB, arena %ld kB",
                     kind, before, allocated, arena);
        for (size_t i = 0; i < touch; i += page)
            ((volatile char *)m)[i] = 1;
        long touched = process_rss_kb();
        arena = range_rss_kb(m, m + size);
        if (touched - allocated < touched_kb || arena < touched_kb)
            fail_msg("%s: 64 MiB touched: RSS %ld kB -> %ld kB, arena %ld kB",
                     kind, allocated, touched, arena);
        mproc_shared_free(p, m);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- crashes (process pools) ---- */

/* A real invalid write, hidden from the compiler and the sanitizers. */
static volatile int *volatile bad_address = (volatile int *)16;

__attribute__((noinline, no_sanitize("address", "undefined"))) static void
segfault(void)
{
    *bad_address = 1;
}

enum { OK, ABRT, SEGV };

struct op {
    int op;
    long v;
};

struct crash_log {
    long *res;       /* arena: results, written by fn */
    pid_t *pid;      /* arena: the process that ran each item */
    const long *src; /* arena: input of the second map, NULL in the first */
};

static int crashy(const void *in, void *out, void *arg)
{
    const struct op *o = in;
    const struct crash_log *cl = arg;
    cl->pid[o->v] = getpid();
    if (o->op == ABRT)
        abort();
    if (o->op == SEGV)
        segfault();
    long r = cl->src ? cl->src[o->v] * 10 : o->v * o->v + 1;
    cl->res[o->v] = r;
    *(long *)out = r;
    return 0;
}

static void replaced_workers_see_the_arena(void **state)
{
    (void)state;
    tu_default_signals();
    enum { N = 30 };
    for (int chunk = 0; chunk <= 1; chunk++) {
        /* One worker: whatever runs after a crash runs in its replacement. */
        mproc_pool *p = open_shared(MPROC_PROCESSES, 1, 1 << 16);
        struct crash_log cl = {alloc_ok(p, N * sizeof(long)),
                               alloc_ok(p, N * sizeof(pid_t)), NULL};
        struct op ops[N];
        for (int i = 0; i < N; i++)
            ops[i] = (struct op){i == 10 ? ABRT : i == 20 ? SEGV : OK, i};
        long out[N];
        int status[N];
        for (int i = 0; i < N; i++)
            out[i] = -1;
        int r = mproc_map(p, &(mproc_job){.fn = crashy,
                                          .in = ops,
                                          .in_size = sizeof ops[0],
                                          .out = out,
                                          .out_size = sizeof out[0],
                                          .n = N,
                                          .arg = &cl,
                                          .arg_size = sizeof cl,
                                          .chunk = (size_t)chunk,
                                          .status = status});
        assert_int_equal(r, 2);
        for (int i = 0; i < N; i++) {
            if (i == 10 || i == 20) {
                assert_int_equal(status[i], MPROC_ECRASHED);
                assert_int_equal(cl.res[i], 0);
                assert_int_equal(out[i], -1);
                continue;
            }
            assert_int_equal(status[i], 0);
            assert_int_equal(cl.res[i], (long)i * i + 1);
            assert_int_equal(out[i], (long)i * i + 1);
        }
        /* Three processes in turn: the first until item 10, then two
           replacements, each writing to the arena. */
        for (int i = 0; i < N; i++) {
            pid_t want = cl.pid[i <= 10 ? 0 : i <= 20 ? 11 : 21];
            assert_int_equal(cl.pid[i], want);
        }
        assert_true(cl.pid[0] != cl.pid[11] && cl.pid[11] != cl.pid[21] &&
                    cl.pid[0] != cl.pid[21]);
        pid_t last = cl.pid[21];

        /* A next map, on blocks allocated after the replacement started. */
        long *src = alloc_ok(p, N * sizeof *src);
        for (int i = 0; i < N; i++) {
            src[i] = 100 + i;
            ops[i].op = OK;
        }
        struct crash_log cl2 = {alloc_ok(p, N * sizeof(long)), cl.pid, src};
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = crashy,
                                                   .in = ops,
                                                   .in_size = sizeof ops[0],
                                                   .out = out,
                                                   .out_size = sizeof out[0],
                                                   .n = N,
                                                   .arg = &cl2,
                                                   .arg_size = sizeof cl2,
                                                   .status = status}),
                         0);
        for (int i = 0; i < N; i++) {
            assert_int_equal(cl2.res[i], 10 * (100 + i));
            assert_int_equal(out[i], 10 * (100 + i));
            assert_int_equal(cl.pid[i], last);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- reductions ---- */

static int copy_long(const void *in, void *out, void *arg)
{
    (void)arg;
    if (!out)
        return 1; /* with reduce, fn always gets somewhere to write */
    *(long *)out = *(const long *)in;
    return 0;
}

static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

/* Sum 1..n with the given chunk; out may be NULL. */
static void sum_ints(mproc_pool *p, size_t n, size_t chunk, bool keep_out)
{
    long *in = malloc((n ? n : 1) * sizeof *in);
    long *out = keep_out ? malloc((n ? n : 1) * sizeof *out) : NULL;
    for (size_t i = 0; i < n; i++)
        in[i] = (long)i + 1;
    long acc = 0;
    int r = mproc_map(p, &(mproc_job){.fn = copy_long,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof(long),
                                      .n = n,
                                      .chunk = chunk,
                                      .reduce = add_long,
                                      .acc = &acc});
    assert_int_equal(r, 0);
    long want = (long)n * ((long)n + 1) / 2;
    if (acc != want)
        fail_msg("n=%zu chunk=%zu out=%s: sum %ld, want %ld", n, chunk,
                 keep_out ? "kept" : "NULL", acc, want);
    for (size_t i = 0; keep_out && i < n; i++)
        assert_int_equal(out[i], (long)i + 1);
    free(in);
    free(out);
}

static void reduce_integer_sum(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 0);
        sum_ints(p, 100000, 0, true);
        sum_ints(p, 1, 0, true);
        sum_ints(p, 0, 0, true); /* the identity */
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static int reciprocal(const void *in, void *out, void *arg)
{
    (void)arg;
    *(double *)out = 1.0 / (double)(*(const long *)in + 1);
    return 0;
}

static void add_double(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(double *)acc += *(const double *)r;
}

static void reduce_double_sum(void **state)
{
    (void)state;
    const size_t n = 100000;
    long *in = malloc(n * sizeof *in);
    double serial = 0;
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        serial += 1.0 / (double)(i + 1);
    }
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 0);
        double acc = 0;
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = reciprocal,
                                                   .in = in,
                                                   .in_size = sizeof *in,
                                                   .out_size = sizeof(double),
                                                   .n = n,
                                                   .reduce = add_double,
                                                   .acc = &acc}),
                         0);
        if (!(fabs(acc - serial) <= 1e-12 * fabs(serial)))
            fail_msg("%s: sum %.17g, serial %.17g", tu_kind_name(tu_kinds[k]),
                     acc, serial);
        assert_int_equal(mproc_pool_close(p), 0);
    }
    free(in);
}

static int long_or_abort(const void *in, void *out, void *arg)
{
    const struct op *o = in;
    (void)arg;
    if (o->op == ABRT)
        abort();
    if (o->op == SEGV)
        segfault();
    *(long *)out = o->v;
    return 0;
}

static void reduce_with_a_crash(void **state)
{
    (void)state;
    tu_default_signals();
    enum { N = 1000 };
    struct op ops[N];
    static const size_t chunks[] = {0, 1, 64, N};
    static const int crash_at[] = {500, 0, N - 1, 449};
    mproc_pool *p = open_shared(MPROC_PROCESSES, 3, 0);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        for (size_t x = 0; x < sizeof crash_at / sizeof crash_at[0]; x++) {
            int bad = crash_at[x];
            long want = 0;
            for (int i = 0; i < N; i++) {
                ops[i] =
                    (struct op){i == bad ? (x % 2 ? SEGV : ABRT) : OK, i + 1};
                want += i == bad ? 0 : i + 1;
            }
            int status[N];
            long acc = 0;
            int r = mproc_map(p, &(mproc_job){.fn = long_or_abort,
                                              .in = ops,
                                              .in_size = sizeof ops[0],
                                              .out_size = sizeof(long),
                                              .n = N,
                                              .chunk = chunks[c],
                                              .status = status,
                                              .reduce = add_long,
                                              .acc = &acc});
            if (r != 1 || acc != want)
                fail_msg("chunk %zu, crash at %d: returned %d, sum %ld, want 1 "
                         "and %ld",
                         chunks[c], bad, r, acc, want);
            for (int i = 0; i < N; i++)
                assert_int_equal(status[i], i == bad ? MPROC_ECRASHED : 0);
        }
    }
    assert_int_equal(mproc_pool_close(p), 0);
}

static void reduce_chunk_sizes(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 7, 4096, 100000, SIZE_MAX};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 0);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            sum_ints(p, scaled(100000), chunks[c], true);
            sum_ints(p, 10, chunks[c], false);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void reduce_out_null(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 0);
        sum_ints(p, 100000, 0, false);
        sum_ints(p, 3, 1, false);
        sum_ints(p, 0, 0, false);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* A result larger than a word, not a multiple of 8, with an identity that
   is not zero bytes. */
struct stats {
    long sum, min, max;
    char tag[5];
};

static int stat_of(const void *in, void *out, void *arg)
{
    long v = *(const long *)in;
    (void)arg;
    *(struct stats *)out = (struct stats){v, v, v, "item"};
    return 0;
}

static void fold_stats(void *acc, const void *r, void *arg)
{
    struct stats *a = acc;
    const struct stats *b = r;
    (void)arg;
    a->sum += b->sum;
    a->min = b->min < a->min ? b->min : a->min;
    a->max = b->max > a->max ? b->max : a->max;
    if (strcmp(b->tag, "item") && strcmp(b->tag, "none"))
        a->tag[0] = '!';
}

static void reduce_struct_result(void **state)
{
    (void)state;
    enum { N = 5000 };
    long in[N];
    for (int i = 0; i < N; i++)
        in[i] = (i * 7919L) % 10007 - 5000;
    long sum = 0, mn = LONG_MAX, mx = LONG_MIN;
    for (int i = 0; i < N; i++) {
        sum += in[i];
        mn = in[i] < mn ? in[i] : mn;
        mx = in[i] > mx ? in[i] : mx;
    }
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_shared(tu_kinds[k], 3, 0);
        for (size_t n = 0; n <= N; n += N) {
            struct stats acc = {0, LONG_MAX, LONG_MIN, "none"};
            assert_int_equal(mproc_map(p, &(mproc_job){.fn = stat_of,
                                                       .in = in,
                                                       .in_size = sizeof in[0],
                                                       .out_size = sizeof acc,
                                                       .n = n,
                                                       .reduce = fold_stats,
                                                       .acc = &acc}),
                             0);
            assert_int_equal(acc.sum, n ? sum : 0);
            assert_int_equal(acc.min, n ? mn : LONG_MAX);
            assert_int_equal(acc.max, n ? mx : LONG_MIN);
            assert_string_equal(acc.tag, "none");
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arena_atomics_notebook_total),
        cmocka_unit_test(arena_pointer_valid_in_every_worker),
        cmocka_unit_test(zero_copy_map_million),
        cmocka_unit_test(zero_copy_results_visible_while_running),
        cmocka_unit_test(zero_copy_uses_no_staging),
        cmocka_unit_test(arg_copied_per_map),
        cmocka_unit_test(arg_reusable_once_submitted),
        cmocka_unit_test(arg_pointer_into_arena),
        cmocka_unit_test(arena_aligns_and_zeroes),
        cmocka_unit_test(arena_memory_is_zero_when_handed_out),
        cmocka_unit_test(arena_free_coalesces),
        cmocka_unit_test(arena_exhaustion_and_fragmentation),
        cmocka_unit_test(arena_bad_sizes_and_foreign_frees),
        cmocka_unit_test(arena_alloc_inside_workers),
        cmocka_unit_test(arena_alloc_from_many_threads),
        cmocka_unit_test(replaced_workers_see_the_arena),
        cmocka_unit_test(arena_committed_only_when_touched),
        cmocka_unit_test(reduce_integer_sum),
        cmocka_unit_test(reduce_double_sum),
        cmocka_unit_test(reduce_with_a_crash),
        cmocka_unit_test(reduce_chunk_sizes),
        cmocka_unit_test(reduce_out_null),
        cmocka_unit_test(reduce_struct_result),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
