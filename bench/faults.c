/*
 * What mproc does with each fault: a map of 10 items on 2 worker processes
 * where item 3 misbehaves. Prints one markdown row per fault: the map's
 * result, item 3's code, how long the map took, whether the same pool then
 * maps correctly, and what is left after close. The Python side of the
 * comparison is bench/faults.py; bench/faults.sh runs both.
 */
#define _GNU_SOURCE
#include <mproc.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum fault { NONE, SEGV, ABRT, EXIT, KILL, HANG, CODE, LEAK };

static const char *names[] = {
    [SEGV] = "segmentation fault",
    [ABRT] = "abort()",
    [EXIT] = "_exit(3)",
    [KILL] = "SIGKILL (as from outside, or the OOM killer)",
    [HANG] = "hangs for ever",
    [CODE] = "returns an error",
    [LEAK] = "leaks 50 MB per item (max_items = 2)",
};

static volatile int *volatile bad = (volatile int *)16;
static void *volatile leaked; /* keeps the leak from being optimised away */

static int item(const void *in, void *out, void *arg)
{
    int i = *(const int *)in, f = *(const int *)arg;
    if (i == 3 || (f == LEAK && i % 2 == 0)) {
        switch (f) {
        case SEGV:
            *bad = 1;
            break;
        case ABRT:
            abort();
        case EXIT:
            _exit(3);
        case KILL:
            raise(SIGKILL);
            break;
        case HANG:
            for (;;)
                pause();
        case CODE:
            return 42;
        case LEAK:
            leaked = malloc(50 << 20);
            memset(leaked, 1, 50 << 20);
            break;
        }
    }
    *(int *)out = i * i;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int children(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "ps --ppid %d -o pid= | wc -l", (int)getpid());
    FILE *f = popen(cmd, "r");
    int n = 0;
    if (f && fscanf(f, "%d", &n) != 1)
        n = -1;
    if (f)
        pclose(f);
    return n - 1; /* the ps itself */
}

static int fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

static void row(enum fault f)
{
    int in[10], out[10], status[10], ws[10], fd0 = fds();
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mproc_pool *p;
    mproc_options o = {
        .workers = 2, .timeout = 1.0, .max_items = f == LEAK ? 2 : 0};
    if (mproc_pool_open(&p, &o)) {
        printf("| %s | open failed | | | | |\n", names[f]);
        return;
    }
    mproc_job j = {.fn = item,
                   .in = in,
                   .in_size = sizeof in[0],
                   .out = out,
                   .out_size = sizeof out[0],
                   .n = 10,
                   .chunk = 1,
                   .arg = &f,
                   .arg_size = sizeof f,
                   .status = status,
                   .wstatus = ws};
    double t0 = now();
    int r = mproc_map(p, &j);
    double took = now() - t0;
    char code[96] = "0";
    if (status[3] < 0 && WIFSIGNALED(ws[3]))
        snprintf(code, sizeof code, "%s (signal %d)",
                 status[3] == MPROC_ETIMEDOUT ? "MPROC_ETIMEDOUT"
                                              : "MPROC_ECRASHED",
                 WTERMSIG(ws[3]));
    else if (status[3] < 0 && WIFEXITED(ws[3]))
        snprintf(code, sizeof code, "MPROC_ECRASHED (exit %d)",
                 WEXITSTATUS(ws[3]));
    else
        snprintf(code, sizeof code, "%d", status[3]);
    int good = 0;
    for (int i = 0; i < 10; i++)
        good += status[i] == 0 && out[i] == i * i;
    /* The same pool, a clean map. */
    int g = 0, again = 0;
    j.arg = &g;
    memset(out, 0, sizeof out);
    if (mproc_map(p, &j) == 0)
        for (int i = 0; i < 10; i++)
            again += out[i] == i * i;
    mproc_pool_close(p);
    usleep(100000);
    printf("| %s | %d failed, %d of 10 results | %s | %.1f ms | %s | %d "
           "processes, %d "
           "descriptors |\n",
           names[f], r, good, code, took * 1e3, again == 10 ? "yes" : "no",
           children(), fds() - fd0);
}

/* The caller dies (SIGKILL) while its pool works: what is left a second on? */
static void caller_death(void)
{
    int pfd[2];
    if (pipe(pfd))
        return;
    pid_t c = fork();
    if (c == 0) {
        mproc_pool *p;
        mproc_pool_open(&p, &(mproc_options){.workers = 2});
        int f = HANG, in[2] = {0, 3}, out[2];
        mproc_task *t;
        mproc_submit(p,
                     &(mproc_job){.fn = item,
                                  .in = in,
                                  .in_size = sizeof in[0],
                                  .out = out,
                                  .out_size = sizeof out[0],
                                  .n = 2,
                                  .arg = &f,
                                  .arg_size = sizeof f},
                     &t);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char ch;
    if (read(pfd[0], &ch, 1) != 1)
        return;
    usleep(200000);
    /* The dead caller's pool: its children and grandchildren. */
    pid_t pids[64];
    int n = 0;
    FILE *ps = popen("ps -e -o pid=,ppid=", "r");
    int pid, ppid, all[4096][2], k = 0;
    while (ps && k < 4096 && fscanf(ps, "%d %d", &pid, &ppid) == 2) {
        all[k][0] = pid;
        all[k][1] = ppid;
        k++;
    }
    if (ps)
        pclose(ps);
    for (int i = 0; i < k; i++)
        if (all[i][1] == c) {
            pids[n++] = all[i][0];
            for (int m = 0; m < k && n < 64; m++)
                if (all[m][1] == all[i][0])
                    pids[n++] = all[m][0];
        }
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    double t0 = now();
    int left = n;
    while (left && now() - t0 < 1.0) {
        left = 0;
        for (int i = 0; i < n; i++) {
            char path[64], st[256] = "";
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            size_t len = fread(st, 1, sizeof st - 1, f);
            fclose(f);
            st[len] = 0;
            char *rp = strrchr(st, ')');
            left += rp && rp[2] != 'Z';
        }
        if (left)
            usleep(1000);
    }
    printf("| the caller is SIGKILLed while items hang | | | all %d of its "
           "processes "
           "gone in %.1f ms | | %d processes left |\n",
           n, (now() - t0) * 1e3, left);
}

int main(void)
{
    signal(SIGSEGV, SIG_DFL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("| fault in item 3 of 10 | map returns | item 3's code | map took | "
           "pool "
           "maps again | left after close |\n|---|---|---|---|---|---|\n");
    for (enum fault f = SEGV; f <= LEAK; f++)
        row(f);
    caller_death();
    return 0;
}
