/*
 * job.batch: runs of items per call, on every kind of pool. The same
 * results, codes, folds, cancel, progress and mproc_task_next as with fn,
 * and in a process pool a crash inside a run costs the item that crashed.
 */
#define _GNU_SOURCE
#include "util.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static mproc_pool *open_kind(mproc_kind kind, int workers)
{
    mproc_pool *p = NULL;
    int r =
        mproc_pool_open(&p, &(mproc_options){.kind = kind, .workers = workers});
    assert_int_equal(r, 0);
    return p;
}

/* Memory every worker process sees, mapped before the pools open. */
struct shared {
    _Atomic long calls;       /* batch calls */
    _Atomic long most;        /* the longest run seen */
    _Atomic int gate;         /* cancel test: items wait until set */
    _Atomic int crash_once;   /* crash test: 0 always, 1 once (then 2) */
    _Atomic long ran[100000]; /* crash test: times each item ran */
};
static struct shared *sh;

static void map_shared(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
}

static void note_call(size_t count)
{
    atomic_fetch_add(&sh->calls, 1);
    long most = atomic_load(&sh->most);
    while ((long)count > most &&
           !atomic_compare_exchange_weak(&sh->most, &most, (long)count))
        ;
}

/* out = in * in; items whose value is 7 mod 11 fail with code in + 1. */
static int squares(const void *in, void *out, size_t count, void *arg,
                   int *status)
{
    (void)arg;
    const long *a = in;
    long *b = out;
    int bad = 0;
    note_call(count);
    for (size_t k = 0; k < count; k++) {
        b[k] = a[k] * a[k];
        bad |= a[k] % 11 == 7;
    }
    if (!bad)
        return 0;
    for (size_t k = 0; k < count; k++)
        status[k] = a[k] % 11 == 7 ? (int)(a[k] % 1000) + 1 : 0;
    return 1;
}

static void check_squares(mproc_pool *p, size_t n, size_t chunk, bool codes)
{
    long *in = malloc((n ? n : 1) * sizeof *in);
    long *out = malloc((n ? n : 1) * sizeof *out);
    int *status = malloc((n ? n : 1) * sizeof *status);
    size_t want_failed = 0;
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        out[i] = -1;
        status[i] = 12345; /* the library writes every code */
        want_failed += i % 11 == 7;
    }
    int r = mproc_map(p, &(mproc_job){.batch = squares,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = n,
                                      .chunk = chunk,
                                      .status = codes ? status : NULL});
    assert_int_equal(r, (int)want_failed);
    for (size_t i = 0; i < n; i++) {
        if (out[i] != (long)i * (long)i)
            fail_msg("n=%zu chunk=%zu: out[%zu] = %ld", n, chunk, i, out[i]);
        int want = i % 11 == 7 ? (int)(i % 1000) + 1 : 0;
        if (codes && status[i] != want)
            fail_msg("n=%zu chunk=%zu: status[%zu] = %d, want %d", n, chunk, i,
                     status[i], want);
    }
    free(in);
    free(out);
    free(status);
}

static void batch_results_and_codes(void **state)
{
    (void)state;
    map_shared();
    static const size_t ns[] = {0, 1, 2, 13, 997, 100003};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            for (int codes = 0; codes < 2; codes++) {
                check_squares(p, ns[i], 0, codes);
                check_squares(p, ns[i], 1000, codes);
            }
        assert_int_equal(mproc_pool_close(p), 0);
    }
    /* Runs of more than one item: the call per item is gone. */
    assert_true(atomic_load(&sh->most) > 1);
}

/* The convenience: the item written once, inlined into the loop. */
struct pair {
    int x, y;
};

static inline int add_item(const struct pair *in, int *out, void *arg)
{
    (void)arg;
    *out = in->x + in->y;
    return in->x == 500 ? -77 : 0;
}

MPROC_BATCH_FN(add_batch, add_item, struct pair, int)

static void batch_macro(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct pair in[N];
    int out[N], status[N];
    for (int i = 0; i < N; i++)
        in[i] = (struct pair){i, 1};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 2);
        memset(out, 0, sizeof out);
        assert_int_equal(MPROC_MAP_BATCH(p, add_batch, in, out, N), 1);
        memset(status, 0x55, sizeof status);
        assert_int_equal(mproc_map(p, &(mproc_job){.batch = add_batch,
                                                   .in = in,
                                                   .in_size = sizeof *in,
                                                   .out = out,
                                                   .out_size = sizeof *out,
                                                   .n = N,
                                                   .status = status}),
                         1);
        for (int i = 0; i < N; i++) {
            assert_int_equal(out[i], i + 1);
            assert_int_equal(status[i], i == 500 ? -77 : 0);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void batch_or_fn(void **state)
{
    (void)state;
    mproc_pool *p = open_kind(MPROC_THREADS, 1);
    long in[4] = {1, 2, 3, 4}, out[4];
    mproc_job j = {.in = in,
                   .in_size = sizeof *in,
                   .out = out,
                   .out_size = sizeof *out,
                   .n = 4};
    assert_int_equal(mproc_map(p, &j), MPROC_EINVAL); /* neither */
    j.batch = squares;
    j.fn = (mproc_fn)(void (*)(void))abort; /* both: never called */
    assert_int_equal(mproc_map(p, &j), MPROC_EINVAL);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* Folds: each result of a run is folded after the call, with out and
   without it (then into scratch). */
static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

static void batch_reduce(void **state)
{
    (void)state;
    map_shared();
    enum { N = 30011 };
    long *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    long want = 0;
    for (long i = 0; i < N; i++) {
        in[i] = i;
        want += i * i;
    }
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        for (int with_out = 0; with_out < 2; with_out++) {
            long acc = 0;
            int r = mproc_map(p, &(mproc_job){.batch = squares,
                                              .in = in,
                                              .in_size = sizeof *in,
                                              .out = with_out ? out : NULL,
                                              .out_size = sizeof *out,
                                              .n = N,
                                              .reduce = add_long,
                                              .acc = &acc});
            assert_int_equal(r, (N + 3) / 11);
            assert_int_equal(acc, want);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
    free(in);
    free(out);
}

/* Cancel is seen between runs: a worker's first run of a job is of one
   item, so with every item held at a gate until the cancel, at most one
   item per worker runs, though each claimed a chunk of 100. */
static int gated(const void *in, void *out, size_t count, void *arg,
                 int *status)
{
    (void)arg;
    (void)status;
    double until = tu_now() + 30 * tu_slow();
    while (!atomic_load(&sh->gate) && tu_now() < until)
        usleep(200);
    for (size_t k = 0; k < count; k++)
        ((long *)out)[k] = ((const long *)in)[k] + 1;
    return 0;
}

static void batch_cancel_between_runs(void **state)
{
    (void)state;
    map_shared();
    enum { N = 1000, W = 2 };
    long in[N], out[N];
    int status[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        atomic_store(&sh->gate, 0);
        mproc_pool *p = open_kind(tu_kinds[k], W);
        mproc_task *t;
        assert_int_equal(mproc_submit(p,
                                      &(mproc_job){.batch = gated,
                                                   .in = in,
                                                   .in_size = sizeof *in,
                                                   .out = out,
                                                   .out_size = sizeof *out,
                                                   .n = N,
                                                   .chunk = 100,
                                                   .status = status},
                                      &t),
                         0);
        assert_int_equal(mproc_task_cancel(t), 0);
        atomic_store(&sh->gate, 1);
        int r = mproc_task_wait(t, -1);
        int done = 0;
        for (int i = 0; i < N; i++) {
            if (status[i] == 0) {
                assert_int_equal(out[i], i + 1);
                done++;
            } else {
                assert_int_equal(status[i], MPROC_ECANCELED);
            }
        }
        assert_int_equal(r, N - done);
        assert_true(done <= W);
        size_t d, n;
        assert_int_equal(mproc_task_progress(t, &d, &n), 0);
        assert_int_equal(d, N);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* mproc_task_next hands out every index once, and progress ends at n. */
static void batch_next_and_progress(void **state)
{
    (void)state;
    map_shared();
    enum { N = 20000 };
    long *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    char *seen = calloc(N, 1);
    for (long i = 0; i < N; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        memset(seen, 0, N);
        mproc_pool *p = open_kind(tu_kinds[k], 2);
        mproc_task *t;
        assert_int_equal(mproc_submit(p,
                                      &(mproc_job){.batch = squares,
                                                   .in = in,
                                                   .in_size = sizeof *in,
                                                   .out = out,
                                                   .out_size = sizeof *out,
                                                   .n = N},
                                      &t),
                         0);
        size_t i, got = 0;
        int r;
        while ((r = mproc_task_next(t, &i, -1)) != MPROC_EOF) {
            assert_true(r == 0 || r == (int)(i % 1000) + 1);
            assert_true(i < N && !seen[i]);
            assert_int_equal(out[i], (long)i * (long)i);
            seen[i] = 1;
            got++;
        }
        assert_int_equal(got, N);
        size_t d, n;
        assert_int_equal(mproc_task_progress(t, &d, &n), 0);
        assert_int_equal(d, N);
        assert_int_equal(n, N);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
    free(in);
    free(out);
    free(seen);
}

/* No items to read and no results to keep: in and out are NULL, and every
   item is still handed out once. With out_size but no out, the results go
   to scratch. */
static _Atomic long *items_seen(void)
{
    return &sh->ran[0];
}

static int count_items(const void *in, void *out, size_t count, void *arg,
                       int *status)
{
    (void)arg;
    (void)status;
    assert_null(in);
    if (out)
        memset(out, 0x5a, count * sizeof(long));
    atomic_fetch_add(items_seen(), (long)count);
    return 0;
}

static void batch_no_in_no_out(void **state)
{
    (void)state;
    map_shared();
    enum { N = 50021 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 2);
        for (int osz = 0; osz < 2; osz++) {
            atomic_store(items_seen(), 0);
            assert_int_equal(
                mproc_map(p, &(mproc_job){.batch = count_items,
                                          .out_size = osz ? sizeof(long) : 0,
                                          .n = N}),
                0);
            assert_int_equal(atomic_load(items_seen()), N);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- crashes inside a run (process pools) ---- */

enum { CRASH_N = 6000 };

/* Items listed in arg (ending in -1) crash their worker; with crash_once
   set, only the first time any of them runs. */
static int crashy(const void *in, void *out, size_t count, void *arg,
                  int *status)
{
    const long *a = in;
    const long *bad = arg;
    (void)status;
    for (size_t k = 0; k < count; k++) {
        atomic_fetch_add(&sh->ran[a[k]], 1);
        for (const long *b = bad; *b >= 0; b++)
            if (a[k] == *b && (!atomic_load(&sh->crash_once) ||
                               atomic_exchange(&sh->crash_once, 2) == 1))
                raise(SIGSEGV);
        ((long *)out)[k] = a[k] * 3;
    }
    return 0;
}

static void crash_run(mproc_pool *p, const long *bad, size_t nbad, bool once,
                      size_t chunk)
{
    long *in = malloc(CRASH_N * sizeof *in),
         *out = malloc(CRASH_N * sizeof *out);
    int *status = malloc(CRASH_N * sizeof *status);
    int *ws = malloc(CRASH_N * sizeof *ws);
    long arg[8];
    memcpy(arg, bad, nbad * sizeof *bad);
    arg[nbad] = -1;
    for (long i = 0; i < CRASH_N; i++) {
        in[i] = i;
        out[i] = -1;
        atomic_store(&sh->ran[i], 0);
    }
    atomic_store(&sh->crash_once, once);
    long acc = 0;
    int r = mproc_map(p, &(mproc_job){.batch = crashy,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = CRASH_N,
                                      .arg = arg,
                                      .arg_size = sizeof arg,
                                      .chunk = chunk,
                                      .status = status,
                                      .wstatus = ws,
                                      .reduce = add_long,
                                      .acc = &acc});
    long want_acc = 0;
    for (long i = 0; i < CRASH_N; i++) {
        bool crashed = false;
        for (size_t b = 0; b < nbad && !once; b++)
            crashed |= bad[b] == i;
        if (crashed) {
            if (status[i] != MPROC_ECRASHED)
                fail_msg("chunk %zu: item %ld: status %d, want crashed", chunk,
                         i, status[i]);
            assert_true(WIFSIGNALED(ws[i]) && WTERMSIG(ws[i]) == SIGSEGV);
        } else {
            if (status[i] != 0 || out[i] != 3 * i)
                fail_msg("chunk %zu: item %ld: status %d out %ld", chunk, i,
                         status[i], out[i]);
            assert_true(atomic_load(&sh->ran[i]) >= 1);
            want_acc += 3 * i;
        }
    }
    assert_int_equal(r, once ? 0 : (int)nbad);
    assert_int_equal(acc, want_acc);
    free(in);
    free(out);
    free(status);
    free(ws);
}

static void batch_crash_costs_one_item(void **state)
{
    (void)state;
    tu_default_signals();
    map_shared();
    mproc_pool *p = open_kind(MPROC_PROCESSES, 2);
    static const long one[] = {2537};
    static const long two[] = {2537, 2540}; /* in the same run */
    static const long edges[] = {0, 999, 1000, CRASH_N - 1};
    /* Automatic chunks, and chunks of 1000 (whose edges the third list
       hits); each crash costs a respawn, half a second under valgrind. */
    for (size_t chunk = 0; chunk <= 1000; chunk += 1000) {
        crash_run(p, one, 1, false, chunk);
        crash_run(p, two, 2, false, chunk);
        crash_run(p, edges, 4, false, chunk);
    }
    assert_int_equal(mproc_pool_close(p), 0);
}

/* A run that died once, by a crash that does not come again (as a kill
   from outside would): the replacement runs it again and nothing is lost. */
static void batch_crash_once_loses_nothing(void **state)
{
    (void)state;
    tu_default_signals();
    map_shared();
    mproc_pool *p = open_kind(MPROC_PROCESSES, 2);
    static const long one[] = {4321};
    crash_run(p, one, 1, true, 3000);
    assert_true(atomic_load(&sh->ran[4321]) == 2);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* With a timeout, a process pool calls batch one item at a time. */
static void batch_timeout_one_per_call(void **state)
{
    (void)state;
    map_shared();
    mproc_pool *p = NULL;
    assert_int_equal(
        mproc_pool_open(&p, &(mproc_options){.workers = 2, .timeout = 60}), 0);
    atomic_store(&sh->most, 0);
    check_squares(p, 5000, 0, true);
    assert_int_equal(atomic_load(&sh->most), 1);
    assert_int_equal(mproc_pool_close(p), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_results_and_codes),
        cmocka_unit_test(batch_macro),
        cmocka_unit_test(batch_or_fn),
        cmocka_unit_test(batch_reduce),
        cmocka_unit_test(batch_cancel_between_runs),
        cmocka_unit_test(batch_next_and_progress),
        cmocka_unit_test(batch_no_in_no_out),
        cmocka_unit_test(batch_crash_costs_one_item),
        cmocka_unit_test(batch_crash_once_loses_nothing),
        cmocka_unit_test(batch_timeout_one_per_call),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
