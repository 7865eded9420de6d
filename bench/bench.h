/*
 * mproc bench: the measured comparison behind `mproc bench`.
 *
 * The harness (main.c, the verb behind include/mproc_bench.h, the one
 * entry the tool knows) runs each workload (workloads.c) on each system in
 * one process: serial C, OpenMP (omp.c), mproc threads and processes,
 * and Python's Pool and ThreadPool (python.c runs pool_bench.py as a
 * child). Every system applies the same item function
 * (items.c) through a function pointer, as mproc must: an inlined loop
 * measures the compiler, not the scheduler. Results become rows
 * (report.c), printed as tables, written as CSV, drawn with gnuplot.
 */
#ifndef MPROC_BENCH_H
#define MPROC_BENCH_H

#include <mproc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_REPS 50

/* ---- what a run knows (main.c) --------------------------------------- */

struct bench {
    bool quick;
    int reps;              /* measured repetitions of each figure */
    int cores;             /* what mproc uses for workers = 0 */
    bool python;           /* run the Python systems */
    const char *no_python; /* why not, when not */
    mproc_pool *threads;   /* warm pools of `cores` workers, opened once */
    mproc_pool *procs;
    mproc_pool *mpi;     /* under mpirun: the other ranks; else NULL */
    const char *no_mpi;  /* why not, when not */
    double spins_per_us; /* bench_chain steps per microsecond */
    int index, count;    /* workload being run, of how many */
    const char *title;
    bool progress; /* show the progress line (stderr is a terminal) */
};

/* report.c: show what runs now on the progress line (stderr, when
   b->progress). fmt NULL clears the line. */
void bench_progress(const struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* report.c: print an error and exit 1. A map that failed or a result that
   is wrong makes every figure meaningless. */
_Noreturn void bench_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* report.c: CLOCK_MONOTONIC, in seconds. */
double bench_now(void);

/* python.c: whether an executable `name` is on PATH. */
bool bench_in_path(const char *name);

/* ---- the items (items.c) --------------------------------------------- */

/* The notebook's pair and its sum. */
typedef struct bench_pair {
    int x, y;
} bench_pair;

#define BENCH_SLEEP_US 100000 /* the notebook's sleep cell */
#define BENCH_BIG      4096   /* bytes in and out of a large item */

int bench_add(const void *in, void *out, void *arg);      /* x + y */
int bench_slow_add(const void *in, void *out, void *arg); /* sleep, y + y */
int bench_burn(const void *in, void *out, void *arg);     /* in: uint64 steps */
int bench_big(const void *in, void *out, void *arg);      /* byte + 1, 4 KiB */
/* bench_add as a batch (mproc_batch_fn): the item inlined into the loop by
   MPROC_BATCH_FN, as a user of job.batch writes it. */
int bench_add_batch(const void *in, void *out, size_t count, void *arg,
                    int *status);

/* A dependent multiply chain of `steps`: CPU work the compiler cannot drop. */
uint64_t bench_chain(uint64_t steps);
/* Chain steps per microsecond on this machine, measured. */
double bench_calibrate(void);

/* ---- the systems ------------------------------------------------------ */

/* One map: fn over n items, as in an mproc_job (with a NULL arg). */
struct bench_map {
    mproc_fn fn;
    mproc_batch_fn batch; /* mproc systems: set, the job's batch instead */
    const void *in;
    size_t in_size;
    void *out;
    size_t out_size;
    size_t n;
};

/* items.c: a plain loop, the function called through the pointer. */
void bench_serial(const struct bench_map *m);
/* items.c: the trivial loop with a + b written inline, for reference. */
void bench_add_inlined(const bench_pair *in, int *out, size_t n);

/* omp.c: `#pragma omp parallel for` over the items, on `threads` threads.
   Returns false when this build has no OpenMP. */
enum bench_sched { BENCH_GUIDED, BENCH_DYNAMIC };
bool bench_omp(enum bench_sched sched, int threads, const struct bench_map *m);
/* omp.c: the trivial loop, a + b written inline, `schedule(guided)`: what
   OpenMP makes of the loop when the compiler sees the item. */
bool bench_omp_add_inlined(int threads, const bench_pair *in, int *out,
                           size_t n);
/* The OpenMP version (_OPENMP, a date), or 0 when built without it. */
long bench_omp_version(void);

/* python.c: can the Python systems run? false with *why set ("python3 not
   found", or the script missing). */
bool bench_python_check(const char **why);
/* python.c: "3.11.7, start method fork", or false. */
bool bench_python_version(char *buf, size_t size);
/* python.c: run pool_bench.py for one workload with extra arguments; each
   line it prints, "system param seconds...", becomes a bench_py. Returns
   the number of lines, or -1 with *why set (the script failed or ran past
   its time). */
struct bench_py {
    char system[32];
    char param[32];
    double s[BENCH_MAX_REPS];
    int n;
};
int bench_python(const struct bench *b, const char *workload, const char *args,
                 struct bench_py *rows, int max, const char **why);
/* python.c: run mproc-open-probe (bench/open_probe.c), a small caller that
   opens and closes `workers` process workers b->reps times, forked then
   spawned: its lines as above ("fork" and "spawn"), in seconds; -1 with
   *why set. */
int bench_probe(const struct bench *b, int workers, struct bench_py *rows,
                int max, const char **why);

/* ---- rows and reports (report.c) -------------------------------------- */

enum bench_target {
    BENCH_NONE,
    BENCH_RATIO_AT_MOST, /* ratio <= limit */
    BENCH_BELOW,         /* median < limit */
    BENCH_AT_LEAST,      /* median >= limit */
    BENCH_WITHIN         /* |median - limit| <= limit2 */
};

struct bench_row {
    const char *workload; /* its key: sleep, cpu, trivial, ... */
    char system[48];
    char param[24];
    const char *unit;
    double median, min, max;
    double ratio;     /* to the workload's reference; NAN: none */
    bool ref_wide;    /* the reference's runs varied over 2x */
    const char *note; /* set: no figures, and why */
    enum bench_target target;
    double limit, limit2;
    bool met;
};

/* Add a row from samples (already in the row's unit). */
struct bench_row *bench_row(const char *workload, const char *system,
                            const char *param, const char *unit,
                            const double *v, int n);
/* Add a row without figures: the system is unavailable, or skipped. */
void bench_row_missing(const char *workload, const char *system,
                       const char *param, const char *note);
/* The row of this workload, system and param, or NULL. */
struct bench_row *bench_find(const char *workload, const char *system,
                             const char *param);
/* Set every row's ratio to its median over the reference row's of the same
   param, or over a fixed value (ref NULL). */
void bench_ratios(const char *workload, const char *ref, double value);
/* Attach a target to a row, if it exists and has figures. */
void bench_target(const char *workload, const char *system, const char *param,
                  enum bench_target t, double limit, double limit2);

void bench_table(const char *workload, const char *title,
                 const char *ratio_note);
/* Every target, met or missed; returns how many were missed. */
int bench_targets_summary(void);
/* One line per row with figures: 0 or -errno. */
int bench_csv(const char *path);
/* Before any workload runs: gnuplot is in PATH, and dir exists (created
   with its parents if need be) and is writable; 0, or -1 after printing
   which is not so. A run of minutes must not end without its charts. */
int bench_plot_prepare(const char *dir);
/* PNG charts and their data files in dir (prepared), drawn by gnuplot; 0,
   or -1 after printing what went wrong. */
int bench_plot(const char *dir, int cores);

/* Statistics of n samples (sorted in place): median, min, max. */
void bench_stats(double *v, int n, double *median, double *min, double *max);

/* ---- the workloads (workloads.c) -------------------------------------- */

struct bench_workload {
    const char *key; /* for --only, and the CSV's workload column */
    const char *title;
    const char *ratio; /* what the ratio column is, or NULL */
    void (*run)(struct bench *b);
};

extern const struct bench_workload bench_workloads[];

/* commands.c: the `run` workload, mproc run beside xargs -P and GNU
   parallel. */
void bench_run_commands(struct bench *b);
/* commands.c: `mproc bench --peak-of LINE`, internal to that workload. */
int bench_peak_of(const char *line);
/* ranks.c: the `mpi` workload, on b->mpi. */
void bench_mpi_ranks(struct bench *b);
/* claims.c: the `claims` workload, fetch-adds on one counter and on many. */
void bench_claims(struct bench *b);
/* kill.c: the `kill` workload, mproc_task_kill and mproc_pool_terminate of
   hung items beside Python's Pool.terminate(). */
void bench_kill(struct bench *b);
extern const int bench_nworkloads;

#endif
