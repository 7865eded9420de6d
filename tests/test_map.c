/* The ordered parallel map, on both kinds of pool. */
#define _GNU_SOURCE
#include "util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mproc_pool *open_kind(mproc_kind kind, int workers)
{
    mproc_pool *p = NULL;
    int r =
        mproc_pool_open(&p, &(mproc_options){.kind = kind, .workers = workers});
    assert_int_equal(r, 0);
    assert_non_null(p);
    return p;
}

static int square(const void *in, void *out, void *arg)
{
    (void)arg;
    long v = *(const long *)in;
    *(long *)out = v * v;
    return 0;
}

static void squares(mproc_pool *p, size_t n, size_t chunk)
{
    long *in = malloc((n ? n : 1) * sizeof *in);
    long *out = malloc((n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        out[i] = -1;
    }
    int r = mproc_map(p, &(mproc_job){.fn = square,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = n,
                                      .chunk = chunk});
    assert_int_equal(r, 0);
    for (size_t i = 0; i < n; i++)
        if (out[i] != (long)i * (long)i)
            fail_msg("n=%zu chunk=%zu: out[%zu] = %ld, want %ld", n, chunk, i,
                     out[i], (long)i * (long)i);
    free(in);
    free(out);
}

static void order_small_n(void **state)
{
    (void)state;
    static const size_t ns[] = {0, 1, 2, 3, 5, 7, 13, 101, 997, 10007};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            squares(p, ns[i], 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void order_million(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 4);
        squares(p, 1000000, 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void macro_takes_sizes_from_types(void **state)
{
    (void)state;
    long in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 2);
        memset(out, 0, sizeof out);
        assert_int_equal(MPROC_MAP(p, square, in, out, 100), 0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(out[i], (long)i * i);
        mproc_pool_close(p);
    }
}

/* Items of any size: out = in ^ 0x5a, byte by byte, plus 3 bytes of the
   in size so that out_size differs from in_size. */
static int bytes(const void *in, void *out, void *arg)
{
    size_t size = *(const size_t *)arg;
    const unsigned char *i = in;
    unsigned char *o = out;
    for (size_t b = 0; b < size; b++)
        o[b] = i[b] ^ 0x5a;
    o[size] = (unsigned char)size;
    o[size + 1] = (unsigned char)(size >> 8);
    o[size + 2] = 0xee;
    return 0;
}

static void item_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 5, 7, 8, 13, 64, 100, 511, 4096};
    size_t n = 777;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t isz = sizes[s], osz = isz + 3;
            unsigned char *in = malloc(n * isz), *out = malloc(n * osz);
            for (size_t i = 0; i < n * isz; i++)
                in[i] = (unsigned char)(i * 31 + 7);
            memset(out, 0, n * osz);
            int r = mproc_map(p, &(mproc_job){.fn = bytes,
                                              .in = in,
                                              .in_size = isz,
                                              .out = out,
                                              .out_size = osz,
                                              .n = n,
                                              .arg = &isz,
                                              .arg_size = sizeof isz});
            assert_int_equal(r, 0);
            for (size_t i = 0; i < n; i++) {
                for (size_t b = 0; b < isz; b++)
                    if (out[i * osz + b] != (in[i * isz + b] ^ 0x5a))
                        fail_msg("%s size %zu: item %zu byte %zu",
                                 tu_kind_name(tu_kinds[k]), isz, i, b);
                assert_int_equal(out[i * osz + isz], isz & 0xff);
                assert_int_equal(out[i * osz + isz + 1], isz >> 8);
                assert_int_equal(out[i * osz + isz + 2], 0xee);
            }
            free(in);
            free(out);
        }
        mproc_pool_close(p);
    }
}

static _Atomic int calls;

static int out_must_be_null(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    atomic_fetch_add(&calls, 1);
    return out != NULL;
}

static int write_scratch(const void *in, void *out, void *arg)
{
    (void)arg;
    if (!out)
        return 1;
    memcpy(out, in, sizeof(long));
    return 0;
}

static void out_null(void **state)
{
    (void)state;
    long in[500];
    for (int i = 0; i < 500; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 2);
        int r = mproc_map(p, &(mproc_job){.fn = out_must_be_null,
                                          .in = in,
                                          .in_size = sizeof in[0],
                                          .n = 500});
        assert_int_equal(r, 0);
        /* out NULL with an out_size: fn writes into a scratch, discarded. */
        r = mproc_map(p, &(mproc_job){.fn = write_scratch,
                                      .in = in,
                                      .in_size = sizeof in[0],
                                      .out_size = sizeof(long),
                                      .n = 500});
        assert_int_equal(r, 0);
        mproc_pool_close(p);
    }
}

static int who(const void *in, void *out, void *arg)
{
    (void)arg;
    if (in)
        return 1;
    *(int *)out = mproc_worker_id();
    return 0;
}

static void in_null_and_worker_ids(void **state)
{
    (void)state;
    int out[2000];
    assert_int_equal(mproc_worker_id(), -1);
    for (int k = 0; k < 2; k++) {
        int w = 4;
        mproc_pool *p = open_kind(tu_kinds[k], w);
        int r = mproc_map(p, &(mproc_job){.fn = who,
                                          .out = out,
                                          .out_size = sizeof out[0],
                                          .n = 2000});
        assert_int_equal(r, 0);
        for (int i = 0; i < 2000; i++) {
            assert_true(out[i] >= 0);
            assert_true(out[i] < w);
        }
        mproc_pool_close(p);
    }
    assert_int_equal(mproc_worker_id(), -1);
}

static void chunks(void **state)
{
    (void)state;
    static const size_t cs[] = {1, 2, 7, 999, 1000, 1005, 1u << 30};
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++)
            squares(p, 1000, cs[c]);
        mproc_pool_close(p);
    }
}

static void workers_1_to_16(void **state)
{
    (void)state;
    /* Under valgrind, where each process worker costs seconds to start,
       a sample of the counts. */
    bool all = tu_slow() == 1.0;
    for (int k = 0; k < 2; k++)
        for (int w = 1; w <= 16; w++) {
            if (!all && w != 1 && w != 2 && w != 3 && w != 8 && w != 16)
                continue;
            mproc_pool *p = open_kind(tu_kinds[k], w);
            assert_int_equal(mproc_pool_size(p), w);
            squares(p, 5000, 0);
            squares(p, 3, 0);
            mproc_pool_close(p);
        }
}

static void default_workers_are_cpus(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int cpus = CPU_COUNT(&set);
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(&p, &(mproc_options){.kind = tu_kinds[k]}), 0);
        int size = mproc_pool_size(p);
        assert_true(size >= 1);
        assert_true(size <= cpus);
        squares(p, 100, 0);
        mproc_pool_close(p);
    }
    /* NULL options: a process pool with the defaults. */
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, NULL), 0);
    squares(p, 100, 0);
    mproc_pool_close(p);
}

static void many_maps_one_pool(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        srand(42);
        for (int m = 0; m < 600; m++)
            squares(p, (size_t)(rand() % 3000), (size_t)(rand() % 3));
        mproc_pool_close(p);
    }
}

static void two_pools_of_different_kinds(void **state)
{
    (void)state;
    mproc_pool *a = open_kind(MPROC_PROCESSES, 2);
    mproc_pool *b = open_kind(MPROC_THREADS, 3);
    mproc_pool *c = open_kind(MPROC_PROCESSES, 1);
    for (int m = 0; m < 50; m++) {
        squares(a, 1000 + (size_t)m, 0);
        squares(b, 2000 + (size_t)m, 0);
        squares(c, 10 + (size_t)m, 0);
    }
    mproc_pool_close(b);
    squares(a, 100, 0);
    mproc_pool_close(a);
    squares(c, 100, 0);
    mproc_pool_close(c);
}

static int some_fail(const void *in, void *out, void *arg)
{
    (void)arg;
    long v = *(const long *)in;
    *(long *)out = -v;
    return v % 7 == 3 ? (int)v + 1 : 0;
}

static void status_codes(void **state)
{
    (void)state;
    size_t n = 1000;
    long in[1000], out[1000];
    int status[1000];
    int want = 0;
    for (size_t i = 0; i < n; i++) {
        in[i] = (long)i;
        want += i % 7 == 3;
    }
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        memset(status, 0x7f, sizeof status);
        int r = mproc_map(p, &(mproc_job){.fn = some_fail,
                                          .in = in,
                                          .in_size = sizeof in[0],
                                          .out = out,
                                          .out_size = sizeof out[0],
                                          .n = n,
                                          .status = status});
        assert_int_equal(r, want);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(status[i], i % 7 == 3 ? (int)i + 1 : 0);
            assert_int_equal(out[i], -(long)i); /* fn's output is kept */
        }
        /* Without status, the count is the same. */
        r = mproc_map(p, &(mproc_job){.fn = some_fail,
                                      .in = in,
                                      .in_size = sizeof in[0],
                                      .out = out,
                                      .out_size = sizeof out[0],
                                      .n = n});
        assert_int_equal(r, want);
        mproc_pool_close(p);
    }
}

/* The notebook's last lesson: process workers see the globals as they were
   when the pool opened; thread workers share them. */
static int global;

static int read_global(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(int *)out = global;
    global += 1000; /* a worker's own copy, for processes */
    return 0;
}

static void globals_snapshot_at_open(void **state)
{
    (void)state;
    int out[50];
    global = 7;
    mproc_pool *p = open_kind(MPROC_PROCESSES, 2);
    global = 8; /* after open: workers never see it */
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = read_global,
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = 50,
                                               .chunk = 1}),
                     0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(out[i] % 1000, 7);
    assert_int_equal(global, 8);
    mproc_pool_close(p);

    global = 7;
    p = open_kind(MPROC_THREADS, 2);
    global = 8;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = read_global,
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = 1}),
                     0);
    assert_int_equal(out[0], 8);
    assert_int_equal(global, 1008);
    mproc_pool_close(p);
}

struct mapper {
    mproc_pool *pool;
    int rounds;
};

static void *mapper(void *arg)
{
    struct mapper *m = arg;
    for (int i = 0; i < m->rounds; i++)
        squares(m->pool, 500 + (size_t)i, 0);
    return NULL;
}

static void threads_map_on_one_pool_at_once(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p = open_kind(tu_kinds[k], 3);
        pthread_t t[4];
        struct mapper m = {p, 200};
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_create(&t[i], NULL, mapper, &m), 0);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        mproc_pool_close(p);
    }
}

static void open_close_releases_everything(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    int cycles = tu_slow() == 1.0 ? 20 : 4;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < cycles; i++) {
            mproc_pool *p = open_kind(tu_kinds[k], 1 + i % 4);
            squares(p, 100, 0);
            mproc_pool_close(p);
        }
    tu_assert_released(before);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(order_small_n),
        cmocka_unit_test(order_million),
        cmocka_unit_test(macro_takes_sizes_from_types),
        cmocka_unit_test(item_sizes),
        cmocka_unit_test(out_null),
        cmocka_unit_test(in_null_and_worker_ids),
        cmocka_unit_test(chunks),
        cmocka_unit_test(workers_1_to_16),
        cmocka_unit_test(default_workers_are_cpus),
        cmocka_unit_test(many_maps_one_pool),
        cmocka_unit_test(two_pools_of_different_kinds),
        cmocka_unit_test(status_codes),
        cmocka_unit_test(globals_snapshot_at_open),
        cmocka_unit_test(threads_map_on_one_pool_at_once),
        cmocka_unit_test(open_close_releases_everything),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
