/*
 * --mpi: the commands spread over the ranks of mpirun.
 *
 *   mpirun -np 5 mproc run --mpi make -C {} test ::: lib app docs
 *
 * Every rank runs mproc run with the same arguments and opens the library's
 * MPROC_MPI pool: ranks 1 to N-1 serve items inside mproc_pool_open and
 * exit when rank 0 closes it; rank 0 reads the input, builds each command
 * and maps batches of them over the ranks, then prints each command's
 * output in the inputs' order, as without --mpi.
 *
 * Only bytes cross between ranks, in fixed-size items and results (the
 * library's MPI results have a fixed size today): a command's words travel
 * in ITEM_BYTES, and its output comes back in RESULT_BYTES (stderr keeps
 * up to a quarter, stdout the rest). What does not fit is cut, and mproc
 * run says so on stderr; a command longer than ITEM_BYTES is an error for
 * its job. On the serving rank the command runs in its own process group,
 * standard input /dev/null, killed with its group after --timeout.
 *
 * Batches run one after another (each as many items as four per rank), so
 * the input streams in batches; the options that need a loop of their own
 * (--pipe, --halt, --retries, --results, -u, --line-buffer, --as-done,
 * --tty, --delay, --timeout P%, --dry-run, --resume) are refused with
 * --mpi.
 */
#define _GNU_SOURCE
#include "run.h"

#include <mproc.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ITEM_BYTES   4096
#define RESULT_BYTES 65536

extern char **environ;

struct mpi_item {
    uint32_t argc, len; /* words, and their bytes (NUL-separated) */
    char words[ITEM_BYTES - 8];
};

struct mpi_result {
    int32_t exitval, sig, err; /* err: errno of a start that failed */
    uint32_t out_len, err_len; /* bytes kept in data: stdout, then stderr */
    uint64_t out_cut, err_cut; /* bytes that did not fit */
    double runtime;
    char data[RESULT_BYTES - 48];
};

struct mpi_arg {
    double timeout;
};

/* What one stream keeps: up to cap bytes; the rest is counted. */
struct keep {
    char *buf;
    size_t len, cap;
    uint64_t cut;
};

static void keep_add(struct keep *k, const char *p, size_t n)
{
    size_t room = k->cap - k->len, take = n < room ? n : room;
    memcpy(k->buf + k->len, p, take);
    k->len += take;
    k->cut += n - take;
}

/* Runs on a serving rank: one command, its outputs and its end. */
static int mpi_item_run(const void *in, void *out, void *arg)
{
    const struct mpi_item *it = in;
    const struct mpi_arg *a = arg;
    struct mpi_result *r = out;
    memset(r, 0, offsetof(struct mpi_result, data));
    char **argv = calloc(it->argc + 1, sizeof *argv);
    char *errs = malloc(sizeof r->data / 4);
    char *outs = malloc(sizeof r->data);
    int p[2][2] = {{-1, -1}, {-1, -1}};
    if (!argv || !errs || !outs) {
        r->err = ENOMEM;
        goto done;
    }
    const char *w = it->words;
    for (uint32_t i = 0; i < it->argc; i++, w += strlen(w) + 1)
        argv[i] = (char *)w;
    if (pipe2(p[0], O_CLOEXEC) || pipe2(p[1], O_CLOEXEC)) {
        r->err = errno;
        goto done;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[0][1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1][1], 2);
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    double start = now_mono();
    int e = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0][1]);
    close(p[1][1]);
    p[0][1] = p[1][1] = -1;
    if (e) {
        r->err = e;
        goto done;
    }
    struct keep ko = {outs, 0, sizeof r->data, 0};
    struct keep ke = {errs, 0, sizeof r->data / 4, 0};
    double deadline = a->timeout > 0 ? start + a->timeout : 0;
    bool late = false;
    while (p[0][0] >= 0 || p[1][0] >= 0) {
        struct pollfd pf[2] = {{.fd = p[0][0], .events = POLLIN},
                               {.fd = p[1][0], .events = POLLIN}};
        int ms = -1;
        if (deadline) {
            double left = deadline - now_mono();
            if (left <= 0) {
                late = true;
                kill(-pid, SIGKILL);
                break;
            }
            ms = (int)ceil(left * 1000);
        }
        if (poll(pf, 2, ms) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (!pf[i].revents)
                continue;
            char buf[65536];
            ssize_t n = read(p[i][0], buf, sizeof buf);
            if (n > 0)
                keep_add(i ? &ke : &ko, buf, (size_t)n);
            else if (n == 0 || errno != EINTR) {
                close(p[i][0]);
                p[i][0] = -1;
            }
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    kill(-pid, SIGKILL); /* what it left behind in its group */
    r->runtime = now_mono() - start;
    if (WIFSIGNALED(st))
        r->sig = WTERMSIG(st);
    else
        r->exitval = WEXITSTATUS(st);
    if (late) {
        r->exitval = -1;
        r->sig = SIGKILL;
    }
    /* stderr keeps what it has (at most a quarter); stdout the rest. */
    size_t eo = ke.len, oo = ko.len;
    if (oo + eo > sizeof r->data) {
        ko.cut += oo + eo - sizeof r->data;
        oo = sizeof r->data - eo;
    }
    memcpy(r->data, outs, oo);
    memcpy(r->data + oo, errs, eo);
    r->out_len = (uint32_t)oo;
    r->err_len = (uint32_t)eo;
    r->out_cut = ko.cut;
    r->err_cut = ke.cut;
done:
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (p[i][k] >= 0)
                close(p[i][k]);
    free(argv);
    free(errs);
    free(outs);
    return 0;
}

static int encode(struct mpi_item *it, char **argv)
{
    size_t len = 0;
    uint32_t argc = 0;
    for (; argv[argc]; argc++) {
        size_t n = strlen(argv[argc]) + 1;
        if (len + n > sizeof it->words)
            return -1;
        memcpy(it->words + len, argv[argc], n);
        len += n;
    }
    it->argc = argc;
    it->len = (uint32_t)len;
    return 0;
}

static const char *refused(const struct run_opts *o)
{
    return o->pipe            ? "--pipe"
           : o->halt_when     ? "--halt"
           : o->retries > 1   ? "--retries"
           : o->results       ? "--results"
           : o->ungroup       ? "-u or --tty"
           : o->line_buffer   ? "--line-buffer"
           : !o->order        ? "--as-done"
           : o->delay         ? "--delay"
           : o->timeout_pct   ? "--timeout P%"
           : o->dry_run       ? "--dry-run"
           : o->resume        ? "--resume"
           : o->resume_failed ? "--resume-failed"
                              : NULL;
}

static void say(int stream, const char *fmt, size_t seq, const char *line,
                const char *why)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, fmt, seq, line, why);
    out_write(stream, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1,
              NULL, &(bool){true});
}

int run_mpi(const struct run_opts *o)
{
    const char *no = refused(o);
    if (no) {
        fprintf(stderr, "mproc run: %s is not supported with --mpi\n", no);
        return RUN_BROKE;
    }
    mproc_pool *pool = NULL;
    int r = mproc_pool_open(&pool, &(mproc_options){.kind = MPROC_MPI});
    if (r) {
        fprintf(stderr,
                "mproc run: --mpi: opening the pool of MPI ranks: %s (run "
                "under mpirun, 2 ranks or more)\n",
                mproc_strerror(r));
        return RUN_BROKE;
    }
    /* Rank 0 from here on. */
    signal(SIGPIPE, SIG_IGN);
    struct input *in = NULL;
    struct joblog *jl = NULL;
    int status = RUN_BROKE;
    size_t batch =
        4 * (size_t)(mproc_pool_size(pool) > 0 ? mproc_pool_size(pool) : 1);
    struct mpi_item *items = calloc(batch, sizeof *items);
    struct mpi_result *res = calloc(batch, sizeof *res);
    struct values *vals = calloc(batch, sizeof *vals);
    struct command *cmds = calloc(batch, sizeof *cmds);
    double *starts = calloc(batch, sizeof *starts);
    bool *bad = calloc(batch, sizeof *bad);
    if (!items || !res || !vals || !cmds || !starts || !bad ||
        input_open(&in, o) || joblog_open(&jl, o))
        goto out;
    struct mpi_arg arg = {.timeout = o->timeout};
    size_t seq = 0, failed = 0;
    bool more = true, broke = false;
    while (more) {
        size_t k = 0;
        while (k < batch) {
            int got = input_next(in, &vals[k]);
            if (got == 0) {
                /* Wait for input only when the batch is still empty. */
                if (k)
                    break;
                struct pollfd pf = {.fd = input_fd(in), .events = POLLIN};
                if (pf.fd >= 0)
                    poll(&pf, 1, -1);
                if (input_fill(in))
                    got = -2;
                else
                    continue;
            }
            if (got < 0) {
                broke |= got == -2;
                more = false;
                break;
            }
            size_t s = seq + k + 1;
            bad[k] = command_build(&cmds[k], o, &vals[k], s, 1) ||
                     encode(&items[k], cmds[k].argv);
            if (bad[k])
                items[k] = (struct mpi_item){.argc = 1, .len = 5};
            if (bad[k])
                memcpy(items[k].words, "true", 5);
            starts[k] = now_real();
            k++;
        }
        if (!k)
            break;
        r = mproc_map(pool, &(mproc_job){.fn = mpi_item_run,
                                         .in = items,
                                         .in_size = sizeof *items,
                                         .out = res,
                                         .out_size = sizeof *res,
                                         .n = k,
                                         .arg = &arg,
                                         .arg_size = sizeof arg,
                                         .chunk = 1});
        if (r < 0) {
            fprintf(stderr, "mproc run: --mpi: %s\n", mproc_strerror(r));
            broke = true;
            more = false;
        }
        for (size_t i = 0; r >= 0 && i < k; i++) {
            struct mpi_result *x = &res[i];
            size_t s = ++seq;
            char *tag = o->tagstring
                            ? expand_string(o->tagstring, &vals[i], s, 1)
                        : o->tag ? expand_string("{}", &vals[i], s, 1)
                                 : NULL;
            bool bol1 = true, bol2 = true;
            out_write(1, x->data, x->out_len, tag, &bol1);
            out_write(2, x->data + x->out_len, x->err_len, tag, &bol2);
            free(tag);
            const char *line = cmds[i].line ? cmds[i].line : "";
            char why[160];
            bool fail = true;
            if (bad[i])
                snprintf(why, sizeof why,
                         "not started: the command is longer than %d "
                         "bytes (--mpi)",
                         ITEM_BYTES - 8);
            else if (x->err)
                snprintf(why, sizeof why, "not started: exec: %s",
                         strerror(x->err));
            else if (x->exitval == -1)
                snprintf(why, sizeof why, "timed out after %g s", o->timeout);
            else if (x->sig)
                snprintf(why, sizeof why, "killed by SIG%s",
                         sigabbrev_np(x->sig) ? sigabbrev_np(x->sig) : "?");
            else if (x->exitval)
                snprintf(why, sizeof why, "exit code %d", x->exitval);
            else
                fail = false;
            if (x->out_cut || x->err_cut) {
                char cut[160];
                snprintf(cut, sizeof cut,
                         "output cut: %llu bytes of stdout and %llu of "
                         "stderr did not fit the %d bytes a result holds "
                         "(--mpi)",
                         (unsigned long long)x->out_cut,
                         (unsigned long long)x->err_cut, RESULT_BYTES - 48);
                say(2, "mproc run: job %zu (%.200s): %s\n", s, line, cut);
            }
            if (fail) {
                failed++;
                say(2, "mproc run: job %zu (%.200s): %s\n", s, line, why);
            }
            struct job_record rec = {
                .seq = s,
                .start = starts[i],
                .runtime = x->runtime,
                .received = x->out_len + x->out_cut,
                .exitval = bad[i] || x->err ? 127 : x->exitval,
                .sig = x->exitval == -1 ? SIGTERM : x->sig,
                .command = line,
            };
            if (joblog_write(jl, &rec))
                broke = true;
            out_flush();
        }
        for (size_t i = 0; i < k; i++) {
            values_free(&vals[i]);
            command_free(&cmds[i]);
        }
        if (out_error())
            break;
    }
    int werr = out_flush();
    if (werr) {
        fprintf(stderr, "mproc run: writing the output: %s\n", strerror(-werr));
        goto out;
    }
    status = broke ? RUN_BROKE : failed > 100 ? 101 : (int)failed;
out:
    mproc_pool_close(pool);
    input_close(in);
    joblog_close(jl);
    free(items);
    free(res);
    free(vals);
    free(cmds);
    free(starts);
    free(bad);
    return status;
}
