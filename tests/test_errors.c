/* Every documented error of every public call, one case each. */
#define _GNU_SOURCE
#include "util.h"

#include "internal.h" /* the staging heap, to check nothing is left in it */

#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int noop(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    return 0;
}

static int noop_copy(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in;
    return 0;
}

/* The sentence mproc_last_error gives for the call just made names what
   was wrong (the word given). */
#define said(word) said_at(word, __LINE__)
static void said_at(const char *word, int line)
{
    const char *m = mproc_last_error();
    if (!m || !strstr(m, word))
        fail_msg("line %d: mproc_last_error() is \"%s\"; it should name "
                 "\"%s\"",
                 line, m ? m : "(null)", word);
}

static int open_with(mproc_options o)
{
    mproc_pool *p = (mproc_pool *)1;
    int r = mproc_pool_open(&p, &o);
    if (r == 0)
        mproc_pool_close(p);
    else
        assert_null(p);
    return r;
}

/* ---- mproc_pool_open ---- */

static void open_null_pool(void **state)
{
    (void)state;
    assert_int_equal(mproc_pool_open(NULL, NULL), MPROC_EINVAL);
    said("pool");
}

static void open_unknown_kind(void **state)
{
    (void)state;
    assert_int_equal(open_with((mproc_options){.kind = (mproc_kind)7}),
                     MPROC_EINVAL);
    said("options.kind is 7");
    assert_int_equal(open_with((mproc_options){.kind = (mproc_kind)-1}),
                     MPROC_EINVAL);
    said("options.kind is -1");
}

static void open_negative_workers(void **state)
{
    (void)state;
    assert_int_equal(open_with((mproc_options){.workers = -1}), MPROC_EINVAL);
    said("options.workers is -1");
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_THREADS, .workers = -5}),
        MPROC_EINVAL);
}

static void open_too_many_workers(void **state)
{
    (void)state;
    assert_int_equal(open_with((mproc_options){.workers = 1025}), MPROC_EINVAL);
    said("options.workers is 1025");
    assert_int_equal(open_with((mproc_options){.workers = INT32_MAX}),
                     MPROC_EINVAL);
}

/* A bad timeout is refused by both kinds with MPROC_EINVAL (not the thread
   pool's MPROC_ENOTSUP for a timeout it could not honour anyway). */
static void refuse_timeout(double timeout)
{
    for (int k = 0; k < 2; k++) {
        int r =
            open_with((mproc_options){.kind = tu_kinds[k], .timeout = timeout});
        if (r != MPROC_EINVAL)
            fail_msg("%s, timeout %g: %d (%s), want MPROC_EINVAL",
                     tu_kind_name(tu_kinds[k]), timeout, r, mproc_strerror(r));
        said("options.timeout");
    }
}

static void open_timeout_nan(void **state)
{
    (void)state;
    refuse_timeout(NAN);
    refuse_timeout(-NAN);
}

static void open_timeout_negative(void **state)
{
    (void)state;
    refuse_timeout(-1.0);
    refuse_timeout(-0.0001);
    refuse_timeout(-DBL_MIN);
}

static void open_timeout_positive_infinity(void **state)
{
    (void)state;
    refuse_timeout(INFINITY);
}

static void open_timeout_negative_infinity(void **state)
{
    (void)state;
    refuse_timeout(-INFINITY);
}

static void open_timeout_above_one_year(void **state)
{
    (void)state;
    refuse_timeout(365.0 * 86400 + 1);
    refuse_timeout(1e12);
    refuse_timeout(DBL_MAX);
    /* The control: a long timeout within the year is accepted. */
    assert_int_equal(
        open_with((mproc_options){.workers = 1, .timeout = 300.0 * 86400}), 0);
}

static void open_absurd_shared_size(void **state)
{
    (void)state;
    assert_int_equal(open_with((mproc_options){.shared_size = SIZE_MAX}),
                     MPROC_EINVAL);
    said("options.shared_size");
    assert_int_equal(open_with((mproc_options){.kind = MPROC_THREADS,
                                               .shared_size = SIZE_MAX / 2}),
                     MPROC_EINVAL);
    said("options.shared_size");
}

/* MPI pools refuse what they cannot do before MPI is touched; a build
   without MPI refuses the kind itself. (With MPI, a program run without
   mpirun is refused too: tests/test_mpi.c, --singleton.) */
static void open_mpi_not_supported(void **state)
{
    (void)state;
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_MPI, .timeout = 1}),
        MPROC_ENOTSUP);
    said("MPI");
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_MPI, .max_items = 5}),
        MPROC_ENOTSUP);
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_MPI, .workers = -1}),
        MPROC_EINVAL);
    said("options.workers");
#ifndef MPROC_HAVE_MPI
    assert_int_equal(open_with((mproc_options){.kind = MPROC_MPI}),
                     MPROC_ENOTSUP);
#endif
}

static void open_threads_refuse_timeout(void **state)
{
    (void)state;
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_THREADS, .timeout = 1}),
        MPROC_ENOTSUP);
    said("options.timeout");
}

static void open_threads_refuse_max_items(void **state)
{
    (void)state;
    assert_int_equal(
        open_with((mproc_options){.kind = MPROC_THREADS, .max_items = 3}),
        MPROC_ENOTSUP);
    said("options.max_items");
}

static int init_fails_in_one(void *arg)
{
    (void)arg;
    return mproc_worker_id() == 1 ? 42 : 0;
}

static void open_init_fails(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    for (int k = 0; k < 2; k++) {
        assert_int_equal(open_with((mproc_options){.kind = tu_kinds[k],
                                                   .workers = 3,
                                                   .init = init_fails_in_one}),
                         MPROC_EINIT);
        said("options.init");
    }
    tu_assert_released(before);
}

static int init_crashes(void *arg)
{
    (void)arg;
    if (mproc_worker_id() == 0)
        raise(SIGSEGV);
    return 0;
}

static void open_init_crashes(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    assert_int_equal(
        open_with((mproc_options){.workers = 2, .init = init_crashes}),
        MPROC_ECRASHED);
    tu_assert_released(before);
}

/* ---- mproc_pool_close, mproc_pool_size ---- */

static void close_null_is_noop(void **state)
{
    (void)state;
    assert_int_equal(mproc_pool_close(NULL), 0);
}

/* A process worker's globals are those of the moment the pool opened, so a
   worker learns its pool's address from arg. */
static mproc_pool *shared_pool;

static int close_own_pool(const void *in, void *out, void *arg)
{
    (void)in;
    *(int *)out = mproc_pool_close(arg);
    return 0;
}

static void close_from_worker(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(
            mproc_pool_open(&shared_pool, &(mproc_options){.kind = tu_kinds[k],
                                                           .workers = 2}),
            0);
        int r = -1;
        assert_int_equal(
            mproc_map(shared_pool, &(mproc_job){.fn = close_own_pool,
                                                .arg = shared_pool,
                                                .out = &r,
                                                .out_size = sizeof r,
                                                .n = 1}),
            0);
        assert_int_equal(r, MPROC_EDEADLK);
        assert_int_equal(mproc_pool_close(shared_pool), 0);
    }
}

static void close_from_other_process(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(
                &p, &(mproc_options){.kind = tu_kinds[k], .workers = 1}),
            0);
        pid_t c = fork();
        if (c == 0)
            _exit(mproc_pool_close(p) == MPROC_EPERM ? 0 : 1);
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void size_null(void **state)
{
    (void)state;
    assert_int_equal(mproc_pool_size(NULL), MPROC_EINVAL);
    said("pool is NULL");
}

/* ---- mproc_map and mproc_submit ---- */

static mproc_pool *pools[2];

/* Items that wait for the test to open the gate (memory mapped before the
   pools open, so process workers see the test's stores). */
static _Atomic int *gate;

/* Calls of `counted`, in every worker (mapped as the gate is). */
static _Atomic long *calls;

static int setup(void **state)
{
    (void)state;
    gate = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
    if (gate == MAP_FAILED)
        return -1;
    calls = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
    if (calls == MAP_FAILED)
        return -1;
    for (int k = 0; k < 2; k++)
        if (mproc_pool_open(
                &pools[k], &(mproc_options){.kind = tu_kinds[k], .workers = 2}))
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++)
        mproc_pool_close(pools[k]);
    munmap((void *)gate, 4096);
    munmap((void *)calls, 4096);
    return 0;
}

/* The job must be refused with `code` by map and by submit, on both kinds,
   and the pool must still work afterwards. */
static void refused(const mproc_job *job, int code, const char *word)
{
    long in[4] = {1, 2, 3, 4}, out[4];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(mproc_map(pools[k], job), code);
        said(word);
        mproc_task *t = (mproc_task *)1;
        assert_int_equal(mproc_submit(pools[k], job, &t), code);
        said(word);
        assert_null(t);
        assert_int_equal(
            mproc_map(pools[k], &(mproc_job){.fn = noop,
                                             .in = in,
                                             .in_size = sizeof in[0],
                                             .out = out,
                                             .out_size = sizeof out[0],
                                             .n = 4}),
            0);
    }
}

static void map_null_pool(void **state)
{
    (void)state;
    assert_int_equal(mproc_map(NULL, &(mproc_job){.fn = noop}), MPROC_EINVAL);
    said("pool is NULL");
    mproc_task *t;
    assert_int_equal(mproc_submit(NULL, &(mproc_job){.fn = noop}, &t),
                     MPROC_EINVAL);
    said("pool is NULL");
}

static void map_null_job(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(mproc_map(pools[k], NULL), MPROC_EINVAL);
        said("job is NULL");
        mproc_task *t;
        assert_int_equal(mproc_submit(pools[k], NULL, &t), MPROC_EINVAL);
        said("job is NULL");
    }
}

static void map_null_fn(void **state)
{
    (void)state;
    long in[2];
    refused(&(mproc_job){.in = in, .in_size = sizeof in[0], .n = 2},
            MPROC_EINVAL, "job.fn and job.batch are both NULL");
}

static void map_null_in(void **state)
{
    (void)state;
    refused(&(mproc_job){.fn = noop, .in_size = 8, .n = 5}, MPROC_EINVAL,
            "job.in is NULL while n = 5 and in_size = 8");
}

static void map_n_too_large(void **state)
{
    (void)state;
    char c;
    refused(
        &(mproc_job){
            .fn = noop, .in = &c, .in_size = 0, .n = ((size_t)1 << 39) + 1},
        MPROC_EINVAL, "job.n");
}

static void map_in_size_overflows(void **state)
{
    (void)state;
    char c;
    refused(&(mproc_job){.fn = noop, .in = &c, .in_size = SIZE_MAX / 2, .n = 3},
            MPROC_EINVAL, "job.in_size");
}

static void map_out_size_overflows(void **state)
{
    (void)state;
    char c;
    refused(
        &(mproc_job){.fn = noop, .out = &c, .out_size = SIZE_MAX / 4, .n = 5},
        MPROC_EINVAL, "job.out_size");
}

static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

static void map_reduce_without_acc(void **state)
{
    (void)state;
    refused(&(mproc_job){.fn = noop, .out_size = 8, .n = 3, .reduce = add_long},
            MPROC_EINVAL, "job.acc");
}

static void map_reduce_without_out_size(void **state)
{
    (void)state;
    long acc = 0;
    refused(&(mproc_job){.fn = noop, .n = 3, .reduce = add_long, .acc = &acc},
            MPROC_EINVAL, "job.out_size");
}

/* A result of 2^62 bytes would make the per-worker partials wrap; it is
   refused even when n says nothing would be copied. */
static void map_reduce_result_too_large(void **state)
{
    (void)state;
    long acc = 0;
    size_t sizes[] = {SIZE_MAX - 10, (size_t)1 << 62, ((size_t)1 << 30) + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t n = 0; n < 2; n++)
            refused(&(mproc_job){.fn = noop,
                                 .out_size = sizes[i],
                                 .n = n,
                                 .reduce = add_long,
                                 .acc = &acc},
                    MPROC_EINVAL, "job.");
}

static void map_acc_without_reduce(void **state)
{
    (void)state;
    long acc = 0;
    refused(&(mproc_job){.fn = noop, .out_size = 8, .n = 3, .acc = &acc},
            MPROC_EINVAL, "job.reduce is NULL");
}

static void map_arg_size_without_arg(void **state)
{
    (void)state;
    refused(&(mproc_job){.fn = noop, .n = 3, .arg_size = 16}, MPROC_EINVAL,
            "job.arg is NULL while arg_size = 16");
}

static int counted(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    atomic_fetch_add(calls, 1);
    return 0;
}

/*
 * A process pool copies what its workers cannot see into its staging area
 * before anything runs; a job whose copies cannot fit there is refused with
 * MPROC_ENOMEM. The buffers are inaccessible pages: the call must fail
 * before it reads (or writes) a byte of them, or the test dies of SIGSEGV.
 */
static void map_copy_too_large(void **state)
{
    (void)state;
    mproc_pool *p = pools[0]; /* processes; a thread pool copies nothing */
    char *bogus =
        mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(bogus != MAP_FAILED);
    const size_t huge = (size_t)1 << 40;
    /* Each half fits on its own; together they do not. */
    const size_t half = p->staging.size / 2 + 64;
    struct {
        const char *what;
        mproc_job job;
    } cases[] = {
        {"in", {.fn = counted, .in = bogus, .in_size = huge, .n = 1}},
        {"out", {.fn = counted, .out = bogus, .out_size = huge, .n = 1}},
        {"arg", {.fn = counted, .arg = bogus, .arg_size = huge, .n = 1}},
        {"many items",
         {.fn = counted, .in = bogus, .in_size = 4096, .n = (size_t)1 << 30}},
        {"in and out",
         {.fn = counted,
          .in = bogus,
          .in_size = half,
          .out = bogus,
          .out_size = half,
          .n = 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        atomic_store(calls, 0);
        int r = mproc_map(p, &cases[c].job);
        if (r != MPROC_ENOMEM)
            fail_msg("%s: map returned %d (%s), want MPROC_ENOMEM",
                     cases[c].what, r, mproc_strerror(r));
        mproc_task *t = (mproc_task *)1;
        r = mproc_submit(p, &cases[c].job, &t);
        if (r != MPROC_ENOMEM)
            fail_msg("%s: submit returned %d (%s), want MPROC_ENOMEM",
                     cases[c].what, r, mproc_strerror(r));
        assert_null(t);
        /* Nothing ran, and nothing is left behind. */
        assert_int_equal(atomic_load(calls), 0);
        assert_int_equal(p->staging.nused, 0);
        assert_int_equal(p->logs.nused, 0);
    }
    munmap(bogus, 4096);

    /* The pool still maps, with copies. */
    enum { N = 1000 };
    long in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -1;
    }
    atomic_store(calls, 0);
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = counted,
                                               .in = in,
                                               .in_size = sizeof in[0],
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = N}),
                     0);
    assert_int_equal(atomic_load(calls), N);
    assert_int_equal(MPROC_MAP(p, noop_copy, in, out, N), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(out[i], i);
}

static int map_own_pool(const void *in, void *out, void *arg)
{
    (void)in;
    *(int *)out = mproc_map(arg, &(mproc_job){.fn = noop, .n = 1});
    return 0;
}

static void map_from_worker(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(
            mproc_pool_open(&shared_pool, &(mproc_options){.kind = tu_kinds[k],
                                                           .workers = 1}),
            0);
        int r = -1;
        double t0 = tu_now();
        assert_int_equal(
            mproc_map(shared_pool, &(mproc_job){.fn = map_own_pool,
                                                .arg = shared_pool,
                                                .out = &r,
                                                .out_size = sizeof r,
                                                .n = 1}),
            0);
        assert_int_equal(r, MPROC_EDEADLK);
        assert_true(tu_now() - t0 < 5.0 * tu_slow());
        mproc_pool_close(shared_pool);
    }
}

static _Atomic int gate_open;
static _Atomic int held_started; /* set once a thread worker runs held */

static int held(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    atomic_store(&held_started, 1);
    while (!atomic_load(&gate_open))
        usleep(1000);
    return 0;
}

static int nap_200ms(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    usleep(200000);
    return 0;
}

/* The calls a worker makes on a task of its own pool, which it might be
   running: the waits would wait for it. */
static int task_calls_inside(const void *in, void *out, void *arg)
{
    (void)in;
    mproc_task *t = arg;
    size_t idx;
    int *r = out;
    r[0] = mproc_task_wait(t, 0);
    r[1] = mproc_task_wait(t, -1);
    r[2] = mproc_task_next(t, &idx, 0);
    r[3] = mproc_task_cancel(t);
    return 0;
}

static void task_calls_from_worker(void **state)
{
    (void)state;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &(mproc_options){.kind = MPROC_THREADS,
                                                          .workers = 2}),
                     0);
    atomic_store(&gate_open, 0);
    atomic_store(&held_started, 0);
    mproc_task *t;
    int st = -1;
    assert_int_equal(
        mproc_submit(p, &(mproc_job){.fn = held, .n = 1, .status = &st}, &t),
        0);
    /* The cancel below must find the held item running, not still on the
       board (under valgrind a worker can take a while to claim it). */
    while (!atomic_load(&held_started))
        usleep(1000);
    int r[4] = {1, 1, 1, 1};
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = task_calls_inside,
                                               .arg = t,
                                               .out = r,
                                               .out_size = sizeof r,
                                               .n = 1}),
                     0);
    assert_int_equal(r[0], MPROC_EDEADLK);
    assert_int_equal(r[1], MPROC_EDEADLK);
    assert_int_equal(r[2], MPROC_EDEADLK);
    assert_int_equal(r[3], 0); /* cancel is allowed: it never waits */
    atomic_store(&gate_open, 1);
    /* The held item was running: it finishes; nothing else was left. */
    assert_int_equal(mproc_task_wait(t, -1), 0);
    assert_int_equal(st, 0);
    mproc_task_free(t);
    mproc_pool_close(p);
}

/* A forked copy of the caller holds a copy of the task, not the pool. */
static void task_calls_from_other_process(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(
                &p, &(mproc_options){.kind = tu_kinds[k], .workers = 2}),
            0);
        atomic_store(&gate_open, 0);
        mproc_task *t;
        /* A process worker has its own gate_open, which never opens: its
           item naps instead. */
        assert_int_equal(
            mproc_submit(
                p, &(mproc_job){.fn = k == 0 ? nap_200ms : held, .n = 1}, &t),
            0);
        pid_t c = fork();
        if (c == 0) {
            size_t idx;
            bool ok = mproc_task_wait(t, 0) == MPROC_EPERM &&
                      mproc_task_next(t, &idx, 0) == MPROC_EPERM &&
                      mproc_task_cancel(t) == MPROC_EPERM;
            mproc_task_free(t); /* frees this process's copy only */
            _exit(ok ? 0 : 1);
        }
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        atomic_store(&gate_open, 1);
        /* The caller's task is untouched by what the copy did. */
        assert_int_equal(mproc_task_wait(t, -1), 0);
        mproc_task_free(t);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

static void map_from_other_process(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        pid_t c = fork();
        if (c == 0) {
            int r = mproc_map(pools[k], &(mproc_job){.fn = noop, .n = 1});
            _exit(r == MPROC_EPERM ? 0 : 1);
        }
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void submit_null_task(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(
            mproc_submit(pools[k], &(mproc_job){.fn = noop, .n = 1}, NULL),
            MPROC_EINVAL);
        said("task");
    }
}

/* ---- tasks ---- */

static int gated(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    double until = tu_now() + 30 * tu_slow();
    while (!atomic_load(gate) && tu_now() < until)
        usleep(1000);
    return 0;
}

static void task_calls_null(void **state)
{
    (void)state;
    size_t i;
    assert_int_equal(mproc_task_wait(NULL, 1), MPROC_EINVAL);
    said("mproc_task_wait: task is NULL");
    assert_int_equal(mproc_task_next(NULL, &i, 1), MPROC_EINVAL);
    said("mproc_task_next: task is NULL");
    assert_int_equal(mproc_task_progress(NULL, &i, &i), MPROC_EINVAL);
    said("mproc_task_progress: task is NULL");
    assert_int_equal(mproc_task_cancel(NULL), MPROC_EINVAL);
    said("mproc_task_cancel: task is NULL");
    mproc_task_free(NULL);
}

static void task_wait_nan_timeout(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_task *t;
        assert_int_equal(
            mproc_submit(pools[k], &(mproc_job){.fn = noop, .n = 2}, &t), 0);
        assert_int_equal(mproc_task_wait(t, NAN), MPROC_EINVAL);
        said("timeout is nan");
        size_t i;
        assert_int_equal(mproc_task_next(t, &i, NAN), MPROC_EINVAL);
        assert_int_equal(mproc_task_next(t, NULL, 1), MPROC_EINVAL);
        said("index is NULL");
        assert_int_equal(mproc_task_wait(t, -1), 0);
        mproc_task_free(t);
    }
}

static void task_wait_times_out(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_task *t;
        atomic_store(gate, 0);
        assert_int_equal(
            mproc_submit(pools[k],
                         &(mproc_job){.fn = gated, .n = 20, .chunk = 1}, &t),
            0);
        double t0 = tu_now();
        assert_int_equal(mproc_task_wait(t, 0.01), MPROC_ETIMEDOUT);
        said("items done");
        assert_true(tu_now() - t0 <
                    5.0 * tu_slow()); /* not waiting for the end */
        assert_int_equal(mproc_task_wait(t, 0), MPROC_ETIMEDOUT);
        size_t done, n;
        assert_int_equal(mproc_task_progress(t, &done, &n), 0);
        assert_int_equal(n, 20);
        assert_int_equal(done, 0);
        atomic_store(gate, 1);
        assert_int_equal(mproc_task_wait(t, -1), 0); /* nothing lost */
        assert_int_equal(mproc_task_progress(t, &done, NULL), 0);
        assert_int_equal(done, 20);
        mproc_task_free(t);
    }
}

static void task_next_times_out_then_eof(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_task *t;
        atomic_store(gate, 0);
        assert_int_equal(
            mproc_submit(pools[k],
                         &(mproc_job){.fn = gated, .n = 2, .chunk = 1}, &t),
            0);
        size_t i, seen = 0;
        assert_int_equal(mproc_task_next(t, &i, 0.001), MPROC_ETIMEDOUT);
        atomic_store(gate, 1);
        int r;
        while ((r = mproc_task_next(t, &i, -1)) == 0)
            seen |= (size_t)1 << i;
        assert_int_equal(r, MPROC_EOF);
        assert_int_equal(seen, 3);
        assert_int_equal(mproc_task_next(t, &i, -1), MPROC_EOF);
        mproc_task_free(t);
    }
}

/* ---- the shared arena ---- */

static void shared_alloc_errors(void **state)
{
    (void)state;
    errno = 0;
    assert_null(mproc_shared_alloc(NULL, 8));
    assert_int_equal(errno, EINVAL);
    said("pool is NULL");
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(&p, &(mproc_options){.kind = tu_kinds[k],
                                                 .workers = 1,
                                                 .shared_size = 1 << 20}),
            0);
        errno = 0;
        assert_null(mproc_shared_alloc(p, 0));
        assert_int_equal(errno, EINVAL);
        said("size is 0");
        errno = 0;
        assert_null(mproc_shared_alloc(p, (1 << 20) + 1));
        assert_int_equal(errno, ENOMEM);
        said("no free block of 1048577 bytes");
        errno = 0;
        assert_null(mproc_shared_alloc(pools[k], 64)); /* no arena at all */
        assert_int_equal(errno, ENOMEM);
        said("options.shared_size = 0");
        void *a = mproc_shared_alloc(p, 64);
        assert_non_null(a);
        pid_t c = fork();
        if (c == 0) {
            errno = 0;
            _exit(!mproc_shared_alloc(p, 64) && errno == EPERM ? 0 : 1);
        }
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        mproc_shared_free(p, a);
        mproc_shared_free(p, NULL);
        mproc_shared_free(NULL, a);
        int x;
        mproc_shared_free(p, &x); /* not ours: ignored */
        mproc_pool_close(p);
    }
}

/* Sizes no arena can give are refused, and the arena is whole afterwards. */
static void shared_alloc_absurd_size(void **state)
{
    (void)state;
    const size_t size = 1 << 20; /* a multiple of the page: the arena's size */
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(&p, &(mproc_options){.kind = tu_kinds[k],
                                                 .workers = 1,
                                                 .shared_size = size}),
            0);
        const size_t absurd[] = {SIZE_MAX, SIZE_MAX - 63, SIZE_MAX / 2,
                                 size + 1, 2 * size};
        for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
            errno = 0;
            void *m = mproc_shared_alloc(p, absurd[i]);
            if (m || errno != ENOMEM)
                fail_msg(
                    "%s: alloc(%zu) = %p, errno %d (%s), want NULL, ENOMEM",
                    tu_kind_name(tu_kinds[k]), absurd[i], m, errno,
                    strerror(errno));
        }
        /* Nothing was taken: the whole arena is still one block. */
        long *all = mproc_shared_alloc(p, size);
        assert_non_null(all);
        for (int i = 0; i < 100; i++)
            all[i] = i;
        long out[100];
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = noop_copy,
                                                   .in = all,
                                                   .in_size = sizeof all[0],
                                                   .out = out,
                                                   .out_size = sizeof out[0],
                                                   .n = 100}),
                         0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(out[i], i);
        mproc_shared_free(p, all);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* Sums the block's longs, from a worker. */
static int sum_block(const void *in, void *out, void *arg)
{
    const long *b = arg;
    size_t len = *(const size_t *)in;
    long s = 0;
    for (size_t i = 0; i < len; i++)
        s += b[i];
    *(long *)out = s;
    return 0;
}

/* A pointer inside a live block is not the block: freeing it is ignored. */
static void shared_free_mid_block_ignored(void **state)
{
    (void)state;
    enum { ARENA = 1 << 16, BLOCK = 256, SMALL = 64 };
    for (int k = 0; k < 2; k++) {
        mproc_pool *p;
        assert_int_equal(
            mproc_pool_open(&p, &(mproc_options){.kind = tu_kinds[k],
                                                 .workers = 1,
                                                 .shared_size = ARENA}),
            0);
        long *a = mproc_shared_alloc(p, BLOCK);
        assert_non_null(a);
        const size_t len = BLOCK / sizeof *a;
        long want = 0;
        for (size_t i = 0; i < len; i++) {
            a[i] = 1000 + (long)i;
            want += a[i];
        }
        char *c = (char *)a;
        mproc_shared_free(p, c + 64);
        mproc_shared_free(p, c + 1);
        mproc_shared_free(p, c + BLOCK - 1);

        /* Still allocated: its bytes are untouched (a free would zero them)... */
        for (size_t i = 0; i < len; i++)
            if (a[i] != 1000 + (long)i)
                fail_msg("%s: a[%zu] = %ld after a mid-block free, want %ld",
                         tu_kind_name(tu_kinds[k]), i, a[i], 1000 + (long)i);
        /* ...and usable by workers... */
        size_t in = len;
        long sum = 0;
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = sum_block,
                                                   .in = &in,
                                                   .in_size = sizeof in,
                                                   .out = &sum,
                                                   .out_size = sizeof sum,
                                                   .n = 1,
                                                   .arg = a}),
                         0);
        assert_int_equal(sum, want);
        /* ...and no later block overlaps it, down to the last byte of the
           arena: exactly the rest of it is handed out. */
        size_t got = 0;
        char *b;
        while ((b = mproc_shared_alloc(p, SMALL))) {
            if (b < c + BLOCK && b + SMALL > c)
                fail_msg("%s: block %p overlaps the live block %p",
                         tu_kind_name(tu_kinds[k]), (void *)b, (void *)c);
            got++;
        }
        assert_int_equal(got, (ARENA - BLOCK) / SMALL);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(a[i], 1000 + (long)i);
        /* Freed by its own address, it is free again. */
        mproc_shared_free(p, a);
        assert_ptr_equal(mproc_shared_alloc(p, BLOCK), a);
        assert_int_equal(mproc_pool_close(p), 0);
    }
}

/* ---- mproc_strerror ---- */

static void strerror_names_every_code(void **state)
{
    (void)state;
    int codes[] = {0,
                   MPROC_EPERM,
                   MPROC_EAGAIN,
                   MPROC_ENOMEM,
                   MPROC_EINVAL,
                   MPROC_EDEADLK,
                   MPROC_ECRASHED,
                   MPROC_ETIMEDOUT,
                   MPROC_ECANCELED,
                   MPROC_EOF,
                   MPROC_ENOTSUP,
                   MPROC_EINIT,
                   MPROC_EBROKEN,
                   -ECHILD,
                   -EMFILE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = mproc_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 3);
        assert_string_not_equal(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, mproc_strerror(codes[j]));
    }
    assert_string_equal(mproc_strerror(-9999), "unknown error");
    assert_non_null(mproc_strerror(INT32_MIN));
    assert_non_null(mproc_strerror(42));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_null_pool),
        cmocka_unit_test(open_unknown_kind),
        cmocka_unit_test(open_negative_workers),
        cmocka_unit_test(open_too_many_workers),
        cmocka_unit_test(open_timeout_nan),
        cmocka_unit_test(open_timeout_negative),
        cmocka_unit_test(open_timeout_positive_infinity),
        cmocka_unit_test(open_timeout_negative_infinity),
        cmocka_unit_test(open_timeout_above_one_year),
        cmocka_unit_test(open_absurd_shared_size),
        cmocka_unit_test(open_mpi_not_supported),
        cmocka_unit_test(open_threads_refuse_timeout),
        cmocka_unit_test(open_threads_refuse_max_items),
        cmocka_unit_test(open_init_fails),
        cmocka_unit_test(open_init_crashes),
        cmocka_unit_test(close_null_is_noop),
        cmocka_unit_test(close_from_worker),
        cmocka_unit_test(close_from_other_process),
        cmocka_unit_test(size_null),
        cmocka_unit_test(map_null_pool),
        cmocka_unit_test(map_null_job),
        cmocka_unit_test(map_null_fn),
        cmocka_unit_test(map_null_in),
        cmocka_unit_test(map_n_too_large),
        cmocka_unit_test(map_in_size_overflows),
        cmocka_unit_test(map_out_size_overflows),
        cmocka_unit_test(map_reduce_without_acc),
        cmocka_unit_test(map_reduce_without_out_size),
        cmocka_unit_test(map_acc_without_reduce),
        cmocka_unit_test(map_arg_size_without_arg),
        cmocka_unit_test(map_copy_too_large),
        cmocka_unit_test(map_from_worker),
        cmocka_unit_test(map_from_other_process),
        cmocka_unit_test(task_calls_from_worker),
        cmocka_unit_test(task_calls_from_other_process),
        cmocka_unit_test(map_reduce_result_too_large),
        cmocka_unit_test(submit_null_task),
        cmocka_unit_test(task_calls_null),
        cmocka_unit_test(task_wait_nan_timeout),
        cmocka_unit_test(task_wait_times_out),
        cmocka_unit_test(task_next_times_out_then_eof),
        cmocka_unit_test(shared_alloc_errors),
        cmocka_unit_test(shared_alloc_absurd_size),
        cmocka_unit_test(shared_free_mid_block_ignored),
        cmocka_unit_test(strerror_names_every_code),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
