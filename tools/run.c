/*
 * mproc run: the shell's Pool.map. Runs a command once per item, N at a
 * time, and prints each command's output in the items' order, as soon as it
 * and those before it are done.
 *
 *   mproc run [-j N] [--timeout S] [--as-done] COMMAND [ARG...] [::: ITEM...]
 *
 * Items come after ":::" or, without it, one per line of standard input.
 * "{}" in an argument is replaced by the item; with no "{}" anywhere the
 * item is the last argument. Commands are started directly (no shell: use
 * sh -c '...' _ {} for one), with standard input from /dev/null, each in a
 * process group of its own, so that a timeout ends all it started; SIGINT,
 * SIGTERM and SIGHUP to mproc run are passed on to every running command's
 * group before mproc run itself ends by them.
 *
 * Built on the library like any program: a thread pool of N workers, one
 * item per claim; each worker starts its command and collects its output
 * and exit status, and the caller hands the results back in order through
 * mproc_task_next. The commands are processes of their own, so a command
 * that crashes costs its item only, whatever the pool's kind.
 *
 * Exit status: 0 when every command exited 0; 1 to 100, the number that did
 * not (101: more than 100); 255 when mproc run itself could not run.
 * A command's code is its exit status, 128 + the signal that killed it,
 * 124 when --timeout killed it, 127 when it could not be started.
 */
#define _GNU_SOURCE
#include "tool.h"

#include <mproc.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CODE_TIMEOUT 124
#define CODE_NOSTART 127
#define EXIT_BROKE   255

extern char **environ;

/* The process group of the command each worker runs, 0 when none: what a
   signal to mproc run is passed on to. */
static _Atomic pid_t running[1024];

static void pass_on(int sig)
{
    for (int w = 0; w < 1024; w++) {
        pid_t g = atomic_load_explicit(&running[w], memory_order_relaxed);
        if (g > 0)
            kill(-g, sig);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One command's output, kept until its turn to be printed. */
struct output {
    char *out, *err;
    size_t out_len, err_len;
};

struct plan {
    char **argv; /* the command, "{}" still in it */
    int argc;
    bool placeholder; /* some argument holds "{}" */
    double timeout;   /* seconds; 0: none */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* `arg` with every "{}" replaced by item; a new string. */
static char *substitute(const char *arg, const char *item)
{
    size_t n = 0, il = strlen(item);
    for (const char *p = arg; (p = strstr(p, "{}")); p += 2)
        n++;
    char *s = malloc(strlen(arg) + n * il + 1), *o = s;
    if (!s)
        return NULL;
    for (const char *p = arg;;) {
        const char *q = strstr(p, "{}");
        size_t k = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        if (!q)
            break;
        memcpy(o, item, il);
        o += il;
        p = q + 2;
    }
    *o = 0;
    return s;
}

static void drain(int fd, char **buf, size_t *len, size_t *cap, bool *open)
{
    char chunk[65536];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r <= 0) {
        if (r == 0 || (errno != EINTR && errno != EAGAIN))
            *open = false;
        return;
    }
    if (*len + (size_t)r > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + (size_t)r)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p) {
            *open = false; /* out of memory: the rest of the output is lost */
            return;
        }
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, chunk, (size_t)r);
    *len += (size_t)r;
}

/* The item: start the command, collect its output, return its code. */
static int run_one(const void *in, void *out, void *arg)
{
    const char *item = *(const char *const *)in;
    const struct plan *pl = arg;
    struct output *o = out;
    *o = (struct output){0};

    char **argv = calloc((size_t)pl->argc + 2, sizeof *argv);
    int fds[2][2] = {{-1, -1}, {-1, -1}}, code = CODE_NOSTART;
    if (!argv)
        goto done;
    for (int i = 0; i < pl->argc; i++)
        if (!(argv[i] = substitute(pl->argv[i], item)))
            goto done;
    if (!pl->placeholder && !(argv[pl->argc] = strdup(item)))
        goto done;
    /* Close-on-exec, so that the commands other workers start at the same
       moment never hold this one's pipes open. */
    if (pipe2(fds[0], O_CLOEXEC) != 0 || pipe2(fds[1], O_CLOEXEC) != 0)
        goto done;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[0][1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1][1], 2);
    /* Worker threads block every signal; the command must not inherit
       that, or Ctrl-C and kill would not reach it. */
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0][1]);
    close(fds[1][1]);
    fds[0][1] = fds[1][1] = -1;
    if (err) {
        char msg[512];
        int k = snprintf(msg, sizeof msg, "mproc run: %s: %s\n", argv[0],
                         strerror(err));
        o->err =
            strndup(msg, (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1);
        o->err_len = o->err ? strlen(o->err) : 0;
        goto done;
    }

    int w = mproc_worker_id();
    atomic_store_explicit(&running[w], pid, memory_order_relaxed);
    size_t ocap = 0, ecap = 0;
    bool open[2] = {true, true}, late = false;
    double deadline = pl->timeout > 0 ? now() + pl->timeout : 0;
    while (open[0] || open[1]) {
        struct pollfd p[2] = {
            {.fd = open[0] ? fds[0][0] : -1, .events = POLLIN},
            {.fd = open[1] ? fds[1][0] : -1, .events = POLLIN}};
        int wait_ms = -1;
        if (deadline) {
            double left = deadline - now();
            if (left <= 0) {
                late = true;
                kill(-pid, SIGKILL);
                break;
            }
            wait_ms = (int)ceil(left * 1000);
        }
        if (poll(p, 2, wait_ms) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            drain(fds[0][0], &o->out, &o->out_len, &ocap, &open[0]);
        if (p[1].revents)
            drain(fds[1][0], &o->err, &o->err_len, &ecap, &open[1]);
    }
    int st = 0;
    atomic_store_explicit(&running[w], 0, memory_order_relaxed);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (late)
        code = CODE_TIMEOUT;
    else if (WIFEXITED(st))
        code = WEXITSTATUS(st);
    else
        code = 128 + WTERMSIG(st);

done:
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (fds[i][k] >= 0)
                close(fds[i][k]);
    if (argv)
        for (int i = 0; i <= pl->argc; i++)
            free(argv[i]);
    free(argv);
    return code;
}

/* Print item k's output, name it on stderr if it failed, and let its
   output go. Returns whether it failed. */
static bool report(size_t k, const char *item, struct output *o, int code)
{
    if (o->out_len)
        fwrite(o->out, 1, o->out_len, stdout);
    fflush(stdout);
    if (o->err_len)
        fwrite(o->err, 1, o->err_len, stderr);
    if (code)
        fprintf(stderr, "mproc run: item %zu (%s): %s %d\n", k, item,
                code == CODE_TIMEOUT   ? "timed out, code"
                : code == CODE_NOSTART ? "not started, code"
                                       : "exit code",
                code);
    fflush(stderr);
    free(o->out);
    free(o->err);
    return code != 0;
}

/* Items from standard input, one per line. */
static char **read_lines(size_t *n)
{
    size_t cap = 64, k = 0;
    char **items = malloc(cap * sizeof *items);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while (items && (len = getline(&line, &lcap, stdin)) >= 0) {
        if (len && line[len - 1] == '\n')
            line[--len] = 0;
        if (k == cap) {
            char **more = realloc(items, (cap *= 2) * sizeof *items);
            if (!more)
                break;
            items = more;
        }
        if (!(items[k] = strdup(line)))
            break;
        k++;
    }
    free(line);
    *n = k;
    return items;
}

static int run_usage(const char *error)
{
    tool_usage(error);
    return EXIT_BROKE;
}

int tool_run(int argc, char **argv)
{
    int workers = 0;
    bool as_done = false;
    struct plan pl = {0};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        char *end;
        if (!strcmp(argv[i], "-j") && i + 1 < argc) {
            long w = strtol(argv[++i], &end, 10);
            if (*end || w < 1 || w > 1024)
                return run_usage("run: -j takes 1 to 1024");
            workers = (int)w;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            pl.timeout = strtod(argv[++i], &end);
            if (*end || !(pl.timeout > 0) || pl.timeout > 365.0 * 86400)
                return run_usage("run: --timeout takes seconds, more than 0");
        } else if (!strcmp(argv[i], "--as-done")) {
            as_done = true;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tool_usage(NULL);
            return 0;
        } else {
            return run_usage("run: unknown option");
        }
    }
    int cmd = i, sep = argc;
    for (int k = cmd; k < argc; k++)
        if (!strcmp(argv[k], ":::")) {
            sep = k;
            break;
        }
    if (sep == cmd)
        return run_usage("run: no command given");
    pl.argv = argv + cmd;
    pl.argc = sep - cmd;
    for (int k = 0; k < pl.argc; k++)
        pl.placeholder |= strstr(pl.argv[k], "{}") != NULL;

    size_t n;
    char **items;
    bool owned = sep == argc;
    if (owned) {
        items = read_lines(&n);
        if (!items) {
            fprintf(stderr, "mproc run: out of memory reading the items\n");
            return EXIT_BROKE;
        }
    } else {
        items = argv + sep + 1;
        n = (size_t)(argc - sep - 1);
    }

    struct sigaction sa = {.sa_handler = pass_on};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct output *outs = calloc(n ? n : 1, sizeof *outs);
    int *codes = calloc(n ? n : 1, sizeof *codes);
    bool *ready = calloc(n ? n : 1, sizeof *ready);
    mproc_pool *pool = NULL;
    mproc_task *t = NULL;
    int r = outs && codes && ready ? 0 : MPROC_ENOMEM;
    if (!r)
        r = mproc_pool_open(
            &pool, &(mproc_options){.kind = MPROC_THREADS, .workers = workers});
    if (!r)
        r = mproc_submit(pool,
                         &(mproc_job){.fn = run_one,
                                      .in = items,
                                      .in_size = sizeof *items,
                                      .out = outs,
                                      .out_size = sizeof *outs,
                                      .n = n,
                                      .arg = &pl,
                                      .chunk = 1,
                                      .status = codes},
                         &t);
    size_t failed = 0, next = 0, idx;
    while (!r && (r = mproc_task_next(t, &idx, -1)) == 0) {
        if (as_done) {
            failed += report(idx, items[idx], &outs[idx], codes[idx]);
            continue;
        }
        /* In the items' order: all that is ready from the first not yet
           printed on. */
        ready[idx] = true;
        for (; next < n && ready[next]; next++)
            failed += report(next, items[next], &outs[next], codes[next]);
    }
    if (r == MPROC_EOF)
        r = 0;
    if (r)
        fprintf(stderr, "mproc run: %s\n", mproc_strerror(r));
    mproc_task_free(t);
    mproc_pool_close(pool);
    free(outs);
    free(codes);
    free(ready);
    if (owned) {
        for (size_t k = 0; k < n; k++)
            free(items[k]);
        free(items);
    }
    if (r)
        return EXIT_BROKE;
    return failed > 100 ? 101 : (int)failed;
}
