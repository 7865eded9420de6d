/*
 * MPI workers: the same maps, on the other ranks of MPI_COMM_WORLD.
 *
 * Run under mpirun (tests/CMakeLists.txt: 3 ranks). Every rank opens the
 * pool in main(); ranks other than 0 serve inside mproc_pool_open and exit
 * when rank 0 closes it, so the cases below run on rank 0 only, on the one
 * pool a run may have. Runs of their own, each a case:
 *
 *   --init-fails      init fails on the worker ranks: MPROC_EINIT on rank 0
 *   --singleton       started without mpirun: MPROC_ENOTSUP
 *   --too-many        more workers than other ranks: MPROC_EINVAL on rank 0
 *   --program-init    the program initialises MPI itself, and finalises it
 *   --twin            ranks 1.. run test_mpi_twin, another build (MPMD):
 *                     every item fails with MPROC_ENOTSUP, no result written
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int mpi_items_cube(const void *in, void *out, void *arg); /* libmpi_items.so */

static mproc_pool *pool;
static pid_t rank0;

static int square(const void *in, void *out, void *arg)
{
    (void)arg;
    long x = *(const long *)in;
    *(long *)out = x * x;
    return 0;
}

/* Where an item ran: its process and its worker id. */
struct where {
    int pid, worker;
};

static int locate(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    usleep(2000);
    *(struct where *)out = (struct where){(int)getpid(), mproc_worker_id()};
    return 0;
}

static void squares_in_order(void **state)
{
    (void)state;
    static const size_t ns[] = {0, 1, 2, 3, 97, 10007, 1000003};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        size_t n = ns[k];
        long *in = malloc((n + 1) * sizeof *in),
             *out = malloc((n + 1) * sizeof *out);
        for (size_t i = 0; i < n; i++) {
            in[i] = (long)i;
            out[i] = -1;
        }
        assert_int_equal(MPROC_MAP(pool, square, in, out, n), 0);
        for (size_t i = 0; i < n; i++)
            if (out[i] != (long)(i * i))
                fail_msg("n %zu: out[%zu] = %ld, want %zu", n, i, out[i],
                         i * i);
        free(in);
        free(out);
    }
}

static void items_run_on_the_other_ranks(void **state)
{
    (void)state;
    enum { N = 64 };
    struct where w[N];
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = locate,
                                                  .out = w,
                                                  .out_size = sizeof *w,
                                                  .n = N,
                                                  .chunk = 1}),
                     0);
    int workers = mproc_pool_size(pool), seen[64] = {0}, size = 0;
    /* The pool's size is its ranks, however many proxies serve them. */
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    assert_int_equal(workers, size - 1);
    for (int i = 0; i < N; i++) {
        if (w[i].pid == (int)rank0)
            fail_msg("item %d ran on rank 0", i);
        assert_in_range(w[i].worker, 0, workers - 1);
        seen[w[i].worker] = w[i].pid;
    }
    /* Each worker is a process of its own. */
    for (int a = 0; a < workers; a++)
        for (int b = a + 1; b < workers; b++)
            if (seen[a] && seen[b])
                assert_int_not_equal(seen[a], seen[b]);
}

static int coded(const void *in, void *out, void *arg)
{
    (void)arg;
    long x = *(const long *)in;
    *(long *)out = x + 1;
    return x % 7 == 3 ? 9 : 0;
}

static void item_codes_in_status(void **state)
{
    (void)state;
    enum { N = 1000 };
    long in[N], out[N];
    int status[N];
    int want = 0;
    for (int i = 0; i < N; i++) {
        in[i] = i;
        want += i % 7 == 3;
    }
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = coded,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = N,
                                                  .status = status}),
                     want);
    for (int i = 0; i < N; i++) {
        assert_int_equal(status[i], i % 7 == 3 ? 9 : 0);
        assert_int_equal(out[i], i + 1);
    }
}

struct scale {
    long mul, add;
};

static int scaled(const void *in, void *out, void *arg)
{
    const struct scale *s = arg;
    *(long *)out = *(const long *)in * s->mul + s->add;
    return 0;
}

static void arg_bytes_travel(void **state)
{
    (void)state;
    enum { N = 500 };
    long in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    struct scale s = {3, 7};
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = scaled,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = N,
                                                  .arg = &s,
                                                  .arg_size = sizeof s}),
                     0);
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], 3L * i + 7);
}

/* A pointer means nothing on another rank: only bytes cross. */
static void arg_pointer_refused(void **state)
{
    (void)state;
    long in[4] = {1, 2, 3, 4}, out[4];
    struct scale s = {1, 0};
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = scaled,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = 4,
                                                  .arg = &s}),
                     MPROC_EINVAL);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = scaled,
                                                  .in = in,
                                                  .in_size = (size_t)1 << 31,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = 1,
                                                  .arg = &s,
                                                  .arg_size = sizeof s}),
                     MPROC_EINVAL);
}

/* A function made at run time lies in no loaded object: no rank could find
   it, and the map is refused. */
static void function_made_at_run_time_refused(void **state)
{
    (void)state;
#if defined(__x86_64__)
    static const unsigned char ret0[] = {0x31, 0xc0,
                                         0xc3}; /* xor eax,eax; ret */
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        skip();
    memcpy(page, ret0, sizeof ret0);
    mproc_fn fn;
    memcpy(&fn, &page, sizeof fn);
    long in[2] = {1, 2}, out[2];
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = fn,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = 2}),
                     MPROC_EINVAL);
    munmap(page, 4096);
#else
    skip();
#endif
}

static int as_long(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in;
    return 0;
}

static void add_long(void *acc, const void *v, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)v;
}

static int as_double(const void *in, void *out, void *arg)
{
    (void)arg;
    *(double *)out = 1.0 / (double)(*(const long *)in + 1);
    return 0;
}

static void add_double(void *acc, const void *v, void *arg)
{
    (void)arg;
    *(double *)acc += *(const double *)v;
}

/* Without out, each rank folds its chunks and only totals come back. */
static void reduce_on_the_ranks(void **state)
{
    (void)state;
    size_t n = 200000;
    long *in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++)
        in[i] = (long)i;
    long total = 0;
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = as_long,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out_size = sizeof(long),
                                                  .n = n,
                                                  .reduce = add_long,
                                                  .acc = &total}),
                     0);
    assert_int_equal(total, (long)(n * (n - 1) / 2));
    double h = 0, want = 0;
    for (size_t i = 0; i < n; i++)
        want += 1.0 / (double)(i + 1);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = as_double,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out_size = sizeof(double),
                                                  .n = n,
                                                  .reduce = add_double,
                                                  .acc = &h}),
                     0);
    if (fabs(h - want) > 1e-9 * want)
        fail_msg("harmonic sum %.15g, want %.15g", h, want);
    free(in);
}

/* With out, the results come back and rank 0 folds them too. */
static void reduce_with_results(void **state)
{
    (void)state;
    enum { N = 3000 };
    long in[N], out[N], total = 0;
    for (int i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = square,
                                                  .in = in,
                                                  .in_size = sizeof *in,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = N,
                                                  .reduce = add_long,
                                                  .acc = &total}),
                     0);
    long want = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(out[i], (long)i * i);
        want += (long)i * i;
    }
    assert_int_equal(total, want);
}

static int fill_page(const void *in, void *out, void *arg)
{
    (void)arg;
    const unsigned char *a = in;
    unsigned char *b = out;
    for (int k = 0; k < 4096; k++)
        b[k] = (unsigned char)(a[k] ^ 0x5a);
    return 0;
}

static void large_items(void **state)
{
    (void)state;
    size_t n = 4000; /* 16 MB each way: more than one message per chunk */
    unsigned char *in = malloc(n * 4096), *out = malloc(n * 4096);
    for (size_t i = 0; i < n * 4096; i++)
        in[i] = (unsigned char)(i * 131 + i / 4096);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = fill_page,
                                                  .in = in,
                                                  .in_size = 4096,
                                                  .out = out,
                                                  .out_size = 4096,
                                                  .n = n,
                                                  .chunk = 2000}),
                     0);
    for (size_t i = 0; i < n * 4096; i++)
        if (out[i] != (unsigned char)(in[i] ^ 0x5a))
            fail_msg("byte %zu: %d, want %d", i, out[i], in[i] ^ 0x5a);
    free(in);
    free(out);
}

static int count_call(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    if (out)
        *(long *)out = 5;
    return 0;
}

static void no_in_and_no_out(void **state)
{
    (void)state;
    long out[10];
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = count_call,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = 10}),
                     0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(out[i], 5);
    int status[10];
    memset(status, 0x7f, sizeof status);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = count_call,
                                                  .n = 10,
                                                  .out_size = sizeof(long),
                                                  .status = status}),
                     0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(status[i], 0);
}

/* A function in a shared library crosses as (library, offset). */
static void function_in_a_shared_library(void **state)
{
    (void)state;
    enum { N = 100 };
    long in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(MPROC_MAP(pool, mpi_items_cube, in, out, N), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], (long)i * i * i);
}

static int nap_ms(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    usleep(1000);
    *(long *)out = 1;
    return 0;
}

static void next_progress_and_cancel(void **state)
{
    (void)state;
    enum { N = 300 };
    long in[N], out[N];
    int status[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mproc_task *t;
    assert_int_equal(mproc_submit(pool,
                                  &(mproc_job){.fn = square,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = N,
                                               .status = status},
                                  &t),
                     0);
    unsigned char seen[N] = {0};
    size_t idx, count = 0;
    int r;
    while ((r = mproc_task_next(t, &idx, 30)) == 0) {
        assert_true(idx < N);
        assert_false(seen[idx]);
        seen[idx] = 1;
        assert_int_equal(out[idx], (long)idx * (long)idx);
        count++;
    }
    assert_int_equal(r, MPROC_EOF);
    assert_int_equal(count, N);
    size_t done = 0, n = 0;
    assert_int_equal(mproc_task_progress(t, &done, &n), 0);
    assert_int_equal(done, N);
    assert_int_equal(n, N);
    assert_int_equal(mproc_task_wait(t, -1), 0);
    mproc_task_free(t);

    /* A long map, cancelled: what ran has its result, the rest its code. */
    size_t big = 20000;
    long *o = malloc(big * sizeof *o);
    int *st = malloc(big * sizeof *st);
    for (size_t i = 0; i < big; i++)
        o[i] = 0;
    assert_int_equal(mproc_submit(pool,
                                  &(mproc_job){.fn = nap_ms,
                                               .out = o,
                                               .out_size = sizeof *o,
                                               .n = big,
                                               .status = st},
                                  &t),
                     0);
    size_t started = 0;
    while (mproc_task_progress(t, &started, NULL) == 0 && started == 0)
        usleep(1000);
    assert_int_equal(mproc_task_cancel(t), 0);
    r = mproc_task_wait(t, 30);
    assert_true(r > 0 && (size_t)r < big);
    size_t cancelled = 0;
    for (size_t i = 0; i < big; i++) {
        if (st[i] == MPROC_ECANCELED) {
            cancelled++;
            assert_int_equal(o[i], 0);
        } else {
            assert_int_equal(st[i], 0);
            assert_int_equal(o[i], 1);
        }
    }
    assert_int_equal(cancelled, (size_t)r);
    mproc_task_free(t);
    free(o);
    free(st);
}

/* job.batch: the rank runs a run of items in one call. Items 5 mod 13
   fail with code 9. */
static int square_batch(const void *in, void *out, size_t count, void *arg,
                        int *status)
{
    (void)arg;
    const long *a = in;
    long *b = out;
    int bad = 0;
    for (size_t k = 0; k < count; k++) {
        b[k] = a[k] * a[k];
        bad |= a[k] % 13 == 5;
    }
    if (bad)
        for (size_t k = 0; k < count; k++)
            status[k] = a[k] % 13 == 5 ? 9 : 0;
    return bad;
}

static void batch_on_the_ranks(void **state)
{
    (void)state;
    enum { N = 100003 };
    long *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    int *status = malloc(N * sizeof *status);
    long want_total = 0;
    int want_failed = 0;
    for (long i = 0; i < N; i++) {
        in[i] = i;
        want_total += i * i;
        want_failed += i % 13 == 5;
    }
    for (int codes = 0; codes < 2; codes++) {
        for (long i = 0; i < N; i++)
            out[i] = -1, status[i] = 77;
        assert_int_equal(
            mproc_map(pool, &(mproc_job){.batch = square_batch,
                                         .in = in,
                                         .in_size = sizeof *in,
                                         .out = out,
                                         .out_size = sizeof *out,
                                         .n = N,
                                         .status = codes ? status : NULL}),
            want_failed);
        for (long i = 0; i < N; i++) {
            assert_int_equal(out[i], i * i);
            if (codes)
                assert_int_equal(status[i], i % 13 == 5 ? 9 : 0);
        }
    }
    /* Folded on the ranks (no out), and on rank 0 (with out). */
    for (int with_out = 0; with_out < 2; with_out++) {
        long total = 0;
        assert_int_equal(
            mproc_map(pool, &(mproc_job){.batch = square_batch,
                                         .in = in,
                                         .in_size = sizeof *in,
                                         .out = with_out ? out : NULL,
                                         .out_size = sizeof *out,
                                         .n = N,
                                         .reduce = add_long,
                                         .acc = &total}),
            want_failed);
        assert_int_equal(total, want_total);
    }
    free(in);
    free(out);
    free(status);
}

static void one_mpi_pool_a_run(void **state)
{
    (void)state;
    mproc_pool *again = NULL;
    assert_int_equal(
        mproc_pool_open(&again, &(mproc_options){.kind = MPROC_MPI}),
        MPROC_ENOTSUP);
    assert_null(again);
    assert_int_equal(mproc_pool_open(&again, &(mproc_options){.kind = MPROC_MPI,
                                                              .timeout = 1}),
                     MPROC_ENOTSUP);
}

static int fail_init(void *arg)
{
    (void)arg;
    return 1;
}

#ifdef TEST_MPI_TWIN
/* Makes this build's code differ from test_mpi's, as another program's
   would. */
volatile int twin_marker = 42;
#endif

static int expect_open(int r, int want)
{
    if (r != want || pool) {
        fprintf(stderr, "open: %d (%s), want %d (%s)\n", r, mproc_strerror(r),
                want, mproc_strerror(want));
        return 1;
    }
    printf("open: %s, as it should\n", mproc_strerror(r));
    return 0;
}

/* Ranks running another build find no function at the offsets sent: every
   item fails with MPROC_ENOTSUP, and results are left as they were. */
static int twin_run(void)
{
    enum { N = 50 };
    long in[N], out[N];
    int status[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -7;
    }
    int r = mproc_map(pool, &(mproc_job){.fn = square,
                                         .in = in,
                                         .in_size = sizeof *in,
                                         .out = out,
                                         .out_size = sizeof *out,
                                         .n = N,
                                         .status = status});
    mproc_pool_close(pool);
    if (r != N) {
        fprintf(stderr, "twin map: %d, want %d\n", r, N);
        return 1;
    }
    for (int i = 0; i < N; i++)
        if (status[i] != MPROC_ENOTSUP || out[i] != -7) {
            fprintf(stderr, "twin item %d: status %d, out %ld\n", i, status[i],
                    out[i]);
            return 1;
        }
    printf("another build's ranks: every item MPROC_ENOTSUP, as it should\n");
    return 0;
}

/* The program owns MPI: mproc neither initialises nor finalises it. */
static int program_init_run(void)
{
    long in[20], out[20];
    for (int i = 0; i < 20; i++)
        in[i] = i;
    int r = MPROC_MAP(pool, square, in, out, 20);
    mproc_pool_close(pool);
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (r != 0 || finalized) {
        fprintf(stderr, "program-init: map %d, finalized %d\n", r, finalized);
        return 1;
    }
    for (int i = 0; i < 20; i++)
        if (out[i] != (long)i * i)
            return 1;
    MPI_Finalize();
    printf("the program's own MPI: left to it, as it should\n");
    return 0;
}

/* Strings and byte runs in, results of any length back: item i's result is
   its string reversed, repeated rep(i) times (a 9 MiB one among them, more
   than one message's worth; empty ones too). */
static size_t rep_of(size_t i)
{
    return i == 3 ? 9u << 20 : i % 4;
}

static int reversed(const void *in, void *out, void *arg)
{
    (void)out, (void)arg;
    size_t i = mproc_item_index();
    const char *s = *(const char *const *)in;
    size_t len = strlen(s), reps = rep_of(i);
    if (i == 3)
        len = 1, reps = 9u << 20;
    char *r = mproc_result(len * reps);
    if (!r && len * reps != 0)
        return errno;
    for (size_t k = 0; k < len * reps; k++)
        r[k] = s[len - 1 - k % len];
    return 0;
}

static void strings_in_bytes_out(void **state)
{
    (void)state;
    enum { N = 3000 };
    char **in = malloc(N * sizeof *in);
    for (size_t i = 0; i < N; i++) {
        size_t len = i == 7 ? (size_t)10 << 20 : i % 300 + 1;
        in[i] = malloc(len + 1);
        for (size_t c = 0; c < len; c++)
            in[i][c] = (char)('a' + (c * 7 + i) % 26);
        in[i][len] = 0;
    }
    mproc_bytes *out = malloc(N * sizeof *out);
    int status[N];
    mproc_job j = {.fn = reversed,
                   .in = in,
                   .out = out,
                   .n = N,
                   .status = status,
                   .flags = MPROC_IN_STRINGS | MPROC_OUT_BYTES};
    assert_int_equal(mproc_map(pool, &j), 0);
    for (size_t i = 0; i < N; i++) {
        size_t len = strlen(in[i]), reps = rep_of(i);
        if (i == 3)
            len = 1;
        assert_int_equal(status[i], 0);
        assert_int_equal(out[i].size, len * reps);
        const char *r = out[i].data;
        for (size_t k = 0; k < len * reps; k += 1 + k / 64)
            if (r[k] != in[i][len - 1 - k % len])
                fail_msg("item %zu byte %zu", i, k);
        free(out[i].data);
        free(in[i]);
    }
    free(in);
    free(out);
}

static int run_sum(const void *in, void *out, void *arg)
{
    (void)arg;
    const mproc_bytes *b = in;
    uint64_t sum = mproc_item_index() << 32;
    for (size_t k = 0; k < b->size; k++)
        sum += ((const unsigned char *)b->data)[k];
    *(uint64_t *)out = sum;
    return 0;
}

static void bytes_in(void **state)
{
    (void)state;
    enum { N = 500 };
    mproc_bytes in[N];
    uint64_t out[N], want[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = i % 10 == 0 ? 0 : i * 13;
        unsigned char *p = size ? malloc(size) : NULL;
        want[i] = (uint64_t)i << 32;
        for (size_t k = 0; k < size; k++)
            want[i] += p[k] = (unsigned char)(k + i);
        in[i] = (mproc_bytes){p, size};
    }
    mproc_job j = {.fn = run_sum,
                   .in = in,
                   .out = out,
                   .out_size = sizeof *out,
                   .n = N,
                   .flags = MPROC_IN_BYTES};
    assert_int_equal(mproc_map(pool, &j), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(out[i], want[i]);
        free(in[i].data);
    }
}

static int leave_alone(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    return 0;
}

static int secret(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    memset(out, 'S', 64);
    return 0;
}

/* A rank's result buffer is reused from chunk to chunk: what fn does not
   write comes back as zeros, never as another job's bytes. */
static void no_stale_results(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char out[N][64];
    mproc_job a = {.fn = secret, .out = out, .out_size = 64, .n = N};
    assert_int_equal(mproc_map(pool, &a), 0);
    mproc_job b = {.fn = leave_alone, .out = out, .out_size = 64, .n = N};
    assert_int_equal(mproc_map(pool, &b), 0);
    for (size_t i = 0; i < N; i++)
        for (int c = 0; c < 64; c++)
            assert_int_equal(out[i][c], 0);
}

/* On a rank, mproc_result outside a job with MPROC_OUT_BYTES is EINVAL, as
   in every kind, and mproc_item_index is the item's. */
static int result_without_the_flag(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    errno = 0;
    void *p = mproc_result(10);
    *(long *)out = (long)mproc_item_index();
    return p == NULL && errno == EINVAL ? 0 : 1;
}

static void result_needs_the_flag(void **state)
{
    (void)state;
    long out[50];
    mproc_job j = {.fn = result_without_the_flag,
                   .out = out,
                   .out_size = sizeof *out,
                   .n = 50};
    assert_int_equal(mproc_map(pool, &j), 0);
    for (long i = 0; i < 50; i++)
        assert_int_equal(out[i], i);
}

/*
 * Pieces in flight. A rank serves its pool on a private communicator; the
 * test learns it as the rank receives on it, through the profiling
 * interface: this MPI_Recv is the one the library calls (linked into this
 * program, as a tool that wraps MPI would be), and PMPI_Recv is MPI's.
 */
static MPI_Comm served = MPI_COMM_NULL;

int MPI_Recv(void *buf, int count, MPI_Datatype type, int source, int tag,
             MPI_Comm comm, MPI_Status *status)
{
    if (source == 0 && comm != MPI_COMM_WORLD)
        served = comm;
    return PMPI_Recv(buf, count, type, source, tag, comm, status);
}

/* On its rank, item 0 looks for a message from rank 0 that waits behind
   the one it came in, for up to 10 s: the next piece of its chunk. */
static int sees_next_piece(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    int waits = 0;
    for (int k = 0; mproc_item_index() == 0 && !waits && k < 10000; k++) {
        PMPI_Iprobe(0, MPI_ANY_TAG, served, &waits, MPI_STATUS_IGNORE);
        if (!waits)
            usleep(1000);
    }
    *(int *)out = waits;
    return 0;
}

/* A chunk goes to its rank in pieces, the next sent before the first is
   answered, so that the rank finds it waiting when it answers. */
static void next_piece_waits_at_the_rank(void **state)
{
    (void)state;
    enum { N = 8 };
    int out[N];
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = sees_next_piece,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = N,
                                                  .chunk = N}),
                     0);
    if (!out[0])
        fail_msg("item 0 ran alone at its rank: the rest of its chunk was "
                 "not sent until it was answered");
}

/* On its rank, the last item of the job's first chunk (items 0 to 3) looks
   for a message from rank 0 that waits behind it, for up to 10 s: its own
   chunk has no piece left, so it can only be the next claim's. */
static int sees_next_claim(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    int waits = 0;
    for (int k = 0; mproc_item_index() == 3 && !waits && k < 10000; k++) {
        PMPI_Iprobe(0, MPI_ANY_TAG, served, &waits, MPI_STATUS_IGNORE);
        if (!waits)
            usleep(1000);
    }
    if (mproc_item_index() != 3)
        usleep(1000);
    *(int *)out = waits;
    return 0;
}

/* A rank holds two claims: while it runs one, the next one's pieces are on
   their way, so that it never waits for a round trip between claims. */
static void next_claim_waits_at_the_rank(void **state)
{
    (void)state;
    size_t n = 4 * 16 * (size_t)mproc_pool_size(pool);
    int *out = calloc(n, sizeof *out);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = sees_next_claim,
                                                  .out = out,
                                                  .out_size = sizeof *out,
                                                  .n = n,
                                                  .chunk = 4}),
                     0);
    if (!out[3])
        fail_msg("the last item of a chunk ran with nothing behind it at "
                 "its rank: the rank's next claim waited for its answer");
    free(out);
}

/* Where an item ran, after 100 ms. */
static int locate_slowly(const void *in, void *out, void *arg)
{
    usleep(100000);
    return locate(in, out, arg);
}

/* A rank takes a second claim only once every rank has one: as many slow
   items as ranks, one a claim, run one on each rank. */
static void first_claims_one_to_a_rank(void **state)
{
    (void)state;
    int ranks = mproc_pool_size(pool);
    struct where w[64];
    assert_true(ranks <= 64);
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = locate_slowly,
                                                  .out = w,
                                                  .out_size = sizeof *w,
                                                  .n = (size_t)ranks,
                                                  .chunk = 1}),
                     0);
    for (int a = 0; a < ranks; a++)
        for (int b = a + 1; b < ranks; b++)
            if (w[a].pid == w[b].pid)
                fail_msg("items %d and %d both ran on worker %d, with %d "
                         "ranks",
                         a, b, w[a].worker, ranks);
}

/* Where an item ran, at once. */
static int locate_now(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(struct where *)out = (struct where){(int)getpid(), mproc_worker_id()};
    return 0;
}

/* Maps of one item, one after another, all run on the rank that ran the
   first: the other ranks may sleep (take_lane, among ranks that hold as
   few claims, takes the one used last). */
static void one_item_maps_keep_their_rank(void **state)
{
    (void)state;
    struct where first, w;
    mproc_job j = {
        .fn = locate_now, .out = &first, .out_size = sizeof first, .n = 1};
    assert_int_equal(mproc_map(pool, &j), 0);
    j.out = &w;
    for (int k = 0; k < 20; k++) {
        assert_int_equal(mproc_map(pool, &j), 0);
        if (w.pid != first.pid)
            fail_msg("map %d of one item ran on worker %d, the first on %d",
                     k + 1, w.worker, first.worker);
    }
}

enum { TAG_STARTED = 77, TAG_GO };

/* Item 0 tells rank 0 it runs, item 1 waits for rank 0's go (on the
   program's own communicator, which the pool never uses); each item's
   result is its index, as text. */
static int told(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    size_t i = mproc_item_index();
    int me = 0, go = 0;
    if (i == 0) {
        MPI_Comm_rank(MPI_COMM_WORLD, &me);
        MPI_Send(&me, 1, MPI_INT, 0, TAG_STARTED, MPI_COMM_WORLD);
    } else if (i == 1) {
        MPI_Recv(&go, 1, MPI_INT, 0, TAG_GO, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    char *r = mproc_result(32);
    if (!r)
        return errno;
    snprintf(r, 32, "item %zu", i);
    return 0;
}

/*
 * A cancel that comes while pieces of a chunk are on their way: they run
 * and bring their results, and the pieces not yet sent are cancelled. One
 * chunk of 16 items of 3 MiB each, so two to a message: items 0 and 1 go
 * first and items 2 and 3 behind them. The cancel comes while item 1 runs,
 * so items 0 to 3 run and 4 to 15 do not.
 */
static void cancel_with_pieces_in_flight(void **state)
{
    (void)state;
    enum { N = 16 };
    size_t big = (size_t)3 << 20;
    unsigned char *same = calloc(big, 1);
    mproc_bytes in[N], out[N];
    int status[N];
    for (int i = 0; i < N; i++)
        in[i] = (mproc_bytes){same, big}, out[i] = (mproc_bytes){NULL, 0};
    mproc_task *t;
    assert_int_equal(
        mproc_submit(pool,
                     &(mproc_job){.fn = told,
                                  .in = in,
                                  .out = out,
                                  .n = N,
                                  .chunk = N,
                                  .status = status,
                                  .flags = MPROC_IN_BYTES | MPROC_OUT_BYTES},
                     &t),
        0);
    int rank = 0, go = 1;
    MPI_Recv(&rank, 1, MPI_INT, MPI_ANY_SOURCE, TAG_STARTED, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    assert_int_equal(mproc_task_cancel(t), 0);
    MPI_Send(&go, 1, MPI_INT, rank, TAG_GO, MPI_COMM_WORLD);
    assert_int_equal(mproc_task_wait(t, -1), N - 4);
    for (int i = 0; i < N; i++) {
        if (i >= 4) {
            assert_int_equal(status[i], MPROC_ECANCELED);
            assert_null(out[i].data);
            continue;
        }
        char want[32];
        snprintf(want, sizeof want, "item %d", i);
        assert_int_equal(status[i], 0);
        assert_int_equal(out[i].size, 32);
        assert_string_equal(out[i].data, want);
        free(out[i].data);
    }
    mproc_task_free(t);
    free(same);
}

int main(int argc, char **argv)
{
    rank0 = getpid();
    const char *run = argc > 1 ? argv[1] : "";
    if (!strcmp(run, "--program-init")) {
        int provided = 0;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    }
    int r = mproc_pool_open(
        &pool, &(mproc_options){
                   .kind = MPROC_MPI,
                   .workers = !strcmp(run, "--too-many") ? 1000 : 0,
                   .init = !strcmp(run, "--init-fails") ? fail_init : NULL});
    /* Only rank 0 gets here. */
    if (!strcmp(run, "--init-fails"))
        return expect_open(r, MPROC_EINIT);
    if (!strcmp(run, "--singleton"))
        return expect_open(r, MPROC_ENOTSUP);
    if (!strcmp(run, "--too-many"))
        return expect_open(r, MPROC_EINVAL);
    if (r) {
        fprintf(stderr, "open: %s\n", mproc_strerror(r));
        return 1;
    }
    if (!strcmp(run, "--twin"))
        return twin_run();
    if (!strcmp(run, "--program-init"))
        return program_init_run();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(squares_in_order),
        cmocka_unit_test(items_run_on_the_other_ranks),
        cmocka_unit_test(item_codes_in_status),
        cmocka_unit_test(arg_bytes_travel),
        cmocka_unit_test(arg_pointer_refused),
        cmocka_unit_test(function_made_at_run_time_refused),
        cmocka_unit_test(reduce_on_the_ranks),
        cmocka_unit_test(reduce_with_results),
        cmocka_unit_test(large_items),
        cmocka_unit_test(no_in_and_no_out),
        cmocka_unit_test(function_in_a_shared_library),
        cmocka_unit_test(next_progress_and_cancel),
        cmocka_unit_test(strings_in_bytes_out),
        cmocka_unit_test(bytes_in),
        cmocka_unit_test(no_stale_results),
        cmocka_unit_test(result_needs_the_flag),
        cmocka_unit_test(batch_on_the_ranks),
        cmocka_unit_test(next_piece_waits_at_the_rank),
        cmocka_unit_test(next_claim_waits_at_the_rank),
        cmocka_unit_test(first_claims_one_to_a_rank),
        cmocka_unit_test(one_item_maps_keep_their_rank),
        cmocka_unit_test(cancel_with_pieces_in_flight),
        cmocka_unit_test(one_mpi_pool_a_run),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    assert_int_equal(mproc_pool_close(pool), 0);
    return failed ? 1 : 0;
}
