/*
 * Faults: a crashed or hung worker costs one item, never the map, the pool
 * or the machine. Linked with the hooked library (src/internal.h, "Test
 * hooks"), so that workers can also be killed inside the board's windows.
 */
#define _GNU_SOURCE
#include "util.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum op { OK, SEGV, ABRT, HANG, EXIT, RET, SLOW, BOMB };

struct item {
    int op;
    int v;
};

/* A real invalid write, hidden from the compiler and the sanitizers. */
static volatile int *volatile bad_address = (volatile int *)16;

__attribute__((noinline, no_sanitize("address", "undefined"))) static void
segfault(void)
{
    *bad_address = 1;
}

static int faulty(const void *in, void *out, void *arg)
{
    const struct item *it = in;
    (void)arg;
    switch (it->op) {
    case SEGV:
        segfault();
        break;
    case ABRT:
        abort();
    case HANG:
        for (;;)
            pause();
    case EXIT:
        _exit(3);
    case RET:
        return 42;
    case SLOW:
        usleep((useconds_t)it->v);
        break;
    case BOMB: {
        /* Touch far more memory than the test's cgroup allows. */
        for (int i = 0; i < 64; i++) {
            char *p = malloc(64 << 20);
            if (p)
                memset(p, i, 64 << 20);
        }
        break;
    }
    }
    *(long *)out = 2L * it->v;
    return 0;
}

static mproc_pool *open_opts(mproc_options o)
{
    mproc_pool *p;
    int r = mproc_pool_open(&p, &o);
    if (r)
        fail_msg("open: %s", mproc_strerror(r));
    return p;
}

static void plain_items(struct item *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        it[i] = (struct item){OK, (int)i};
}

/* Map `it` and check every item: the faulty ones by code, the others by
   result. Returns the map's result. */
static int run_checked(mproc_pool *p, const struct item *it, size_t n,
                       size_t chunk, int *status, int *ws)
{
    long *out = calloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = -1;
    int r = mproc_map(p, &(mproc_job){.fn = faulty,
                                      .in = it,
                                      .in_size = sizeof *it,
                                      .out = out,
                                      .out_size = sizeof *out,
                                      .n = n,
                                      .chunk = chunk,
                                      .status = status,
                                      .wstatus = ws});
    for (size_t i = 0; i < n; i++) {
        int want;
        switch (it[i].op) {
        case SEGV:
        case ABRT:
        case EXIT:
        case BOMB:
            want = MPROC_ECRASHED;
            break;
        case HANG:
            want = MPROC_ETIMEDOUT;
            break;
        case RET:
            want = 42;
            break;
        default:
            want = 0;
        }
        if (status[i] != want)
            fail_msg("item %zu (op %d): status %d (%s), want %d", i, it[i].op,
                     status[i], mproc_strerror(status[i]), want);
        if (want == 0 && out[i] != 2L * it[i].v)
            fail_msg("item %zu: out %ld, want %ld", i, out[i], 2L * it[i].v);
        if (want < 0 && out[i] != -1)
            fail_msg("item %zu: a failed item's result was written", i);
    }
    free(out);
    return r;
}

/* ---- the issue's own scenario ---- */

static void five_faults_one_map(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    mproc_pool *p =
        open_opts((mproc_options){.workers = 3, .timeout = tu_timeout(0.5)});
    struct item it[15];
    int status[15], ws[15];
    plain_items(it, 15);
    it[3].op = SEGV;
    it[5].op = ABRT;
    it[7].op = HANG;
    it[9].op = EXIT;
    it[11].op = RET;
    double t0 = tu_now();
    assert_int_equal(run_checked(p, it, 15, 0, status, ws), 5);
    double took = tu_now() - t0;
    assert_true(took >= 0.5 * tu_slow());
    assert_true(took < 5.0 * tu_slow()); /* about the timeout: not a hang */
    assert_true(WIFSIGNALED(ws[3]) && WTERMSIG(ws[3]) == SIGSEGV);
    assert_true(WIFSIGNALED(ws[5]) && WTERMSIG(ws[5]) == SIGABRT);
    assert_true(WIFSIGNALED(ws[7]) && WTERMSIG(ws[7]) == SIGKILL);
    assert_true(WIFEXITED(ws[9]) && WEXITSTATUS(ws[9]) == 3);
    for (int i = 0; i < 15; i++)
        if (i != 3 && i != 5 && i != 7 && i != 9)
            assert_int_equal(ws[i], 0);
    /* The same pool maps again, correctly. */
    plain_items(it, 15);
    assert_int_equal(run_checked(p, it, 15, 0, status, ws), 0);
    assert_int_equal(mproc_pool_size(p), 3);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
}

/* ---- crashes ---- */

static void rest_of_chunk_still_runs(void **state)
{
    (void)state;
    tu_default_signals();
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    size_t n = 200;
    struct item it[200];
    int status[200], ws[200];
    plain_items(it, n);
    it[3].op = SEGV;
    it[4].op = ABRT; /* the first item of what is left */
    it[47].op = EXIT;
    it[99].op = SEGV; /* the last item of a chunk */
    it[199].op = ABRT;
    for (size_t chunk = 1; chunk <= 100; chunk = chunk * 3 + 1)
        assert_int_equal(run_checked(p, it, n, chunk, status, ws), 5);
    mproc_pool_close(p);
}

/* A barrier across worker processes: each item waits until `arrived` (in
   memory mapped before the pool opened) counts every item, or a deadline. */
static _Atomic int *arrived;

static int pid_at_barrier(const void *in, void *out, void *arg)
{
    (void)in;
    int n = *(const int *)arg;
    atomic_fetch_add(arrived, 1);
    double until = tu_now() + 30 * tu_slow();
    while (atomic_load(arrived) < n && tu_now() < until)
        usleep(1000);
    *(int *)out = getpid();
    return 0;
}

static int distinct(const int *v, int n)
{
    int d = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= v[j] == v[i];
        d += !seen;
    }
    return d;
}

static void pool_keeps_its_size(void **state)
{
    (void)state;
    tu_default_signals();
    int W = 4;
    arrived = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(arrived != MAP_FAILED);
    mproc_pool *p = open_opts((mproc_options){.workers = W});
    struct item it[8];
    int status[8], ws[8];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 8; i++)
            it[i] = (struct item){i % 2 ? SEGV : ABRT, i};
        assert_int_equal(run_checked(p, it, 8, 1, status, ws), 8);
    }
    /* W items that wait for one another, so each needs a worker of its own:
       W live, distinct workers. */
    int pids[4];
    atomic_store(arrived, 0);
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = pid_at_barrier,
                                               .out = pids,
                                               .out_size = sizeof pids[0],
                                               .n = 4,
                                               .chunk = 1,
                                               .arg = &W}),
                     0);
    assert_int_equal(distinct(pids, 4), 4);
    assert_int_equal(mproc_pool_size(p), W);
    mproc_pool_close(p);
    munmap((void *)arrived, 4096);
}

/* Items publish their worker's pid in the arena, then wait to be killed. */
struct board_pids {
    _Atomic int pid[64];
};

static int publish_and_wait(const void *in, void *out, void *arg)
{
    struct board_pids *bp = arg;
    int i = *(const int *)in;
    (void)out;
    atomic_store(&bp->pid[i], getpid());
    if (i == 0)
        for (;;)
            pause();
    return 0;
}

static void killed_from_outside(void **state)
{
    (void)state;
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .shared_size = 4096});
    struct board_pids *bp = mproc_shared_alloc(p, sizeof *bp);
    assert_non_null(bp);
    int in[5] = {0, 1, 2, 3, 4}, status[5], ws[5];
    mproc_task *t;
    assert_int_equal(mproc_submit(p,
                                  &(mproc_job){.fn = publish_and_wait,
                                               .in = in,
                                               .in_size = sizeof in[0],
                                               .n = 5,
                                               .arg = bp,
                                               .chunk = 1,
                                               .status = status,
                                               .wstatus = ws},
                                  &t),
                     0);
    int victim;
    while (!(victim = atomic_load(&bp->pid[0])))
        usleep(1000);
    assert_int_equal(kill(victim, SIGKILL), 0);
    assert_int_equal(mproc_task_wait(t, 10 * tu_slow()), 1);
    mproc_task_free(t);
    assert_int_equal(status[0], MPROC_ECRASHED);
    assert_true(WIFSIGNALED(ws[0]) && WTERMSIG(ws[0]) == SIGKILL);
    for (int i = 1; i < 5; i++)
        assert_int_equal(status[i], 0);
    mproc_pool_close(p);
}

/* The OOM killer, for real: a child process moves itself into a memory
   cgroup of 256 MiB and maps an item that touches 4 GiB. */
static char *memory_cgroup(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], *path = NULL;
    while (f && fgets(line, sizeof line, f)) {
        char *c = strstr(line, ":memory:");
        if (c) {
            c[strcspn(c, "\n")] = 0;
            static char dir[1024];
            snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s/mproc-oom-%d",
                     c + 8, (int)getpid());
            path = dir;
        }
    }
    if (f)
        fclose(f);
    if (!path || mkdir(path, 0755) != 0)
        return NULL;
    return path;
}

static bool write_file(const char *dir, const char *name, const char *text)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

static void oom_killer(void **state)
{
    (void)state;
    char *cg = memory_cgroup();
    if (!cg)
        skip(); /* needs a writable cgroup v1 memory hierarchy */
    if (!write_file(cg, "memory.limit_in_bytes", "268435456")) {
        rmdir(cg);
        skip();
    }
    pid_t c = fork();
    if (c == 0) {
        char me[32];
        snprintf(me, sizeof me, "%d", (int)getpid());
        if (!write_file(cg, "cgroup.procs", me))
            _exit(10);
        tu_default_signals();
        mproc_pool *p;
        if (mproc_pool_open(&p, &(mproc_options){.workers = 2}))
            _exit(11);
        struct item it[6];
        int status[6], ws[6];
        long out[6];
        plain_items(it, 6);
        it[2].op = BOMB;
        int r = mproc_map(p, &(mproc_job){.fn = faulty,
                                          .in = it,
                                          .in_size = sizeof it[0],
                                          .out = out,
                                          .out_size = sizeof out[0],
                                          .n = 6,
                                          .chunk = 1,
                                          .status = status,
                                          .wstatus = ws});
        if (r != 1 || status[2] != MPROC_ECRASHED || !WIFSIGNALED(ws[2]) ||
            WTERMSIG(ws[2]) != SIGKILL)
            _exit(12);
        for (int i = 0; i < 6; i++)
            if (i != 2 && (status[i] || out[i] != 2L * i))
                _exit(13);
        plain_items(it, 6);
        if (mproc_map(p, &(mproc_job){.fn = faulty,
                                      .in = it,
                                      .in_size = sizeof it[0],
                                      .out = out,
                                      .out_size = sizeof out[0],
                                      .n = 6}))
            _exit(14);
        mproc_pool_close(p);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(c, &st, 0), c);
    rmdir(cg);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("oom child: %s %d", WIFEXITED(st) ? "exit" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ---- timeouts ---- */

static void timeout_kills_only_late_items(void **state)
{
    (void)state;
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .timeout = 0.6 * tu_slow()});
    size_t n = 12;
    struct item it[12];
    int status[12], ws[12];
    plain_items(it, n);
    int slow = (int)tu_slow();
    it[1] = (struct item){SLOW, 100000 * slow}; /* in time */
    it[2].op = HANG;
    it[6] = (struct item){SLOW, 150000 * slow};
    it[8].op = HANG;
    it[9].op = HANG;
    double t0 = tu_now();
    assert_int_equal(run_checked(p, it, n, 0, status, ws), 3);
    assert_true(tu_now() - t0 < 5.0 * tu_slow());
    for (int i = 0; i < 3; i++) {
        plain_items(it, n);
        assert_int_equal(run_checked(p, it, n, 0, status, ws), 0);
    }
    mproc_pool_close(p);
}

/* A hang in what is left of a crashed worker's chunk: only the replacement's
   start sets it running, and the supervisor must still watch the clock. */
static void hang_in_inherited_chunk(void **state)
{
    (void)state;
    tu_default_signals();
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .timeout = tu_timeout(0.5)});
    struct item it[10];
    int status[10], ws[10];
    plain_items(it, 10);
    /* One chunk: the other worker finds nothing, moves the claim head on
       and goes idle well before the crash. */
    it[0] = (struct item){SLOW, 100000};
    it[2].op = SEGV;
    it[6].op = HANG;
    assert_int_equal(run_checked(p, it, 10, 10, status, ws), 2);
    mproc_pool_close(p);
}

static void timeout_with_many_hangs(void **state)
{
    (void)state;
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .timeout = 0.1 * tu_slow()});
    struct item it[40];
    int status[40], ws[40];
    plain_items(it, 40);
    for (int i = 0; i < 40; i += 5)
        it[i].op = HANG;
    assert_int_equal(run_checked(p, it, 40, 0, status, ws), 8);
    mproc_pool_close(p);
}

/* ---- worker lifecycle ---- */

static int my_pid(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(int *)out = getpid();
    return 0;
}

static void max_items_replaces_workers(void **state)
{
    (void)state;
    mproc_pool *p = open_opts((mproc_options){.workers = 2, .max_items = 3});
    int pids[60];
    int rounds = tu_slow() == 1.0 ? 3 : 1;
    for (int round = 0; round < rounds; round++) {
        assert_int_equal(mproc_map(p, &(mproc_job){.fn = my_pid,
                                                   .out = pids,
                                                   .out_size = sizeof pids[0],
                                                   .n = 60}),
                         0);
        for (int i = 0; i < 60; i++) {
            int same = 0;
            for (int j = 0; j < 60; j++)
                same += pids[j] == pids[i];
            if (same > 3)
                fail_msg("worker %d ran %d items, max_items is 3", pids[i],
                         same);
        }
        assert_true(distinct(pids, 60) >= 20);
    }
    mproc_pool_close(p);
}

static _Atomic int *inits; /* in memory shared with every process */

static int count_init(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    return 0;
}

static void init_runs_in_every_worker(void **state)
{
    (void)state;
    tu_default_signals();
    inits = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
    assert_true(inits != MAP_FAILED);
    for (int k = 0; k < 2; k++) {
        atomic_store(inits, 0);
        mproc_pool *p = open_opts((mproc_options){.kind = tu_kinds[k],
                                                  .workers = 3,
                                                  .init = count_init,
                                                  .init_arg = (void *)inits});
        assert_int_equal(atomic_load(inits), 3);
        if (tu_kinds[k] == MPROC_PROCESSES) {
            struct item it[4];
            int status[4], ws[4];
            plain_items(it, 4);
            it[0].op = SEGV;
            it[2].op = EXIT;
            assert_int_equal(run_checked(p, it, 4, 1, status, ws), 2);
            /* The two replacements ran init too (they start at once). */
            double until = tu_now() + 5 * tu_slow();
            while (atomic_load(inits) < 5 && tu_now() < until)
                usleep(1000);
            assert_int_equal(atomic_load(inits), 5);
        }
        mproc_pool_close(p);
    }
    munmap((void *)inits, 4096);
}

/*
 * Replacements that cannot start. A worker crashes in the middle of its
 * chunk; the rest of the chunk is its replacement's to take over, but the
 * replacement's init fails, or the system refuses its fork. While another
 * worker lives, that one takes the rest over: the map ends with every
 * other item's result, the slot keeps trying to start a worker with
 * backoff, and the pool maps on. Only when no worker lives and none can
 * start do items get the cause's code (MPROC_EINIT, or the fork's -errno).
 */

/* Shared with every process of the pool: mapped before it opens. */
struct starts {
    _Atomic int forks;  /* forks allowed before refusals (refuse_forks) */
    _Atomic int inits;  /* init calls (init_fails_later) */
    _Atomic int failed; /* init calls that failed */
    int good;           /* init calls that succeed: those of the opening */
    double stall;       /* seconds a failing init takes before it fails */
};
static struct starts *starts;

static struct starts *starts_map(int forks, int good, double stall)
{
    struct starts *st = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(st != MAP_FAILED);
    atomic_store(&st->forks, forks);
    st->good = good;
    st->stall = stall;
    return st;
}

/* The system refuses every fork of a worker once `forks` are spent. */
static int refuse_forks(void)
{
    return atomic_fetch_sub(&starts->forks, 1) > 0 ? 0 : -EAGAIN;
}

/* The first `good` starts succeed; every later one (a replacement's) fails
   after `stall` seconds. */
static int init_fails_later(void *arg)
{
    struct starts *st = arg;
    if (atomic_fetch_add(&st->inits, 1) < st->good)
        return 0;
    if (st->stall > 0)
        usleep((useconds_t)(st->stall * 1e6));
    atomic_fetch_add(&st->failed, 1);
    return 1;
}

/* Map n items with `chunk`, those listed in segv crashing their workers,
   and check every item (run_checked): each crashed one MPROC_ECRASHED with
   SIGSEGV, every other with its result; none with a replacement's cause. */
static void map_with_crashes(mproc_pool *p, size_t n, size_t chunk,
                             const int *segv, int nsegv)
{
    struct item it[60];
    int status[60], ws[60];
    assert_true(n <= 60);
    plain_items(it, n);
    for (int k = 0; k < nsegv; k++)
        it[segv[k]].op = SEGV;
    assert_int_equal(run_checked(p, it, n, chunk, status, ws), nsegv);
    for (int k = 0; k < nsegv; k++)
        assert_true(WIFSIGNALED(ws[segv[k]]) &&
                    WTERMSIG(ws[segv[k]]) == SIGSEGV);
}

static void replacement_that_cannot_be_forked(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    starts = starts_map(2, 0, 0);
    mproc__test_fork = refuse_forks;
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    /* Item 3 crashes its worker with items 4..9 of its chunk left: no
       replacement is ever forked, and the other worker takes them over
       (before: they waited through five refusals, then MPROC_EAGAIN). */
    map_with_crashes(p, 30, 10, (int[]){3}, 1);
    struct item it[30];
    int status[30], ws[30];
    plain_items(it, 30);
    assert_int_equal(run_checked(p, it, 30, 0, status, ws), 0);
    assert_int_equal(mproc_pool_close(p), 0);
    mproc__test_fork = NULL;
    tu_assert_released(before);
    munmap(starts, 4096);
}

static void replacement_that_cannot_start(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    starts = starts_map(0, 3, 0);
    mproc_pool *p = open_opts((mproc_options){
        .workers = 3, .init = init_fails_later, .init_arg = starts});
    /* One crash with a chunk left over: its replacement never starts, and
       the live workers take the leftover over (before: MPROC_EINIT after
       five failed starts); the pool goes on mapping on the workers it has. */
    map_with_crashes(p, 30, 10, (int[]){0}, 1);
    struct item it[30];
    int status[30], ws[30];
    plain_items(it, 30);
    assert_int_equal(run_checked(p, it, 30, 0, status, ws), 0);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
    munmap(starts, 4096);
}

static void add_long(void *acc, const void *r, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)r;
}

/* Two workers, one crashes mid-chunk, and its replacement's init fails every
   time, slowly: the live worker takes the rest over at the first failure,
   rather than after the fifth, and its fold counts it. */
static void live_worker_takes_over_from_failed_replacement(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    starts = starts_map(0, 2, 0.05 * tu_slow());
    mproc_pool *p = open_opts((mproc_options){
        .workers = 2, .init = init_fails_later, .init_arg = starts});
    struct item it[20];
    long out[20], acc = 0;
    int status[20], ws[20];
    plain_items(it, 20);
    it[3].op = SEGV;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = faulty,
                                               .in = it,
                                               .in_size = sizeof it[0],
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = 20,
                                               .chunk = 10,
                                               .status = status,
                                               .wstatus = ws,
                                               .reduce = add_long,
                                               .acc = &acc}),
                     1);
    /* Read at once: the failed slot goes on trying in the background. */
    int failed = atomic_load(&starts->failed);
    long sum = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 3)
            continue;
        if (status[i] != 0)
            fail_msg("item %d: status %d (%s), want 0", i, status[i],
                     mproc_strerror(status[i]));
        assert_int_equal(out[i], 2L * i);
        sum += 2L * i;
    }
    assert_int_equal(status[3], MPROC_ECRASHED);
    assert_true(WIFSIGNALED(ws[3]) && WTERMSIG(ws[3]) == SIGSEGV);
    assert_int_equal(acc, sum);
    /* Each failed start takes 0.05 s: five of them (the old giving up)
       would take 0.25 s, one is enough now. */
    if (failed >= 5)
        fail_msg("the map waited for %d failed starts", failed);
    plain_items(it, 20);
    assert_int_equal(run_checked(p, it, 20, 0, status, ws), 0);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
    munmap(starts, 4096);
}

/* Three workers, two crash mid-chunk and neither can be replaced: the one
   left takes both leftovers over, one after the other. */
static void one_live_worker_takes_over_two_leftovers(void **state)
{
    (void)state;
    tu_default_signals();
    struct tu_held before = tu_held();
    starts = starts_map(0, 3, 0);
    mproc_pool *p = open_opts((mproc_options){
        .workers = 3, .init = init_fails_later, .init_arg = starts});
    /* Two crashes in two chunks: two workers die, whichever claimed them,
       and the third runs everything else. */
    map_with_crashes(p, 30, 10, (int[]){3, 13}, 2);
    struct item it[30];
    int status[30], ws[30];
    plain_items(it, 30);
    assert_int_equal(run_checked(p, it, 30, 0, status, ws), 0);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
    munmap(starts, 4096);
}

/* Both workers crash and no replacement can start (init fails, or the fork
   is refused): what is left, and every later job, gets the cause's code,
   with the last failed start's wait status, and the pool still closes. */
static void no_worker_can_start(bool refuse)
{
    tu_default_signals();
    struct tu_held before = tu_held();
    starts = starts_map(2, 2, 0);
    if (refuse)
        mproc__test_fork = refuse_forks;
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2,
                                  .init = refuse ? NULL : init_fails_later,
                                  .init_arg = starts});
    int cause = refuse ? MPROC_EAGAIN : MPROC_EINIT;
    struct item it[20];
    long out[20];
    int status[20], ws[20];
    plain_items(it, 20);
    it[3].op = SEGV;
    it[13].op = SEGV;
    int r = mproc_map(p, &(mproc_job){.fn = faulty,
                                      .in = it,
                                      .in_size = sizeof it[0],
                                      .out = out,
                                      .out_size = sizeof out[0],
                                      .n = 20,
                                      .chunk = 10,
                                      .status = status,
                                      .wstatus = ws});
    int bad = 0;
    for (int i = 0; i < 20; i++) {
        if (i == 3 || i == 13) {
            assert_int_equal(status[i], MPROC_ECRASHED);
        } else if (status[i] == 0) {
            assert_int_equal(out[i], 2L * i);
        } else {
            if (status[i] != cause)
                fail_msg("item %d: status %d (%s), want 0 or %s", i, status[i],
                         mproc_strerror(status[i]), mproc_strerror(cause));
            /* how the last start ended: init's failure exit, or no fork */
            if (refuse)
                assert_int_equal(ws[i], 0);
            else
                assert_true(WIFEXITED(ws[i]) && WEXITSTATUS(ws[i]) != 0);
            bad++;
        }
    }
    /* What followed the second crash in its chunk had no worker at all. */
    assert_true(bad >= 6);
    assert_int_equal(r, bad + 2);
    plain_items(it, 20);
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = faulty,
                                               .in = it,
                                               .in_size = sizeof it[0],
                                               .n = 20,
                                               .status = status}),
                     20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(status[i], cause);
    assert_true(tu_supervisor() > 0);
    assert_int_equal(mproc_pool_close(p), 0);
    mproc__test_fork = NULL;
    tu_assert_released(before);
    munmap(starts, 4096);
}

static void no_worker_can_start_init_fails(void **state)
{
    (void)state;
    no_worker_can_start(false);
}

static void no_worker_can_start_fork_refused(void **state)
{
    (void)state;
    no_worker_can_start(true);
}

/* ---- the caller's death ---- */

/* Processes below root, from /proc. */
static int below_of(pid_t root, pid_t *out, int max)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ps -e -o pid=,ppid=");
    FILE *f = popen(cmd, "r");
    pid_t pid[4096], ppid[4096];
    int n = 0;
    while (n < 4096 && fscanf(f, "%d %d", &pid[n], &ppid[n]) == 2)
        n++;
    pclose(f);
    int k = 0;
    for (int i = 0; i < n; i++) {
        pid_t p = pid[i];
        for (int depth = 0; depth < 16 && p > 1; depth++) {
            pid_t up = 0;
            for (int j = 0; j < n; j++)
                if (pid[j] == p)
                    up = ppid[j];
            if (up == root) {
                if (k < max)
                    out[k++] = pid[i];
                break;
            }
            p = up;
        }
    }
    return k;
}

static bool gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[2] == 'Z';
}

static void caller_death(bool busy)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t c = fork();
    if (c == 0) {
        mproc_pool *p;
        if (mproc_pool_open(
                &p, &(mproc_options){.workers = 3, .timeout = 100 * tu_slow()}))
            _exit(1);
        mproc_task *t = NULL;
        if (busy) {
            static struct item it[6] = {{HANG, 0}, {HANG, 1}, {HANG, 2},
                                        {HANG, 3}, {HANG, 4}, {HANG, 5}};
            static long out[6];
            mproc_submit(p,
                         &(mproc_job){.fn = faulty,
                                      .in = it,
                                      .in_size = sizeof it[0],
                                      .out = out,
                                      .out_size = sizeof out[0],
                                      .n = 6},
                         &t);
        }
        if (write(pipefd[1], "x", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(pipefd[1]);
    char ch;
    assert_int_equal(read(pipefd[0], &ch, 1), 1);
    close(pipefd[0]);
    usleep(100000);
    pid_t pids[64];
    int n = below_of(c, pids, 64);
    assert_int_equal(n, 4); /* the supervisor and 3 workers */
    assert_int_equal(kill(c, SIGKILL), 0);
    assert_int_equal(waitpid(c, NULL, 0), c);
    double t0 = tu_now();
    for (int i = 0; i < n; i++)
        while (!gone(pids[i]) && tu_now() - t0 < 1.0 * tu_slow())
            usleep(2000);
    for (int i = 0; i < n; i++)
        if (!gone(pids[i]))
            fail_msg("pid %d outlived its caller by a second", (int)pids[i]);
}

static void caller_death_idle(void **state)
{
    (void)state;
    caller_death(false);
}

static void caller_death_busy(void **state)
{
    (void)state;
    caller_death(true);
}

struct opener {
    mproc_pool *pool;
};

static void *open_and_exit(void *arg)
{
    struct opener *o = arg;
    assert_int_equal(mproc_pool_open(&o->pool, &(mproc_options){.workers = 2}),
                     0);
    return NULL; /* the thread that opened the pool ends here */
}

static void opener_thread_may_exit(void **state)
{
    (void)state;
    struct opener o;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_and_exit, &o), 0);
    pthread_join(t, NULL);
    usleep(100000);
    struct item it[50];
    int status[50], ws[50];
    plain_items(it, 50);
    assert_int_equal(run_checked(o.pool, it, 50, 0, status, ws), 0);
    mproc_pool_close(o.pool);
}

/* ---- living in someone else's program ---- */

static void no_signal_handlers_or_masks(void **state)
{
    (void)state;
    /* Signals libc reserves (sigaction refuses them) are not compared. */
    struct sigaction before[65] = {0}, after;
    bool usable[65] = {0};
    sigset_t mb, ma;
    for (int s = 1; s < 65; s++)
        usable[s] = sigaction(s, NULL, &before[s]) == 0;
    pthread_sigmask(SIG_BLOCK, NULL, &mb);
    for (int k = 0; k < 2; k++) {
        mproc_pool *p =
            open_opts((mproc_options){.kind = tu_kinds[k], .workers = 2});
        struct item it[20];
        int status[20], ws[20];
        plain_items(it, 20);
        assert_int_equal(run_checked(p, it, 20, 0, status, ws), 0);
        mproc_pool_close(p);
    }
    for (int s = 1; s < 65; s++) {
        if (!usable[s])
            continue;
        sigaction(s, NULL, &after);
        if (after.sa_handler != before[s].sa_handler ||
            after.sa_flags != before[s].sa_flags)
            fail_msg("signal %d's disposition changed", s);
    }
    pthread_sigmask(SIG_BLOCK, NULL, &ma);
    for (int s = 1; s < 65; s++)
        assert_int_equal(sigismember(&ma, s), sigismember(&mb, s));
}

static _Atomic int reaped;

static void reap_all(int sig)
{
    (void)sig;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        atomic_fetch_add(&reaped, 1);
    errno = e;
}

static void program_reaps_its_own_children(void **state)
{
    (void)state;
    tu_default_signals();
    struct sigaction sa = {.sa_handler = reap_all, .sa_flags = SA_RESTART}, old;
    sigaction(SIGCHLD, &sa, &old);
    atomic_store(&reaped, 0);
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .timeout = tu_timeout(0.2)});
    /* The program's own children come and go while the pool works, and
       crashes in the pool are never the program's to reap. */
    for (int i = 0; i < 5; i++)
        if (fork() == 0)
            _exit(0);
    struct item it[20];
    int status[20], ws[20];
    plain_items(it, 20);
    it[4].op = SEGV;
    it[9].op = HANG;
    assert_int_equal(run_checked(p, it, 20, 0, status, ws), 2);
    double until = tu_now() + 5 * tu_slow();
    while (atomic_load(&reaped) < 5 && tu_now() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&reaped), 5); /* exactly its own five */
    /* A blocking waitpid(-1) finds no child of ours to wait for. */
    assert_int_equal(mproc_pool_close(p), 0);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    sigaction(SIGCHLD, &old, NULL);
}

static void sigchld_ignored(void **state)
{
    (void)state;
    tu_default_signals();
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ign, &old);
    struct tu_held before = tu_held();
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    struct item it[20];
    int status[20], ws[20];
    plain_items(it, 20);
    it[2].op = ABRT;
    assert_int_equal(run_checked(p, it, 20, 0, status, ws), 1);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
    sigaction(SIGCHLD, &old, NULL);
}

static void descriptors_close_on_exec(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        bool before[1024] = {0};
        for (int fd = 0; fd < 1024; fd++)
            before[fd] = fcntl(fd, F_GETFD) >= 0;
        mproc_pool *p = open_opts((mproc_options){
            .kind = tu_kinds[k], .workers = 2, .timeout = k ? 0 : 1});
        int ours = 0;
        for (int fd = 0; fd < 1024; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl < 0 || before[fd])
                continue;
            ours++;
            if (!(fl & FD_CLOEXEC))
                fail_msg("descriptor %d is not close-on-exec", fd);
        }
        /* The eventfd to the supervisor, the lifeline's pipe end where
           pidfds are missing (valgrind), and the results file of
           MPROC_OUT_BYTES (data.c): at most three, each close-on-exec. */
        assert_true(ours <= 3);
        mproc_pool_close(p);
    }
}

static _Atomic bool stop_mapping;

static void *keep_mapping(void *arg)
{
    mproc_pool *p = arg;
    struct item it[300];
    int status[300], ws[300];
    plain_items(it, 300);
    while (!atomic_load(&stop_mapping))
        assert_int_equal(run_checked(p, it, 300, 0, status, ws), 0);
    return NULL;
}

static void process_pool_opens_while_threads_run(void **state)
{
    (void)state;
    mproc_pool *tp =
        open_opts((mproc_options){.kind = MPROC_THREADS, .workers = 3});
    atomic_store(&stop_mapping, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, keep_mapping, tp), 0);
    int opens = tu_slow() == 1.0 ? 20 : 4;
    for (int i = 0; i < opens; i++) {
        mproc_pool *pp = open_opts((mproc_options){.workers = 2});
        struct item it[50];
        int status[50], ws[50];
        plain_items(it, 50);
        assert_int_equal(run_checked(pp, it, 50, 0, status, ws), 0);
        mproc_pool_close(pp);
    }
    atomic_store(&stop_mapping, true);
    pthread_join(t, NULL);
    mproc_pool_close(tp);
}

/* ---- the supervisor's death ---- */

static void supervisor_death_breaks_the_pool_cleanly(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    struct item it[8];
    long out[8];
    int status[8];
    plain_items(it, 8);
    for (int i = 4; i < 8; i++)
        it[i] = (struct item){SLOW, 2000000 * (int)tu_slow()};
    mproc_task *t;
    assert_int_equal(mproc_submit(p,
                                  &(mproc_job){.fn = faulty,
                                               .in = it,
                                               .in_size = sizeof it[0],
                                               .out = out,
                                               .out_size = sizeof out[0],
                                               .n = 8,
                                               .chunk = 1,
                                               .status = status},
                                  &t),
                     0);
    /* The four quick items done, the slow ones running. */
    size_t done = 0;
    double until = tu_now() + 30 * tu_slow();
    while (mproc_task_progress(t, &done, NULL) == 0 && done < 4 &&
           tu_now() < until)
        usleep(1000);
    assert_int_equal(done, 4);
    pid_t kids[8];
    int n = below_of(getpid(), kids, 8), killed = 0;
    for (int i = 0; i < n; i++) {
        char path[64], name[32] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", (int)kids[i]);
        FILE *f = fopen(path, "r");
        if (f && fgets(name, sizeof name, f) &&
            !strncmp(name, "mproc-super", 11))
            killed += kill(kids[i], SIGKILL) == 0;
        if (f)
            fclose(f);
    }
    assert_int_equal(killed, 1);
    double t0 = tu_now();
    int r = mproc_task_wait(t, 30 * tu_slow());
    assert_true(tu_now() - t0 <
                1.5 * tu_slow()); /* at once, not after the sleeps */
    assert_true(r >= 1 && r <= 4);
    int crashed = 0;
    for (int i = 0; i < 8; i++) {
        if (status[i] == 0)
            assert_int_equal(out[i], 2L * i);
        else
            assert_int_equal(status[i], MPROC_ECRASHED), crashed++;
    }
    assert_int_equal(crashed, r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(status[i], 0); /* finished before: kept */
    mproc_task_free(t);
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = faulty,
                                               .in = it,
                                               .in_size = sizeof it[0],
                                               .n = 1}),
                     MPROC_EBROKEN);
    assert_int_equal(mproc_pool_close(p), 0);
    tu_assert_released(before);
}

/* ---- deaths inside the board's windows (reconciliation) ---- */

static _Atomic int *kills_left; /* shared by every process */
static int kill_point;

static void kill_here(int point)
{
    if (point != kill_point || mproc_worker_id() < 0 || !kills_left)
        return;
    /* About one chance in four, while the budget lasts. */
    if ((rand() & 3) == 0 && atomic_fetch_sub(kills_left, 1) > 0)
        raise(SIGKILL);
}

static int seed_rand(void *arg)
{
    (void)arg;
    srand((unsigned)getpid());
    return 0;
}

static int twice_tiny(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = 2 * *(const long *)in;
    return 0;
}

/* Workers killed inside a window die outside any item, so no item may be
   lost, doubled or marked: every result is there, exactly once. */
static void window_deaths_lose_nothing(void **state)
{
    (void)state;
    kills_left = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    mproc__test_hook = kill_here;
    static const int points[] = {MPROC__HOOK_CLAIMING, MPROC__HOOK_CLAIMED,
                                 MPROC__HOOK_FINISHING, MPROC__HOOK_COUNTED,
                                 MPROC__HOOK_SEALED};
    size_t n = tu_slow() == 1.0 ? 20000 : 3000;
    long *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    int *status = malloc(n * sizeof *status);
    for (size_t i = 0; i < n; i++)
        in[i] = (long)i;
    for (size_t pi = 0; pi < sizeof points / sizeof points[0]; pi++) {
        kill_point = points[pi];
        atomic_store(kills_left, 12);
        mproc_pool *p =
            open_opts((mproc_options){.workers = 3, .init = seed_rand});
        for (size_t chunk = 1; chunk <= 1000; chunk *= 10) {
            for (size_t i = 0; i < n; i++)
                out[i] = -1;
            mproc_task *t;
            assert_int_equal(mproc_submit(p,
                                          &(mproc_job){.fn = twice_tiny,
                                                       .in = in,
                                                       .in_size = sizeof *in,
                                                       .out = out,
                                                       .out_size = sizeof *out,
                                                       .n = n,
                                                       .chunk = chunk,
                                                       .status = status},
                                          &t),
                             0);
            /* Every index comes back once through next, too. */
            unsigned char *seen = calloc(n, 1);
            size_t idx, count = 0;
            int r;
            while ((r = mproc_task_next(t, &idx, 30 * tu_slow())) == 0) {
                assert_true(idx < n);
                if (seen[idx])
                    fail_msg("point %d chunk %zu: item %zu handed out twice",
                             kill_point, chunk, idx);
                seen[idx] = 1;
                count++;
            }
            assert_int_equal(r, MPROC_EOF);
            assert_int_equal(count, n);
            free(seen);
            assert_int_equal(mproc_task_wait(t, 30 * tu_slow()), 0);
            mproc_task_free(t);
            for (size_t i = 0; i < n; i++)
                if (out[i] != 2 * (long)i || status[i])
                    fail_msg("point %d chunk %zu: item %zu out %ld status %d",
                             kill_point, chunk, i, out[i], status[i]);
        }
        assert_true(atomic_load(kills_left) < 12); /* some deaths happened */
        mproc_pool_close(p);
    }
    mproc__test_hook = NULL;
    free(in);
    free(out);
    free(status);
    munmap((void *)kills_left, 4096);
    kills_left = NULL;
}

/* A worker that cuts a cancelled chunk's end to what it ran, and dies before
   recording either part, once left the unstarted rest to nobody: the job
   never finished and its waiter hung. The rest must be marked cancelled,
   what ran kept, each item once. */
static void die_at_cut(int point)
{
    if (point == MPROC__HOOK_CUT && mproc_worker_id() >= 0 && kills_left &&
        atomic_fetch_sub(kills_left, 1) > 0)
        raise(SIGKILL);
}

static int slow_twice(const void *in, void *out, void *arg)
{
    (void)arg;
    usleep(300);
    *(long *)out = 2 * *(const long *)in;
    return 0;
}

static void cancel_with_deaths_after_the_cut(void **state)
{
    (void)state;
    kills_left = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    atomic_store(kills_left, 2);
    mproc__test_hook = die_at_cut;
    enum { N = 2000 };
    long *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    int *status = malloc(N * sizeof *status);
    for (size_t i = 0; i < N; i++)
        in[i] = (long)i, out[i] = -1;
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    mproc_task *t;
    assert_int_equal(mproc_submit(p,
                                  &(mproc_job){.fn = slow_twice,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = N,
                                               .chunk = 400,
                                               .status = status},
                                  &t),
                     0);
    /* Cancel once both workers are inside their first chunk. */
    size_t done = 0;
    while (done < 20) {
        assert_int_equal(mproc_task_progress(t, &done, NULL), 0);
        usleep(200);
    }
    assert_int_equal(mproc_task_cancel(t), 0);
    unsigned char *seen = calloc(N, 1);
    size_t idx, count = 0;
    int r;
    while ((r = mproc_task_next(t, &idx, 30 * tu_slow())) == 0) {
        assert_true(idx < N);
        if (seen[idx])
            fail_msg("item %zu handed out twice", idx);
        seen[idx] = 1;
        count++;
    }
    assert_int_equal(r, MPROC_EOF);
    assert_int_equal(count, N);
    int failed = mproc_task_wait(t, 30 * tu_slow());
    assert_true(failed > 0 && failed < N);
    int cancelled = 0;
    for (size_t i = 0; i < N; i++) {
        if (status[i] == 0)
            assert_int_equal(out[i], 2 * (long)i);
        else if (status[i] == MPROC_ECANCELED)
            cancelled++;
        else
            fail_msg("item %zu: status %d", i, status[i]);
    }
    assert_int_equal(cancelled, failed);
    assert_true(atomic_load(kills_left) < 2); /* a worker died at the cut */
    mproc_task_free(t);
    mproc__test_hook = NULL;
    /* The pool maps on, with the replacements. */
    for (size_t i = 0; i < N; i++)
        out[i] = -1;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = twice_tiny,
                                               .in = in,
                                               .in_size = sizeof *in,
                                               .out = out,
                                               .out_size = sizeof *out,
                                               .n = N}),
                     0);
    assert_int_equal(out[N - 1], 2L * (N - 1));
    mproc_pool_close(p);
    free(seen);
    free(in);
    free(out);
    free(status);
    munmap((void *)kills_left, 4096);
    kills_left = NULL;
}

/* ---- living in someone else's program, continued ---- */

/* A blocking wait for any child, while a pool is open, finds the program's
   own child: workers, even crashed ones, are never the caller's children. */
static void program_waits_for_its_child_while_open(void **state)
{
    (void)state;
    tu_default_signals();
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    struct item it[10];
    int status[10], ws[10];
    plain_items(it, 10);
    it[2].op = SEGV;
    it[6].op = EXIT;
    assert_int_equal(run_checked(p, it, 10, 1, status, ws), 2);
    pid_t child = fork();
    if (child == 0) {
        usleep(20000);
        _exit(7);
    }
    int st = 0;
    pid_t got;
    while ((got = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(got, child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
    assert_int_equal(run_checked(p, it, 10, 0, status, ws), 2);
    assert_int_equal(mproc_pool_close(p), 0);
}

static _Atomic int handled;

static void returning_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

/* A program's SIGSEGV handler that returns would make a faulting worker
   fault for ever; in a worker the fault signals have their default action,
   so the item costs itself only. (The timeout is there only so that a
   regression fails as ETIMEDOUT rather than hanging the test.) */
static void program_fault_handlers_do_not_hang_workers(void **state)
{
    (void)state;
    tu_default_signals();
    struct sigaction sa = {.sa_handler = returning_handler}, old_segv, old_fpe;
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGFPE, &sa, &old_fpe);
    mproc_pool *p =
        open_opts((mproc_options){.workers = 2, .timeout = tu_timeout(5)});
    struct item it[8];
    int status[8], ws[8];
    plain_items(it, 8);
    it[5].op = SEGV;
    assert_int_equal(run_checked(p, it, 8, 0, status, ws), 1);
    assert_true(WIFSIGNALED(ws[5]));
    assert_int_equal(WTERMSIG(ws[5]), SIGSEGV);
    assert_int_equal(mproc_pool_close(p), 0);
    assert_int_equal(atomic_load(&handled), 0);
    /* The program's own handlers are untouched. */
    struct sigaction now;
    sigaction(SIGSEGV, NULL, &now);
    assert_ptr_equal(now.sa_handler, returning_handler);
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGFPE, &old_fpe, NULL);
}

/* ---- the caller's death, continued: the race at a worker's birth ---- */

static _Atomic int *born;

/* In a new worker, before it asks to die with the supervisor: kill the
   supervisor and wait until this worker is an orphan. */
static void orphan_at_birth(int point)
{
    if (point != MPROC__HOOK_FORKED)
        return;
    pid_t parent = getppid();
    atomic_store(born, (int)getpid());
    kill(parent, SIGKILL);
    while (getppid() == parent)
        usleep(1000);
}

/* PR_SET_PDEATHSIG asked for after the supervisor died never fires: the
   worker must see that it was orphaned and leave on its own. */
static void worker_orphaned_before_pdeathsig_exits(void **state)
{
    (void)state;
    born = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
    assert_true(born != MAP_FAILED);
    atomic_store(born, 0);
    struct tu_held before = tu_held();
    mproc__test_hook = orphan_at_birth;
    mproc_pool *p = NULL;
    int r = mproc_pool_open(&p, &(mproc_options){.workers = 1});
    mproc__test_hook = NULL;
    assert_int_equal(r, MPROC_ECRASHED);
    assert_null(p);
    pid_t w = atomic_load(born);
    assert_true(w > 0);
    double until = tu_now() + 5 * tu_slow();
    while (!gone(w) && tu_now() < until)
        usleep(5000);
    if (!gone(w))
        fail_msg("orphaned worker %d still runs", (int)w);
    tu_assert_released(before);
    munmap((void *)born, 4096);
}

/* ---- pools opened from two threads at once ---- */

/* Distinct memfd regions of the library mapped in process pid. */
static int regions_of(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long inodes[64];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "memfd:mproc"))
            continue;
        unsigned long inode = 0;
        if (sscanf(line, "%*s %*s %*s %*s %lu", &inode) != 1)
            continue;
        bool seen = false;
        for (int i = 0; i < n; i++)
            seen |= inodes[i] == inode;
        if (!seen && n < 64)
            inodes[n++] = inode;
    }
    fclose(f);
    return n;
}

static pthread_barrier_t opening;

static void *open_one(void *arg)
{
    pthread_barrier_wait(&opening);
    mproc_pool **p = arg;
    int r = mproc_pool_open(p, &(mproc_options){.workers = 2});
    return (void *)(intptr_t)r;
}

/* Each supervisor, and each worker, holds its own pool's region and no
   other: a pool being opened in one thread is never inherited by the
   supervisor another thread forks at the same moment. */
static void concurrent_opens_keep_pools_apart(void **state)
{
    (void)state;
    struct tu_held before = tu_held();
    int rounds = tu_slow() > 1.0 ? 3 : 30;
    for (int round = 0; round < rounds; round++) {
        mproc_pool *p[2] = {NULL, NULL};
        pthread_t th[2];
        pthread_barrier_init(&opening, NULL, 2);
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, open_one, &p[i]);
        for (int i = 0; i < 2; i++) {
            void *r;
            pthread_join(th[i], &r);
            assert_int_equal((int)(intptr_t)r, 0);
        }
        pthread_barrier_destroy(&opening);
        pid_t kids[16];
        int n = below_of(getpid(), kids, 16), ours = 0;
        for (int i = 0; i < n; i++) {
            char path[64], name[32] = "";
            snprintf(path, sizeof path, "/proc/%d/comm", (int)kids[i]);
            FILE *f = fopen(path, "r");
            bool pooled =
                f && fgets(name, sizeof name, f) && !strncmp(name, "mproc-", 6);
            if (f)
                fclose(f);
            if (!pooled)
                continue; /* ps and its shell, from below_of */
            ours++;
            int k = regions_of(kids[i]);
            if (k != 1)
                fail_msg("round %d: process %d (%s) maps %d pool regions",
                         round, (int)kids[i], name, k);
        }
        assert_int_equal(ours, 6); /* two supervisors, four workers */
        long in[64], out[64];
        for (int i = 0; i < 64; i++)
            in[i] = i;
        for (int i = 0; i < 2; i++) {
            assert_int_equal(
                mproc_map(p[i], &(mproc_job){.fn = twice_tiny,
                                             .in = in,
                                             .in_size = sizeof *in,
                                             .out = out,
                                             .out_size = sizeof *out,
                                             .n = 64}),
                0);
            for (int k = 0; k < 64; k++)
                assert_int_equal(out[k], 2 * k);
        }
        assert_int_equal(mproc_pool_close(p[0]), 0);
        assert_int_equal(mproc_pool_close(p[1]), 0);
    }
    tu_assert_released(before);
}

/* ---- no leaks after many cycles ---- */

static int cycles(void)
{
    const char *e = getenv("MPROC_TEST_CYCLES");
    return e ? atoi(e) : 1000;
}

static void many_cycles_leave_nothing(void **state)
{
    (void)state;
    tu_default_signals();
    /* Warm up once, so that libc's lazily made state is not counted. */
    mproc_pool *p = open_opts((mproc_options){.workers = 2});
    mproc_pool_close(p);
    struct tu_held before = tu_held();
    int n = cycles();
    for (int i = 0; i < n; i++) {
        mproc_kind kind = i % 3 == 2 ? MPROC_THREADS : MPROC_PROCESSES;
        bool faults = kind == MPROC_PROCESSES && i % 10 == 0;
        p = open_opts((mproc_options){.kind = kind,
                                      .workers = 1 + i % 3,
                                      .timeout = faults ? tu_timeout(0.2) : 0});
        struct item it[16];
        int status[16], ws[16];
        plain_items(it, 16);
        if (faults) {
            it[3].op = SEGV;
            it[8].op = HANG;
            it[12].op = EXIT;
        }
        assert_int_equal(run_checked(p, it, 16, 0, status, ws), faults ? 3 : 0);
        assert_int_equal(mproc_pool_close(p), 0);
    }
    tu_assert_released(before);
}

/* A spawned worker whose run of the program finds the region's address
   taken (an object of its own loaded there) is started again at once:
   two such runs cost the open nothing; a run that never finds it free
   fails the open with its own code and sentence, leaving nothing. */
static void place_files(const char *pre, int count)
{
    char path[256];
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s.%d", pre, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
}

static int spawn_ten(const void *in, void *out, void *arg)
{
    (void)in, (void)arg;
    *(int *)out = 10;
    return 0;
}

static void spawn_place_taken_retried_then_refused(void **state)
{
    (void)state;
    char pre[64];
    snprintf(pre, sizeof pre, "/tmp/mproc-place-%d", (int)getpid());
    setenv("MPROC_TEST_PLACE_TAKEN", pre, 1);
    struct tu_held before = tu_held();
    place_files(pre, 2);
    mproc_pool *p;
    mproc_options o = {.workers = 1, .start = MPROC_START_SPAWN};
    assert_int_equal(mproc_pool_open(&p, &o), 0);
    int out = 0;
    assert_int_equal(mproc_map(p, &(mproc_job){.fn = spawn_ten,
                                               .out = &out,
                                               .out_size = sizeof out,
                                               .n = 1}),
                     0);
    assert_int_equal(out, 10);
    assert_int_equal(mproc_pool_close(p), 0);
    place_files(pre, 16);
    assert_int_equal(mproc_pool_open(&p, &o), -EADDRINUSE);
    assert_non_null(strstr(mproc_last_error(), "address"));
    unsetenv("MPROC_TEST_PLACE_TAKEN");
    char path[256];
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof path, "%s.%d", pre, i);
        unlink(path);
    }
    tu_assert_released(before);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(five_faults_one_map),
        cmocka_unit_test(rest_of_chunk_still_runs),
        cmocka_unit_test(pool_keeps_its_size),
        cmocka_unit_test(killed_from_outside),
        cmocka_unit_test(oom_killer),
        cmocka_unit_test(timeout_kills_only_late_items),
        cmocka_unit_test(hang_in_inherited_chunk),
        cmocka_unit_test(timeout_with_many_hangs),
        cmocka_unit_test(max_items_replaces_workers),
        cmocka_unit_test(init_runs_in_every_worker),
        cmocka_unit_test(replacement_that_cannot_start),
        cmocka_unit_test(replacement_that_cannot_be_forked),
        cmocka_unit_test(live_worker_takes_over_from_failed_replacement),
        cmocka_unit_test(one_live_worker_takes_over_two_leftovers),
        cmocka_unit_test(no_worker_can_start_init_fails),
        cmocka_unit_test(no_worker_can_start_fork_refused),
        cmocka_unit_test(caller_death_idle),
        cmocka_unit_test(caller_death_busy),
        cmocka_unit_test(opener_thread_may_exit),
        cmocka_unit_test(no_signal_handlers_or_masks),
        cmocka_unit_test(program_reaps_its_own_children),
        cmocka_unit_test(sigchld_ignored),
        cmocka_unit_test(descriptors_close_on_exec),
        cmocka_unit_test(process_pool_opens_while_threads_run),
        cmocka_unit_test(supervisor_death_breaks_the_pool_cleanly),
        cmocka_unit_test(window_deaths_lose_nothing),
        cmocka_unit_test(cancel_with_deaths_after_the_cut),
        cmocka_unit_test(many_cycles_leave_nothing),
        cmocka_unit_test(program_waits_for_its_child_while_open),
        cmocka_unit_test(program_fault_handlers_do_not_hang_workers),
        cmocka_unit_test(worker_orphaned_before_pdeathsig_exits),
        cmocka_unit_test(concurrent_opens_keep_pools_apart),
        cmocka_unit_test(spawn_place_taken_retried_then_refused),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
