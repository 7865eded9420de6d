/*
 * The `run` workload: `mproc run` beside `xargs -P` and GNU parallel, the
 * same command lines through sh -c, as a user would type them. The mproc
 * binary is the one running this bench (/proc/self/exe), so the figures
 * are of this build's `mproc run`. Each system runs a warm-up and then its
 * repetitions back to back, as in workloads.c.
 *
 * Figures: microseconds per command for 1000 commands that do nothing (2
 * at a time; 200 in a quick run); and, for 20 commands that each print 10 MB (2 at a time, the
 * output to /dev/null), the seconds and the peak resident memory of the
 * largest process of the pipeline (wait4's ru_maxrss, which covers the
 * shell and every descendant it waited for): what ordering the outputs of
 * commands costs each tool in memory. A tool not on PATH has rows that say
 * so.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Spawn argv with stdout to fd `out` (or /dev/null when -1) and wait for
   it; its wait status, and its rusage in *ru. */
static int spawn_wait(char *const argv[], int out, struct rusage *ru)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out >= 0)
        posix_spawn_file_actions_adddup2(&fa, out, 1);
    else
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err)
        bench_fail("run: %s: %s", argv[0], strerror(err));
    int st;
    while (wait4(pid, &st, 0, ru) < 0)
        if (errno != EINTR)
            bench_fail("run: wait4: %s", strerror(errno));
    return st;
}

/*
 * `mproc bench --peak-of LINE` (internal): run LINE through sh -c, output
 * to /dev/null, and print the peak resident kilobytes of the largest
 * process it waited for. A process made by the bench itself would not do:
 * Linux carries the peak of the memory a process had before exec into its
 * own, and the bench holds hundreds of MB by then; this helper's children
 * are forked from it after its exec, small, and RUSAGE_CHILDREN leaves its
 * own peak out. Returns the exit status.
 */
int bench_peak_of(const char *line)
{
    char *argv[] = {"/bin/sh", "-c", (char *)line, NULL};
    struct rusage ru;
    int st = spawn_wait(argv, -1, &ru);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        return 1;
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("%ld\n", ru.ru_maxrss);
    return 0;
}

/* Run `line` through sh -c, output to /dev/null; seconds. With maxrss_kb,
   through `self bench --peak-of`, and the peak resident kilobytes of the
   largest process of the line. */
static double shell(const char *self, const char *line, long *maxrss_kb)
{
    int fds[2] = {-1, -1};
    if (maxrss_kb && pipe(fds))
        bench_fail("run: pipe: %s", strerror(errno));
    char *sh[] = {"/bin/sh", "-c", (char *)line, NULL};
    char *peak[] = {(char *)self, "bench", "--peak-of", (char *)line, NULL};
    struct rusage ru;
    double t0 = bench_now();
    int st = spawn_wait(maxrss_kb ? peak : sh, fds[1], &ru);
    double t = bench_now() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        bench_fail("run: `%s` failed (status %#x)", line, st);
    if (maxrss_kb) {
        char buf[32] = "";
        close(fds[1]);
        ssize_t got = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        *maxrss_kb = got > 0 ? strtol(buf, NULL, 10) : 0;
    }
    return t;
}

struct tool {
    const char *system;        /* row name */
    const char *exe;           /* must be on PATH (NULL: this bench's mproc) */
    const char *missing;       /* the rows' note when it is not */
    const char *nothing, *big; /* %s: the mproc binary, else unused */
};

void bench_run_commands(struct bench *b)
{
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0)
        bench_fail("run: /proc/self/exe: %s", strerror(errno));
    self[len] = 0;
    /* A 10 MB output, the same for every tool, which each appends the item
       to: sh -c takes it as $0. */
    const struct tool tools[] = {
        {"mproc run", NULL, NULL, "seq %d | '%s' run -j 2 true",
         "seq 20 | '%s' run -j 2 sh -c \"head -c 10000000 /dev/zero\""},
        {"xargs -P", "xargs", "xargs not found",
         "seq %d | xargs -P 2 -n 1 true",
         "seq 20 | xargs -P 2 -n 1 sh -c \"head -c 10000000 /dev/zero\""},
        {"GNU parallel", "parallel", "GNU parallel not found",
         "seq %d | parallel -j 2 true",
         "seq 20 | parallel -j 2 sh -c \"head -c 10000000 /dev/zero\""},
    };
    const int ntools = sizeof tools / sizeof *tools;
    const int reps = b->quick ? 2 : b->reps;
    const int count = b->quick ? 200 : 1000; /* commands that do nothing */
    double s[BENCH_MAX_REPS], mem[BENCH_MAX_REPS];
    char line[PATH_MAX + 128];

    for (int k = 0; k < ntools; k++) {
        const struct tool *t = &tools[k];
        if (t->exe && !bench_in_path(t->exe)) {
            bench_row_missing("run", t->system, "true", t->missing);
            bench_row_missing("run", t->system, "10MB out", t->missing);
            bench_row_missing("run", t->system, "10MB out, peak", t->missing);
            continue;
        }
        if (t->exe)
            snprintf(line, sizeof line, t->nothing, count);
        else
            snprintf(line, sizeof line, t->nothing, count, self);
        for (int r = -1; r < reps; r++) {
            bench_progress(b, "%s: %d commands, run %d of %d", t->system, count,
                           r + 1, reps);
            double sec = shell(self, line, NULL);
            if (r >= 0)
                s[r] = sec * 1e6 / count;
        }
        bench_row("run", t->system, "true", "us", s, reps);
        snprintf(line, sizeof line, t->big, self);
        for (int r = -1; r < reps; r++) {
            bench_progress(b, "%s: 20 outputs of 10 MB, run %d of %d",
                           t->system, r + 1, reps);
            long kb = 0;
            double sec = shell(self, line, &kb);
            if (r >= 0) {
                s[r] = sec;
                mem[r] = (double)kb / 1024;
            }
        }
        bench_row("run", t->system, "10MB out", "s", s, reps);
        bench_row("run", t->system, "10MB out, peak", "MB", mem, reps);
    }
    bench_ratios("run", "xargs -P", 0);
}
