/*
 * The spawn start (options.start = MPROC_START_SPAWN): workers that are
 * fresh runs of this test program, entering the worker before main. What
 * differs from fork: no caller state crosses (globals are as static
 * initialisation and init leave them, no lock a caller thread holds), code
 * crosses by its place in the program, arg needs arg_size or the arena.
 * What must not differ: results, crashes, timeouts, kills, max_items,
 * close, and nothing left behind.
 */
#define _GNU_SOURCE
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every run of this program, the caller and each spawned supervisor and
   worker, has a thread that a constructor started before libmproc's own
   could run: it must take no signal meant for the library (a supervisor's
   SIGCHLD above all: crash_timeout_and_max_items would hang). */
static void *idle(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

__attribute__((constructor)) static void start_idle_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) == 0)
        pthread_detach(t);
}

static mproc_options spawn_options(int workers)
{
    return (mproc_options){.workers = workers, .start = MPROC_START_SPAWN};
}

/* ---- what crosses and what does not ---- */

static int base = 5;             /* the caller changes it before open */
static const int init_seed = 40; /* init_arg: the program's static data */

static int init_base(void *arg)
{
    base += *(const int *)arg; /* 5 + 40: static value, not the caller's */
    return 0;
}

static int add_base(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in + base;
    return 0;
}

/* Results in order; a spawned worker has the program's globals as static
   initialisation and init leave them, not as the caller changed them. */
static void maps_with_static_globals(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    base = 1000000; /* what a forked worker would see */
    mproc_options o = spawn_options(2);
    o.init = init_base;
    o.init_arg = (void *)&init_seed;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    enum { N = 5000 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = add_base,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = N}),
                     0);
    for (long i = 0; i < N; i++)
        assert_int_equal(out[i], i + 45);
    assert_int_equal(mproc_pool_close(p), 0);
    base = 5;
    tu_assert_released(before);
}

/* A lock a caller thread holds when the pool opens: a forked worker's copy
   stays locked for ever (the reason for spawn); a spawned worker's is free. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;

static int try_lock(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    int r = pthread_mutex_trylock(&held_lock);
    if (r == 0)
        pthread_mutex_unlock(&held_lock);
    *(int *)out = r;
    return 0;
}

static _Atomic int holder_go;

static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held_lock);
    atomic_store(&holder_go, 1);
    while (atomic_load(&holder_go) != 2)
        usleep(1000);
    pthread_mutex_unlock(&held_lock);
    return NULL;
}

static void caller_locks_do_not_cross(void **state)
{
    (void)state;
    atomic_store(&holder_go, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, holder, NULL), 0);
    while (!atomic_load(&holder_go))
        usleep(1000);
    int got[2][4];
    for (int k = 0; k < 2; k++) {
        mproc_options o = spawn_options(2);
        o.start = k ? MPROC_START_SPAWN : MPROC_START_FORK;
        mproc_pool *p;
        assert_int_equal(mproc_pool_open(&p, &o), 0);
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = try_lock,
                                                   .out = got[k],
                                                   .out_size = sizeof(int),
                                                   .n = 4}),
                         0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
    atomic_store(&holder_go, 2);
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(got[0][i], EBUSY); /* fork: the copy is locked */
        assert_int_equal(got[1][i], 0);     /* spawn: a fresh lock */
    }
}

/* ---- the rules, said at the call ---- */

static int nothing(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    return 0;
}

static int read_arg(const void *in, void *out, void *arg)
{
    (void)in;
    *(int *)out = *(const int *)arg;
    return 0;
}

static void arg_needs_size_or_arena(void **state)
{
    (void)state;
    mproc_options o = spawn_options(1);
    o.shared_size = 1 << 20;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    int local = 7, out = 0;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = read_arg,
                                               .arg = &local,
                                               .out = &out,
                                               .out_size = sizeof out,
                                               .n = 1}),
                     MPROC_EINVAL);
    assert_non_null(strstr(mproc_last_error(), "arg_size"));
    /* Copied: */
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = read_arg,
                                               .arg = &local,
                                               .arg_size = sizeof local,
                                               .out = &out,
                                               .out_size = sizeof out,
                                               .n = 1}),
                     0);
    assert_int_equal(out, 7);
    /* In the arena, at the same address in every worker: */
    int *shared = mproc_shared_alloc(p, sizeof *shared);
    assert_non_null(shared);
    *shared = 11;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = read_arg,
                                               .arg = shared,
                                               .out = &out,
                                               .out_size = sizeof out,
                                               .n = 1}),
                     0);
    assert_int_equal(out, 11);
    mproc_shared_free(p, shared);
    assert_int_equal(mproc_pool_close(p), 0);
}

static int init_nothing(void *arg)
{
    (void)arg;
    return 0;
}

static void init_arg_must_be_static(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    int on_stack = 1;
    mproc_options o = spawn_options(1);
    o.init = init_nothing;
    o.init_arg = &on_stack;
    mproc_pool *p = (mproc_pool *)&p;
    assert_int_equal(mproc_pool_open(&p, &o), MPROC_EINVAL);
    assert_null(p);
    assert_non_null(strstr(mproc_last_error(), "init_arg"));
    tu_assert_released(before);
}

/* Code the program dlopen'ed is not in a fresh run: refused at submit, with
   the object named; a fork pool runs it. */
static void dlopened_code_refused(void **state)
{
    (void)state;
    void *h = dlopen(SPAWN_PLUGIN, RTLD_NOW);
    assert_non_null(h);
    mproc_fn fn;
    void *sym = dlsym(h, "plugin_triple");
    assert_non_null(sym);
    memcpy(&fn, &sym, sizeof fn);
    for (int k = 0; k < 2; k++) {
        mproc_options o = spawn_options(1);
        o.start = k ? MPROC_START_SPAWN : MPROC_START_FORK;
        mproc_pool *p;
        assert_int_equal(mproc_pool_open(&p, &o), 0);
        int in = 5, out = 0;
        int r = mproc_map(p, &(mproc_job){.fn = fn,
                                          .in = &in,
                                          .in_size = sizeof in,
                                          .out = &out,
                                          .out_size = sizeof out,
                                          .n = 1});
        if (k) {
            assert_int_equal(r, MPROC_ENOTSUP);
            assert_non_null(strstr(mproc_last_error(), "spawn_plugin"));
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(out, 15);
        }
        assert_int_equal(mproc_pool_close(p), 0);
    }
    dlclose(h);
}

/* The caller's pool pointer, copied into a spawned worker, is an address of
   the caller's memory: the calls on it that a worker may make answer
   without following it (before: the item crashed). */
static int calls_on_own_pool(const void *in, void *out, void *arg)
{
    (void)in;
    mproc_pool *p = *(mproc_pool *const *)arg;
    int *r = out;
    r[0] = mproc_map(p, &(mproc_job){.fn = nothing, .n = 1});
    r[1] = mproc_pool_size(p);
    errno = 0;
    r[2] = mproc_shared_alloc(p, 64) == NULL ? errno : 0;
    mproc_shared_free(p, (void *)p); /* ignored, as any foreign pointer */
    mproc_task *t = (mproc_task *)&r;
    r[3] = mproc_submit(p, &(mproc_job){.fn = nothing, .n = 1}, &t);
    r[4] = t == NULL;
    return 0;
}

static void own_pool_in_a_spawned_worker(void **state)
{
    (void)state;
    mproc_options o = spawn_options(1);
    o.shared_size = 1 << 16;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    int r[5] = {1, 1, 1, 1, 0};
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = calls_on_own_pool,
                                               .arg = &p,
                                               .arg_size = sizeof p,
                                               .out = r,
                                               .out_size = sizeof r,
                                               .n = 1}),
                     0);
    assert_int_equal(r[0], MPROC_EDEADLK);
    assert_int_equal(r[1], MPROC_EPERM);
    assert_int_equal(r[2], EPERM);
    assert_int_equal(r[3], MPROC_EDEADLK);
    assert_int_equal(r[4], 1);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* What a spawned worker holds: none of the pool's control descriptors
   (the caller's pidfd, the supervisor's eventfd), which the processes its
   items start would inherit; before, both were open in every worker. */
static int control_fds(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    int n = 0;
    char path[64], link[128];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = 0;
        n += strstr(link, "pidfd") || strstr(link, "eventfd") ||
             strstr(link, "signalfd");
    }
    *(int *)out = n;
    return 0;
}

static void workers_hold_no_control_descriptors(void **state)
{
    (void)state;
    mproc_pool *p;
    mproc_options o = spawn_options(2);
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    int got[4] = {-1, -1, -1, -1};
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = control_fds,
                                               .out = got,
                                               .out_size = sizeof *got,
                                               .chunk = 1,
                                               .n = 4}),
                     0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], 0);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* A pool an item opens inside a spawned worker has this run's own
   addresses: its jobs are not translated as the caller's (before: every
   inner item failed MPROC_ENOTSUP), and its size is its own. */
static int inner_twice(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = 2 * *(const long *)in;
    return 0;
}

static int nested_map(const void *in, void *out, void *arg)
{
    (void)arg;
    mproc_pool *inner;
    if (mproc_pool_open(&inner, &(mproc_options){.kind = MPROC_THREADS,
                                                  .workers = 2}))
        return 1;
    long v[4], r[4] = {0};
    for (int i = 0; i < 4; i++)
        v[i] = *(const long *)in + i;
    int rc = mproc_map(inner, &(mproc_job){.fn = inner_twice,
                                           .in = v,
                                           .in_size = sizeof *v,
                                           .out = r,
                                           .out_size = sizeof *r,
                                           .n = 4});
    int size = mproc_pool_size(inner);
    mproc_pool_close(inner);
    *(long *)out = rc ? rc : size == 2 ? r[0] + r[1] + r[2] + r[3] : -2;
    return 0;
}

static void pool_opened_inside_a_spawned_worker(void **state)
{
    (void)state;
    mproc_pool *p;
    mproc_options o = spawn_options(2);
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    long in[3] = {0, 10, 100}, out[3];
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = nested_map,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = 3}),
                     0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i], 2 * (4 * in[i] + 6));
    assert_int_equal(mproc_pool_close(p), 0);
}

/* The constructor's test of its environment: a value that is not whole is
   not ours (the program runs); a whole one whose parent is gone ends the
   run before main (a caller that died as it spawned). */
static void environment_not_ours_or_orphaned(void **state)
{
    (void)state;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    const char *vars[] = {
        "MPROC_SPAWN=garbage",
        "MPROC_SPAWN_SUPER=3,7f0000000000,4096,0,1,4,5,-1,0,1,1,0",
        "MPROC_SPAWN=3,7f0000000000,4096,0,0,1,1,-1,0",
    };
    const int want[] = {42, 0, 0}; /* main's own status, or none */
    for (int k = 0; k < 3; k++) {
        pid_t c = fork();
        if (c == 0) {
            char *env[] = {(char *)vars[k], NULL};
            execle(self, self, "say-main", (char *)NULL, env);
            _exit(127);
        }
        int st;
        assert_int_equal(waitpid(c, &st, 0), c);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), want[k]);
    }
}

/* ---- every kind of job ---- */

static int upper(const void *in, void *out, void *arg)
{
    (void)out, (void)arg;
    const char *s = *(const char *const *)in;
    size_t n = strlen(s);
    char *r = mproc_result(n);
    if (!r)
        return 1;
    for (size_t i = 0; i < n; i++)
        r[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    return 0;
}

static void strings_and_results_of_any_length(void **state)
{
    (void)state;
    mproc_pool *p;
    mproc_options o = spawn_options(2);
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    const char *words[] = {"spawn", "a", "", "fresh run of the program"};
    mproc_bytes res[4];
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = upper,
                                               .in = words,
                                               .out = res,
                                               .n = 4,
                                               .flags = MPROC_IN_STRINGS |
                                                        MPROC_OUT_BYTES}),
                     0);
    const char *want[] = {"SPAWN", "A", "", "FRESH RUN OF THE PROGRAM"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(res[i].size, strlen(want[i]));
        assert_memory_equal(res[i].size ? res[i].data : "", want[i],
                            res[i].size);
        free(res[i].data);
    }
    assert_int_equal(mproc_pool_close(p), 0);
}

static int square_batch(const void *in, void *out, size_t count, void *arg,
                        int *status)
{
    (void)arg, (void)status;
    for (size_t i = 0; i < count; i++)
        ((long *)out)[i] = ((const long *)in)[i] * ((const long *)in)[i];
    return 0;
}

static int copy_long(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const long *)in;
    return 0;
}

static void sum(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

static void batch_and_reduce(void **state)
{
    (void)state;
    mproc_pool *p;
    mproc_options o = spawn_options(2);
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    enum { N = 20000 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(mproc_map(p, &(mproc_job){.batch = square_batch,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = N}),
                     0);
    for (long i = 0; i < N; i++)
        assert_int_equal(out[i], i * i);
    long total = 0;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = copy_long,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out_size = sizeof(long),
                                               .reduce = sum,
                                               .acc = &total,
                                               .n = N}),
                     0);
    assert_int_equal(total, (long)N * (N - 1) / 2);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* ---- faults: as for fork ---- */

static volatile int *volatile nowhere = (volatile int *)16;

static int faulty(const void *in, void *out, void *arg)
{
    (void)arg;
    int v = *(const int *)in;
    if (v == 3)
        *nowhere = 1;
    if (v == 5)
        for (;;)
            pause();
    if (v == 7)
        _exit(9);
    *(int *)out = v * 10;
    return 0;
}

static void crash_timeout_and_max_items(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    mproc_options o = spawn_options(2);
    o.timeout = tu_timeout(0.5);
    o.max_items = 3;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    enum { N = 12 };
    int in[N], out[N], st[N], ws[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = faulty,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .status = st,
                                               .wstatus = ws,
                                               .chunk = 1,
                                               .n = N}),
                     3);
    for (int i = 0; i < N; i++) {
        if (i == 3) {
            assert_int_equal(st[i], MPROC_ECRASHED);
            assert_true(WIFSIGNALED(ws[i]) && WTERMSIG(ws[i]) == SIGSEGV);
        } else if (i == 5) {
            assert_int_equal(st[i], MPROC_ETIMEDOUT);
        } else if (i == 7) {
            assert_int_equal(st[i], MPROC_ECRASHED);
            assert_true(WIFEXITED(ws[i]) && WEXITSTATUS(ws[i]) == 9);
        } else {
            assert_int_equal(st[i], 0);
            assert_int_equal(out[i], i * 10);
        }
    }
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
}

/* A hung item says it runs on the descriptor the environment names: a
   spawned worker has the caller's environment as it was at open, and its
   descriptors without close-on-exec. */
static int hang(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    const char *fd = getenv("TEST_SPAWN_RUNNING_FD");
    if (fd && write(atoi(fd), "r", 1) != 1)
        abort();
    for (;;)
        pause();
}

/* A pipe whose write end hung items tell of themselves on; the read end. */
static int running_pipe(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char num[16];
    snprintf(num, sizeof num, "%d", fds[1]);
    setenv("TEST_SPAWN_RUNNING_FD", num, 1);
    return fds[0];
}

static void await_running(int rd, int count)
{
    char b;
    for (int i = 0; i < count; i++)
        assert_int_equal(read(rd, &b, 1), 1);
}

/* A hung item killed on demand; the pool maps again on a new spawned
   worker. */
static void kill_then_map_again(void **state)
{
    (void)state;
    mproc_pool *p;
    int rd = running_pipe();
    mproc_options o = spawn_options(1);
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    unsetenv("TEST_SPAWN_RUNNING_FD");
    mproc_task *t;
    int st = 0;
    assert_int_equal(
        mproc_submit(p, &(mproc_job){.fn = hang, .n = 1, .status = &st}, &t), 0);
    await_running(rd, 1);
    close(rd);
    double t0 = tu_now();
    assert_int_equal(mproc_task_kill(t), 0);
    assert_int_equal(mproc_task_wait(t, -1), 1);
    assert_true(tu_now() - t0 < 2.0 * tu_slow());
    assert_int_equal(st, MPROC_ECANCELED);
    mproc_task_free(t);
    int in = 4, out = 0;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = faulty,
                                               .in = &in,
                                               .in_size = sizeof in,
                                               .out = &out,
                                               .out_size = sizeof out,
                                               .n = 1}),
                     0);
    assert_int_equal(out, 40);
    assert_int_equal(mproc_pool_close(p), 0);
}

/* fini runs in each spawned worker as it ends: it writes to a descriptor
   named in the environment (which a spawned worker inherits, as it
   inherits descriptors without close-on-exec). */
static void fini_note(void *arg)
{
    (void)arg;
    const char *fd = getenv("TEST_SPAWN_FINI_FD");
    if (fd && write(atoi(fd), "f", 1) != 1)
        abort();
}

static void fini_runs_in_each_worker(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char num[16];
    snprintf(num, sizeof num, "%d", fds[1]);
    setenv("TEST_SPAWN_FINI_FD", num, 1);
    mproc_options o = spawn_options(3);
    o.fini = fini_note;
    mproc_pool *p;
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    unsetenv("TEST_SPAWN_FINI_FD");
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = nothing, .n = 30}), 0);
    assert_int_equal(mproc_pool_close(p), 0);
    close(fds[1]);
    char buf[8];
    ssize_t n = read(fds[0], buf, sizeof buf);
    assert_int_equal(n, 3);
    close(fds[0]);
}

/* The caller's death ends the supervisor and every spawned worker, hung
   items included. */
static void caller_death_leaves_nothing(void **state)
{
    (void)state;
    int rd = running_pipe();
    pid_t c = fork();
    if (c == 0) {
        mproc_pool *p;
        mproc_options o = spawn_options(2);
        if (mproc_pool_open(&p, &o))
            _exit(1);
        mproc_task *t;
        if (mproc_submit(p, &(mproc_job){.fn = hang, .n = 2, .chunk = 1}, &t))
            _exit(1);
        for (;;)
            pause();
    }
    unsetenv("TEST_SPAWN_RUNNING_FD");
    await_running(rd, 2);
    close(rd);
    assert_true(tu_descendants() >= 4); /* caller, supervisor, 2 workers */
    kill(c, SIGKILL);
    int st;
    assert_int_equal(waitpid(c, &st, 0), c);
    assert_int_equal(tu_wait_descendants(0, 10 * tu_slow()), 0);
}

/* The executable rebuilt while the pool is open: replacements (max_items
   1: each item on a new worker) still run the file the program runs, not
   the new one at its path. The program is a copy of this test, run with
   "replaced-child": it opens, says so, waits for the go, maps. */
static int replaced_child(void)
{
    mproc_pool *p;
    mproc_options o = spawn_options(1);
    o.max_items = 1;
    if (mproc_pool_open(&p, &o))
        return 2;
    if (write(1, "o", 1) != 1)
        return 3;
    char go;
    if (read(0, &go, 1) != 1)
        return 4;
    long in[5] = {1, 2, 3, 4, 5}, out[5] = {0};
    int r = mproc_map(p, &(mproc_job){.fn = add_base,
                                      .in = in,
                                      .in_size = sizeof *in,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = 5});
    mproc_pool_close(p);
    for (int i = 0; i < 5; i++)
        if (out[i] != in[i] + 5)
            return 5;
    return r ? 6 : 0;
}

static void executable_replaced_while_open(void **state)
{
    (void)state;
    char copy[64];
    snprintf(copy, sizeof copy, "/tmp/mproc-exe-%d", (int)getpid());
    /* readlink, not /proc/PID/exe from a shell: under valgrind that is
       valgrind's own binary, and only the program's own readlink is told
       the program's. */
    char self[4096], cmd[8300];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    snprintf(cmd, sizeof cmd, "cp '%s' %s", self, copy);
    assert_int_equal(system(cmd), 0);
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    pid_t c = fork();
    if (c == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        execl(copy, copy, "replaced-child", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    char b;
    assert_int_equal(read(from[0], &b, 1), 1);
    /* A rebuild: the old file unlinked, another at its path. */
    assert_int_equal(unlink(copy), 0);
    snprintf(cmd, sizeof cmd, "cp /bin/true %s", copy);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(write(to[1], "g", 1), 1);
    int st;
    assert_int_equal(waitpid(c, &st, 0), c);
    unlink(copy);
    close(to[1]);
    close(from[0]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "replaced-child"))
        return replaced_child();
    if (argc > 1 && !strcmp(argv[1], "say-main"))
        return 42;
    tu_default_signals();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maps_with_static_globals),
        cmocka_unit_test(caller_locks_do_not_cross),
        cmocka_unit_test(arg_needs_size_or_arena),
        cmocka_unit_test(init_arg_must_be_static),
        cmocka_unit_test(dlopened_code_refused),
        cmocka_unit_test(own_pool_in_a_spawned_worker),
        cmocka_unit_test(workers_hold_no_control_descriptors),
        cmocka_unit_test(pool_opened_inside_a_spawned_worker),
        cmocka_unit_test(environment_not_ours_or_orphaned),
        cmocka_unit_test(strings_and_results_of_any_length),
        cmocka_unit_test(batch_and_reduce),
        cmocka_unit_test(crash_timeout_and_max_items),
        cmocka_unit_test(kill_then_map_again),
        cmocka_unit_test(fini_runs_in_each_worker),
        cmocka_unit_test(caller_death_leaves_nothing),
        cmocka_unit_test(executable_replaced_while_open),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
