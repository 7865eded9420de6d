/*
 * Control over running work: mproc_task_kill and mproc_pool_terminate,
 * job.timeout, options.fini. Items that must hang wait on flags in the
 * shared arena (with a deadline of their own, so that a broken test fails
 * rather than hangs); nothing here depends on timing except the ctest
 * timeout that would catch a hang.
 */
#define _GNU_SOURCE
#include "util.h"

#include "internal.h" /* the pool's board, for a stray write */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 64 };

/* What items share with the caller, in the arena. Item i hangs (until
   `release` or the deadline) when hang[i] is set; `started` counts the
   items that began. */
struct gates {
    _Atomic long started, hung;
    _Atomic int release;
    _Atomic int hang[N];
    double deadline;
    long deadline_pid; /* the caller's pid, for items that signal it */
};

enum { GAVE_UP = 99 };

static int maybe_hang(const void *in, void *out, void *arg)
{
    struct gates *g = arg;
    long i = *(const long *)in;
    atomic_fetch_add(&g->started, 1);
    if (atomic_load(&g->hang[i])) {
        atomic_fetch_add(&g->hung, 1);
        while (!atomic_load(&g->release)) {
            if (tu_now() > g->deadline)
                return GAVE_UP;
            usleep(200);
        }
    }
    *(long *)out = 2 * i + 1;
    return 0;
}

struct fixture {
    mproc_pool *pool;
    struct gates *g;
    long in[N], out[N];
    int status[N], wstatus[N];
};

static void fixture_open(struct fixture *f, const mproc_options *o)
{
    memset(f, 0, sizeof *f);
    mproc_options opt = *o;
    opt.shared_size = 1 << 16;
    int r = mproc_pool_open(&f->pool, &opt);
    if (r)
        fail_msg("open: %s", mproc_strerror(r));
    f->g = mproc_shared_alloc(f->pool, sizeof *f->g);
    assert_non_null(f->g);
    f->g->deadline = tu_now() + 60.0 * tu_slow();
    for (int i = 0; i < N; i++) {
        f->in[i] = i;
        f->out[i] = -1;
        f->status[i] = -7;
        f->wstatus[i] = -7;
    }
}

static mproc_job fixture_job(struct fixture *f, size_t n)
{
    return (mproc_job){.fn = maybe_hang,
                       .in = f->in,
                       .in_size = sizeof f->in[0],
                       .out = f->out,
                       .out_size = sizeof f->out[0],
                       .n = n,
                       .arg = f->g,
                       .chunk = 1,
                       .status = f->status,
                       .wstatus = f->wstatus};
}

static mproc_task *fixture_submit(struct fixture *f, size_t n)
{
    mproc_task *t = NULL;
    mproc_job job = fixture_job(f, n);
    assert_int_equal(mproc_submit(f->pool, &job, &t), 0);
    return t;
}

static void await_count(_Atomic long *v, long want, const char *what)
{
    double until = tu_now() + 30.0 * tu_slow();
    while (atomic_load(v) < want) {
        if (tu_now() > until)
            fail_msg("%s: %ld, waited for %ld", what, atomic_load(v), want);
        usleep(200);
    }
}

static bool killed(int status, int wstatus)
{
    return status == MPROC_ECANCELED && WIFSIGNALED(wstatus) &&
           WTERMSIG(wstatus) == SIGKILL;
}

/* Items that ran have their result; the others are cancelled (killed or
   not), never crashed nor timed out. Returns the killed ones. */
static int check_after_kill(struct fixture *f, size_t n)
{
    int nkilled = 0;
    for (size_t i = 0; i < n; i++) {
        if (f->status[i] == 0) {
            assert_int_equal(f->out[i], 2 * (long)i + 1);
            assert_int_equal(f->wstatus[i], 0);
        } else if (killed(f->status[i], f->wstatus[i])) {
            nkilled++;
        } else if (f->status[i] != MPROC_ECANCELED || f->wstatus[i] != 0) {
            fail_msg("item %zu: status %d (%s), wstatus %#x", i, f->status[i],
                     mproc_strerror(f->status[i]), f->wstatus[i]);
        }
    }
    return nkilled;
}

static int squared(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in * *(const long *)in;
    return 0;
}

/* The pool maps correctly after whatever happened to it. */
static void maps_again(mproc_pool *pool)
{
    long in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    assert_int_equal(MPROC_MAP(pool, squared, in, out, 100), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(out[i], (long)i * i);
}

/* ---- mproc_task_kill ---- */

/* A hung item, in a pool without a timeout: cancel leaves it running, kill
   stops it, the item is cancelled with the kill in its wstatus, and the
   pool maps again. */
static void kill_stops_a_hung_item(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 2});
    f.g->hang[0] = 1;
    mproc_task *t = fixture_submit(&f, 8);
    await_count(&f.g->hung, 1, "hung items");
    assert_int_equal(mproc_task_cancel(t), 0);
    assert_int_equal(mproc_task_wait(t, 0.05), MPROC_ETIMEDOUT);
    assert_int_equal(mproc_task_kill(t), 0);
    int failed = mproc_task_wait(t, -1);
    assert_true(failed >= 1);
    assert_true(killed(f.status[0], f.wstatus[0]));
    assert_int_equal(check_after_kill(&f, 8), 1);
    assert_int_equal(mproc_task_kill(t), 0); /* finished: nothing to do */
    mproc_task_free(t);
    maps_again(f.pool);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* Several hung items of one job on every worker, and a second job queued
   behind: the kill ends only the first job's items. */
static void kill_spares_other_jobs(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 3});
    for (int i = 0; i < 3; i++)
        f.g->hang[i] = 1;
    mproc_task *a = fixture_submit(&f, 3);
    await_count(&f.g->hung, 3, "hung items");
    long in2[50], out2[50];
    for (int i = 0; i < 50; i++)
        in2[i] = i + 1000;
    mproc_task *b;
    assert_int_equal(mproc_submit(f.pool,
                                  &(mproc_job){.fn = squared,
                                               .in = in2,
                                               .in_size = sizeof in2[0],
                                               .out = out2,
                                               .out_size = sizeof out2[0],
                                               .n = 50},
                                  &b),
                     0);
    assert_int_equal(mproc_task_kill(a), 0);
    assert_int_equal(mproc_task_wait(a, -1), 3);
    for (int i = 0; i < 3; i++)
        assert_true(killed(f.status[i], f.wstatus[i]));
    assert_int_equal(mproc_task_wait(b, -1), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(out2[i], (long)(i + 1000) * (i + 1000));
    mproc_task_free(a);
    mproc_task_free(b);
    maps_again(f.pool);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* Kill again and again, as items come and go: a kill lands only on the
   job it names, every item is accounted for, and the pool keeps mapping. */
static void kill_repeatedly(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 2});
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            f.status[i] = f.wstatus[i] = -7;
            f.out[i] = -1;
            f.g->hang[i] = i % 16 == round % 16;
        }
        f.g->hung = 0;
        mproc_task *t = fixture_submit(&f, N);
        if (round % 2)
            await_count(&f.g->hung, 1, "hung items");
        assert_int_equal(mproc_task_kill(t), 0);
        mproc_task_wait(t, -1);
        check_after_kill(&f, N);
        mproc_task_free(t);
        if (round % 5 == 0)
            maps_again(f.pool);
    }
    maps_again(f.pool);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* Threads cannot be killed: the unstarted items are cancelled, the
   running one finishes, and kill says so. */
static void kill_on_threads_cancels_and_says_enotsup(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.kind = MPROC_THREADS, .workers = 1});
    f.g->hang[0] = 1;
    mproc_task *t = fixture_submit(&f, 8);
    await_count(&f.g->hung, 1, "hung items");
    assert_int_equal(mproc_task_kill(t), MPROC_ENOTSUP);
    atomic_store(&f.g->release, 1);
    assert_int_equal(mproc_task_wait(t, -1), 7);
    assert_int_equal(f.status[0], 0);
    for (int i = 1; i < 8; i++)
        assert_int_equal(f.status[i], MPROC_ECANCELED);
    mproc_task_free(t);
    maps_again(f.pool);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

static void kill_errors(void **state)
{
    (void)state;
    assert_int_equal(mproc_task_kill(NULL), MPROC_EINVAL);
    assert_int_equal(mproc_pool_terminate(NULL), 0);
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 1});
    f.g->hang[0] = 1;
    mproc_task *t = fixture_submit(&f, 2);
    await_count(&f.g->hung, 1, "hung items");
    pid_t pid = fork();
    if (pid == 0)
        _exit(mproc_task_kill(t) == MPROC_EPERM &&
                      mproc_pool_terminate(f.pool) == MPROC_EPERM
                  ? 0
                  : 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(mproc_task_kill(t), 0);
    assert_int_equal(mproc_task_wait(t, -1), 2);
    mproc_task_free(t);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* ---- mproc_pool_terminate ---- */

/* A hung item without a pool timeout: close would wait for it for ever;
   terminate kills it, and the task stays valid after. */
static void terminate_kills_hung_items(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 2});
    f.g->hang[0] = f.g->hang[1] = 1;
    mproc_task *t = fixture_submit(&f, 10);
    await_count(&f.g->hung, 2, "hung items");
    assert_int_equal(mproc_pool_terminate(f.pool), 0);
    int failed = mproc_task_wait(t, -1);
    assert_true(failed >= 2);
    assert_true(killed(f.status[0], f.wstatus[0]));
    assert_true(killed(f.status[1], f.wstatus[1]));
    assert_int_equal(check_after_kill(&f, 10), 2);
    size_t done, n;
    assert_int_equal(mproc_task_progress(t, &done, &n), 0);
    assert_int_equal(done, 10);
    mproc_task_free(t);
    tu_assert_released(before);
}

/* On threads terminate is close: running items finish. */
static void terminate_threads_is_close(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.kind = MPROC_THREADS, .workers = 2});
    mproc_task *t = fixture_submit(&f, 10);
    assert_int_equal(mproc_pool_terminate(f.pool), 0);
    int failed = mproc_task_wait(t, -1);
    assert_true(failed >= 0);
    for (int i = 0; i < 10; i++)
        assert_true(f.status[i] == 0 || f.status[i] == MPROC_ECANCELED);
    mproc_task_free(t);
}

/* ---- job.timeout ---- */

static int sleep_ms(const void *in, void *out, void *arg)
{
    (void)arg;
    (void)out;
    usleep((useconds_t)(*(const long *)in * 1000));
    return 0;
}

/* A pool without a timeout, a job with one: the hung item is timed out,
   the others finish; the next job (timeout 0) has no limit again. */
static void job_timeout_without_pool_timeout(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 2});
    f.g->hang[1] = 1;
    mproc_job job = fixture_job(&f, 6);
    job.timeout = tu_timeout(0.2);
    assert_int_equal(mproc_map(f.pool, &job), 1);
    assert_int_equal(f.status[1], MPROC_ETIMEDOUT);
    assert_true(WIFSIGNALED(f.wstatus[1]));
    for (int i = 0; i < 6; i++)
        if (i != 1)
            assert_int_equal(f.status[i], 0);
    long in[2] = {300, 300};
    int st[2];
    assert_int_equal(mproc_map(f.pool, &(mproc_job){.fn = sleep_ms,
                                                    .in = in,
                                                    .in_size = sizeof in[0],
                                                    .n = 2,
                                                    .status = st}),
                     0);
    maps_again(f.pool);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* Longer than the pool's: an item that would time out under the pool's
   limit finishes under its job's. */
static void job_timeout_longer_than_pool(void **state)
{
    (void)state;
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.workers = 2, .timeout = 0.1}),
        0);
    long in[2] = {400, 1};
    int st[2] = {-7, -7};
    mproc_job job = {.fn = sleep_ms,
                     .in = in,
                     .in_size = sizeof in[0],
                     .n = 2,
                     .status = st};
    assert_int_equal(mproc_map(pool, &job), 1);
    assert_int_equal(st[0], MPROC_ETIMEDOUT);
    job.timeout = 60 * tu_slow();
    assert_int_equal(mproc_map(pool, &job), 0);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], 0);
    assert_int_equal(mproc_pool_close(pool), 0);
}

/* Shorter than the pool's, while the supervisor sleeps for the pool's
   long limit with work about: the job's limit holds all the same. */
static void job_timeout_shorter_than_pool(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 2, .timeout = 3600});
    /* Work on the board, so that the supervisor sleeps with a deadline. */
    f.g->hang[0] = 1;
    mproc_task *busy = fixture_submit(&f, 1);
    await_count(&f.g->hung, 1, "hung items");
    long in[1] = {0};
    int st[1] = {-7};
    struct gates *g2 = mproc_shared_alloc(f.pool, sizeof *g2);
    g2->deadline = tu_now() + 60.0 * tu_slow();
    g2->hang[0] = 1;
    long out[1];
    mproc_job job = {.fn = maybe_hang,
                     .in = in,
                     .in_size = sizeof in[0],
                     .out = out,
                     .out_size = sizeof out[0],
                     .arg = g2,
                     .n = 1,
                     .status = st,
                     .timeout = tu_timeout(0.2)};
    assert_int_equal(mproc_map(f.pool, &job), 1);
    assert_int_equal(st[0], MPROC_ETIMEDOUT);
    assert_int_equal(mproc_task_kill(busy), 0);
    assert_int_equal(mproc_task_wait(busy, -1), 1);
    mproc_task_free(busy);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

static void job_timeout_errors(void **state)
{
    (void)state;
    long in[1] = {1};
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool;
        assert_int_equal(
            mproc_pool_open(
                &pool, &(mproc_options){.kind = tu_kinds[k], .workers = 1}),
            0);
        mproc_job job = {
            .fn = sleep_ms, .in = in, .in_size = sizeof in[0], .n = 1};
        double bad[] = {-1, NAN, INFINITY, 366.0 * 86400};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            job.timeout = bad[i];
            assert_int_equal(mproc_map(pool, &job), MPROC_EINVAL);
        }
        job.timeout = 1;
        assert_int_equal(mproc_map(pool, &job),
                         tu_kinds[k] == MPROC_THREADS ? MPROC_ENOTSUP : 0);
        job.timeout = 0;
        assert_int_equal(mproc_map(pool, &job), 0);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* ---- options.fini ---- */

/* init and fini write a record to a pipe: which, and the worker's pid. */
struct life_rec {
    char what; /* 'i' or 'f' */
    int id;
    pid_t pid;
};

static int note(int fd, char what)
{
    struct life_rec r;
    memset(&r, 0, sizeof r); /* the padding too: it is written */
    r.what = what;
    r.id = mproc_worker_id();
    r.pid = getpid();
    return write(fd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : -1;
}

static int init_note(void *arg)
{
    return note(*(int *)arg, 'i');
}

static void fini_note(void *arg)
{
    note(*(int *)arg, 'f');
}

/* Read every record; count the pids with init and with fini, and check
   that each fini is of a worker that ran init, once. */
static void read_notes(int fd, int *inits, int *finis, pid_t skip)
{
    struct life_rec r[256];
    int n = 0;
    while (n < 256 && read(fd, &r[n], sizeof r[n]) == (ssize_t)sizeof r[n])
        n++;
    *inits = *finis = 0;
    for (int k = 0; k < n; k++) {
        if (r[k].what == 'i') {
            (*inits)++;
            continue;
        }
        assert_int_equal(r[k].what, 'f');
        assert_true(r[k].pid != skip);
        int seen_init = 0, seen_fini = 0;
        for (int m = 0; m < n; m++) {
            if (r[m].pid != r[k].pid || r[m].id != r[k].id)
                continue;
            seen_init += r[m].what == 'i' && m < k;
            seen_fini += r[m].what == 'f';
        }
        assert_int_equal(seen_init, 1);
        assert_int_equal(seen_fini, 1);
        (*finis)++;
    }
}

static void fini_once_in_each_worker_at_close(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        mproc_pool *pool;
        assert_int_equal(
            mproc_pool_open(&pool, &(mproc_options){.kind = tu_kinds[k],
                                                    .workers = 3,
                                                    .init = init_note,
                                                    .fini = fini_note,
                                                    .init_arg = &fds[1]}),
            0);
        maps_again(pool);
        assert_int_equal(mproc_pool_close(pool), 0);
        int inits, finis;
        read_notes(fds[0], &inits, &finis, 0);
        assert_int_equal(inits, 3);
        assert_int_equal(finis, 3);
        close(fds[0]);
        close(fds[1]);
    }
}

/* A worker retired by max_items runs fini; one that crashed does not. */
static int crash_on_3(const void *in, void *out, void *arg)
{
    (void)out;
    if (*(const long *)in == 3) {
        *(_Atomic pid_t *)arg = getpid();
        raise(SIGKILL);
    }
    return 0;
}

static void fini_on_retire_not_on_crash(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.workers = 1,
                                                .max_items = 2,
                                                .shared_size = 4096,
                                                .init = init_note,
                                                .fini = fini_note,
                                                .init_arg = &fds[1]}),
        0);
    _Atomic pid_t *crashed = mproc_shared_alloc(pool, sizeof *crashed);
    long in[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int st[8];
    assert_int_equal(mproc_map(pool, &(mproc_job){.fn = crash_on_3,
                                                  .in = in,
                                                  .in_size = sizeof in[0],
                                                  .n = 8,
                                                  .arg = (void *)crashed,
                                                  .status = st}),
                     1);
    assert_int_equal(st[3], MPROC_ECRASHED);
    pid_t dead = atomic_load(crashed);
    assert_int_equal(mproc_pool_close(pool), 0);
    int inits, finis;
    read_notes(fds[0], &inits, &finis, dead);
    /* Items 0-1, 2 (+3 crashed), 4-5, 6-7 on four workers, perhaps a fifth
       idle one at close: every one of them but the crashed ran fini. */
    assert_true(inits >= 4);
    assert_int_equal(finis, inits - 1);
    close(fds[0]);
    close(fds[1]);
}

/* Spawn is for process pools alone; an unknown start is refused. Said
   plainly, nothing started. */
static void start_option_checked(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    mproc_pool *pool = (mproc_pool *)&pool;
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.kind = MPROC_THREADS,
                                                 .start = MPROC_START_SPAWN}),
        MPROC_ENOTSUP);
    assert_non_null(strstr(mproc_last_error(), "only process pools"));
    assert_null(pool);
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.start = (mproc_start)7}),
        MPROC_EINVAL);
    tu_assert_released(before);
}

/* ---- bounded start and end ---- */

static int init_hangs(void *arg)
{
    (void)arg;
    while (pause() < 0 || true)
        ;
    return 0;
}

/* An init that never returns fails the open with MPROC_ETIMEDOUT under
   options.timeout, leaving nothing behind. */
static void init_that_never_returns_times_out(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.workers = 2,
                                                .timeout = tu_timeout(0.2),
                                                .init = init_hangs}),
        MPROC_ETIMEDOUT);
    tu_assert_released(before);
}

static int init_once(void *arg)
{
    /* The first start succeeds, every later one fails. */
    return atomic_fetch_add((_Atomic int *)arg, 1) >= 1;
}

static int crash_on_0(const void *in, void *out, void *arg)
{
    (void)arg;
    (void)out;
    if (*(const long *)in == 0)
        raise(SIGKILL);
    return 0;
}

/* The only worker crashes and no replacement can start: what it left, and
   every later job, fail with MPROC_EINIT (not crashed, not a broken pool),
   and the pool closes at once. */
static void replacement_init_fails_items_say_einit(void **state)
{
    (void)state;
    _Atomic int *starts = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(starts != MAP_FAILED);
    struct tu_held before = tu_held();
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(&pool, &(mproc_options){.workers = 1,
                                                .init = init_once,
                                                .init_arg = (void *)starts}),
        0);
    long in[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int st[8], ws[8];
    mproc_job job = {.fn = crash_on_0,
                     .in = in,
                     .in_size = sizeof in[0],
                     .n = 8,
                     .chunk = 8,
                     .status = st,
                     .wstatus = ws};
    assert_int_equal(mproc_map(pool, &job), 8);
    assert_int_equal(st[0], MPROC_ECRASHED);
    for (int i = 1; i < 8; i++) {
        assert_int_equal(st[i], MPROC_EINIT);
        /* how the last replacement's start ended: init's failure exit */
        assert_true(WIFEXITED(ws[i]) && WEXITSTATUS(ws[i]) != 0);
    }
    in[0] = 1;
    assert_int_equal(mproc_map(pool, &job), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(st[i], MPROC_EINIT);
    assert_true(tu_supervisor() > 0);
    assert_int_equal(mproc_pool_close(pool), 0);
    tu_assert_released(before);
    munmap((void *)starts, 4096);
}

/* Workers' pids, recorded by items, one per worker. */
static int note_pid(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    _Atomic pid_t *pids = arg;
    atomic_store(&pids[mproc_worker_id()], getpid());
    usleep(2000);
    return 0;
}

static void worker_pids(mproc_pool *pool, _Atomic pid_t *pids, int workers)
{
    for (int round = 0; round < 100; round++) {
        int seen = 0;
        for (int w = 0; w < workers; w++)
            seen += atomic_load(&pids[w]) != 0;
        if (seen == workers)
            return;
        assert_int_equal(mproc_map(pool, &(mproc_job){.fn = note_pid,
                                                      .n = 64,
                                                      .chunk = 1,
                                                      .arg = (void *)pids}),
                         0);
    }
    fail_msg("not every worker ran an item");
}

/* A stopped worker, then a stopped supervisor: close returns all the same
   (the supervisor continues or kills the worker; the caller continues the
   supervisor), and nothing is left behind. */
static void close_with_stopped_worker_or_supervisor(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    for (int which = 0; which < 2; which++) {
        mproc_pool *pool;
        assert_int_equal(
            mproc_pool_open(
                &pool, &(mproc_options){.workers = 2, .shared_size = 4096}),
            0);
        _Atomic pid_t *pids = mproc_shared_alloc(pool, 2 * sizeof *pids);
        worker_pids(pool, pids, 2);
        pid_t victim = which ? tu_supervisor() : atomic_load(&pids[1]);
        assert_true(victim > 0);
        assert_int_equal(kill(victim, SIGSTOP), 0);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
    tu_assert_released(before);
}

/* ---- process trees ---- */

/* What an item started: a child and that child's child, both `sleep`. */
struct tree {
    _Atomic pid_t child, grandchild;
    _Atomic int started;
};

static void start_tree(struct tree *t, bool detach)
{
    pid_t c = fork();
    if (c == 0) {
        if (detach)
            setsid();
        pid_t g = fork();
        if (g == 0) {
            execlp("sleep", "sleep", "30", (char *)NULL);
            _exit(127);
        }
        atomic_store(&t->grandchild, g);
        if (detach)
            _exit(0); /* the grandchild is orphaned at once */
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    atomic_store(&t->child, c);
    while (!atomic_load(&t->grandchild))
        usleep(100);
    atomic_store(&t->started, 1);
}

/* Starts a tree and waits for its child (for ever: a timeout or a kill
   ends it). */
static int tree_and_wait(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    struct tree *t = arg;
    start_tree(t, false);
    while (waitpid(atomic_load(&t->child), NULL, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Starts a detached tree (setsid, orphaned) and returns at once. */
static int tree_and_return(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    start_tree(arg, true);
    return 0;
}

/* Has pid ended (gone, or a zombie)? */
static bool ended(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void await_ended(pid_t pid, const char *what)
{
    assert_true(pid > 0);
    double until = tu_now() + 10.0 * tu_slow();
    while (!ended(pid)) {
        if (tu_now() > until)
            fail_msg("%s %d still runs", what, (int)pid);
        usleep(1000);
    }
}

static void tree_ends_with(int how)
{
    struct tu_held before = tu_held();
    mproc_pool *pool;
    assert_int_equal(
        mproc_pool_open(
            &pool, &(mproc_options){.workers = 2,
                                    .shared_size = 4096,
                                    .timeout = how == 0 ? tu_timeout(0.3) : 0}),
        0);
    struct tree *t = mproc_shared_alloc(pool, sizeof *t);
    mproc_task *task;
    int st[1];
    assert_int_equal(mproc_submit(pool,
                                  &(mproc_job){.fn = how == 2 ? tree_and_return
                                                              : tree_and_wait,
                                               .n = 1,
                                               .arg = t,
                                               .status = st},
                                  &task),
                     0);
    while (!atomic_load(&t->started))
        usleep(200);
    pid_t c = atomic_load(&t->child), g = atomic_load(&t->grandchild);
    if (how == 1)
        assert_int_equal(mproc_task_kill(task), 0);
    int r = mproc_task_wait(task, -1);
    mproc_task_free(task);
    if (how == 0)
        assert_true(r == 1 && st[0] == MPROC_ETIMEDOUT);
    if (how == 1)
        assert_true(r == 1 && st[0] == MPROC_ECANCELED);
    if (how != 2) {
        await_ended(c, "the item's child");
        await_ended(g, "the item's grandchild");
        maps_again(pool);
    }
    assert_int_equal(mproc_pool_close(pool), 0);
    await_ended(c, "the item's child");
    await_ended(g, "the item's grandchild");
    tu_assert_released(before);
}

/* system("sleep 30") in a timed-out item: no sleep is left. */
static void timed_out_item_leaves_no_process(void **state)
{
    (void)state;
    tree_ends_with(0);
}

static void killed_item_leaves_no_process(void **state)
{
    (void)state;
    tree_ends_with(1);
}

/* A process an item detached (setsid, orphaned) ends with the pool. */
static void close_leaves_no_process(void **state)
{
    (void)state;
    tree_ends_with(2);
}

/* The caller dies: what its items started dies too. */
static void caller_death_leaves_no_process(void **state)
{
    (void)state;
    struct tree *t = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(t != MAP_FAILED);
    pid_t caller = fork();
    if (caller == 0) {
        mproc_pool *pool;
        if (mproc_pool_open(&pool, &(mproc_options){.workers = 1}))
            _exit(1);
        mproc_task *task;
        mproc_submit(pool, &(mproc_job){.fn = tree_and_wait, .n = 1, .arg = t},
                     &task);
        while (!atomic_load(&t->started))
            usleep(200);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(caller, &st, 0), caller);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    await_ended(atomic_load(&t->child), "the item's child");
    await_ended(atomic_load(&t->grandchild), "the item's grandchild");
    munmap(t, 4096);
}

/* The caller dies while its supervisor is stopped (SIGSTOP): the
   supervisor and the workers go all the same (they stayed, stopped). */
static void caller_death_with_stopped_supervisor(void **state)
{
    (void)state;
    _Atomic pid_t *pids = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(pids != MAP_FAILED);
    pid_t caller = fork();
    if (caller == 0) {
        mproc_pool *pool;
        if (mproc_pool_open(
                &pool, &(mproc_options){.workers = 2, .shared_size = 4096}))
            _exit(1);
        _Atomic pid_t *w = mproc_shared_alloc(pool, 2 * sizeof *w);
        worker_pids(pool, w, 2);
        pids[0] = tu_supervisor();
        pids[1] = atomic_load(&w[0]);
        pids[2] = atomic_load(&w[1]);
        if (kill(pids[0], SIGSTOP))
            _exit(2);
        raise(SIGKILL);
    }
    int st;
    assert_int_equal(waitpid(caller, &st, 0), caller);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    await_ended(atomic_load(&pids[0]), "the supervisor");
    await_ended(atomic_load(&pids[1]), "worker 0");
    await_ended(atomic_load(&pids[2]), "worker 1");
    munmap((void *)pids, 4096);
}

/* ---- job control ---- */

static int nap_ms(const void *in, void *out, void *arg)
{
    (void)out;
    atomic_store((_Atomic int *)arg, 1);
    usleep((useconds_t)(*(const long *)in * 1000));
    return 0;
}

/* Ctrl-Z for longer than the timeout, while an item runs well within it:
   the item is not timed out, since the pool stopped whole. */
static void stopped_job_time_does_not_count(void **state)
{
    (void)state;
    _Atomic int *started = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(started != MAP_FAILED);
    double limit = tu_timeout(1.0);
    pid_t caller = fork();
    if (caller == 0) {
        setpgid(0, 0);
        signal(SIGTSTP, SIG_DFL);
        mproc_pool *pool;
        if (mproc_pool_open(&pool,
                            &(mproc_options){.workers = 1, .timeout = limit}))
            _exit(1);
        long in[1] = {(long)(limit * 400)};
        int st[1] = {-7};
        int r = mproc_map(pool, &(mproc_job){.fn = nap_ms,
                                             .in = in,
                                             .in_size = sizeof in[0],
                                             .n = 1,
                                             .arg = (void *)started,
                                             .status = st});
        mproc_pool_close(pool);
        _exit(r == 0 && st[0] == 0 ? 0 : 10 + (st[0] == MPROC_ETIMEDOUT));
    }
    setpgid(caller, caller);
    while (!atomic_load(started))
        usleep(200);
    assert_int_equal(kill(-caller, SIGTSTP), 0);
    usleep((useconds_t)(limit * 1.5e6));
    assert_int_equal(kill(-caller, SIGCONT), 0);
    int st;
    assert_int_equal(waitpid(caller, &st, 0), caller);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    munmap((void *)started, 4096);
}

/* ---- no hidden limits ---- */

/* Under ulimit -v 262144 a small pool of either kind opens and maps. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* their shadow memory needs terabytes of address space */
#else
#define SANITIZED 0
#endif

static void small_pool_under_256_mib_of_address_space(void **state)
{
    (void)state;
    if (SANITIZED)
        skip();
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {256 << 20, 256 << 20};
        if (setrlimit(RLIMIT_AS, &rl))
            _exit(2);
        /* Threads, processes forked, processes spawned (fresh runs,
           under the same limit, map the same region). */
        for (int k = 0; k < 3; k++) {
            mproc_pool *pool;
            int r = mproc_pool_open(
                &pool, &(mproc_options){.kind = tu_kinds[k % 2],
                                        .workers = 2,
                                        .start = k == 2 ? MPROC_START_SPAWN
                                                        : MPROC_START_FORK});
            if (r) {
                fprintf(stderr, "open (%s, %d): %s\n",
                        tu_kind_name(tu_kinds[k % 2]), k, mproc_last_error());
                _exit(3);
            }
            long in[1000], out[1000];
            for (int i = 0; i < 1000; i++)
                in[i] = i;
            if (MPROC_MAP(pool, squared, in, out, 1000) != 0 ||
                out[999] != 999L * 999)
                _exit(4);
            mproc_pool_close(pool);
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A scratch that cannot be had fails the items with MPROC_ENOMEM: no abort
   (threads), no crash (processes). The sanitizers are asked to return NULL
   from an allocation that cannot be had, as libc does, instead of
   reporting it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static int writes_nothing(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    return 0;
}

static void huge_unkept_result_fails_items_not_process(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mproc_pool *pool;
        assert_int_equal(
            mproc_pool_open(
                &pool, &(mproc_options){.kind = tu_kinds[k], .workers = 1}),
            0);
        int st[2] = {-7, -7};
        assert_int_equal(mproc_map(pool, &(mproc_job){.fn = writes_nothing,
                                                      .out_size = SIZE_MAX / 2,
                                                      .n = 2,
                                                      .status = st}),
                         2);
        assert_int_equal(st[0], MPROC_ENOMEM);
        assert_int_equal(st[1], MPROC_ENOMEM);
        maps_again(pool);
        assert_int_equal(mproc_pool_close(pool), 0);
    }
}

/* 100,000 submits while the first job is blocked on something the caller
   does only after them: no submit waits (before, the 129th did, for
   ever), and every job then runs, in order of submission. */
enum { MANY = 100000 };

static void many_outstanding_submits_never_block(void **state)
{
    (void)state;
    static long in[MANY], out[MANY];
    static mproc_task *tasks[MANY];
    /* Under valgrind (tu_slow) a tenth: still far past the board's 128. */
    const int many = tu_slow() > 1 ? MANY / 10 : MANY;
    for (int i = 0; i < MANY; i++)
        in[i] = i;
    for (int k = 0; k < 2; k++) {
        /* One worker, held by the first job: nothing else runs until the
           release, so the last task is surely still waiting when it is
           cancelled (with two, the other worker drained the queue as it
           was filled, and under valgrind it ran the last item between the
           progress check and the cancel). */
        struct fixture f;
        fixture_open(&f, &(mproc_options){.kind = tu_kinds[k], .workers = 1});
        f.g->hang[0] = 1;
        mproc_task *first = fixture_submit(&f, 1);
        await_count(&f.g->hung, 1, "hung items");
        memset(out, 0xff, sizeof out);
        for (int i = 0; i < many; i++)
            assert_int_equal(
                mproc_submit(f.pool,
                             &(mproc_job){.fn = squared,
                                          .in = &in[i],
                                          .in_size = sizeof in[0],
                                          .out = &out[i],
                                          .out_size = sizeof out[0],
                                          .n = 1},
                             &tasks[i]),
                0);
        size_t done, n;
        assert_int_equal(mproc_task_progress(tasks[many - 1], &done, &n), 0);
        assert_int_equal(done, 0);
        assert_int_equal(n, 1);
        /* A pending task can be cancelled before it ever runs. */
        assert_int_equal(mproc_task_cancel(tasks[many - 1]), 0);
        atomic_store(&f.g->release, 1);
        assert_int_equal(mproc_task_wait(first, -1), 0);
        mproc_task_free(first);
        for (int i = 0; i < many - 1; i++) {
            assert_int_equal(mproc_task_wait(tasks[i], -1), 0);
            assert_int_equal(out[i], (long)i * i);
            mproc_task_free(tasks[i]);
        }
        assert_int_equal(mproc_task_wait(tasks[many - 1], -1), 1);
        mproc_task_free(tasks[many - 1]);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* Pending tasks at close: cancelled, waited for, valid after. */
static void close_with_pending_tasks(void **state)
{
    (void)state;
    enum { M = 300 };
    static long in[M], out[M];
    int st[M];
    mproc_task *tasks[M];
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, &(mproc_options){.kind = tu_kinds[k], .workers = 1});
        f.g->hang[0] = 1;
        mproc_task *first = fixture_submit(&f, 1);
        await_count(&f.g->hung, 1, "hung items");
        for (int i = 0; i < M; i++) {
            in[i] = i;
            st[i] = -7;
            assert_int_equal(
                mproc_submit(f.pool,
                             &(mproc_job){.fn = squared,
                                          .in = &in[i],
                                          .in_size = sizeof in[0],
                                          .out = &out[i],
                                          .out_size = sizeof out[0],
                                          .status = &st[i],
                                          .n = 1},
                             &tasks[i]),
                0);
        }
        atomic_store(&f.g->release, 1);
        assert_int_equal(mproc_pool_close(f.pool), 0);
        assert_int_equal(mproc_task_wait(first, -1), 0);
        mproc_task_free(first);
        for (int i = 0; i < M; i++) {
            int r = mproc_task_wait(tasks[i], 0);
            assert_true(r == 0 || r == 1);
            assert_true(r ? st[i] == MPROC_ECANCELED
                          : st[i] == 0 && out[i] == (long)i * i);
            size_t done;
            assert_int_equal(mproc_task_progress(tasks[i], &done, NULL), 0);
            assert_int_equal(done, 1);
            mproc_task_free(tasks[i]);
        }
    }
}

/* A process worker of one pool asks after a task of another: a code, not
   a crash (its copy of the other pool's memory was dropped). */
static int progress_of_foreign(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    size_t done, n;
    int r = mproc_task_progress(arg, &done, &n);
    return r == MPROC_EPERM ? 0 : 1;
}

static void foreign_task_in_a_worker_is_eperm(void **state)
{
    (void)state;
    struct fixture f;
    fixture_open(&f, &(mproc_options){.workers = 1});
    f.g->hang[0] = 1;
    mproc_task *t = fixture_submit(&f, 1);
    mproc_pool *other;
    assert_int_equal(mproc_pool_open(&other, &(mproc_options){.workers = 1}),
                     0);
    int st[1] = {-7};
    assert_int_equal(mproc_map(other, &(mproc_job){.fn = progress_of_foreign,
                                                   .n = 1,
                                                   .arg = t,
                                                   .status = st}),
                     0);
    assert_int_equal(st[0], 0);
    assert_int_equal(mproc_pool_close(other), 0);
    atomic_store(&f.g->release, 1);
    assert_int_equal(mproc_task_wait(t, -1), 0);
    mproc_task_free(t);
    assert_int_equal(mproc_pool_close(f.pool), 0);
}

/* A job of 2^39 items: cancel, kill, wait and close stay prompt (the
   ctest timeout is the guard). */
static int nothing(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    (void)arg;
    return 0;
}

static void huge_job_cancel_and_close_prompt(void **state)
{
    (void)state;
    if (tu_slow() > 1)
        skip(); /* its log (128 MiB) exceeds the reservation cut under valgrind */
    for (int k = 0; k < 2; k++) {
        for (int how = 0; how < 3; how++) {
            mproc_pool *pool;
            assert_int_equal(
                mproc_pool_open(
                    &pool, &(mproc_options){.kind = tu_kinds[k], .workers = 2}),
                0);
            mproc_task *t;
            assert_int_equal(
                mproc_submit(pool,
                             &(mproc_job){.fn = nothing, .n = (size_t)1 << 39},
                             &t),
                0);
            if (how == 0)
                assert_int_equal(mproc_task_cancel(t), 0);
            if (how == 1) {
                int r = mproc_task_kill(t);
                assert_true(r == 0 || r == MPROC_ENOTSUP);
            }
            if (how < 2) {
                int r = mproc_task_wait(t, -1);
                assert_true(r > 0);
                mproc_task_free(t);
                assert_int_equal(mproc_pool_close(pool), 0);
            } else {
                /* close cancels it; free after */
                assert_int_equal(mproc_pool_close(pool), 0);
                size_t done, n;
                assert_int_equal(mproc_task_progress(t, &done, &n), 0);
                assert_int_equal(done, n);
                mproc_task_free(t);
            }
        }
    }
}

/* mproc_map from a signal handler that interrupted mproc_map on the same
   pool: MPROC_EDEADLK (it deadlocked), and the interrupted map goes on. */
static mproc_pool *reentry_pool;
static volatile sig_atomic_t reentry_code = 1;
static struct gates *reentry_gates;

static void reenter(int sig)
{
    (void)sig;
    long in[1] = {0}, out[1];
    reentry_code = MPROC_MAP(reentry_pool, squared, in, out, 1);
    atomic_store(&reentry_gates->release, 1);
}

/* The item asks the caller's process for the signal while the caller is
   inside mproc_map (it posted this job and has not collected it). */
static int signal_caller(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    struct gates *g = arg;
    kill((pid_t)g->deadline_pid, SIGUSR1);
    while (!atomic_load(&g->release)) {
        if (tu_now() > g->deadline)
            return GAVE_UP;
        usleep(200);
    }
    return 0;
}

static void map_from_a_handler_is_edeadlk(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        struct fixture f;
        fixture_open(&f, &(mproc_options){.kind = tu_kinds[k], .workers = 1});
        reentry_pool = f.pool;
        reentry_gates = f.g;
        reentry_code = 1;
        f.g->deadline_pid = getpid();
        struct sigaction sa = {.sa_handler = reenter}, old;
        sigaction(SIGUSR1, &sa, &old);
        int st[1] = {-7};
        assert_int_equal(mproc_map(f.pool, &(mproc_job){.fn = signal_caller,
                                                        .n = 1,
                                                        .arg = f.g,
                                                        .status = st}),
                         0);
        sigaction(SIGUSR1, &old, NULL);
        assert_int_equal(reentry_code, MPROC_EDEADLK);
        maps_again(f.pool);
        assert_int_equal(mproc_pool_close(f.pool), 0);
    }
}

/* An item writes 0xff over the first page of the pool's control memory
   (the board): it costs the pool, with MPROC_EBROKEN, never a hang (the
   map hung for ever), and close ends it. */
static int stray_write(const void *in, void *out, void *arg)
{
    (void)out;
    if (*(const long *)in == 3)
        memset(arg, 0xff, 4096);
    return 0;
}

static void stray_write_over_the_board_breaks_not_hangs(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    mproc_pool *pool;
    assert_int_equal(mproc_pool_open(&pool, &(mproc_options){.workers = 2}), 0);
    long in[10], out[10];
    int st[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;
    int r = mproc_map(pool, &(mproc_job){.fn = stray_write,
                                         .in = in,
                                         .in_size = sizeof in[0],
                                         .out = out,
                                         .out_size = sizeof out[0],
                                         .n = 10,
                                         .chunk = 1,
                                         .arg = pool->board,
                                         .status = st});
    /* What finished before keeps its result; the rest is marked. */
    assert_true(r >= 0 && r <= 10);
    r = mproc_map(pool, &(mproc_job){.fn = stray_write,
                                     .in = in,
                                     .in_size = sizeof in[0],
                                     .out = out,
                                     .out_size = sizeof out[0],
                                     .n = 3,
                                     .arg = pool->board});
    assert_true(r == MPROC_EBROKEN || r == 0);
    assert_int_equal(mproc_pool_close(pool), 0);
    tu_assert_released(before);
}

int main(int argc, char **argv)
{
    tu_default_signals();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill_stops_a_hung_item),
        cmocka_unit_test(kill_spares_other_jobs),
        cmocka_unit_test(kill_repeatedly),
        cmocka_unit_test(kill_on_threads_cancels_and_says_enotsup),
        cmocka_unit_test(kill_errors),
        cmocka_unit_test(terminate_kills_hung_items),
        cmocka_unit_test(terminate_threads_is_close),
        cmocka_unit_test(job_timeout_without_pool_timeout),
        cmocka_unit_test(job_timeout_longer_than_pool),
        cmocka_unit_test(job_timeout_shorter_than_pool),
        cmocka_unit_test(job_timeout_errors),
        cmocka_unit_test(fini_once_in_each_worker_at_close),
        cmocka_unit_test(fini_on_retire_not_on_crash),
        cmocka_unit_test(start_option_checked),
        cmocka_unit_test(init_that_never_returns_times_out),
        cmocka_unit_test(replacement_init_fails_items_say_einit),
        cmocka_unit_test(close_with_stopped_worker_or_supervisor),
        cmocka_unit_test(timed_out_item_leaves_no_process),
        cmocka_unit_test(killed_item_leaves_no_process),
        cmocka_unit_test(close_leaves_no_process),
        cmocka_unit_test(caller_death_leaves_no_process),
        cmocka_unit_test(caller_death_with_stopped_supervisor),
        cmocka_unit_test(stopped_job_time_does_not_count),
        cmocka_unit_test(small_pool_under_256_mib_of_address_space),
        cmocka_unit_test(huge_unkept_result_fails_items_not_process),
        cmocka_unit_test(many_outstanding_submits_never_block),
        cmocka_unit_test(close_with_pending_tasks),
        cmocka_unit_test(foreign_task_in_a_worker_is_eperm),
        cmocka_unit_test(huge_job_cancel_and_close_prompt),
        cmocka_unit_test(map_from_a_handler_is_edeadlk),
        cmocka_unit_test(stray_write_over_the_board_breaks_not_hangs),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
