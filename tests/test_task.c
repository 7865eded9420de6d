/*
 * Asynchronous maps: mproc_submit and the task calls, on both kinds of
 * pool. Items that must not finish yet wait on flags in the shared arena,
 * which the caller raises, so that the order in which items finish is the
 * test's choice and no check depends on timing.
 */
#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
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

enum { MAXN = 256 };

/*
 * What the items of a gated job share with the caller, in the arena. Item i
 * may finish once go[i] is set or i < limit; it counts itself in `started`
 * when fn begins and in `ended` when fn returns. A worker gives up after
 * `deadline` (returning GAVE_UP), so that a broken test fails, not hangs.
 */
struct gates {
    _Atomic long started, ended, limit;
    _Atomic int go[MAXN];
    _Atomic int ran[MAXN];
    double deadline;
};

enum { GAVE_UP = 99 };

static int gated(const void *in, void *out, void *arg)
{
    struct gates *g = arg;
    long i = *(const long *)in;
    atomic_fetch_add(&g->started, 1);
    atomic_store(&g->ran[i], 1);
    while (!atomic_load(&g->go[i]) && atomic_load(&g->limit) <= i) {
        if (tu_now() > g->deadline)
            return GAVE_UP;
        usleep(200);
    }
    if (out)
        *(long *)out = 10 * i + 3;
    atomic_fetch_add(&g->ended, 1);
    return 0;
}

struct fixture {
    mproc_pool *pool;
    struct gates *g;
    long in[MAXN], out[MAXN];
    int status[MAXN];
};

static void fixture_open(struct fixture *f, mproc_kind kind, int workers)
{
    memset(f, 0, sizeof *f);
    int r = mproc_pool_open(&f->pool, &(mproc_options){.kind = kind,
                                                       .workers = workers,
                                                       .shared_size = 1 << 16});
    if (r)
        fail_msg("open (%s): %s", tu_kind_name(kind), mproc_strerror(r));
    f->g = mproc_shared_alloc(f->pool, sizeof *f->g);
    assert_non_null(f->g);
    f->g->deadline = tu_now() + 60.0 * tu_slow();
    for (int i = 0; i < MAXN; i++) {
        f->in[i] = i;
        f->out[i] = -1;
        f->status[i] = -1;
    }
}

static mproc_task *fixture_submit(struct fixture *f, size_t n, size_t chunk)
{
    assert_true(n <= MAXN);
    mproc_task *t = NULL;
    int r = mproc_submit(f->pool,
                         &(mproc_job){.fn = gated,
                                      .in = f->in,
                                      .in_size = sizeof f->in[0],
                                      .out = f->out,
                                      .out_size = sizeof f->out[0],
                                      .n = n,
                                      .arg = f->g,
                                      .chunk = chunk,
                                      .status = f->status},
                         &t);
    assert_int_equal(r, 0);
    assert_non_null(t);
    return t;
}

/* Wait (as the caller) until *v reaches want. */
static void await_count(_Atomic long *v, long want, const char *what)
{
    double until = tu_now() + 30.0 * tu_slow();
    while (atomic_load(v) < want) {
        if (tu_now() > until)
            fail_msg("%s: %ld, waited for %ld", what, atomic_load(v), want);
        usleep(500);
    }
}

static size_t done_of(const mproc_task *t)
{
    size_t done = SIZE_MAX, n = SIZE_MAX;
    assert_int_equal(mproc_task_progress(t, &done, &n), 0);
    assert_true(done <= n);
    return done;
}

static void await_done(const mproc_task *t, size_t want)
{
    double until = tu_now() + 30.0 * tu_slow();
    size_t done;
    while ((done = done_of(t)) < want) {
        if (tu_now() > until)
            fail_msg("progress %zu, waited for %zu", done, want);
        usleep(500);
    }
}

/* Check the results of a finished gated job: started items have their
   result, the others are cancelled and untouched. Returns the cancelled. */
static size_t check_gated(struct fixture *f, size_t n)
{
    size_t cancelled = 0;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&f->g->ran[i])) {
            if (f->status[i] != 0 || f->out[i] != 10 * (long)i + 3)
                fail_msg("item %zu ran: status %d (%s), out %ld", i,
                         f->status[i], mproc_strerror(f->status[i]), f->out[i]);
        } else {
            if (f->status[i] != MPROC_ECANCELED || f->out[i] != -1)
                fail_msg("item %zu never ran: status %d (%s), out %ld", i,
                         f->status[i], mproc_strerror(f->status[i]), f->out[i]);
            cancelled++;
        }
    }
    return cancelled;
}

/* ---- submit and wait ---- */

static int square_or_fail(const void *in, void *out, void *arg)
{
    long v = *(const long *)in;
    (void)arg;
    *(long *)out = v * v;
    return v % 10 == 3 ? 5 : 0;
}

static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

static void submit_then_wait(void **state)
{
    (void)state;
    const size_t n = 10007;
    long *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    int *status = malloc(n * sizeof *status);
    long sum = 0;
    size_t failing = 0;
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        sum += (long)i * (long)i;
        failing += i % 10 == 3;
    }
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 3);

        /* Submit returns before any item is done. */
        mproc_task *t = fixture_submit(&f, 4, 1);
        assert_int_equal(done_of(t), 0);
        f.g->limit = 4;
        assert_int_equal(mproc_task_wait(t, -1), 0);
        assert_int_equal(check_gated(&f, 4), 0);
        mproc_task_free(t);

        /* Failing items are counted; a second wait says the same. */
        long acc = 0;
        memset(out, 0xff, n * sizeof *out);
        assert_int_equal(mproc_submit(f.pool,
                                      &(mproc_job){.fn = square_or_fail,
                                                   .in = in,
                                                   .in_size = sizeof *in,
                                                   .out = out,
                                                   .out_size = sizeof *out,
                                                   .n = n,
                                                   .status = status,
                                                   .reduce = add_long,
                                                   .acc = &acc},
                                      &t),
                         0);
        assert_int_equal(mproc_task_wait(t, -1), (int)failing);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i], (long)i * (long)i);
            assert_int_equal(status[i], i % 10 == 3 ? 5 : 0);
        }
        assert_int_equal(acc, sum);
        assert_int_equal(mproc_task_wait(t, -1), (int)failing);
        assert_int_equal(mproc_task_wait(t, 0), (int)failing);
        assert_int_equal(acc, sum); /* folded once */
        size_t done, total;
        assert_int_equal(mproc_task_progress(t, &done, &total), 0);
        assert_int_equal(done, n);
        assert_int_equal(total, n);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
    free(in);
    free(out);
    free(status);
}

static void wait_times_out_then_completes(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        mproc_task *t = fixture_submit(&f, 20, 0);
        double t0 = tu_now();
        assert_int_equal(mproc_task_wait(t, 0.05), MPROC_ETIMEDOUT);
        double waited = tu_now() - t0;
        assert_true(waited >= 0.049);         /* not before its time */
        assert_true(waited < 10 * tu_slow()); /* and not for ever */
        assert_int_equal(mproc_task_wait(t, 0), MPROC_ETIMEDOUT);
        assert_int_equal(mproc_task_wait(t, 1e-9), MPROC_ETIMEDOUT);
        assert_int_equal(done_of(t), 0);
        assert_int_equal(f.g->ended, 0);

        atomic_store(&f.g->limit, 20);
        assert_int_equal(mproc_task_wait(t, INFINITY), 0);
        assert_int_equal(check_gated(&f, 20), 0);
        assert_int_equal(done_of(t), 20);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* ---- next ---- */

static void next_in_finishing_order(void **state)
{
    (void)state;
    enum { N = 6 };
    static const long order[N] = {4, 1, 5, 0, 3, 2};
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], N); /* each item in a worker of its own */
        mproc_task *t = fixture_submit(&f, N, 1);
        await_count(&f.g->started, N, "items started");
        size_t i = SIZE_MAX;
        assert_int_equal(mproc_task_next(t, &i, 0.02), MPROC_ETIMEDOUT);
        assert_int_equal(i, SIZE_MAX);
        for (int s = 0; s < N; s++) {
            atomic_store(&f.g->go[order[s]], 1);
            assert_int_equal(mproc_task_next(t, &i, 30 * tu_slow()), 0);
            if ((long)i != order[s])
                fail_msg("%s: step %d: next gave item %zu, the one that "
                         "finished is %ld",
                         tu_kind_name(tu_kinds[k]), s, i, order[s]);
            /* Its result is already the caller's, before any wait. */
            assert_int_equal(f.out[i], 10 * (long)i + 3);
            assert_int_equal(f.status[i], 0);
        }
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);
        assert_int_equal(mproc_task_next(t, &i, 0), MPROC_EOF);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

static int plus_one(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in + 1;
    return 0;
}

static mproc_pool *open_pool(mproc_kind kind, int workers)
{
    mproc_pool *p;
    int r =
        mproc_pool_open(&p, &(mproc_options){.kind = kind, .workers = workers});
    if (r)
        fail_msg("open (%s): %s", tu_kind_name(kind), mproc_strerror(r));
    return p;
}

/* Queue plus_one over n longs, `chunk` items per claim. */
static mproc_task *submit_plus_one(mproc_pool *p, const long *in, long *out,
                                   size_t n, size_t chunk)
{
    mproc_task *t = NULL;
    assert_int_equal(mproc_submit(p,
                                  &(mproc_job){.fn = plus_one,
                                               .in = in,
                                               .in_size = sizeof in[0],
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = n,
                                               .chunk = chunk},
                                  &t),
                     0);
    return t;
}

static void next_gives_chunks_in_index_order(void **state)
{
    (void)state;
    enum { N = 203, C = 5 };
    long in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_pool(tu_kinds[k], 3);
        mproc_task *t = submit_plus_one(p, in, out, N, C);
        bool seen[N] = {false};
        size_t i, prev = 0;
        for (int s = 0; s < N; s++) {
            assert_int_equal(mproc_task_next(t, &i, -1), 0);
            assert_true(i < N);
            assert_false(seen[i]);
            seen[i] = true;
            /* A chunk starts at a multiple of C and comes back whole. */
            if (i % C)
                assert_int_equal(i, prev + 1);
            prev = i;
            assert_int_equal(out[i], (long)i + 1);
        }
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void next_after_wait_each_once(void **state)
{
    (void)state;
    enum { N = 100 };
    long in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_pool(tu_kinds[k], 2);
        mproc_task *t = submit_plus_one(p, in, out, N, 3);
        /* Some by next, then wait, then the rest by next. */
        bool seen[N] = {false};
        size_t i;
        for (int s = 0; s < 10; s++) {
            assert_int_equal(mproc_task_next(t, &i, -1), 0);
            assert_false(seen[i]);
            seen[i] = true;
        }
        assert_int_equal(mproc_task_wait(t, -1), 0);
        for (int s = 10; s < N; s++) {
            assert_int_equal(mproc_task_next(t, &i, -1), 0);
            assert_false(seen[i]);
            seen[i] = true;
        }
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);
        for (int s = 0; s < N; s++)
            assert_int_equal(out[s], s + 1);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void next_under_cancel(void **state)
{
    (void)state;
    enum { N = 200 };
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        mproc_task *t = fixture_submit(&f, N, 1);
        /* Items 0 and 1 run, one in each worker, and wait. */
        await_count(&f.g->started, 2, "items started");
        size_t i;
        atomic_store(&f.g->go[0], 1);
        assert_int_equal(mproc_task_next(t, &i, -1), 0);
        assert_int_equal(i, 0);
        /* Its worker moves on to item 2, which waits too. */
        await_count(&f.g->started, 3, "items started");

        assert_int_equal(mproc_task_cancel(t), 0);
        assert_int_equal(mproc_task_cancel(t), 0); /* again: nothing more */
        /* Items 3.. never start and come back at once, cancelled, while 1
           and 2 still run. */
        bool seen[N] = {false};
        seen[0] = true;
        for (int s = 3; s < N; s++) {
            assert_int_equal(mproc_task_next(t, &i, 30 * tu_slow()), 0);
            if (i < 3 || i >= N || seen[i])
                fail_msg("%s: next gave %zu", tu_kind_name(tu_kinds[k]), i);
            seen[i] = true;
            assert_int_equal(f.status[i], MPROC_ECANCELED);
            assert_int_equal(f.out[i], -1);
        }
        assert_int_equal(mproc_task_next(t, &i, 0.02), MPROC_ETIMEDOUT);
        /* The running ones finish normally. */
        atomic_store(&f.g->go[2], 1);
        assert_int_equal(mproc_task_next(t, &i, -1), 0);
        assert_int_equal(i, 2);
        atomic_store(&f.g->go[1], 1);
        assert_int_equal(mproc_task_next(t, &i, -1), 0);
        assert_int_equal(i, 1);
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);

        assert_int_equal(mproc_task_wait(t, -1), N - 3);
        assert_int_equal(check_gated(&f, N), N - 3);
        assert_int_equal(f.g->started, 3);
        for (int s = 0; s < 3; s++)
            assert_true(f.g->ran[s]);
        assert_int_equal(mproc_task_cancel(t), 0); /* after the end: a no-op */
        assert_int_equal(f.status[0], 0);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* ---- progress ---- */

struct poller {
    const mproc_task *t;
    size_t n;
    int violations;
    size_t last;
};

static void *poll_progress(void *arg)
{
    struct poller *pl = arg;
    size_t prev = 0;
    double until = tu_now() + 60.0 * tu_slow();
    for (;;) {
        size_t done, n;
        if (mproc_task_progress(pl->t, &done, &n) || n != pl->n || done > n ||
            done < prev)
            pl->violations++;
        prev = done;
        if (done == pl->n || tu_now() > until)
            break;
        usleep(100);
    }
    pl->last = prev;
    return NULL;
}

static void progress_monotonic_to_n(void **state)
{
    (void)state;
    enum { N = 120 };
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        mproc_task *t = fixture_submit(&f, N, 1);
        size_t done = 1, n = 0;
        assert_int_equal(mproc_task_progress(t, &done, &n), 0);
        assert_int_equal(done, 0);
        assert_int_equal(n, N);
        assert_int_equal(mproc_task_progress(t, NULL, NULL), 0);
        n = 0;
        assert_int_equal(mproc_task_progress(t, NULL, &n), 0);
        assert_int_equal(n, N);

        /* Items below the limit may finish: progress counts exactly them. */
        for (long lim = 10; lim <= 40; lim += 15) {
            atomic_store(&f.g->limit, lim);
            await_done(t, (size_t)lim);
            /* The next items are held: it stays there. */
            await_count(&f.g->started, lim + 2, "items started");
            assert_int_equal(done_of(t), (size_t)lim);
        }

        /* Another thread reads it while this one waits. */
        struct poller pl = {t, N, 0, 0};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, poll_progress, &pl), 0);
        usleep(2000);
        atomic_store(&f.g->limit, N);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        pthread_join(th, NULL);
        assert_int_equal(pl.violations, 0);
        assert_int_equal(pl.last, N);
        done = 0;
        assert_int_equal(mproc_task_progress(t, &done, NULL), 0);
        assert_int_equal(done, N);

        /* The task outlives its pool, with the final count. */
        assert_int_equal(mproc_pool_close(f.pool), 0);
        done = 0;
        assert_int_equal(mproc_task_progress(t, &done, &n), 0);
        assert_int_equal(done, N);
        assert_int_equal(n, N);
        mproc_task_free(t);
    }
}

/* ---- cancel ---- */

/* Lives in the arena: which items started, and how many returned. */
struct naps {
    _Atomic long started, ended;
    unsigned char ran[];
};

static int nap_2ms(const void *in, void *out, void *arg)
{
    struct naps *z = arg;
    long i = *(const long *)in;
    z->ran[i] = 1;
    atomic_fetch_add(&z->started, 1);
    usleep(2000);
    *(long *)out = 2 * i + 1;
    atomic_fetch_add(&z->ended, 1);
    return 0;
}

struct long_job {
    mproc_pool *pool;
    struct naps *z;
    long *in, *out;
    int *status;
    size_t n;
};

static void long_job_open(struct long_job *lj, mproc_kind kind, size_t n)
{
    lj->n = n;
    assert_int_equal(
        mproc_pool_open(&lj->pool, &(mproc_options){.kind = kind,
                                                    .workers = 2,
                                                    .shared_size = n + 64}),
        0);
    lj->z = mproc_shared_alloc(lj->pool, sizeof *lj->z + n);
    assert_non_null(lj->z);
    lj->in = malloc(n * sizeof *lj->in);
    lj->out = malloc(n * sizeof *lj->out);
    lj->status = malloc(n * sizeof *lj->status);
    for (size_t i = 0; i < n; i++) {
        lj->in[i] = (long)i;
        lj->out[i] = -1;
        lj->status[i] = 12345;
    }
}

static mproc_task *long_job_submit(struct long_job *lj)
{
    mproc_task *t;
    assert_int_equal(mproc_submit(lj->pool,
                                  &(mproc_job){.fn = nap_2ms,
                                               .in = lj->in,
                                               .in_size = sizeof *lj->in,
                                               .out = lj->out,
                                               .out_size = sizeof *lj->out,
                                               .n = lj->n,
                                               .arg = lj->z,
                                               .status = lj->status},
                                  &t),
                     0);
    return t;
}

static void long_job_close(struct long_job *lj)
{
    if (lj->pool)
        assert_int_equal(mproc_pool_close(lj->pool), 0);
    free(lj->in);
    free(lj->out);
    free(lj->status);
}

static void cancel_stops_a_long_map(void **state)
{
    (void)state;
    const size_t n = 10000; /* 10 s of items on 2 workers */
    for (int k = 0; k < 2; k++) {
        struct long_job lj;
        long_job_open(&lj, tu_kinds[k], n);
        mproc_task *t = long_job_submit(&lj);
        await_count(&lj.z->started, 4, "items started");
        double t0 = tu_now();
        assert_int_equal(mproc_task_cancel(t), 0);
        int r = mproc_task_wait(t, -1);
        double took = tu_now() - t0;
        if (took > 1.0 * tu_slow())
            fail_msg("%s: cancel then wait took %.3f s",
                     tu_kind_name(tu_kinds[k]), took);
        size_t cancelled = 0;
        for (size_t i = 0; i < n; i++) {
            if (lj.z->ran[i]) {
                if (lj.status[i] != 0 || lj.out[i] != 2 * (long)i + 1)
                    fail_msg("item %zu started: status %d, out %ld", i,
                             lj.status[i], lj.out[i]);
            } else {
                if (lj.status[i] != MPROC_ECANCELED || lj.out[i] != -1)
                    fail_msg("item %zu never started: status %d (%s), out %ld",
                             i, lj.status[i], mproc_strerror(lj.status[i]),
                             lj.out[i]);
                cancelled++;
            }
        }
        assert_int_equal(r, (int)cancelled);
        assert_int_equal(atomic_load(&lj.z->started), (long)(n - cancelled));
        assert_true(cancelled > 0);
        assert_int_equal(done_of(t), n);
        mproc_task_free(t);
        long_job_close(&lj);
    }
}

static void cancel_after_the_end_changes_nothing(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        mproc_task *t = fixture_submit(&f, 30, 0);
        atomic_store(&f.g->limit, 30);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        assert_int_equal(mproc_task_cancel(t), 0);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        assert_int_equal(check_gated(&f, 30), 0);
        mproc_task_free(t);

        /* Finished but never waited for: also nothing to cancel. */
        f.g->started = 0;
        for (int i = 0; i < 30; i++) {
            f.out[i] = -1;
            f.status[i] = -1;
        }
        t = fixture_submit(&f, 30, 0);
        await_done(t, 30);
        assert_int_equal(mproc_task_cancel(t), 0);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        assert_int_equal(check_gated(&f, 30), 0);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* ---- several tasks ---- */

enum { TASKS = 4, PER = 60 };

/* In the arena: the order in which items started. */
struct starts {
    _Atomic long seq;
    long at[TASKS][PER];
    int worker[TASKS][PER];
};

struct which {
    struct starts *s;
    int task;
};

static int record_start(const void *in, void *out, void *arg)
{
    const struct which *w = arg;
    long i = *(const long *)in;
    w->s->at[w->task][i] = atomic_fetch_add(&w->s->seq, 1);
    w->s->worker[w->task][i] = mproc_worker_id();
    usleep(100);
    *(long *)out = i * (w->task + 1);
    return 0;
}

static void tasks_run_in_submission_order(void **state)
{
    (void)state;
    enum { W = 2 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(&p, &(mproc_options){.kind = tu_kinds[k],
                                                 .workers = W,
                                                 .shared_size = 1 << 16}),
            0);
        struct starts *s = mproc_shared_alloc(p, sizeof *s);
        assert_non_null(s);
        long in[PER], out[TASKS][PER];
        for (int i = 0; i < PER; i++)
            in[i] = i;
        mproc_task *t[TASKS];
        struct which arg[TASKS];
        for (int j = 0; j < TASKS; j++) {
            arg[j] = (struct which){s, j};
            assert_int_equal(
                mproc_submit(p,
                             &(mproc_job){.fn = record_start,
                                          .in = in,
                                          .in_size = sizeof in[0],
                                          .out = out[j],
                                          .out_size = sizeof out[j][0],
                                          .n = PER,
                                          .arg = &arg[j],
                                          .arg_size = sizeof arg[j],
                                          .chunk = 1},
                             &t[j]),
                0);
        }
        /* Waited for in any order, each has its own results. */
        for (int j = TASKS - 1; j >= 0; j--) {
            assert_int_equal(mproc_task_wait(t[j], -1), 0);
            for (int i = 0; i < PER; i++)
                assert_int_equal(out[j][i], (long)i * (j + 1));
            mproc_task_free(t[j]);
        }

        /*
         * Queued jobs run in submission order: a worker takes an item of a
         * later task only once every item of the earlier ones is claimed.
         * So each worker runs the tasks one after the other, and once any
         * item of a later task has started, at most one item per other
         * worker (the one it claimed, one item per claim) of an earlier task
         * is still to start.
         */
        int task_of[W] = {0};
        for (long q = 0; q < TASKS * PER; q++) {
            int found = 0;
            for (int j = 0; j < TASKS; j++)
                for (int i = 0; i < PER; i++)
                    if (s->at[j][i] == q) {
                        int w = s->worker[j][i];
                        assert_in_range(w, 0, W - 1);
                        if (j < task_of[w])
                            fail_msg("%s: worker %d ran task %d after task %d",
                                     tu_kind_name(tu_kinds[k]), w, j,
                                     task_of[w]);
                        task_of[w] = j;
                        found++;
                    }
            assert_int_equal(found, 1);
        }
        for (int j = 0; j + 1 < TASKS; j++) {
            long first_later = LONG_MAX;
            for (int i = 0; i < PER; i++)
                for (int u = j + 1; u < TASKS; u++)
                    if (s->at[u][i] < first_later)
                        first_later = s->at[u][i];
            int late = 0;
            for (int i = 0; i < PER; i++)
                late += s->at[j][i] > first_later;
            if (late > W - 1)
                fail_msg("%s: %d items of task %d started after a later task's",
                         tu_kind_name(tu_kinds[k]), late, j);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void more_tasks_than_job_slots(void **state)
{
    (void)state;
    enum { T = 300, N = 16 };
    long(*in)[N] = malloc(T * sizeof *in), (*out)[N] = malloc(T * sizeof *out);
    mproc_task **t = malloc(T * sizeof *t);
    for (int j = 0; j < T; j++)
        for (int i = 0; i < N; i++)
            in[j][i] = 1000L * j + i;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_pool(tu_kinds[k], 2);
        /* Queued without waiting, more than the board has job slots: submit
           makes room as the oldest finish. */
        for (int j = 0; j < T; j++) {
            memset(out[j], 0xff, sizeof out[j]);
            t[j] = submit_plus_one(p, in[j], out[j], N, 0);
        }
        for (int j = 0; j < T; j++) {
            assert_int_equal(mproc_task_wait(t[j], -1), 0);
            for (int i = 0; i < N; i++)
                assert_int_equal(out[j][i], 1000L * j + i + 1);
            mproc_task_free(t[j]);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
    free(in);
    free(out);
    free(t);
}

/*
 * A worker held by the last item of one task does not hold up the next: the
 * other worker, with nothing left to claim in task A, runs all of task B,
 * which finishes while A is still unfinished.
 */
static void no_worker_idles_across_tasks(void **state)
{
    (void)state;
    enum { NA = 16, NB = 5000 };
    long *in = malloc(NB * sizeof *in), *out = malloc(NB * sizeof *out);
    for (int i = 0; i < NB; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        const char *kind = tu_kind_name(tu_kinds[k]);
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        atomic_store(&f.g->limit, NA - 1); /* every item of A but the last */
        for (size_t chunk = 0; chunk <= 1; chunk++) {
            for (int i = 0; i < NA; i++) {
                f.out[i] = -1;
                f.status[i] = -1;
            }
            atomic_store(&f.g->started, 0);
            atomic_store(&f.g->ended, 0);
            mproc_task *a = fixture_submit(&f, NA, chunk);
            memset(out, 0xff, NB * sizeof *out);
            mproc_task *b = submit_plus_one(f.pool, in, out, NB, chunk);
            int r = mproc_task_wait(b, 30.0 * tu_slow());
            if (r != 0)
                fail_msg("%s, chunk %zu: B's wait returned %d (%s), want 0",
                         kind, chunk, r, mproc_strerror(r));
            for (int i = 0; i < NB; i++)
                assert_int_equal(out[i], i + 1);
            size_t done = done_of(a);
            if (done >= NA)
                fail_msg(
                    "%s, chunk %zu: A has %zu of %d items done with its last "
                    "held",
                    kind, chunk, done, NA);
            /* A stays unfinished with all but its held item done. */
            await_done(a, NA - 1);
            done = done_of(a);
            if (done != NA - 1)
                fail_msg("%s, chunk %zu: A has %zu of %d items done, want %d",
                         kind, chunk, done, NA, NA - 1);
            await_count(&f.g->started, NA, "items of A started");
            assert_int_equal(atomic_load(&f.g->ended),
                             NA - 1); /* the last is held */

            atomic_store(&f.g->go[NA - 1], 1);
            assert_int_equal(mproc_task_wait(a, -1), 0);
            assert_int_equal(check_gated(&f, NA), 0);
            mproc_task_free(a);
            mproc_task_free(b);
            atomic_store(&f.g->go[NA - 1], 0);
            atomic_store(&f.g->ran[NA - 1], 0);
        }
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
    free(in);
    free(out);
}

/* ---- freeing and closing with work left ---- */

static void free_unfinished_task(void **state)
{
    (void)state;
    const size_t n = 2000;
    for (int k = 0; k < 2; k++) {
        struct long_job lj;
        long_job_open(&lj, tu_kinds[k], n);
        mproc_task *t = long_job_submit(&lj);
        await_count(&lj.z->started, 2, "items started");
        double t0 = tu_now();
        mproc_task_free(t); /* cancels, and waits for the running items */
        assert_true(tu_now() - t0 < 1.0 * tu_slow());
        /* Every item that started has returned. */
        long started = atomic_load(&lj.z->started);
        assert_true(started >= 2 && started < (long)n);
        assert_int_equal(atomic_load(&lj.z->ended), started);
        /* Nothing runs afterwards, nothing touches the caller's buffers. */
        long *snapshot = malloc(n * sizeof *snapshot);
        int *st_snapshot = malloc(n * sizeof *st_snapshot);
        memcpy(snapshot, lj.out, n * sizeof *snapshot);
        memcpy(st_snapshot, lj.status, n * sizeof *st_snapshot);
        usleep(20000);
        assert_int_equal(atomic_load(&lj.z->started), started);
        assert_memory_equal(lj.out, snapshot, n * sizeof *snapshot);
        assert_memory_equal(lj.status, st_snapshot, n * sizeof *st_snapshot);
        /* So they may be freed at once (a late write would be a use after
           free, for the sanitizers). */
        free(lj.out);
        free(lj.status);
        lj.out = malloc(n * sizeof *lj.out);
        lj.status = malloc(n * sizeof *lj.status);
        /* Results delivered, if any, are those of items that ran. */
        for (size_t i = 0; i < n; i++)
            if (snapshot[i] != -1)
                assert_true(lj.z->ran[i] && snapshot[i] == 2 * (long)i + 1);
        free(snapshot);
        free(st_snapshot);

        /* The pool goes on. */
        long in[50], out[50];
        for (int i = 0; i < 50; i++)
            in[i] = i;
        assert_int_equal(MPROC_MAP(lj.pool, plus_one, in, out, 50), 0);
        for (int i = 0; i < 50; i++)
            assert_int_equal(out[i], i + 1);
        long_job_close(&lj);
    }
}

static void close_leaves_tasks_valid(void **state)
{
    (void)state;
    const size_t n = 2000;
    for (int k = 0; k < 2; k++) {
        struct long_job lj;
        long_job_open(&lj, tu_kinds[k], n);
        mproc_task *t = long_job_submit(&lj);
        /* Three items by next before the close. */
        bool *seen = calloc(n, 1);
        size_t i;
        for (int s = 0; s < 3; s++) {
            assert_int_equal(mproc_task_next(t, &i, -1), 0);
            assert_false(seen[i]);
            seen[i] = true;
            assert_int_equal(lj.out[i], 2 * (long)i + 1);
        }
        assert_int_equal(mproc_pool_close(lj.pool), 0);
        lj.pool = NULL;

        /* The final state: every item done, run or cancelled. */
        size_t done = 0, total = 0;
        assert_int_equal(mproc_task_progress(t, &done, &total), 0);
        assert_int_equal(done, n);
        assert_int_equal(total, n);
        int r = mproc_task_wait(t, 0);
        size_t cancelled = 0, ran = 0;
        for (size_t j = 0; j < n; j++) {
            if (lj.status[j] == 0) {
                assert_int_equal(lj.out[j], 2 * (long)j + 1);
                ran++;
            } else {
                assert_int_equal(lj.status[j], MPROC_ECANCELED);
                assert_int_equal(lj.out[j], -1);
                cancelled++;
            }
        }
        assert_int_equal(r, (int)cancelled);
        assert_true(cancelled > 0 && ran >= 3);
        /* The rest, by next: each item once. */
        size_t count = 3;
        while ((r = mproc_task_next(t, &i, -1)) == 0) {
            assert_true(i < n);
            assert_false(seen[i]);
            seen[i] = true;
            count++;
        }
        assert_int_equal(r, MPROC_EOF);
        assert_int_equal(count, n);
        assert_int_equal(mproc_task_cancel(t), 0);
        assert_int_equal(mproc_task_wait(t, -1), (int)cancelled);
        mproc_task_free(t);
        free(seen);
        long_job_close(&lj);
    }
}

/* ---- documented errors ---- */

struct helper {
    struct gates *g;
    double after;
};

static void *open_gates_later(void *arg)
{
    struct helper *h = arg;
    usleep((useconds_t)(h->after * 1e6));
    atomic_store(&h->g->limit, MAXN);
    return NULL;
}

static void task_call_errors(void **state)
{
    (void)state;
    size_t i = 77, done = 77, n = 77;
    assert_int_equal(mproc_task_wait(NULL, -1), MPROC_EINVAL);
    assert_int_equal(mproc_task_wait(NULL, NAN), MPROC_EINVAL);
    assert_int_equal(mproc_task_next(NULL, &i, -1), MPROC_EINVAL);
    assert_int_equal(mproc_task_progress(NULL, &done, &n), MPROC_EINVAL);
    assert_int_equal(mproc_task_cancel(NULL), MPROC_EINVAL);
    mproc_task_free(NULL);
    assert_int_equal(i, 77);
    assert_int_equal(done, 77);
    assert_int_equal(n, 77);

    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, tu_kinds[k], 2);
        mproc_task *t = (mproc_task *)&f;
        /* submit: NULL pool, job, fn or task; *task is NULL after. */
        assert_int_equal(mproc_submit(NULL, &(mproc_job){.fn = gated}, &t),
                         MPROC_EINVAL);
        assert_null(t);
        t = (mproc_task *)&f;
        assert_int_equal(mproc_submit(f.pool, NULL, &t), MPROC_EINVAL);
        assert_null(t);
        t = (mproc_task *)&f;
        assert_int_equal(mproc_submit(f.pool, &(mproc_job){.n = 1}, &t),
                         MPROC_EINVAL);
        assert_null(t);
        assert_int_equal(
            mproc_submit(f.pool, &(mproc_job){.fn = gated, .n = 1}, NULL),
            MPROC_EINVAL);

        t = fixture_submit(&f, 8, 1);
        /* Bad arguments change nothing. */
        assert_int_equal(mproc_task_wait(t, NAN), MPROC_EINVAL);
        assert_int_equal(mproc_task_next(t, NULL, -1), MPROC_EINVAL);
        assert_int_equal(mproc_task_next(t, &i, NAN), MPROC_EINVAL);
        assert_int_equal(mproc_task_next(t, NULL, NAN), MPROC_EINVAL);
        assert_int_equal(done_of(t), 0);
        assert_int_equal(f.g->ended, 0);
        /* Zero and tiny timeouts poll. */
        assert_int_equal(mproc_task_wait(t, 0), MPROC_ETIMEDOUT);
        assert_int_equal(mproc_task_next(t, &i, 0), MPROC_ETIMEDOUT);
        assert_int_equal(mproc_task_next(t, &i, 1e-300), MPROC_ETIMEDOUT);
        assert_int_equal(mproc_task_wait(t, 5e-324), MPROC_ETIMEDOUT);

        /* Any negative timeout waits for ever, however small. */
        struct helper h = {f.g, 0.05};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, open_gates_later, &h), 0);
        assert_int_equal(mproc_task_next(t, &i, -1e-9), 0);
        assert_true(i < 8);
        assert_int_equal(mproc_task_wait(t, -INFINITY), 0);
        pthread_join(th, NULL);
        assert_int_equal(check_gated(&f, 8), 0);
        mproc_task_free(t);

        f.g->limit = 0;
        t = fixture_submit(&f, 8, 1);
        h.after = 0.03;
        assert_int_equal(pthread_create(&th, NULL, open_gates_later, &h), 0);
        assert_int_equal(mproc_task_wait(t, -0.5), 0);
        pthread_join(th, NULL);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* Submitting from inside a worker of the pool would wait for itself. */
struct own {
    mproc_pool *pool;
};

static int submit_to_own_pool(const void *in, void *out, void *arg)
{
    const struct own *o = arg;
    (void)in;
    mproc_task *t = (mproc_task *)&t;
    int r = mproc_submit(o->pool, &(mproc_job){.fn = plus_one, .n = 1}, &t);
    *(int *)out = r;
    return t == NULL ? 0 : 1;
}

static void submit_from_worker_or_other_process(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_pool(tu_kinds[k], 2);
        struct own o = {p};
        int r[3];
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = submit_to_own_pool,
                                                   .out = r,
                                                   .out_size = sizeof r[0],
                                                   .n = 3,
                                                   .arg = &o,
                                                   .arg_size = sizeof o}),
                         0);
        for (int i = 0; i < 3; i++)
            assert_int_equal(r[i], MPROC_EDEADLK);

        pid_t c = fork();
        if (c == 0) {
            mproc_task *t = (mproc_task *)&c;
            int e = mproc_submit(p, &(mproc_job){.fn = plus_one, .n = 1}, &t);
            _exit(e == MPROC_EPERM && t == NULL ? 0 : 1);
        }
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void task_calls_after_supervisor_death(void **state)
{
    (void)state;
    enum { N = 8 };
    struct fixture f;
    fixture_open(&f, MPROC_PROCESSES, 2);
    mproc_task *t = fixture_submit(&f, N, 1);
    atomic_store(&f.g->go[0], 1);
    atomic_store(&f.g->go[1], 1);
    size_t i, got = 0;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(mproc_task_next(t, &i, 30 * tu_slow()), 0);
        assert_true(i < 2);
        got |= (size_t)1 << i;
    }
    assert_int_equal(got, 3);
    await_count(&f.g->started, 4, "items started"); /* 2 and 3 are held */

    pid_t z = tu_supervisor();
    assert_true(z > 0);
    assert_int_equal(kill(z, SIGKILL), 0);
    /* The workers die with it: what was not finished never will be. */
    assert_int_equal(mproc_task_next(t, &i, 30 * tu_slow()), MPROC_EBROKEN);
    /* Afterwards (undocumented beyond "no hang"): nothing more to hand out. */
    int r = mproc_task_next(t, &i, -1);
    assert_true(r == MPROC_EOF || r == MPROC_EBROKEN);
    assert_int_equal(mproc_task_wait(t, -1), N - 2);
    for (int j = 0; j < N; j++)
        assert_int_equal(f.status[j], j < 2 ? 0 : MPROC_ECRASHED);
    /* Every item has its outcome: progress says all are done. */
    assert_int_equal(done_of(t), N);
    assert_int_equal(mproc_task_cancel(t), 0);
    mproc_task_free(t);

    t = (mproc_task *)&f;
    assert_int_equal(
        mproc_submit(f.pool, &(mproc_job){.fn = plus_one, .n = 1}, &t),
        MPROC_EBROKEN);
    assert_null(t);
    assert_int_equal(mproc_pool_close(f.pool), 0);
    assert_int_equal(tu_zombies(), 0);
}

static int mark_one(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(unsigned char *)out = 1;
    return 0;
}

/* A job asking for one item per claim over more items than a job's record
   log holds (2^23) once hung mproc_task_next: records past the log's end
   were dropped. Every item must still be handed out, once. */
static void next_every_item_of_a_job_beyond_the_log(void **state)
{
    (void)state;
    if (tu_slow() > 1)
        skip(); /* 8 million items; the log's reservation is cut under valgrind */
    size_t n = ((size_t)1 << 23) + 4096;
    unsigned char *out = calloc(n, 1), *seen = calloc(n, 1);
    assert_non_null(out);
    assert_non_null(seen);
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(&pool,
                        &(mproc_options){.kind = MPROC_THREADS, .workers = 2}),
        0);
    mproc_task *t;
    assert_int_equal(
        mproc_submit(
            pool,
            &(mproc_job){
                .fn = mark_one, .out = out, .out_size = 1, .n = n, .chunk = 1},
            &t),
        0);
    size_t i, got = 0;
    int r;
    while ((r = mproc_task_next(t, &i, 120 * tu_slow())) == 0) {
        assert_true(i < n);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        got++;
    }
    assert_int_equal(r, MPROC_EOF);
    assert_int_equal(got, n);
    assert_int_equal(mproc_task_wait(t, -1), 0);
    for (size_t k = 0; k < n; k++)
        if (out[k] != 1)
            fail_msg("item %zu has no result", k);
    mproc_task_free(t);
    assert_int_equal(mproc_pool_close(pool), 0);
    free(out);
    free(seen);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(submit_then_wait),
        cmocka_unit_test(next_every_item_of_a_job_beyond_the_log),
        cmocka_unit_test(wait_times_out_then_completes),
        cmocka_unit_test(next_in_finishing_order),
        cmocka_unit_test(next_gives_chunks_in_index_order),
        cmocka_unit_test(next_after_wait_each_once),
        cmocka_unit_test(next_under_cancel),
        cmocka_unit_test(progress_monotonic_to_n),
        cmocka_unit_test(cancel_stops_a_long_map),
        cmocka_unit_test(cancel_after_the_end_changes_nothing),
        cmocka_unit_test(tasks_run_in_submission_order),
        cmocka_unit_test(more_tasks_than_job_slots),
        cmocka_unit_test(no_worker_idles_across_tasks),
        cmocka_unit_test(free_unfinished_task),
        cmocka_unit_test(close_leaves_tasks_valid),
        cmocka_unit_test(task_call_errors),
        cmocka_unit_test(submit_from_worker_or_other_process),
        cmocka_unit_test(task_calls_after_supervisor_death),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
