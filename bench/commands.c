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

/* Run `line` through sh -c, output to /dev/null; seconds, and the peak
   resident kilobytes of the largest process it waited for. */
static double shell(const char *line, long *maxrss_kb)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"sh", "-c", (char *)line, NULL};
    double t0 = bench_now();
    pid_t pid;
    int err = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err)
        bench_fail("run: sh -c %s: %s", line, strerror(err));
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            bench_fail("run: wait4: %s", strerror(errno));
    double t = bench_now() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        bench_fail("run: `%s` failed (status %#x)", line, st);
    if (maxrss_kb)
        *maxrss_kb = ru.ru_maxrss;
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
            double sec = shell(line, NULL);
            if (r >= 0)
                s[r] = sec * 1e6 / count;
        }
        bench_row("run", t->system, "true", "us", s, reps);
        snprintf(line, sizeof line, t->big, self);
        for (int r = -1; r < reps; r++) {
            bench_progress(b, "%s: 20 outputs of 10 MB, run %d of %d",
                           t->system, r + 1, reps);
            long kb = 0;
            double sec = shell(line, &kb);
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
