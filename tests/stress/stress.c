/*
 * Stress: random crashes (SIGSEGV, abort, _exit), hangs, error codes and
 * slow items over many maps, plus workers killed at random inside the
 * board's protocol windows, tasks killed at random moments
 * (mproc_task_kill), the supervisor or a worker stopped and continued
 * (SIGSTOP, SIGCONT), and one pool ended by mproc_pool_terminate. Every map must end in bounded time, every
 * healthy item's result must be right, every failed item must carry the
 * right code.
 *
 *   stress [--maps N] [--items N] [--workers N] [--seed S] [--timeout SEC]
 *          [--points MASK]   (window kills only at these hook points)
 *          [--start fork|spawn]
 *          [--init-fails PCT] (a replacement's init fails PCT% of the time:
 *                              live workers take its work over; an item
 *                              may then also be MPROC_EINIT, never run,
 *                              when for a while no worker could start)
 *
 * A map that outlives its bound is a hang: the watchdog prints the board as
 * it stands (job slots, worker slots, the job's records) and fails the run
 * at once, instead of leaving ctest to time out with nothing said.
 *
 * ctest runs a short round; docs/reliability.md gives the long one.
 * Linked with the hooked library (src/board.h, "Test hooks").
 */
#define _GNU_SOURCE
#include "internal.h"

#include <inttypes.h>
#include <mproc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum op { OK, SEGV, ABRT, EXIT, HANG, ERR, SLOW };

struct item {
    int op, v;
    int slot; /* where in `runs` this item counts its runs */
};

/* Runs of each item, counted by the workers: an item runs at most once
   (a crash marks it, never retries it). Shared with the worker processes. */
static _Atomic int *runs;

static volatile int *volatile bad_address = (volatile int *)16;

__attribute__((noinline, no_sanitize("address", "undefined"))) static void
segfault(void)
{
    *bad_address = 1;
}

static int work(const void *in, void *out, void *arg)
{
    const struct item *it = in;
    (void)arg;
    atomic_fetch_add_explicit(&runs[it->slot], 1, memory_order_relaxed);
    switch (it->op) {
    case SEGV:
        segfault();
        break;
    case ABRT:
        abort();
    case EXIT:
        _exit(7);
    case HANG:
        for (;;)
            pause();
    case ERR:
        return 1 + it->v % 100;
    case SLOW:
        usleep((useconds_t)(it->v % 2000));
        break;
    }
    *(long *)out = 3L * it->v + 1;
    return 0;
}

static int want_code(const struct item *it)
{
    switch (it->op) {
    case SEGV:
    case ABRT:
    case EXIT:
        return MPROC_ECRASHED;
    case HANG:
        return MPROC_ETIMEDOUT;
    case ERR:
        return 1 + it->v % 100;
    default:
        return 0;
    }
}

/* Window kills: shared budget, per-worker random stream. */
static _Atomic int *kills_left;
static unsigned kill_points = ~0u; /* bit per MPROC__HOOK_ point */

static void window_kill(int point)
{
    if ((kill_points >> point & 1) && mproc_worker_id() >= 0 && rand() % 400 == 0 &&
        atomic_fetch_sub(kills_left, 1) > 0)
        raise(SIGKILL);
}

/* Replacements' inits fail this often (percent); set once the pools are
   open, in memory shared with them, so that the opening's inits succeed. */
static _Atomic int *init_fails;
static int init_fail_pct;

/* A spawned worker (--start spawn) has none of the caller's memory: it maps
   the counters from the descriptor the environment names, and sets the
   window-kill hook and its points itself. */
static void map_counters(int fd, size_t items);

static int worker_init(void *arg)
{
    (void)arg;
    const char *shm = getenv("STRESS_SHM");
    if (!runs && shm) {
        int fd;
        size_t items;
        if (sscanf(shm, "%d,%zu,%x", &fd, &items, &kill_points) != 3)
            return 1;
        map_counters(fd, items);
        if (!runs)
            return 1;
        mproc__test_hook = window_kill;
    }
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    signal(SIGSEGV, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    return rand() % 100 < atomic_load(init_fails);
}

static void map_counters(int fd, size_t items)
{
    size_t size = 4096 + 2 * items * sizeof *runs;
    char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return;
    kills_left = (_Atomic int *)(void *)m;
    init_fails = kills_left + 1;
    runs = (_Atomic int *)(void *)(m + 4096);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct batch {
    struct item *it;
    long *out;
    int *status;
    size_t n, chunk;
};

/* Without hangs for the pool without a timeout. */
static void fill(struct batch *bt, size_t max_items, int k, bool hangs)
{
    bt->n = (size_t)rand() % max_items + 1;
    bt->chunk = rand() % 3 ? 0 : (size_t)(rand() % 50 + 1);
    for (size_t i = 0; i < bt->n; i++) {
        int r = rand() % 1000, op = OK;
        if (r < 6)
            op = SEGV;
        else if (r < 10)
            op = ABRT;
        else if (r < 14)
            op = EXIT;
        else if (r < 17)
            op = hangs ? HANG : SLOW;
        else if (r < 60)
            op = ERR;
        else if (r < 120)
            op = SLOW;
        bt->it[i] = (struct item){op, rand(), (int)(k * max_items + i)};
        atomic_store(&runs[bt->it[i].slot], 0);
        bt->out[i] = -1;
        bt->status[i] = 12345;
    }
}

static mproc_job job_of(struct batch *bt)
{
    return (mproc_job){.fn = work, .in = bt->it, .in_size = sizeof *bt->it,
                       .out = bt->out, .out_size = sizeof *bt->out, .n = bt->n,
                       .chunk = bt->chunk, .status = bt->status};
}

/* ---- the watchdog ---- */

static const char *const state_name[] = {"free", "init", "idle", "claiming",
                                         "running", "finishing", "exiting"};

#define LD(x) atomic_load_explicit(&(x), memory_order_acquire)

static void dump_job(const struct mproc__job *j, int k)
{
    uint64_t id = LD(j->id), claim = LD(j->claim), fin = LD(j->fin);
    if (!id)
        return;
    uint64_t recs = fin >> 40;
    fprintf(stderr,
            "  job slot %d: id %" PRIu64 " n %" PRIu64 " chunk %" PRIu64
            " claim %" PRIu64 " (gen %" PRIu64 ") fin %" PRIu64 " items in %" PRIu64
            " records, cancel %u gone %" PRIu64 " readers %u\n",
            k, id, LD(j->n), LD(j->chunk), claim & ((UINT64_C(1) << 40) - 1),
            claim >> 40, fin & ((UINT64_C(1) << 40) - 1), recs, LD(j->cancel),
            LD(j->gone), LD(j->readers));
    if (LD(j->gone) == id)
        return; /* finished and freed: its log is another job's now */
    for (uint64_t r = 0; r < recs && r < mproc__log_cap(j) && r < 200; r++) {
        uint64_t range = LD(mproc__log(j)[r].range), seal = LD(mproc__log(j)[r].seal);
        fprintf(stderr, "    record %" PRIu64 ": [%" PRIu64 ", +%" PRIu64 ") failed %" PRIu64
                        " tag %" PRIu64 "%s\n",
                r, range & ((UINT64_C(1) << 40) - 1), range >> 40, seal & 0xffffff,
                seal >> 24 & MPROC__TAG_MASK, seal & MPROC__NORUN ? " norun" : "");
    }
}

static void dump_board(const struct mproc__board *b)
{
    fprintf(stderr,
            "board: epoch %u sleepers %u claim_head %" PRIu64 " tail %" PRIu64
            " closing %u broken %u\n",
            LD(b->epoch), LD(b->sleepers), LD(b->claim_head), LD(b->tail),
            LD(b->closing), LD(b->broken));
    for (int k = 0; k < MPROC__RING; k++)
        dump_job(&b->jobs[k], k);
    for (int w = 0; w <= b->workers; w++) {
        const struct mproc__slot *s = &b->slots[w];
        uint32_t st = LD(s->state);
        fprintf(stderr,
                "  %s %d: pid %d %s js %u job %" PRIu64 " [%" PRIu64 ", %" PRIu64
                ") commit %" PRIu64 " failed %" PRIu64 " deadline %" PRIu64
                " inherit %u [%" PRIu64 ", %" PRIu64 ") of %" PRIu64 "\n",
                w < b->workers ? "worker" : "caller's slot", w, (int)LD(s->pid),
                st < sizeof state_name / sizeof *state_name ? state_name[st] : "?",
                LD(s->js), LD(s->job), LD(s->start), LD(s->end), LD(s->commit) >> 1,
                LD(s->failed), LD(s->deadline), LD(s->inherit),
                LD(s->inh_start), LD(s->inh_end), LD(s->inh_job));
    }
}

static struct {
    mproc_pool *_Atomic pool;
    _Atomic int map;          /* the map running; -1 between maps */
    _Atomic uint64_t due_ns;  /* when it is late */
} watch = {.map = -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *watchdog(void *unused)
{
    (void)unused;
    for (;;) {
        usleep(100000);
        int m = atomic_load(&watch.map);
        uint64_t due = atomic_load(&watch.due_ns);
        if (m < 0 || now_ns() < due || m != atomic_load(&watch.map))
            continue;
        fprintf(stderr, "stress: map %d is past its bound: a hang\n", m);
        dump_board(atomic_load(&watch.pool)->board);
        fflush(stderr);
        _exit(1); /* the workers and the supervisor follow the caller */
    }
    return NULL;
}

/* Check a finished batch against what its items asked for; after a kill,
   any item may instead be cancelled (killed while it ran, or never run). */
static int check(const struct batch *bt, int r, int map, bool killed)
{
    int failed = 0, bad = 0;
    for (size_t i = 0; i < bt->n; i++) {
        int want = want_code(&bt->it[i]);
        int ran = atomic_load(&runs[bt->it[i].slot]);
        if (killed && bt->status[i] == MPROC_ECANCELED) {
            failed++;
            if (ran > 1) {
                fprintf(stderr, "map %d item %zu: ran %d times\n", map, i, ran);
                bad++;
            }
            continue;
        }
        if (init_fail_pct && bt->status[i] == MPROC_EINIT && ran == 0) {
            failed++;
            continue;
        }
        failed += want != 0;
        if (ran > 1 || (!want && ran != 1)) {
            fprintf(stderr, "map %d item %zu op %d: ran %d times\n", map, i,
                    bt->it[i].op, ran);
            bad++;
        }
        if (bt->status[i] != want) {
            fprintf(stderr, "map %d item %zu op %d: status %d, want %d\n", map, i,
                    bt->it[i].op, bt->status[i], want);
            bad++;
        } else if (!want && bt->out[i] != 3L * bt->it[i].v + 1) {
            fprintf(stderr, "map %d item %zu: wrong result\n", map, i);
            bad++;
        }
    }
    if (r != failed) {
        fprintf(stderr, "map %d: returned %d, want %d\n", map, r, failed);
        bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int maps = 50, workers = 3;
    mproc_start start = MPROC_START_FORK;
    size_t items = 500;
    unsigned seed = 1;
    double timeout = 0.2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--maps"))
            maps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--items"))
            items = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers"))
            workers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = (unsigned)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout"))
            timeout = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--points"))
            kill_points = (unsigned)strtoul(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--start") &&
                 (!strcmp(argv[i + 1], "fork") ||
                  !strcmp(argv[i + 1], "spawn")))
            start = argv[i + 1][0] == 's' ? MPROC_START_SPAWN
                                          : MPROC_START_FORK;
        else if (!strcmp(argv[i], "--init-fails"))
            init_fail_pct = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "stress: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (maps < 1 || items < 1 || workers < 1 || timeout <= 0) {
        fprintf(stderr, "stress: counts must be positive\n");
        return 2;
    }
    srand(seed);
    /* The counters workers share with us: in a memfd that spawned workers
       inherit (no close-on-exec) and map in worker_init. */
    int shm = memfd_create("stress", 0);
    if (shm < 0 || ftruncate(shm, (off_t)(4096 + 2 * items * sizeof *runs))) {
        perror("stress: memfd");
        return 1;
    }
    map_counters(shm, items);
    if (!runs) {
        perror("stress: mmap");
        return 1;
    }
    atomic_store(kills_left, maps);
    char env[64];
    snprintf(env, sizeof env, "%d,%zu,%x", shm, items, kill_points);
    setenv("STRESS_SHM", env, 1);
    mproc__test_hook = window_kill;

    /* Two pools: with a timeout, and without one, whose workers take the
       item loop that has no deadline to keep (board.c, run_plain_isolated). */
    mproc_pool *pools[2];
    for (int k = 0; k < 2; k++) {
        int r = mproc_pool_open(&pools[k],
                                &(mproc_options){.workers = workers,
                                                 .timeout = k ? 0 : timeout,
                                                 .init = worker_init,
                                                 .start = start});
        if (r) {
            fprintf(stderr, "stress: open: %s\n", mproc_strerror(r));
            return 1;
        }
    }
    atomic_store(init_fails, init_fail_pct);
    int r;
    pthread_t dog;
    if (pthread_create(&dog, NULL, watchdog, NULL)) {
        fprintf(stderr, "stress: cannot start the watchdog\n");
        return 1;
    }
    pthread_detach(dog);
    struct batch bt[2];
    for (int k = 0; k < 2; k++) {
        bt[k].it = malloc(items * sizeof *bt[k].it);
        bt[k].out = malloc(items * sizeof *bt[k].out);
        bt[k].status = malloc(items * sizeof *bt[k].status);
    }

    int bad = 0;
    long total = 0, crashed = 0;
    double worst = 0, t_all = now();
    for (int m = 0; m < maps && !bad; m++) {
        int mode = rand() % 5, nb = mode == 2 ? 2 : 1;
        bool killed = false;
        mproc_pool *p = pools[rand() % 2];
        int hangs = 0;
        for (int k = 0; k < nb; k++) {
            fill(&bt[k], items, k, p == pools[0]);
            for (size_t i = 0; i < bt[k].n; i++)
                hangs += bt[k].it[i].op == HANG;
        }
        /* Bounded: the hangs, a timeout each, share the workers. */
        double bound = 10.0 + 2 * timeout * (hangs + 1);
        atomic_store(&watch.due_ns, now_ns() + (uint64_t)(2 * bound * 1e9));
        atomic_store(&watch.pool, p);
        atomic_store(&watch.map, m);
        double t0 = now();
        int res[2] = {0, 0};
        if (mode == 0) {
            mproc_job j = job_of(&bt[0]);
            res[0] = mproc_map(p, &j);
        } else {
            /* Tasks: drained through next (each index once), or two at once. */
            mproc_task *t[2];
            for (int k = 0; k < nb; k++) {
                mproc_job j = job_of(&bt[k]);
                if ((r = mproc_submit(p, &j, &t[k]))) {
                    fprintf(stderr, "stress: submit: %s\n", mproc_strerror(r));
                    return 1;
                }
            }
            if (mode == 1) {
                unsigned char *seen = calloc(bt[0].n, 1);
                size_t idx, got = 0;
                while ((r = mproc_task_next(t[0], &idx, -1)) == 0) {
                    if (idx >= bt[0].n || seen[idx]++) {
                        fprintf(stderr, "map %d: next gave %zu twice\n", m, idx);
                        bad++;
                    }
                    got++;
                }
                if (r != MPROC_EOF || got != bt[0].n) {
                    fprintf(stderr, "map %d: next ended %d after %zu of %zu\n", m, r,
                            got, bt[0].n);
                    bad++;
                }
                free(seen);
            }
            if (mode == 3) {
                /* Kill at a random moment: before anything ran, or while
                   items run (hung ones included). */
                usleep((useconds_t)(rand() % 3000));
                if ((r = mproc_task_kill(t[0]))) {
                    fprintf(stderr, "map %d: kill: %s\n", m, mproc_strerror(r));
                    bad++;
                }
                killed = true;
            }
            if (mode == 4) {
                /* Stop and continue the supervisor, or (where no timeout
                   counts the time) a worker: nothing may change. */
                struct mproc__board *b = p->board;
                pid_t victim = p->zpid;
                if (p == pools[1] && rand() % 2)
                    victim = atomic_load(&b->slots[rand() % workers].pid);
                usleep((useconds_t)(rand() % 2000));
                if (victim > 0 && kill(victim, SIGSTOP) == 0) {
                    usleep((useconds_t)(rand() % 5000));
                    kill(victim, SIGCONT);
                }
            }
            for (int k = 0; k < nb; k++) {
                res[k] = mproc_task_wait(t[k], -1);
                mproc_task_free(t[k]);
            }
        }
        double took = now() - t0;
        atomic_store(&watch.map, -1);
        if (took > bound) {
            fprintf(stderr, "map %d took %.2f s, bound %.2f s\n", m, took, bound);
            bad++;
        }
        if (took > worst)
            worst = took;
        for (int k = 0; k < nb; k++) {
            bad += check(&bt[k], res[k], m, killed);
            total += (long)bt[k].n;
            crashed += res[k];
        }
    }
    /* One pool closes, the other terminates: with a task still running on
       it, whose items are then cancelled (killed or never run). */
    mproc_pool_close(pools[0]);
    fill(&bt[0], items, 0, false);
    mproc_task *last;
    mproc_job j = job_of(&bt[0]);
    if ((r = mproc_submit(pools[1], &j, &last))) {
        fprintf(stderr, "stress: submit: %s\n", mproc_strerror(r));
        return 1;
    }
    if ((r = mproc_pool_terminate(pools[1]))) {
        fprintf(stderr, "stress: terminate: %s\n", mproc_strerror(r));
        bad++;
    }
    bad += check(&bt[0], mproc_task_wait(last, -1), maps, true);
    mproc_task_free(last);
    for (int k = 0; k < 2; k++) {
        free(bt[k].it);
        free(bt[k].out);
        free(bt[k].status);
    }
    int left = atomic_load(kills_left);
    int window_kills = maps - (left < 0 ? 0 : left);
    printf("stress: %d maps, %ld items, %ld failed as planned, %d window kills, "
           "%.2f s, slowest map %.2f s: %s\n",
           maps, total, crashed, window_kills, now() - t_all,
           worst, bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
