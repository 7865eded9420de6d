/*
 * The Python systems: bench/pool_bench.py, run as a child of the bench for
 * each workload ("python3 pool_bench.py WORKLOAD ARGS..."), prints one line
 * per system and parameter: the system ("pool", "threadpool"), the
 * parameter, then the seconds of each repetition. Python is a peer to
 * compare with, never a dependency: without python3 its rows say so.
 *
 * The script is looked for where the sources were (MPROC_BENCH_SOURCE_DIR,
 * set by the build), then where `install` puts it (MPROC_BENCH_DATA_DIR).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MPROC_BENCH_SOURCE_DIR
#define MPROC_BENCH_SOURCE_DIR "bench"
#endif
#ifndef MPROC_BENCH_DATA_DIR
#define MPROC_BENCH_DATA_DIR "/usr/local/share/mproc"
#endif

extern char **environ;

static char script[4096];

bool bench_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", *d ? d : ".", name);
        found = access(p, X_OK) == 0;
    }
    free(copy);
    return found;
}

bool bench_python_check(const char **why)
{
    if (!bench_in_path("python3")) {
        *why = "python3 not found";
        return false;
    }
    const char *dirs[] = {MPROC_BENCH_SOURCE_DIR, MPROC_BENCH_DATA_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(script, sizeof script, "%s/pool_bench.py", dirs[i]);
        if (access(script, R_OK) == 0)
            return true;
    }
    *why = "pool_bench.py not found";
    return false;
}

/* Parse "system param s1 s2 ..."; false for anything else. */
static bool parse(char *line, struct bench_py *r)
{
    char *save = NULL;
    char *sys = strtok_r(line, " \t\n", &save);
    char *param = strtok_r(NULL, " \t\n", &save);
    if (!sys || !param || sys[0] == '#')
        return false;
    snprintf(r->system, sizeof r->system, "%s", sys);
    snprintf(r->param, sizeof r->param, "%s", param);
    r->n = 0;
    for (char *v;
         (v = strtok_r(NULL, " \t\n", &save)) && r->n < BENCH_MAX_REPS;)
        r->s[r->n++] = strtod(v, NULL);
    return r->n > 0;
}

/* Every line of buf that parses, into rows[0..max): how many. */
static int parse_lines(char *buf, struct bench_py *rows, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && n < max;
         line = strtok_r(NULL, "\n", &save))
        n += parse(line, &rows[n]);
    return n;
}

enum { CHILD_OK, CHILD_NOT_STARTED, CHILD_LATE, CHILD_FAILED };

/* Run argv with its stdout into buf (NUL-terminated), for at most `limit`
   seconds; its stderr is ours. Returns one of CHILD_*. */
static int run_child(char **argv, char *buf, size_t size, double limit)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC))
        return CHILD_NOT_STARTED;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (err) {
        close(fd[0]);
        return CHILD_NOT_STARTED;
    }

    /* A script that hangs must not hang the bench. */
    double deadline = bench_now() + limit;
    size_t len = 0;
    bool late = false;
    for (;;) {
        int left = (int)((deadline - bench_now()) * 1000);
        struct pollfd p = {.fd = fd[0], .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) == 0) {
            late = true;
            kill(pid, SIGKILL);
            break;
        }
        ssize_t k = read(fd[0], buf + len, size - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || (len += (size_t)k) == size - 1)
            break;
    }
    buf[len] = 0;
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (late)
        return CHILD_LATE;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? CHILD_OK : CHILD_FAILED;
}

int bench_probe(const struct bench *b, int workers, struct bench_py *rows,
                int max, const char **why)
{
    const char *dirs[] = {MPROC_BENCH_BINARY_DIR, MPROC_BENCH_LIBEXEC_DIR};
    char exe[4096];
    bool there = false;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !there; i++) {
        snprintf(exe, sizeof exe, "%s/mproc-open-probe", dirs[i]);
        there = access(exe, X_OK) == 0;
    }
    if (!there) {
        *why = "mproc-open-probe not found";
        return -1;
    }
    char w[16], reps[16];
    snprintf(w, sizeof w, "%d", workers);
    snprintf(reps, sizeof reps, "%d", b->reps);
    char *argv[] = {exe, w, reps, NULL};
    static char buf[1 << 12];
    if (run_child(argv, buf, sizeof buf, 120) != CHILD_OK) {
        *why = "mproc-open-probe failed (see its error above)";
        return -1;
    }
    return parse_lines(buf, rows, max);
}

bool bench_python_version(char *buf, size_t size)
{
    char *argv[] = {"python3", "-c",
                    "import sys, multiprocessing as m; print('%s, start method "
                    "%s' % (sys.version.split()[0], m.get_start_method()))",
                    NULL};
    if (run_child(argv, buf, size, 30) != CHILD_OK)
        return false;
    buf[strcspn(buf, "\n")] = 0;
    return true;
}

int bench_python(const struct bench *b, const char *workload, const char *args,
                 struct bench_py *rows, int max, const char **why)
{
    char *argv[64], *copy = strdup(args), *save = NULL;
    int argc = 0;
    argv[argc++] = "python3";
    argv[argc++] = script;
    argv[argc++] = (char *)workload;
    for (char *a = strtok_r(copy, " ", &save); a && argc < 63;
         a = strtok_r(NULL, " ", &save))
        argv[argc++] = a;
    argv[argc] = NULL;

    static char buf[1 << 16];
    int r = run_child(argv, buf, sizeof buf, b->quick ? 120 : 900);
    free(copy);
    if (r != CHILD_OK) {
        *why = r == CHILD_NOT_STARTED ? "python3 could not be started"
               : r == CHILD_LATE      ? "pool_bench.py ran past its time limit"
                                 : "pool_bench.py failed (see its error above)";
        return -1;
    }
    return parse_lines(buf, rows, max);
}
