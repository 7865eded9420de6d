/*
 * mproc demo: the seed notebook's cells, in C, through the public API, each
 * with its result lines, its measured time and the lesson it teaches, plus
 * the cells the notebook lacked (the shared total done right).
 */
#define _GNU_SOURCE
#include "tool.h"

#include <mproc.h>
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct demo {
    mproc_kind kind;
    mproc_start start; /* of the process pools */
    int workers; /* 0: the notebook's own counts */
    bool quick;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *kind_name(mproc_kind k)
{
    return k == MPROC_THREADS ? "threads"
           : k == MPROC_MPI   ? "MPI ranks"
                              : "processes";
}

/* With --kind mpi, the one pool of MPI ranks a run may have: every Pool
   cell uses it, whatever worker count it names (mpirun -np 6 gives the
   notebook's 5). */
static mproc_pool *ranks;

/* How the demo's process pools start (--start). Items take what they need
   from `in` or a copied `arg`, never from globals the demo set at run time,
   so that every cell runs the same on spawned workers, which have only the
   program's static initialisation. */
static mproc_start start_method;

static void cell(const char *in, const char *title)
{
    printf("\n== In [%s]: %s ==\n", in, title);
}

static void lesson(const char *text)
{
    printf("-> %s\n", text);
}

static int check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "mproc demo: %s: %s\n", what, mproc_strerror(r));
        exit(1);
    }
    return r;
}

/* ---- In [3]-[5]: a slow add ---------------------------------------------- */

typedef struct pair {
    int x, y;
} pair;

static long sleep_us;

/* The notebook's add: returns xy[1] + xy[1] (sic), after a slow sleep of
   *arg microseconds. */
static int slow_add(const void *in, void *out, void *arg)
{
    const pair *xy = in;
    usleep((useconds_t) * (const long *)arg);
    *(int *)out = xy->y + xy->y;
    return 0;
}

static pair pairs[10];

static void print_results(const int *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("result: %d\n", r[i]);
}

static mproc_pool *open_pool(mproc_kind kind, int workers)
{
    if (kind == MPROC_MPI)
        return ranks;
    mproc_pool *p;
    check(mproc_pool_open(&p, &(mproc_options){.kind = kind,
                                               .workers = workers,
                                               .start = kind == MPROC_PROCESSES
                                                            ? start_method
                                                            : 0}),
          "opening a pool");
    return p;
}

static void close_pool(mproc_pool *p)
{
    if (p != ranks)
        mproc_pool_close(p);
}

static void sleep_cells(const struct demo *d)
{
    double t0, t1;
    int one, res[10];

    cell("3", "one slow add");
    t0 = now();
    slow_add(&(pair){2, 3}, &one, &sleep_us);
    t1 = now();
    printf("result: %d\n%.3f seconds\n", one, t1 - t0);
    lesson("add sleeps: it stands for a slow calculation.");

    cell("4", "the 10 pairs, one after another");
    t0 = now();
    for (int i = 0; i < 10; i++) {
        slow_add(&pairs[i], &res[i], &sleep_us);
        printf("result: %d\n", res[i]);
    }
    t1 = now();
    printf("%.3f seconds\n", t1 - t0);
    lesson("ten slow calls in a row take ten times as long.");

    int w = d->workers ? d->workers : 5;
    mproc_pool *p = open_pool(d->kind, w);
    char title[96];
    snprintf(title, sizeof title, "the same on a pool of %d %s",
             mproc_pool_size(p), kind_name(d->kind));
    cell("5", title);
    t0 = now();
    check(mproc_map(p, &(mproc_job){.fn = slow_add,
                                    .in = pairs,
                                    .in_size = sizeof *pairs,
                                    .out = res,
                                    .out_size = sizeof *res,
                                    .n = 10,
                                    .arg = &sleep_us,
                                    .arg_size = sizeof sleep_us}),
          "map");
    t1 = now();
    print_results(res, 10);
    printf("%.3f seconds\n", t1 - t0);
    int size = mproc_pool_size(p), rounds = (10 + size - 1) / size;
    close_pool(p);
    char text[160];
    snprintf(text, sizeof text,
             "waiting is not work: workers wait side by side, so 10 sleeps on "
             "%d workers take %d sleep%s, even with few CPUs.",
             size, rounds, rounds == 1 ? "" : "s");
    lesson(text);
}

/* ---- In [6]-[7]: a CPU-bound add ----------------------------------------- */

static uint64_t spins;

/* Burn n iterations of a dependent multiply chain: real work the compiler
   cannot remove, about a nanosecond each. */
static uint64_t burn(uint64_t seed, uint64_t n)
{
    uint64_t x = seed | 1;
    for (uint64_t i = 0; i < n; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

/* Keep a value the compiler would otherwise find unused. */
static void keep(uint64_t v)
{
    __asm__ __volatile__("" : : "r"(v));
}

/* The notebook's CPU-bound add: a loop of *arg steps, then xy[0] + xy[1]. */
static int cpu_add(const void *in, void *out, void *arg)
{
    const pair *xy = in;
    keep(burn((uint64_t)xy->y, *(const uint64_t *)arg));
    *(int *)out = xy->x + xy->y;
    return 0;
}

static double time_map(mproc_kind kind, int workers, mproc_fn fn, int *res,
                       bool show)
{
    mproc_pool *p = open_pool(kind, workers);
    /* The pool of ranks cannot shrink: "1 worker" is then one chunk of all
       ten items, which one rank takes. */
    size_t chunk = kind == MPROC_MPI && workers == 1 ? 10 : 0;
    double t0 = now();
    check(mproc_map(p, &(mproc_job){.fn = fn,
                                    .in = pairs,
                                    .in_size = sizeof *pairs,
                                    .out = res,
                                    .out_size = sizeof *res,
                                    .n = 10,
                                    .chunk = chunk,
                                    .arg = &spins,
                                    .arg_size = sizeof spins}),
          "map");
    double t1 = now();
    close_pool(p);
    if (show)
        print_results(res, 10);
    return t1 - t0;
}

static int cpus(void)
{
    /* What mproc itself uses for workers = 0. */
    mproc_pool *p = open_pool(MPROC_THREADS, 0);
    int n = mproc_pool_size(p);
    mproc_pool_close(p);
    return n;
}

static void cpu_cells(const struct demo *d)
{
    int res[10];
    int many = d->workers ? d->workers : 10;
    if (d->kind == MPROC_MPI)
        many = mproc_pool_size(ranks);
    char title[128];
    snprintf(title, sizeof title,
             "a CPU-bound add (%llu multiply steps) on 1 worker, then %d %s",
             (unsigned long long)spins, many, kind_name(d->kind));
    cell("6", title);
    double t1 = time_map(d->kind, 1, cpu_add, res, true);
    printf("%.3f seconds (1 worker)\n", t1);
    double tn = time_map(d->kind, many, cpu_add, res, true);
    printf("%.3f seconds (%d workers)\n", tn, many);

    cell("7", "the speedup");
    int n = cpus();
    printf("%.3f / %.3f = %.2f, on %d CPU%s\n", t1, tn, t1 / tn, n,
           n == 1 ? "" : "s");
    lesson("for CPU-bound work the speedup is bounded by the CPUs, however "
           "many workers: more workers than CPUs just take turns.");
}

/* ---- In [8]-[12]: threads --------------------------------------------- */

static int cpu_task(const void *in, void *out, void *arg)
{
    (void)in;
    (void)arg;
    *(uint64_t *)out = burn(7, spins); /* threads: the caller's globals */
    return 0;
}

static double time_tasks(int nthreads)
{
    uint64_t sink[16];
    mproc_pool *p = open_pool(MPROC_THREADS, nthreads);
    double t0 = now();
    check(mproc_map(p, &(mproc_job){.fn = cpu_task,
                                    .out = sink,
                                    .out_size = sizeof sink[0],
                                    .n = (size_t)nthreads,
                                    .chunk = 1}),
          "map");
    double t1 = now();
    mproc_pool_close(p);
    return t1 - t0;
}

static void thread_cells(void)
{
    cell("9", "one CPU-bound task on 1 thread");
    double t1 = time_tasks(1);
    printf("%.3f seconds (1 single C thread)\n", t1);

    cell("12", "ten CPU-bound tasks on 10 threads");
    double t10 = time_tasks(10);
    printf("%.3f seconds (10 C threads)\n", t10);

    cell("11", "ten tasks against one");
    int n = cpus();
    printf("%.3f / %.3f = %.2f (serial would be 10; the CPUs allow %.1f)\n",
           t10, t1, t10 / t1, 10.0 / n);
    lesson("unlike Python's, C threads run CPU-bound code truly in parallel: "
           "ten tasks cost ten divided by the CPUs, not ten.");
}

/* ---- In [16]-[23]: a global total ----------------------------------------- */

static int total;
static _Atomic long counter;

/* The notebook's increment, on threads: one shared total. The add is atomic
   here so that the cell always ends at 40; the race is shown next. */
static int increment(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    int t = __atomic_add_fetch(&total, *(const int *)in, __ATOMIC_RELAXED);
    printf("sub total so far: %d\n", t);
    return 0;
}

static int racy_bump(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    long k = *(const long *)in;
    for (long i = 0; i < k; i++)
        atomic_store_explicit(
            &counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
            memory_order_relaxed);
    return 0;
}

static int atomic_bump(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    long k = *(const long *)in;
    for (long i = 0; i < k; i++)
        atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    return 0;
}

/* The item takes a moment, as the notebook's print does in Python, so that
   both workers get some of the eight and each shows its own total. */
static void moment(void)
{
    usleep(3000);
}

static int increment_pid(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    moment();
    total += *(const int *)in;
    printf("%d: sub total so far: %d\n", (int)getpid(), total);
    fflush(stdout);
    return 0;
}

static const int fives[8] = {5, 5, 5, 5, 5, 5, 5, 5};

static void global_cells(const struct demo *d)
{
    cell("17", "a global total, 8 threads each adding 5");
    total = 0;
    mproc_pool *p = open_pool(MPROC_THREADS, 8);
    check(mproc_map(p, &(mproc_job){.fn = increment,
                                    .in = fives,
                                    .in_size = sizeof fives[0],
                                    .n = 8,
                                    .chunk = 1}),
          "map");
    printf("Final result: %d\n", total);

    long each = d->quick ? 200000 : 2000000, in[8];
    for (int i = 0; i < 8; i++)
        in[i] = each;
    atomic_store(&counter, 0);
    check(mproc_map(p, &(mproc_job){.fn = racy_bump,
                                    .in = in,
                                    .in_size = sizeof in[0],
                                    .n = 8,
                                    .chunk = 1}),
          "map");
    long racy = atomic_load(&counter);
    atomic_store(&counter, 0);
    check(mproc_map(p, &(mproc_job){.fn = atomic_bump,
                                    .in = in,
                                    .in_size = sizeof in[0],
                                    .n = 8,
                                    .chunk = 1}),
          "map");
    long exact = atomic_load(&counter);
    mproc_pool_close(p);
    printf("8 x %ld increments, read-add-write: %ld (%ld lost)\n", each, racy,
           8 * each - racy);
    printf("8 x %ld increments, atomic add:     %ld\n", each, exact);
    lesson("threads share one copy of the globals: every thread sees and "
           "changes the same total, so unguarded updates race and get lost; "
           "an atomic add does not.");

    cell("22", "the same global total on a pool of 2 processes");
    total = 0;
    p = open_pool(MPROC_PROCESSES, 2);
    check(mproc_map(p, &(mproc_job){.fn = increment_pid,
                                    .in = fives,
                                    .in_size = sizeof fives[0],
                                    .n = 8,
                                    .chunk = 1}),
          "map");
    mproc_pool_close(p);

    cell("23", "total, in the caller, afterwards");
    printf("%d\n", total);
    lesson(start_method == MPROC_START_SPAWN
               ? "each spawned worker is a fresh run of the program and "
                 "changes its own globals, as static initialisation left "
                 "them; the caller's total stays 0."
               : "each worker process changes its own copy of the globals, "
                 "made when the pool opened; the caller's total stays 0.");
}

/* ---- New cells: the shared total done right --------------------------------- */

static int add_shared(const void *in, void *out, void *arg)
{
    (void)out;
    _Atomic long *shared_total = arg;
    moment();
    long t = atomic_fetch_add_explicit(shared_total, *(const int *)in,
                                       memory_order_relaxed) +
             *(const int *)in;
    printf("worker %d: shared total so far: %ld\n", mproc_worker_id(), t);
    fflush(stdout);
    return 0;
}

static int identity(const void *in, void *out, void *arg)
{
    (void)arg;
    *(long *)out = *(const int *)in;
    return 0;
}

static void sum_long(void *acc, const void *result, void *arg)
{
    (void)arg;
    *(long *)acc += *(const long *)result;
}

/* In [24]: the total as an atomic in the shared arena. */
static void arena_cell(const struct demo *d)
{
    if (d->kind == MPROC_MPI) {
        cell("24 (new)", "the total in shared memory, on MPI ranks");
        printf("(not run: ranks share no memory)\n");
        lesson("MPI ranks may be other machines: no memory is shared, so no "
               "atomic can total across them; a reduction can, next.");
        return;
    }
    char title[80];
    snprintf(title, sizeof title,
             "the total in the shared arena, on a pool of 2 %s",
             kind_name(d->kind));
    cell("24 (new)", title);
    mproc_pool *p;
    check(mproc_pool_open(&p, &(mproc_options){.kind = d->kind,
                                               .workers = 2,
                                               .shared_size = 1 << 20,
                                               .start = d->start}),
          "open");
    _Atomic long *shared_total = mproc_shared_alloc(p, sizeof *shared_total);
    if (!shared_total)
        check(-errno, "mproc_shared_alloc");
    check(mproc_map(p, &(mproc_job){.fn = add_shared,
                                    .in = fives,
                                    .in_size = sizeof fives[0],
                                    .n = 8,
                                    .chunk = 1,
                                    .arg = (void *)shared_total}),
          "map");
    printf("Final result, in the caller: %ld\n", atomic_load(shared_total));
    mproc_shared_free(p, (void *)shared_total);
    mproc_pool_close(p);
    lesson("memory from mproc_shared_alloc is mapped at the same address in "
           "the caller and every worker: one total, and an atomic add on it "
           "works across processes.");
}

/* In [25]: the same total as a reduction. */
static void reduce_cell(const struct demo *d)
{
    cell("25 (new)", "the same total as a reduction, no atomics, no sharing");
    mproc_pool *p = open_pool(d->kind, 2);
    long acc = 0;
    check(mproc_map(p, &(mproc_job){.fn = identity,
                                    .in = fives,
                                    .in_size = sizeof fives[0],
                                    .out_size = sizeof(long),
                                    .n = 8,
                                    .reduce = sum_long,
                                    .acc = &acc}),
          "map");
    close_pool(p);
    printf("Final result: %ld\n", acc);
    lesson("a reduction folds each worker's results in its own partial and "
           "the caller folds the partials: no lock, no shared state, and a "
           "crashed item would lose only itself.");
}

/* ---- New cell: progress of a long map ---------------------------------------- */

static int nap(const void *in, void *out, void *arg)
{
    (void)in;
    (void)out;
    usleep((useconds_t) * (const long *)arg);
    return 0;
}

static void progress_cell(const struct demo *d)
{
    size_t n = 200;
    long us = d->quick ? 1000 : 10000;
    mproc_pool *p = open_pool(d->kind, d->workers ? d->workers : 4);
    int workers = mproc_pool_size(p);
    cell("26 (new)", "a long map, watched while it runs");
    printf("%zu items of %.0f ms on %d %s\n", n, (double)us / 1000, workers,
           kind_name(d->kind));
    mproc_task *t;
    double t0 = now();
    check(
        mproc_submit(
            p,
            &(mproc_job){.fn = nap, .n = n, .arg = &us, .arg_size = sizeof us},
            &t),
        "submit");
    size_t done = 0, total_n = 0;
    int r;
    do {
        r = mproc_task_wait(t, 0.05);
        mproc_task_progress(t, &done, &total_n);
        int bar = (int)(40 * done / total_n);
        printf("\r[%.*s%*s] %3zu/%zu", bar,
               "========================================", 40 - bar, "", done,
               total_n);
        fflush(stdout);
    } while (r == MPROC_ETIMEDOUT);
    check(r, "wait");
    printf("\n%.3f seconds (ideal %.3f)\n", now() - t0,
           (double)n * (double)us / 1e6 / workers);
    mproc_task_free(t);
    close_pool(p);
    lesson("mproc_submit returns at once; mproc_task_progress reads how far "
           "the map is from any thread while it runs, and mproc_task_wait "
           "with a timeout lets the caller draw between looks.");
}

/* ---- New cell: strings in, results of any length out ------------------- */

/* A file's longest line, whole, however long: the path is a string item and
   the line a result of its own length. */
static int longest_line(const void *in, void *out, void *arg)
{
    (void)out;
    (void)arg;
    FILE *f = fopen(*(const char *const *)in, "r");
    if (!f)
        return errno;
    char *line = NULL, *best = NULL;
    size_t cap = 0, best_len = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        size_t text = (size_t)len - (len > 0 && line[len - 1] == '\n');
        if (!best || text > best_len) {
            free(best);
            best = malloc(text + 1);
            if (best)
                memcpy(best, line, text);
            best_len = text;
        }
    }
    free(line);
    fclose(f);
    char *r = mproc_result(best_len);
    if (r && best_len)
        memcpy(r, best, best_len);
    free(best);
    return r ? 0 : errno;
}

static void files_cell(const struct demo *d)
{
    mproc_pool *p = open_pool(d->kind, d->workers ? d->workers : 2);
    cell("27 (new)", "each file's longest line, file names in, lines out");
    /* Written after the pool opened: process workers get copies of the
       names, whatever memory they are in. */
    enum { FILES = 5 };
    static const size_t longest[FILES] = {12, 1156, 80, 0, 300};
    char dir[] = "/tmp/mproc-demo-XXXXXX";
    char *paths[FILES];
    if (!mkdtemp(dir)) {
        perror("mproc demo: mkdtemp");
        exit(1);
    }
    for (int i = 0; i < FILES; i++) {
        if (asprintf(&paths[i], "%s/file%d.txt", dir, i) < 0)
            exit(1);
        FILE *f = fopen(paths[i], "w");
        if (!f) {
            perror("mproc demo: writing a file");
            exit(1);
        }
        fprintf(f, "short\n");
        for (size_t k = 0; k < longest[i]; k++)
            fputc(k % 8 == 7 ? ' ' : 'a' + (int)((k + (size_t)i) % 26), f);
        fprintf(f, "\nend\n");
        fclose(f);
    }
    mproc_bytes lines[FILES];
    int status[FILES];
    check(
        mproc_map(p, &(mproc_job){.fn = longest_line,
                                  .in = paths,
                                  .out = lines,
                                  .n = FILES,
                                  .status = status,
                                  .flags = MPROC_IN_STRINGS | MPROC_OUT_BYTES}),
        "map over file names");
    for (int i = 0; i < FILES; i++) {
        if (status[i])
            printf("%s: %s\n", paths[i], strerror(status[i]));
        else
            printf("%s: %zu bytes: %.*s%s\n", strrchr(paths[i], '/') + 1,
                   lines[i].size,
                   (int)(lines[i].size < 40 ? lines[i].size : 40),
                   lines[i].size ? (char *)lines[i].data : "",
                   lines[i].size > 40 ? "..." : "");
        free(lines[i].data);
        unlink(paths[i]);
        free(paths[i]);
    }
    rmdir(dir);
    close_pool(p);
    lesson("MPROC_IN_STRINGS hands each worker its own copy of a string the "
           "caller made at any time; MPROC_OUT_BYTES brings back whole "
           "results of any length, each the caller's to free().");
}

static const char usage_text[] =
    "usage: mproc demo [--kind processes|threads|mpi] [--workers N]\n"
    "                  [--start fork|spawn] [--quick]\n"
    "\n"
    "  demo   the multiprocessing notebook's cells, in C, each with its\n"
    "         results, its time and its lesson. --kind and --workers set the\n"
    "         pool of the Pool cells; --start how process workers start\n"
    "         (forked, the default, or spawned: fresh runs of the program);\n"
    "         --quick shortens sleeps and loops. --kind mpi runs under\n"
    "         mpirun -np N: the Pool cells use the N-1 ranks other than 0.\n";

/* The options into d: -1 to run the demo, else the exit status to return
   at once (after --help, or a usage error). */
static int options(struct demo *d, int argc, char **argv)
{
    enum { KIND = 256, WORKERS, QUICK, START };
    static const struct option longs[] = {
        {"kind", required_argument, NULL, KIND},
        {"start", required_argument, NULL, START},
        {"workers", required_argument, NULL, WORKERS},
        {"quick", no_argument, NULL, QUICK},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    /* getopt_long names the program by argv[0] in its own errors. */
    argv[0] = "mproc demo";
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char *end;
        long w;
        switch (c) {
        case QUICK:
            d->quick = true;
            break;
        case KIND:
            if (!strcmp(optarg, "processes"))
                d->kind = MPROC_PROCESSES;
            else if (!strcmp(optarg, "threads"))
                d->kind = MPROC_THREADS;
            else if (!strcmp(optarg, "mpi"))
                d->kind = MPROC_MPI;
            else
                return tool_usage_error(
                    "demo", "--kind is processes, threads or mpi, not '%s'",
                    optarg);
            break;
        case START:
            if (!strcmp(optarg, "fork"))
                d->start = MPROC_START_FORK;
            else if (!strcmp(optarg, "spawn"))
                d->start = MPROC_START_SPAWN;
            else
                return tool_usage_error(
                    "demo", "--start is fork or spawn, not '%s'", optarg);
            break;
        case WORKERS:
            w = strtol(optarg, &end, 10);
            if (*end || w < 1 || w > 1024)
                return tool_usage_error(
                    "demo", "--workers takes 1 to 1024, not '%s'", optarg);
            d->workers = (int)w;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            return tool_usage_error("demo", NULL);
        }
    }
    if (optind < argc)
        return tool_usage_error("demo", "unexpected argument '%s'",
                                argv[optind]);
    if (d->start == MPROC_START_SPAWN && d->kind == MPROC_MPI)
        return tool_usage_error("demo", "--start spawn is for processes; MPI "
                                        "ranks are started by mpirun");
    return -1;
}

int tool_demo(int argc, char **argv)
{
    struct demo d = {.kind = MPROC_PROCESSES};
    int status = options(&d, argc, argv);
    if (status >= 0)
        return status;
    start_method = d.start;
    for (int i = 0; i < 10; i++)
        pairs[i] = (pair){10, i + 1};

    sleep_us = d.quick ? 20000 : 100000;
    spins = d.quick ? 3000000 : 60000000;
    if (d.kind == MPROC_MPI) {
        /* After the globals the items read are set (each rank runs this
           program from the start, and its items see what its own run set
           before the open), before anything is printed: ranks other than 0
           serve in here and exit when the demo closes the pool. */
        check(mproc_pool_open(&ranks, &(mproc_options){.kind = MPROC_MPI,
                                                       .workers = d.workers}),
              "opening the pool of MPI ranks (run under mpirun, 2 ranks or "
              "more)");
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("mproc demo: the multiprocessing notebook, in C (%s%s%s)\n",
           kind_name(d.kind),
           d.start == MPROC_START_SPAWN ? ", spawned" : "",
           d.quick ? ", quick" : "");
    sleep_cells(&d);
    cpu_cells(&d);
    thread_cells();
    global_cells(&d);
    arena_cell(&d);
    reduce_cell(&d);
    progress_cell(&d);
    files_cell(&d);
    if (ranks)
        mproc_pool_close(ranks);
    return 0;
}
