/*
 * Real data (job.flags, mproc_result, mproc_item_index) and what workers
 * print, on both kinds of pool: strings and byte runs allocated after the
 * open, results of any length, no stale bytes from another job, indices
 * that survive a crash, results of crashed, timed-out and cancelled items,
 * memory after many maps, and stdio redirected to a file and a pipe.
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static mproc_pool *open_pool(mproc_kind kind, int workers)
{
    mproc_pool *pool = NULL;
    mproc_options o = {.kind = kind, .workers = workers};
    assert_int_equal(mproc_pool_open(&pool, &o), 0);
    return pool;
}

/* ---- strings and byte runs in ------------------------------------------ */

/* The string's length, and the string upper-cased, as a result of its own
   length. */
static int shout(const void *in, void *out, void *arg)
{
    (void)arg;
    assert_null(out);
    const char *s = *(const char *const *)in;
    size_t len = strlen(s);
    char *r = mproc_result(len + 1);
    if (!r)
        return errno;
    for (size_t i = 0; i <= len; i++)
        r[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    return 0;
}

static void strings_after_open(void **state)
{
    (void)state;
    enum { N = 200 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        /* Allocated after the open: a forked worker never saw this memory. */
        char **in = malloc(N * sizeof *in);
        for (int i = 0; i < N; i++) {
            size_t len = (size_t)(i * 37 % 1500); /* 0 .. 1499, an empty one */
            in[i] = malloc(len + 1);
            for (size_t c = 0; c < len; c++)
                in[i][c] = (char)('a' + (c + (size_t)i) % 26);
            in[i][len] = 0;
        }
        mproc_bytes out[N];
        int status[N];
        mproc_job job = {.fn = shout,
                         .in = in,
                         .out = out,
                         .n = N,
                         .status = status,
                         .flags = MPROC_IN_STRINGS | MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &job), 0);
        for (int i = 0; i < N; i++) {
            size_t len = strlen(in[i]);
            assert_int_equal(status[i], 0);
            assert_int_equal(out[i].size, len + 1);
            const char *r = out[i].data;
            for (size_t c = 0; c < len; c++)
                assert_int_equal(r[c], in[i][c] - 32);
            assert_int_equal(r[len], 0);
            free(out[i].data);
            free(in[i]);
        }
        free(in);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* Sum of the bytes of a run, and its size, as a fixed-size result. */
static int sum_bytes(const void *in, void *out, void *arg)
{
    (void)arg;
    const mproc_bytes *b = in;
    uint64_t sum = 0;
    for (size_t i = 0; i < b->size; i++)
        sum += ((const unsigned char *)b->data)[i];
    ((uint64_t *)out)[0] = sum;
    ((uint64_t *)out)[1] = b->size;
    return b->size && !b->data;
}

static void bytes_after_open(void **state)
{
    (void)state;
    enum { N = 64 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        /* One large run (8 MiB), empty ones, mixed sizes, all made now. */
        mproc_bytes in[N];
        uint64_t want[N], out[N][2];
        for (int i = 0; i < N; i++) {
            size_t size = i == 7       ? (size_t)8 << 20
                          : i % 5 == 0 ? 0
                                       : (size_t)i * 97;
            unsigned char *p = size ? malloc(size) : NULL;
            want[i] = 0;
            for (size_t c = 0; c < size; c++) {
                p[c] = (unsigned char)(c * 31 + (size_t)i);
                want[i] += p[c];
            }
            in[i] = (mproc_bytes){p, size};
        }
        mproc_job job = {.fn = sum_bytes,
                         .in = in,
                         .out = out,
                         .out_size = sizeof out[0],
                         .n = N,
                         .flags = MPROC_IN_BYTES};
        assert_int_equal(mproc_map(pool, &job), 0);
        for (int i = 0; i < N; i++) {
            assert_int_equal(out[i][0], want[i]);
            assert_int_equal(out[i][1], in[i].size);
            free(in[i].data);
        }
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* A byte run back as a result: the run's bytes, reversed. */
static int reverse_run(const void *in, void *out, void *arg)
{
    (void)out, (void)arg;
    const mproc_bytes *b = in;
    unsigned char *r = mproc_result(b->size);
    if (!r)
        return errno;
    for (size_t k = 0; k < b->size; k++)
        r[k] = ((const unsigned char *)b->data)[b->size - 1 - k];
    return 0;
}

static void bytes_in_bytes_out(void **state)
{
    (void)state;
    enum { N = 100 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        mproc_bytes in[N], out[N];
        for (size_t i = 0; i < N; i++) {
            size_t size = i % 7 == 0 ? 0 : i * i * 11;
            unsigned char *p = size ? malloc(size) : NULL;
            for (size_t c = 0; c < size; c++)
                p[c] = (unsigned char)(c ^ i);
            in[i] = (mproc_bytes){p, size};
        }
        mproc_job j = {.fn = reverse_run,
                       .in = in,
                       .out = out,
                       .n = N,
                       .flags = MPROC_IN_BYTES | MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &j), 0);
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(out[i].size, in[i].size);
            const unsigned char *a = in[i].data, *b = out[i].data;
            for (size_t c = 0; c < in[i].size; c++)
                assert_int_equal(b[c], a[in[i].size - 1 - c]);
            free(in[i].data);
            free(out[i].data);
        }
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* ---- no result carries another job's bytes ------------------------------ */

static int write_secret(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    memset(out, 'S', 64);
    return 0;
}

static int write_nothing(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    return 7;
}

static int write_one(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    *(char *)out = 'b';
    return 0;
}

static void no_stale_bytes_from_another_job(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char a[N][64], b[N][64];
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        mproc_job ja = {.fn = write_secret, .out = a, .out_size = 64, .n = N};
        assert_int_equal(mproc_map(pool, &ja), 0);
        memset(b, 0, sizeof b);
        mproc_job jb = {.fn = write_nothing, .out = b, .out_size = 64, .n = N};
        assert_int_equal(mproc_map(pool, &jb), N);
        size_t stale = 0;
        for (int i = 0; i < N; i++)
            for (int c = 0; c < 64; c++)
                stale += b[i][c] != 0;
        assert_int_equal(stale, 0);
        memset(b, 'x', sizeof b);
        jb.fn = write_one;
        assert_int_equal(mproc_map(pool, &jb), 0);
        for (int i = 0; i < N; i++) {
            assert_int_equal(b[i][0], 'b');
            for (int c = 1; c < 64; c++)
                assert_int_equal(b[i][c], 'x');
        }
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* A reduction without out folds a per-worker scratch result: it must start
   clean for each job, not as the last job left it. */
static int scratch_secret(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    *(long *)out = 1000000;
    return 0;
}

static int scratch_nothing(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    return 0;
}

static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

static void no_stale_bytes_in_reduce_scratch(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        long acc = 0;
        mproc_job j = {.fn = scratch_secret,
                       .out_size = sizeof(long),
                       .n = 100,
                       .reduce = add_long,
                       .acc = &acc};
        assert_int_equal(mproc_map(pool, &j), 0);
        assert_int_equal(acc, 100 * 1000000L);
        acc = 0;
        j.fn = scratch_nothing;
        assert_int_equal(mproc_map(pool, &j), 0);
        assert_int_equal(acc, 0);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* ---- the item's index ---------------------------------------------------- */

static uint64_t seed_of(uint64_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15u + 1;
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9u;
}

/* Item i's result is a draw from a generator seeded with its index; item
   13 crashes its worker. */
static int seeded(const void *in, void *out, void *arg)
{
    (void)in;
    size_t i = mproc_item_index();
    if (arg && i == 13)
        kill(getpid(), SIGKILL);
    *(uint64_t *)out = seed_of(i);
    return 0;
}

static void add_u64(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(uint64_t *)acc += *(const uint64_t *)r;
}

static void item_index_survives_a_crash(void **state)
{
    (void)state;
    enum { N = 500 };
    assert_int_equal(mproc_item_index(), SIZE_MAX);
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        uint64_t out[N];
        int status[N];
        bool crash = tu_kinds[k] == MPROC_PROCESSES;
        mproc_job j = {.fn = seeded,
                       .out = out,
                       .out_size = sizeof *out,
                       .n = N,
                       .status = status,
                       .chunk = 7,
                       .arg = crash ? (void *)1 : NULL};
        assert_int_equal(mproc_map(pool, &j), crash ? 1 : 0);
        for (int i = 0; i < N; i++) {
            if (crash && i == 13) {
                assert_int_equal(status[i], MPROC_ECRASHED);
                continue;
            }
            assert_int_equal(status[i], 0);
            assert_int_equal(out[i], seed_of((uint64_t)i));
        }
        /* The loop with a reduction sees the index too. */
        uint64_t acc = 0, sum = 0;
        mproc_job r = {.fn = seeded,
                       .out_size = sizeof acc,
                       .n = N,
                       .reduce = add_u64,
                       .acc = &acc};
        assert_int_equal(mproc_map(pool, &r), 0);
        for (int i = 0; i < N; i++)
            sum += seed_of((uint64_t)i);
        assert_int_equal(acc, sum);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
    assert_int_equal(mproc_item_index(), SIZE_MAX);
}

/* ---- results of any length ----------------------------------------------- */

/* Item i makes a result of size_of(i) bytes, each byte (i + k) mod 251. */
static size_t size_of(size_t i)
{
    static const size_t sizes[] = {0, 1, 3, 64, 65, 4095, 4096, 4097, 100000};
    return i == 11 ? (size_t)1 << 20 : sizes[i % 9];
}

static int make(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    size_t i = mproc_item_index();
    /* A first result, replaced by the real one. */
    if (i % 4 == 1 && !mproc_result(777))
        return errno;
    size_t size = size_of(i);
    unsigned char *p = mproc_result(size);
    if (!p)
        return errno;
    for (size_t k = 0; k < size; k++)
        p[k] = (unsigned char)((i + k) % 251);
    return 0;
}

static void check_made(const mproc_bytes *out, size_t i)
{
    size_t size = size_of(i);
    assert_int_equal(out->size, size);
    if (size)
        assert_non_null(out->data);
    const unsigned char *p = out->data;
    for (size_t k = 0; k < size; k++)
        if (p[k] != (unsigned char)((i + k) % 251))
            fail_msg("item %zu byte %zu: %u", i, k, p[k]);
}

static void results_of_any_length(void **state)
{
    (void)state;
    enum { N = 300 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        mproc_bytes out[N];
        memset(out, 0xab, sizeof out);
        int status[N];
        mproc_job j = {.fn = make,
                       .out = out,
                       .n = N,
                       .status = status,
                       .flags = MPROC_OUT_BYTES};
        for (int round = 0; round < 3; round++) {
            assert_int_equal(mproc_map(pool, &j), 0);
            for (size_t i = 0; i < N; i++) {
                check_made(&out[i], i);
                free(out[i].data);
            }
        }
        /* Streamed: each item's bytes are there when next hands it out. */
        mproc_task *t;
        assert_int_equal(mproc_submit(pool, &j, &t), 0);
        size_t i, seen = 0;
        int r;
        while ((r = mproc_task_next(t, &i, -1)) == 0) {
            check_made(&out[i], i);
            free(out[i].data);
            out[i].data = NULL;
            seen++;
        }
        assert_int_equal(r, MPROC_EOF);
        assert_int_equal(seen, N);
        assert_int_equal(mproc_task_wait(t, -1), 0);
        for (i = 0; i < N; i++)
            assert_null(out[i].data);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* Workers replaced every 5 items (max_items): each replacement goes on in
   its slot's region, and every result comes back whole. */
static void results_across_replacements(void **state)
{
    (void)state;
    enum { N = 60 };
    mproc_pool *pool = NULL;
    mproc_options o = {.workers = 2, .max_items = 5};
    assert_int_equal(mproc_pool_open(&pool, &o), 0);
    mproc_bytes out[N];
    mproc_job j = {.fn = make, .out = out, .n = N, .flags = MPROC_OUT_BYTES};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(mproc_map(pool, &j), 0);
        for (size_t i = 0; i < N; i++) {
            check_made(&out[i], i);
            free(out[i].data);
        }
    }
    assert_int_equal(mproc_pool_close(pool), 0);
}

/* A million items of mixed sizes (0 to 40 bytes). */
static int small(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    size_t i = mproc_item_index();
    size_t size = i % 41;
    unsigned char *p = mproc_result(size);
    if (!p)
        return errno;
    memset(p, (int)(i & 0xff), size);
    return 0;
}

/* As small, and item 7 crashes its worker after making a result when arg
   is set. */
static int small_or_die(const void *in, void *out, void *arg)
{
    if (arg && mproc_item_index() == 7) {
        mproc_result(3000);
        kill(getpid(), SIGKILL);
    }
    return small(in, out, arg);
}

static void a_million_results(void **state)
{
    (void)state;
    size_t N = 1000000 / (size_t)tu_slow();
    mproc_bytes *out = malloc(N * sizeof *out);
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 2);
        mproc_job j = {
            .fn = small, .out = out, .n = N, .flags = MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &j), 0);
        for (size_t i = 0; i < N; i++) {
            assert_int_equal(out[i].size, i % 41);
            if (out[i].size)
                assert_int_equal(((unsigned char *)out[i].data)[i % 41 - 1],
                                 i & 0xff);
            free(out[i].data);
        }
        assert_int_equal(mproc_pool_close(pool), 0);
    }
    free(out);
}

static int one_gib(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    size_t size = (size_t)1 << 30;
    unsigned char *p = mproc_result(size);
    if (!p)
        return errno;
    for (size_t k = 0; k < size; k += 4096)
        p[k] = (unsigned char)(k >> 12);
    p[size - 1] = 0x5a;
    return 0;
}

static void a_gibibyte_result(void **state)
{
    (void)state;
    /* 2 GiB copied under valgrind or TSan, which shadow every byte: many
       minutes. */
    if (tu_slow() > 1)
        skip();
#if defined(__SANITIZE_THREAD__)
    skip();
#endif
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 1);
        mproc_bytes out[1];
        mproc_job j = {
            .fn = one_gib, .out = out, .n = 1, .flags = MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &j), 0);
        assert_int_equal(out[0].size, (size_t)1 << 30);
        unsigned char *p = out[0].data;
        for (size_t k2 = 0; k2 < out[0].size; k2 += 4096)
            assert_int_equal(p[k2], (unsigned char)(k2 >> 12));
        assert_int_equal(p[out[0].size - 1], 0x5a);
        free(p);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* Items 5 and 17 crash after making a result, item 9 hangs past the
   timeout after making one: their results are {NULL, 0}; the others are
   whole. */
static int make_or_die(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    size_t i = mproc_item_index();
    char *p = mproc_result(100000 + i);
    if (!p)
        return errno;
    memset(p, (int)i, 100000 + i);
    if (i == 5 || i == 17)
        kill(getpid(), SIGKILL);
    if (i == 9)
        for (;;)
            pause();
    return 0;
}

static void crashed_and_timed_out_results(void **state)
{
    (void)state;
    enum { N = 40 };
    mproc_pool *pool = NULL;
    mproc_options o = {.workers = 2, .timeout = tu_timeout(0.5)};
    assert_int_equal(mproc_pool_open(&pool, &o), 0);
    mproc_bytes out[N];
    int status[N];
    mproc_job j = {.fn = make_or_die,
                   .out = out,
                   .n = N,
                   .status = status,
                   .chunk = 3,
                   .flags = MPROC_OUT_BYTES};
    assert_int_equal(mproc_map(pool, &j), 3);
    for (size_t i = 0; i < N; i++) {
        if (i == 5 || i == 17 || i == 9) {
            assert_int_equal(status[i],
                             i == 9 ? MPROC_ETIMEDOUT : MPROC_ECRASHED);
            assert_null(out[i].data);
            assert_int_equal(out[i].size, 0);
            continue;
        }
        assert_int_equal(status[i], 0);
        assert_int_equal(out[i].size, 100000 + i);
        assert_int_equal(((char *)out[i].data)[99999 + i], (char)i);
        free(out[i].data);
    }
    assert_int_equal(mproc_pool_close(pool), 0);
}

/* Cancelled items hand back {NULL, 0}; those that ran, their results. */
struct gate {
    _Atomic int go;
};

static int make_slowly(const void *in, void *out, void *arg)
{
    (void)in, (void)out;
    struct gate *g = arg;
    size_t i = mproc_item_index();
    while (i >= 4 && !atomic_load(&g->go))
        usleep(100);
    char *p = mproc_result(5000);
    if (!p)
        return errno;
    memset(p, 'r', 5000);
    return 0;
}

static void cancelled_results(void **state)
{
    (void)state;
    enum { N = 200 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = NULL;
        mproc_options o = {
            .kind = tu_kinds[k], .workers = 2, .shared_size = 4096};
        assert_int_equal(mproc_pool_open(&pool, &o), 0);
        struct gate *g = mproc_shared_alloc(pool, sizeof *g);
        mproc_bytes out[N];
        int status[N];
        mproc_job j = {.fn = make_slowly,
                       .out = out,
                       .n = N,
                       .status = status,
                       .arg = g,
                       .chunk = 1,
                       .flags = MPROC_OUT_BYTES};
        mproc_task *t;
        assert_int_equal(mproc_submit(pool, &j, &t), 0);
        size_t i, got = 0;
        while (got < 4 && mproc_task_next(t, &i, -1) == 0)
            got++;
        assert_int_equal(mproc_task_cancel(t), 0);
        atomic_store(&g->go, 1);
        int failed = mproc_task_wait(t, -1);
        assert_true(failed > 0);
        size_t ran = 0;
        for (i = 0; i < N; i++) {
            if (status[i] == MPROC_ECANCELED) {
                assert_null(out[i].data);
                assert_int_equal(out[i].size, 0);
            } else {
                assert_int_equal(status[i], 0);
                assert_int_equal(out[i].size, 5000);
                assert_int_equal(((char *)out[i].data)[4999], 'r');
                free(out[i].data);
                ran++;
            }
        }
        assert_int_equal(ran + (size_t)failed, N);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* The resident shared memory of this process, in KiB (RssShmem). */
static long rss_shmem(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssShmem: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void many_maps_keep_memory_bounded(void **state)
{
    (void)state;
    enum { N = 64 };
    int maps = 10000 / (int)tu_slow();
    struct tu_held before = tu_held();
    mproc_pool *pool = open_pool(MPROC_PROCESSES, 2);
    mproc_bytes out[N];
    long after_some = 0;
    for (int m = 0; m < maps; m++) {
        /* Ten maps lose a worker in the middle of a result. */
        bool die = m % (maps / 10) == maps / 10 - 1;
        mproc_job j = {.fn = small_or_die,
                       .out = out,
                       .n = N,
                       .arg = die ? (void *)1 : NULL,
                       .flags = MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &j), die ? 1 : 0);
        if (die)
            assert_null(out[7].data);
        for (size_t i = 0; i < N; i++)
            free(out[i].data);
        if (m == 100)
            after_some = rss_shmem();
    }
    long end = rss_shmem();
    /* The caller's views of the results: only what it has not collected
       stays resident, and it collected everything. */
    assert_true(end <= after_some + 4096);
    assert_int_equal(mproc_pool_close(pool), 0);
    tu_assert_released(before);
}

/* Descriptors and mappings of results files that process `pid` holds. */
static int results_files(pid_t pid)
{
    char path[64], line[512];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "memfd:mproc-results") != NULL;
    if (f)
        fclose(f);
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], to[256];
        snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)pid, fd);
        ssize_t len = readlink(link, to, sizeof to - 1);
        if (len > 0) {
            to[len] = 0;
            n += strstr(to, "mproc-results") != NULL;
        }
    }
    return n;
}

/* A pool opened while another is open must not keep the other's results
   file alive in its supervisor and workers after the other closes. */
static void another_pools_results_are_dropped(void **state)
{
    (void)state;
    mproc_pool *a = open_pool(MPROC_PROCESSES, 1);
    mproc_bytes out[20];
    mproc_job j = {.fn = make, .out = out, .n = 20, .flags = MPROC_OUT_BYTES};
    assert_int_equal(mproc_map(a, &j), 0); /* the caller maps views of a's */
    for (int i = 0; i < 20; i++)
        free(out[i].data);
    mproc_pool *b = open_pool(MPROC_PROCESSES, 1);
    assert_int_equal(mproc_pool_close(a), 0);
    pid_t super = tu_supervisor();
    assert_true(super > 0);
    assert_int_equal(results_files(super), 1); /* b's own descriptor */
    assert_int_equal(mproc_pool_close(b), 0);
}

/* A process worker cannot allocate in the arena (its bookkeeping is the
   caller's): NULL with EPERM, as the header says; results go through
   mproc_result instead. */
static int alloc_in_worker(const void *in, void *out, void *arg)
{
    (void)in, (void)out;
    errno = 0;
    void *p = mproc_shared_alloc(arg, 64);
    return p == NULL && errno == EPERM ? 0 : 1;
}

static void arena_from_a_process_worker(void **state)
{
    (void)state;
    mproc_pool *pool = NULL;
    mproc_options o = {.workers = 1, .shared_size = 1 << 20};
    assert_int_equal(mproc_pool_open(&pool, &o), 0);
    mproc_job j = {.fn = alloc_in_worker, .n = 4, .arg = pool};
    assert_int_equal(mproc_map(pool, &j), 0);
    assert_int_equal(mproc_pool_close(pool), 0);
}

/* ---- bad input ----------------------------------------------------------- */

static int nop(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    return 0;
}

static int result_without_flag(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    errno = 0;
    return mproc_result(10) == NULL && errno == EINVAL ? 0 : 1;
}

static void bad_data_jobs(void **state)
{
    (void)state;
    errno = 0;
    assert_null(mproc_result(1));
    assert_int_equal(errno, EINVAL);
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool = open_pool(tu_kinds[k], 1);
        const char *strs[3] = {"a", NULL, "c"};
        mproc_bytes bytes[2] = {{NULL, 0}, {NULL, 3}};
        mproc_bytes out[3];
        long acc = 0, longs[3] = {0};
        mproc_job bad[] = {
            {.fn = nop, .in = strs, .n = 3, .flags = MPROC_IN_STRINGS},
            {.fn = nop,
             .in = strs,
             .in_size = 4,
             .n = 1,
             .flags = MPROC_IN_STRINGS},
            {.fn = nop, .in = bytes, .n = 2, .flags = MPROC_IN_BYTES},
            {.fn = nop,
             .in = bytes,
             .in_size = 8,
             .n = 1,
             .flags = MPROC_IN_BYTES},
            {.fn = nop,
             .in = bytes,
             .n = 1,
             .flags = MPROC_IN_BYTES | MPROC_IN_STRINGS},
            {.fn = nop,
             .out = out,
             .out_size = 8,
             .n = 1,
             .flags = MPROC_OUT_BYTES},
            {.fn = nop, .out = NULL, .n = 1, .flags = MPROC_OUT_BYTES},
            {.fn = nop,
             .out = out,
             .n = 1,
             .reduce = add_long,
             .acc = &acc,
             .flags = MPROC_OUT_BYTES},
            {.fn = nop, .n = 1, .flags = 1u << 7},
        };
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            int r = mproc_map(pool, &bad[b]);
            if (r != MPROC_EINVAL)
                fail_msg("bad job %zu: %d", b, r);
        }
        /* Valid: empty items, and {NULL, 0} runs. */
        mproc_job ok = {
            .fn = nop, .in = bytes, .n = 1, .flags = MPROC_IN_BYTES};
        assert_int_equal(mproc_map(pool, &ok), 0);
        mproc_job none = {
            .fn = nop, .n = 0, .flags = MPROC_IN_STRINGS | MPROC_OUT_BYTES};
        assert_int_equal(mproc_map(pool, &none), 0);
        mproc_job wrong = {.fn = result_without_flag,
                           .out = longs,
                           .out_size = sizeof(long),
                           .n = 3};
        assert_int_equal(mproc_map(pool, &wrong), 0);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* ---- what workers print -------------------------------------------------- */

static int say(const void *in, void *out, void *arg)
{
    (void)out;
    FILE *f = arg ? arg : stdout;
    fprintf(f, "item %ld done\n", *(const long *)in);
    return 0;
}

static int count_lines(int fd)
{
    char buf[65536];
    int lines = 0;
    ssize_t r;
    lseek(fd, 0, SEEK_SET);
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            lines += buf[i] == '\n';
    return lines;
}

/* Run 20 printing items on 2 process workers (with max_items 5 or not),
   stdout being `fd`, and count what reached it after close. */
static void print_to(int fd, unsigned long max_items, FILE *f)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    mproc_pool *pool = NULL;
    mproc_options o = {.workers = 2, .max_items = max_items};
    assert_int_equal(mproc_pool_open(&pool, &o), 0);
    long in[20];
    for (int i = 0; i < 20; i++)
        in[i] = i;
    mproc_job j = {
        .fn = say, .in = in, .in_size = sizeof *in, .n = 20, .arg = f};
    int r = mproc_map(pool, &j);
    assert_int_equal(mproc_pool_close(pool), 0);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(r, 0);
}

static void stdout_to_a_file(void **state)
{
    (void)state;
    tu_default_signals();
    for (unsigned long max = 0; max <= 5; max += 5) {
        FILE *tmp = tmpfile();
        int fd = fileno(tmp);
        print_to(fd, max, NULL);
        assert_int_equal(count_lines(fd), 20);
        fclose(tmp);
    }
}

static void stdout_to_a_pipe(void **state)
{
    (void)state;
    for (unsigned long max = 0; max <= 5; max += 5) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        print_to(p[1], max, NULL);
        close(p[1]);
        int lines = 0;
        char buf[4096];
        ssize_t r;
        while ((r = read(p[0], buf, sizeof buf)) > 0)
            for (ssize_t i = 0; i < r; i++)
                lines += buf[i] == '\n';
        close(p[0]);
        assert_int_equal(lines, 20);
    }
}

static int say_or_crash(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    long i = *(const long *)in;
    if (i == 7)
        raise(SIGSEGV);
    printf("item %ld done\n", i);
    return 0;
}

/* A crash later in the same chunk loses no line an earlier item printed:
   every item but the crashed one has its line (before, the line of the
   item just before the crash was lost with the worker's buffer). */
static void lines_before_a_crash_in_the_chunk(void **state)
{
    (void)state;
    tu_default_signals();
    FILE *tmp = tmpfile();
    int fd = fileno(tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    mproc_pool *pool = NULL;
    assert_int_equal(mproc_pool_open(&pool, &(mproc_options){.workers = 1}), 0);
    long in[10];
    int status[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;
    int r = mproc_map(pool, &(mproc_job){.fn = say_or_crash,
                                         .in = in,
                                         .in_size = sizeof *in,
                                         .n = 10,
                                         .chunk = 10,
                                         .status = status});
    assert_int_equal(mproc_pool_close(pool), 0);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(r, 1);
    assert_int_equal(status[7], MPROC_ECRASHED);
    assert_int_equal(count_lines(fd), 9);
    fclose(tmp);
}

static void a_file_opened_before_the_pool(void **state)
{
    (void)state;
    char path[] = "/tmp/mproc-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    FILE *f = fdopen(fd, "w+");
    int devnull = open("/dev/null", O_WRONLY);
    print_to(devnull, 5, f);
    close(devnull);
    fflush(f);
    assert_int_equal(count_lines(fd), 20);
    fclose(f);
}

/* init's output, and a failed init's, reach the file too. */
static int init_says(void *arg)
{
    printf("init of worker %d\n", mproc_worker_id());
    return arg != NULL;
}

static void init_output_reaches_a_file(void **state)
{
    (void)state;
    for (int fails = 0; fails < 2; fails++) {
        FILE *tmp = tmpfile();
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        dup2(fileno(tmp), STDOUT_FILENO);
        mproc_pool *pool = NULL;
        mproc_options o = {.workers = 2,
                           .init = init_says,
                           .init_arg = fails ? (void *)1 : NULL};
        int r = mproc_pool_open(&pool, &o);
        mproc_pool_close(pool);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        assert_int_equal(r, fails ? MPROC_EINIT : 0);
        int lines = count_lines(fileno(tmp));
        /* A failed open stops the other worker wherever it is. */
        assert_true(fails ? lines >= 1 : lines == 2);
        fclose(tmp);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strings_after_open),
        cmocka_unit_test(bytes_after_open),
        cmocka_unit_test(bytes_in_bytes_out),
        cmocka_unit_test(no_stale_bytes_from_another_job),
        cmocka_unit_test(no_stale_bytes_in_reduce_scratch),
        cmocka_unit_test(item_index_survives_a_crash),
        cmocka_unit_test(results_of_any_length),
        cmocka_unit_test(results_across_replacements),
        cmocka_unit_test(a_million_results),
        cmocka_unit_test(a_gibibyte_result),
        cmocka_unit_test(crashed_and_timed_out_results),
        cmocka_unit_test(cancelled_results),
        cmocka_unit_test(many_maps_keep_memory_bounded),
        cmocka_unit_test(another_pools_results_are_dropped),
        cmocka_unit_test(arena_from_a_process_worker),
        cmocka_unit_test(bad_data_jobs),
        cmocka_unit_test(stdout_to_a_file),
        cmocka_unit_test(stdout_to_a_pipe),
        cmocka_unit_test(lines_before_a_crash_in_the_chunk),
        cmocka_unit_test(a_file_opened_before_the_pool),
        cmocka_unit_test(init_output_reaches_a_file),
    };
    tu_default_signals();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
