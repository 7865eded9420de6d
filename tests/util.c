#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const mproc_kind tu_kinds[2] = {MPROC_PROCESSES, MPROC_THREADS};

const char *tu_kind_name(mproc_kind k)
{
    return k == MPROC_THREADS ? "threads" : "processes";
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double tu_slow(void)
{
    const char *e = getenv("MPROC_TEST_SLOW");
    double f = e ? atof(e) : 1.0;
    return f >= 1.0 ? f : 1.0;
}

double tu_timeout(double seconds)
{
    double t = seconds * tu_slow();
    if (tu_slow() > 1.0 && t < 10.0)
        return 10.0;
#ifdef TU_SANITIZED
    /* A sanitizer reports a worker's fault before the worker dies, which on
       a loaded machine has taken longer than 0.2 s: at least 2 s. */
    if (t < 2.0)
        return 2.0;
#endif
    return t;
}

int tu_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

int tu_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "memfd:mproc") != NULL;
    fclose(f);
    return n;
}

/* pid, ppid, state and name of every process. */
struct proc {
    pid_t pid, ppid;
    char state;
    char comm[16];
};

static int procs(struct proc **out)
{
    DIR *d = opendir("/proc");
    int n = 0, cap = 256;
    struct proc *p = malloc((size_t)cap * sizeof *p);
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *rp = strrchr(buf, ')');
        if (!rp)
            continue;
        char state;
        int ppid;
        if (sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
            continue;
        if (n == cap)
            p = realloc(p, (size_t)(cap *= 2) * sizeof *p);
        p[n] = (struct proc){(pid_t)pid, (pid_t)ppid, state, ""};
        char *lp = strchr(buf, '(');
        if (lp && rp - lp - 1 < (long)sizeof p[n].comm)
            memcpy(p[n].comm, lp + 1, (size_t)(rp - lp - 1));
        n++;
    }
    closedir(d);
    *out = p;
    return n;
}

static bool below(struct proc *p, int n, pid_t pid, pid_t root)
{
    for (int depth = 0; depth < 64 && pid > 1; depth++) {
        pid_t parent = 0;
        for (int i = 0; i < n; i++)
            if (p[i].pid == pid)
                parent = p[i].ppid;
        if (parent == root)
            return true;
        pid = parent;
    }
    return false;
}

int tu_descendants(void)
{
    struct proc *p;
    int n = procs(&p), count = 0;
    pid_t self = getpid();
    for (int i = 0; i < n; i++)
        count += below(p, n, p[i].pid, self);
    free(p);
    return count;
}

pid_t tu_supervisor(void)
{
    struct proc *p;
    int n = procs(&p);
    pid_t self = getpid(), found = 0;
    for (int i = 0; i < n; i++)
        if (p[i].ppid == self && !strcmp(p[i].comm, "mproc-super"))
            found = p[i].pid;
    free(p);
    return found;
}

int tu_zombies(void)
{
    struct proc *p;
    int n = procs(&p), count = 0;
    pid_t self = getpid();
    for (int i = 0; i < n; i++)
        count += p[i].ppid == self && p[i].state == 'Z';
    free(p);
    return count;
}

int tu_wait_descendants(int want, double seconds)
{
    double until = tu_now() + seconds;
    int n;
    while ((n = tu_descendants()) != want && tu_now() < until)
        usleep(5000);
    return n;
}

void tu_default_signals(void)
{
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
}

struct tu_held tu_held(void)
{
    return (struct tu_held){tu_fds(), tu_maps(), tu_descendants()};
}

static void show(const char *what)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -l /proc/%d/%s >&2", (int)getpid(), what);
    if (system(cmd) != 0)
        fprintf(stderr, "(could not list %s)\n", what);
}

void tu_assert_released(struct tu_held before)
{
    if (tu_fds() != before.fds)
        show("fd");
    assert_int_equal(tu_fds(), before.fds);
    assert_int_equal(tu_maps(), before.maps);
    assert_int_equal(tu_wait_descendants(before.procs, 2.0), before.procs);
    assert_int_equal(tu_zombies(), 0);
}
