/*
 * mproc bench: every workload on every system, in one run, side by side.
 *
 * The workloads and systems are the rest of this folder (see bench.h);
 * this file is the verb behind mproc_bench.h: options, the warm pools
 * shared by the workloads, the progress line, and what is printed or
 * written at the end.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "mproc_bench.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SHARED_SIZE ((size_t)512 << 20) /* the largest workload uses 128 MiB */

/*
 * Other work on the machine distorts every figure, and on a small machine
 * it is common (a build, a test run). The bench cannot stop it but can tell:
 * the CPU time the whole machine spent (/proc/stat, steal included) minus
 * what this process and its children spent (getrusage, once every pool is
 * closed and every child reaped) is what others took.
 */
static double machine_cpu(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user, nice, system, irq, softirq, steal: all but idle and iowait. */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           (double)sysconf(_SC_CLK_TCK);
}

static double own_cpu(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    struct timeval t[4] = {self.ru_utime, self.ru_stime, kids.ru_utime,
                           kids.ru_stime};
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += (double)t[i].tv_sec + (double)t[i].tv_usec / 1e6;
    return s;
}

static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            colon += 1 + strspn(colon + 1, " \t");
            colon[strcspn(colon, "\n")] = 0;
            snprintf(buf, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void header(const struct bench *b)
{
    char cpu[128], py[128];
    struct utsname u;
    uname(&u);
    cpu_model(cpu, sizeof cpu);
    printf("mproc bench%s: %d cores (%s), %s %s, gcc %s\n",
           b->quick ? " --quick" : "", b->cores, cpu, u.sysname, u.release,
           __VERSION__);
    long omp = bench_omp_version();
    if (omp)
        printf("OpenMP %ld (schedule(guided) and schedule(dynamic), default "
               "chunks)",
               omp);
    else
        printf("OpenMP: not in this build");
    if (!b->python)
        printf("; Python: %s\n", b->no_python);
    else if (bench_python_version(py, sizeof py))
        printf("; Python %s\n", py);
    else
        printf("; Python: version unknown\n");
    printf("Each figure: the median of %d repetitions, spread min-max; %d "
           "workers unless said. Every system calls the same item function "
           "through a pointer.\n",
           b->reps, b->cores);
    /* Other work on the machine shows in every figure: the summary at the
       end says how much there was during the run; this, how busy it was. */
    double load[3];
    if (getloadavg(load, 3) == 3)
        printf("Load average at start: %.2f %.2f %.2f\n", load[0], load[1],
               load[2]);
    fflush(stdout);
}

static const char usage_text[] =
    "usage: mproc bench [--quick] [--reps N] [--csv FILE] [--plot DIR]\n"
    "                   [--only WORKLOAD,...] [--no-python]\n"
    "\n"
    "  bench  each workload (sleep, cpu, trivial, latency, cancel, kill,\n"
    "         open, large_open, uneven, large, run, mpi, claims) on each\n"
    "         system (serial C, OpenMP, mproc threads and processes,\n"
    "         Python's Pool and ThreadPool), median and spread of --reps\n"
    "         runs (5; 3 with --quick), against the targets. --csv writes\n"
    "         every figure, --plot draws PNG charts with gnuplot, --only\n"
    "         runs some workloads. Under mpirun the mpi workload runs on\n"
    "         the ranks.\n";

/* A usage error: the message (fmt NULL: none, getopt_long has said what is
   wrong) and a hint, on stderr. Returns 2, the exit status. */
static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("mproc bench: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fputs("try 'mproc bench --help'\n", stderr);
    return 2;
}

static bool selected(const char *only, const char *key)
{
    if (!only)
        return true;
    size_t k = strlen(key);
    for (const char *p = only; *p;) {
        size_t len = strcspn(p, ",");
        if (len == k && !strncmp(p, key, k))
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* What the command line asks for, besides what struct bench holds. */
struct args {
    const char *csv, *plot, *only;
    bool python;
};

/* The options into b and a: -1 to run, else the exit status to return at
   once (after --help, or a usage error). */
static int options(struct bench *b, struct args *a, int argc, char **argv)
{
    enum { QUICK = 256, REPS, CSV, PLOT, ONLY, NO_PYTHON };
    static const struct option longs[] = {
        {"quick", no_argument, NULL, QUICK},
        {"reps", required_argument, NULL, REPS},
        {"csv", required_argument, NULL, CSV},
        {"plot", required_argument, NULL, PLOT},
        {"only", required_argument, NULL, ONLY},
        {"no-python", no_argument, NULL, NO_PYTHON},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    /* getopt_long names the program by argv[0] in its own errors. */
    argv[0] = "mproc bench";
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char *end;
        long r;
        switch (c) {
        case QUICK:
            b->quick = true;
            break;
        case REPS:
            r = strtol(optarg, &end, 10);
            if (*end || r < 1 || r > BENCH_MAX_REPS)
                return usage_error("--reps takes 1 to %d, not '%s'",
                                   BENCH_MAX_REPS, optarg);
            b->reps = (int)r;
            break;
        case CSV:
            a->csv = optarg;
            break;
        case PLOT:
            a->plot = optarg;
            break;
        case ONLY:
            a->only = optarg;
            break;
        case NO_PYTHON:
            a->python = false;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            return usage_error(NULL);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!b->reps)
        b->reps = b->quick ? 3 : 5;
    for (int i = 0; i < bench_nworkloads; i++)
        b->count += selected(a->only, bench_workloads[i].key);
    if (!b->count) {
        char names[256] = "";
        for (int i = 0; i < bench_nworkloads; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names),
                     "%s %s", i ? "," : "", bench_workloads[i].key);
        return usage_error("--only names none of%s", names);
    }
    return -1;
}

int bench_main(int argc, char **argv)
{
    /* The run workload's helper (commands.c), never a user's option. */
    if (argc == 3 && !strcmp(argv[1], "--peak-of"))
        return bench_peak_of(argv[2]);
    struct bench b = {0};
    struct args a = {.python = true};
    int status = options(&b, &a, argc, argv);
    if (status >= 0)
        return status;
    if (a.plot && bench_plot_prepare(a.plot))
        return 2;

    double t0 = bench_now(), machine0 = machine_cpu(), own0 = own_cpu();
    setvbuf(stdout, NULL, _IOLBF, 0);
    b.progress = isatty(2);
    b.python = a.python && bench_python_check(&b.no_python);
    if (!a.python)
        b.no_python = "skipped (--no-python)";

    /* Under mpirun every rank runs this: the MPI pool opens first, and
       returns on rank 0 only (the others serve in it until it closes). */
    b.no_mpi = "run under mpirun for these rows: mpirun -np 3 mproc bench "
               "--only mpi";
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") ||
        getenv("PMIX_RANK")) {
        int err = mproc_pool_open(&b.mpi, &(mproc_options){.kind = MPROC_MPI});
        if (err) {
            b.mpi = NULL;
            b.no_mpi = err == MPROC_ENOTSUP
                           ? "no MPI pool: a build without MPI, or one rank"
                           : "no MPI pool: the open failed";
        }
    }
    int rc =
        mproc_pool_open(&b.procs, &(mproc_options){.kind = MPROC_PROCESSES,
                                                   .shared_size = SHARED_SIZE});
    if (!rc)
        rc = mproc_pool_open(&b.threads,
                             &(mproc_options){.kind = MPROC_THREADS});
    if (rc)
        bench_fail("opening the pools: %s", mproc_strerror(rc));
    b.cores = mproc_pool_size(b.threads);
    b.spins_per_us = bench_calibrate();
    header(&b);

    for (int i = 0, k = 0; i < bench_nworkloads; i++) {
        const struct bench_workload *w = &bench_workloads[i];
        if (!selected(a.only, w->key))
            continue;
        b.index = k++;
        b.title = w->key;
        w->run(&b);
        bench_progress(&b, NULL);
        bench_table(w->key, w->title, w->ratio);
    }
    mproc_pool_close(b.threads);
    mproc_pool_close(b.procs);
    mproc_pool_close(b.mpi); /* the other ranks exit */

    bench_targets_summary();
    double wall = bench_now() - t0, machine = machine_cpu() - machine0;
    if (machine0 >= 0) {
        double others = machine - (own_cpu() - own0);
        if (others < 0)
            others = 0;
        double share = 100 * others / (wall * b.cores);
        printf("Other work on the machine during the run: %.1f CPU-seconds, "
               "%.0f%% of its %d CPUs%s\n",
               others, share, b.cores,
               share > 5 ? ": the figures are disturbed; run again on a quiet "
                           "machine"
                         : "");
    }
    status = 0;
    if (a.csv) {
        rc = bench_csv(a.csv);
        if (rc) {
            fprintf(stderr, "mproc bench: %s: %s\n", a.csv, mproc_strerror(rc));
            status = 1;
        }
    }
    if (a.plot) {
        if (bench_plot(a.plot, b.cores)) {
            status = 1;
        } else {
            printf("charts (PNG) and their data in %s/\n", a.plot);
        }
    }
    printf("\nmproc bench: %.1f s\n", bench_now() - t0);
    return status;
}
