/*
 * The event loop: one thread, one poll(2), owning every job.
 *
 * What it waits on: a signalfd (SIGCHLD, and the signals that end mproc
 * run, all blocked so they arrive only here), the input while a slot is
 * free, every running command's stdout and stderr (and its stdin, with
 * --pipe), and the nearest deadline (--timeout, --delay, the progress
 * line).
 *
 * A job is decided by its command's exit, seen through SIGCHLD and
 * waitid(WNOWAIT): the command is still a zombie then, so its pid cannot
 * be reused, and what it left running in its process group is killed
 * before it is reaped. What the command wrote before exiting is in its
 * pipes already and is read to the end; what a background helper would
 * print later is not waited for (the helper is killed with the group).
 *
 * Output is printed in the inputs' order: the oldest job not yet printed
 * prints as its output arrives (so one long job's output streams); the
 * others keep theirs in spools until their turn. At most WINDOW jobs wait
 * behind a slow one, which bounds the spools' descriptors.
 *
 * Exit: see the usage. A signal that ends mproc run (INT, TERM, HUP,
 * QUIT) is passed to every command's group; mproc run waits for them and
 * then ends by the same signal. A second one kills them outright. SIGTSTP
 * (Ctrl-Z) stops the commands' groups and then mproc run; when it is
 * continued, it continues them.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WINDOW       256 /* finished jobs that may wait to be printed */
#define GRACE        1.0 /* seconds from SIGTERM to SIGKILL */
#define RETRY_PAUSE  0.1 /* before retrying a start that lacked resources */
#define RETRY_STARTS 10  /* then the job fails */
#define SAMPLES      4096

struct job {
    size_t seq;
    struct values vals;
    struct command cmd;
    char *tag;
    pid_t pid;
    int slot;
    int out, err, in;
    char *block;
    size_t block_len, block_off;
    struct spool so, se;
    double start_real, start_mono, deadline, kill_at;
    int attempts, start_tries;
    bool running, done, retry, timed_out, live;
    int exitval, sig;
    int start_err;
    const char *start_what;
    int spool_err;
    struct job *next;
};

struct loop {
    const struct run_opts *o;
    struct input *in;
    struct joblog *jl;
    struct job **slots;
    int running;
    struct job *head, *tail; /* started, not yet printed, by seq */
    size_t queued;
    size_t seq; /* the last job number given */
    bool input_done, stopping, halted;
    int halt_status;
    int stop_sig, sigs_seen;
    double next_start; /* --delay */
    double retry_at;   /* a start that lacked resources */
    struct progress_state pr;
    double samples[SAMPLES]; /* runtimes of successful jobs (--timeout P%) */
    size_t nsamples;
    double median;
    int devnull;
    int sfd;
    size_t failed, succeeded;
    bool broke;
    /* The printing job's pipe has bytes but mproc run's stdout is full:
       wait for stdout (POLLOUT), not for the pipe, or poll would wake at
       once for ever while a slow reader catches up. */
    bool out_stalled;
};

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *signame(int sig, char *buf, size_t n)
{
    const char *a = sigabbrev_np(sig);
    if (a)
        snprintf(buf, n, "SIG%s", a);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}

static void job_free(struct job *j)
{
    values_free(&j->vals);
    command_free(&j->cmd);
    free(j->tag);
    free(j->block);
    spool_free(&j->so);
    spool_free(&j->se);
    if (j->out >= 0)
        close(j->out);
    if (j->err >= 0)
        close(j->err);
    if (j->in >= 0)
        close(j->in);
    free(j);
}

static bool failed(const struct job *j)
{
    return j->timed_out || j->sig || j->exitval || j->start_err || j->spool_err;
}

/* Kills every running command's group with sig; SIGKILL later if it was
   gentler. */
static void kill_all(struct loop *l, int sig)
{
    double t = now_mono();
    for (int s = 0; s < l->o->jobs; s++) {
        struct job *j = l->slots[s];
        if (!j)
            continue;
        kill(l->o->tty ? j->pid : -j->pid, sig);
        if (sig != SIGKILL && !j->kill_at)
            j->kill_at = t + GRACE;
    }
}

/* Prints a finished job: its outputs, then a line on stderr if it failed. */
static void print_job(struct loop *l, struct job *j)
{
    const char *tag = j->tag;
    int e = out_spool(1, &j->so, tag);
    if (!e)
        e = out_spool(2, &j->se, tag);
    if (e && !j->spool_err)
        j->spool_err = e;
    if (failed(j) && !l->o->dry_run) {
        char why[160], sn[32];
        if (j->start_err)
            snprintf(why, sizeof why, "not started: %s: %s", j->start_what,
                     strerror(-j->start_err));
        else if (j->spool_err)
            snprintf(why, sizeof why, "output lost: spool: %s",
                     strerror(-j->spool_err));
        else if (j->timed_out)
            snprintf(why, sizeof why, "timed out after %g s",
                     l->o->timeout_pct ? l->o->timeout * l->median
                                       : l->o->timeout);
        else if (j->sig)
            snprintf(why, sizeof why, "killed by %s",
                     signame(j->sig, sn, sizeof sn));
        else
            snprintf(why, sizeof why, "exit code %d", j->exitval);
        char msg[512];
        int n = snprintf(msg, sizeof msg, "mproc run: job %zu (%.200s): %s\n",
                         j->seq, j->cmd.line ? j->cmd.line : "", why);
        out_write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1,
                  NULL, &(bool){true});
    }
    out_flush();
}

/* Pops and prints the finished jobs at the head; the new head prints as
   its output comes. */
static void print_ready(struct loop *l)
{
    while (l->head && l->head->done) {
        struct job *j = l->head;
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        l->queued--;
        print_job(l, j);
        job_free(j);
    }
    /* The head job's output goes out as it comes, unless another attempt
       may replace it (--retries): then it waits whole, so that only the
       last attempt's output is printed. */
    struct job *h = l->head;
    if (h && !h->live && l->o->order && !l->o->results && !h->retry &&
        l->o->retries <= 1) {
        int e = out_spool(1, &h->so, h->tag);
        if (!e)
            e = out_spool(2, &h->se, h->tag);
        if (e && !h->spool_err)
            h->spool_err = e;
        h->live = true;
        out_flush();
    }
}

static void deliver(struct loop *l, struct job *j, int stream, const char *data,
                    size_t n)
{
    struct spool *s = stream == 1 ? &j->so : &j->se;
    if (j->live) {
        s->total += n;
        out_write(stream, data, n, j->tag, &s->bol);
        return;
    }
    if (j->spool_err) {
        s->total += n;
        return;
    }
    int e = spool_add(s, data, n);
    if (e)
        j->spool_err = e;
    if (l->o->line_buffer) {
        out_lines(stream, s, j->tag);
        out_flush();
    }
}

/* Moves what the printing job's stdout pipe holds straight to mproc run's
   stdout with splice(2), without copying it through mproc run: 1 when it
   did, 0 when it cannot (stdout is neither a pipe nor a file, or a tag must
   be added) and the caller reads instead. */
static int pass_through(struct job *j, int *fd)
{
    static bool cannot;
    if (cannot || j->tag || out_error())
        return 0;
    if (out_flush())
        return 1;
    for (;;) {
        ssize_t n = splice(*fd, NULL, 1, NULL, 1 << 20, 0);
        if (n > 0) {
            j->so.total += (size_t)n;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 2; /* woken for bytes that did not move: stdout is full */
        if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EBADF)) {
            cannot = true;
            return 0;
        }
        if (n < 0)
            out_broken(-errno);
        close(*fd);
        *fd = -1;
        return 1;
    }
}

/* Reads what one of j's pipes holds; closes it at end-of-file. */
static void drain(struct loop *l, struct job *j, int stream, bool all)
{
    int *fd = stream == 1 ? &j->out : &j->err;
    char buf[65536];
    /* splice(2) from the command's pipe, which is non-blocking, is
       non-blocking on mproc run's stdout too: EAGAIN can mean that stdout is
       full, not that the pipe is empty. When every byte must be taken now
       (the command has ended), read and write instead, which wait for
       stdout. */
    if (stream == 1 && j->live && *fd >= 0 && !all) {
        int p = pass_through(j, fd);
        if (p == 2)
            l->out_stalled = true;
        if (p)
            return;
    }
    while (*fd >= 0) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            deliver(l, j, stream, buf, (size_t)n);
            if (!all)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && !all)
            return;
        close(*fd);
        *fd = -1;
    }
}

static void sample(struct loop *l, double t)
{
    l->samples[l->nsamples++ % SAMPLES] = t;
    size_t n = l->nsamples < SAMPLES ? l->nsamples : SAMPLES;
    if (n < 3 || (l->nsamples % 8 && n > 16))
        return;
    double *c = malloc(n * sizeof *c);
    if (!c)
        return;
    memcpy(c, l->samples, n * sizeof *c);
    for (size_t i = 1; i < n; i++) /* insertion sort: n is small or rare */
        for (size_t k = i; k && c[k - 1] > c[k]; k--) {
            double t2 = c[k];
            c[k] = c[k - 1];
            c[k - 1] = t2;
        }
    l->median = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
}

static void halt_check(struct loop *l, struct job *j)
{
    const struct run_opts *o = l->o;
    if (o->halt_when == HALT_NEVER || l->halted)
        return;
    bool fail = failed(j);
    size_t count = o->halt_on == HALT_FAIL      ? l->failed
                   : o->halt_on == HALT_SUCCESS ? l->succeeded
                                                : l->failed + l->succeeded;
    bool hit = o->halt_on == HALT_DONE || (o->halt_on == HALT_FAIL) == fail;
    if (!hit)
        return;
    double need = o->halt_count;
    if (o->halt_pct) {
        /* A share of the jobs: known once the input is read whole, or
           from the start for ::: values. */
        size_t total = l->input_done ? l->seq : input_total(l->in);
        if (!total)
            return;
        need = ceil(o->halt_count * (double)total);
    }
    if ((double)count < need)
        return;
    l->halted = true;
    l->stopping = true;
    l->halt_status = j->exitval ? j->exitval
                     : j->sig   ? 128 + j->sig
                     : fail     ? 1
                                : 0;
    if (o->halt_on == HALT_SUCCESS && !fail)
        l->halt_status = 0;
    if (o->halt_when == HALT_NOW)
        kill_all(l, SIGTERM);
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "mproc run: --halt: stopping after job %zu (%.200s)%s\n",
                     j->seq, j->cmd.line ? j->cmd.line : "",
                     o->halt_when == HALT_NOW ? ", killing the others"
                                              : ", letting the others end");
    out_write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, NULL,
              &(bool){true});
}

/* j's command has ended (or never started): decide the job. */
static void finish(struct loop *l, struct job *j, int status)
{
    const struct run_opts *o = l->o;
    double end = now_mono();
    if (j->running) {
        drain(l, j, 1, true);
        drain(l, j, 2, true);
        l->slots[j->slot] = NULL;
        l->running--;
        j->running = false;
        if (j->in >= 0) {
            close(j->in);
            j->in = -1;
        }
        if (WIFEXITED(status)) {
            j->exitval = WEXITSTATUS(status);
            j->sig = 0;
        } else if (WIFSIGNALED(status)) {
            j->exitval = 0;
            j->sig = WTERMSIG(status);
        }
        if (j->timed_out)
            j->exitval = -1;
    }
    if (l->o->line_buffer) {
        out_lines(1, &j->so, j->tag);
        out_lines(2, &j->se, j->tag);
    }
    bool fail = failed(j);
    if (!o->dry_run) {
        struct job_record r = {
            .seq = j->seq,
            .start = j->start_real,
            .runtime = j->start_err ? 0 : end - j->start_mono,
            .sent = j->block_len,
            .received = j->so.total,
            .exitval = j->start_err ? 127 : j->exitval,
            .sig = j->sig,
            .command = j->cmd.line,
        };
        if (joblog_write(l->jl, &r) && !l->broke) {
            fprintf(stderr, "mproc run: --joblog %s: %s\n", o->joblog,
                    strerror(errno));
            l->broke = true;
        }
    }
    if (fail && ++j->attempts < o->retries && !l->stopping) {
        /* Another attempt: its output replaces this one's. */
        spool_free(&j->so);
        spool_free(&j->se);
        j->retry = true;
        j->timed_out = false;
        j->exitval = j->sig = j->start_err = j->spool_err = 0;
        j->kill_at = j->deadline = 0;
        j->block_off = 0;
        return;
    }
    if (o->results && !o->dry_run) {
        int e = results_save(o->results, &j->vals, j->seq, &j->so, &j->se);
        if (e && !l->broke) {
            fprintf(stderr, "mproc run: --results %s: %s\n", o->results,
                    strerror(-e));
            l->broke = true;
        }
    }
    j->done = true;
    l->pr.done++;
    l->pr.runtime_sum += end - j->start_mono;
    if (fail) {
        l->failed++;
        l->pr.failed++;
    } else {
        l->succeeded++;
        sample(l, end - j->start_mono);
    }
    halt_check(l, j);
    if (!o->order) {
        /* Out of the queue at once: printed now. */
        struct job **p = &l->head, *prev = NULL;
        while (*p != j) {
            prev = *p;
            p = &(*p)->next;
        }
        *p = j->next;
        if (l->tail == j)
            l->tail = prev;
        l->queued--;
        print_job(l, j);
        job_free(j);
    }
}

static int free_slot(const struct loop *l)
{
    for (int s = 0; s < l->o->jobs; s++)
        if (!l->slots[s])
            return s;
    return -1;
}

static bool lacks_resources(int e)
{
    return e == -EMFILE || e == -ENFILE || e == -EAGAIN || e == -ENOMEM;
}

/* Starts j in slot s. Returns 0, or -errno when the start should be tried
   again later (resources), having decided the job otherwise. */
static int start(struct loop *l, struct job *j, int s)
{
    const struct run_opts *o = l->o;
    int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    const char *what = "pipe";
    int e = 0;
    command_free(&j->cmd);
    if (o->tagstring && strstr(o->tagstring, "{%}")) {
        /* The slot is known only now. */
        free(j->tag);
        j->tag = expand_string(o->tagstring, &j->vals, j->seq, s + 1);
    }
    if (command_build(&j->cmd, o, &j->vals, j->seq, s + 1)) {
        e = -ENOMEM;
        what = "command";
        goto fail;
    }
    if (!o->ungroup &&
        (pipe2(p[1], O_CLOEXEC) != 0 || pipe2(p[2], O_CLOEXEC) != 0)) {
        e = -errno;
        goto fail;
    }
    if (o->pipe && pipe2(p[0], O_CLOEXEC) != 0) {
        e = -errno;
        goto fail;
    }
    struct spawn_req r = {
        .argv = j->cmd.argv,
        .in = o->pipe ? p[0][0] : l->devnull,
        .out = o->ungroup ? 1 : p[1][1],
        .err = o->ungroup ? 2 : p[2][1],
        .own_group = !o->tty,
        .slot = s,
    };
    j->start_real = now_real();
    j->start_mono = now_mono();
    pid_t pid = spawn(&r, &what);
    if (pid < 0) {
        e = pid;
        goto fail;
    }
    for (int i = 0; i < 3; i++)
        if (p[i][i ? 1 : 0] >= 0)
            close(p[i][i ? 1 : 0]);
    j->in = p[0][1];
    j->out = p[1][0];
    j->err = p[2][0];
    for (int i = 0; i < 3; i++) {
        int fd = i == 0 ? j->in : i == 1 ? j->out : j->err;
        if (fd >= 0)
            fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    j->pid = pid;
    j->slot = s;
    j->running = true;
    j->retry = false;
    j->start_tries = 0;
    if (o->timeout && (!o->timeout_pct || l->median > 0))
        j->deadline = j->start_mono +
                      (o->timeout_pct ? o->timeout * l->median : o->timeout);
    l->slots[s] = j;
    l->running++;
    l->pr.started++;
    if (o->delay)
        l->next_start = j->start_mono + o->delay;
    return 0;
fail:
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++)
            if (p[i][k] >= 0)
                close(p[i][k]);
    /* While commands run, their ends free what is lacking: wait for them
       as long as it takes. With none running, try a few times only. */
    if (lacks_resources(e) && !l->stopping &&
        (l->running || ++j->start_tries < RETRY_STARTS)) {
        j->retry = true;
        return e;
    }
    j->start_err = e;
    j->start_what = what;
    j->retry = false;
    j->start_mono = now_mono();
    j->start_real = now_real();
    finish(l, j, 0);
    return 0;
}

static void enqueue(struct loop *l, struct job *j)
{
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->queued++;
}

static struct job *job_new(struct loop *l, struct values *v)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->vals = *v;
    *v = (struct values){0};
    j->out = j->err = j->in = -1;
    j->seq = ++l->seq;
    spool_init(&j->so);
    spool_init(&j->se);
    if (l->o->tagstring)
        j->tag = expand_string(l->o->tagstring, &j->vals, j->seq, 0);
    else if (l->o->tag)
        j->tag = expand_string("{}", &j->vals, j->seq, 0);
    return j;
}

/* The next job to start: a retried one first, else one made from input.
   Returns 1 (*jp), 0 (wait for input or a moment), -1 (none left). */
static int next_job(struct loop *l, struct job **jp)
{
    for (struct job *j = l->head; j; j = j->next)
        if (j->retry && !j->running && !j->done) {
            *jp = j;
            return 1;
        }
    if (l->input_done)
        return -1;
    for (;;) {
        struct values v = {0};
        char *block = NULL;
        size_t len = 0;
        int r = l->o->pipe ? input_next_block(l->in, &block, &len)
                           : input_next(l->in, &v);
        if (r == -2) {
            l->broke = true;
            r = -1;
        }
        if (r == -1) {
            l->input_done = true;
            l->pr.total_known = true;
            l->pr.total = l->seq;
        }
        if (r != 1)
            return r;
        struct job *j = job_new(l, &v);
        if (!j) {
            free(block);
            values_free(&v);
            l->broke = true;
            l->input_done = true;
            return -1;
        }
        j->block = block;
        j->block_len = len;
        if (joblog_skip(l->jl, j->seq)) {
            job_free(j);
            continue;
        }
        if (l->o->dry_run) {
            if (command_build(&j->cmd, l->o, &j->vals, j->seq, 1) == 0) {
                out_write(1, j->cmd.line, strlen(j->cmd.line), NULL,
                          &(bool){true});
                out_write(1, "\n", 1, NULL, &(bool){true});
            }
            job_free(j);
            continue;
        }
        enqueue(l, j);
        *jp = j;
        return 1;
    }
}

/* Starts what can start now. */
static void start_jobs(struct loop *l)
{
    double t = now_mono();
    while (!l->stopping && l->running < l->o->jobs) {
        if (l->o->delay && t < l->next_start)
            return;
        if (l->retry_at && t < l->retry_at)
            return;
        l->retry_at = 0;
        if (l->queued >= (size_t)l->o->jobs + WINDOW && l->o->order)
            return;
        int s = free_slot(l);
        struct job *j;
        if (s < 0 || next_job(l, &j) != 1)
            return;
        if (start(l, j, s)) {
            /* Resources: wait for a command to end, or a moment. */
            if (!l->running)
                l->retry_at = t + RETRY_PAUSE;
            return;
        }
        if (l->o->order)
            print_ready(l);
    }
}

static void reap(struct loop *l)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            si.si_pid == 0)
            return;
        pid_t pid = si.si_pid;
        struct job *j = NULL;
        for (int s = 0; s < l->o->jobs && !j; s++)
            if (l->slots[s] && l->slots[s]->pid == pid)
                j = l->slots[s];
        /* What the command left in its group goes with it; its pid is
           still a zombie's, so the group cannot be another's. */
        if (j && !l->o->tty)
            kill(-pid, SIGKILL);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (j) {
            guard_clear(j->slot);
            finish(l, j, st);
        }
    }
}

/* Ctrl-Z: the commands run in process groups of their own, away from the
   terminal's, so mproc run stops them with itself and continues them when
   it is continued. */
static void suspend(struct loop *l)
{
    for (int s = 0; s < l->o->jobs; s++)
        if (l->slots[s])
            kill(l->o->tty ? l->slots[s]->pid : -l->slots[s]->pid, SIGSTOP);
    raise(SIGSTOP);
    for (int s = 0; s < l->o->jobs; s++)
        if (l->slots[s])
            kill(l->o->tty ? l->slots[s]->pid : -l->slots[s]->pid, SIGCONT);
}

static void on_signal(struct loop *l, int sig)
{
    if (sig == SIGCHLD) {
        reap(l);
        return;
    }
    if (sig == SIGTSTP) {
        suspend(l);
        return;
    }
    l->stopping = true;
    if (!l->stop_sig)
        l->stop_sig = sig;
    kill_all(l, l->sigs_seen++ ? SIGKILL : sig);
}

static void timers(struct loop *l, double t)
{
    for (int s = 0; s < l->o->jobs; s++) {
        struct job *j = l->slots[s];
        if (!j)
            continue;
        if (j->deadline && t >= j->deadline && !j->timed_out) {
            j->timed_out = true;
            kill(l->o->tty ? j->pid : -j->pid, SIGTERM);
            j->kill_at = t + GRACE;
        }
        if (j->kill_at && t >= j->kill_at) {
            kill(l->o->tty ? j->pid : -j->pid, SIGKILL);
            j->kill_at = 0;
        }
    }
}

static int wait_ms(const struct loop *l, double t)
{
    double next = INFINITY;
    for (int s = 0; s < l->o->jobs; s++) {
        const struct job *j = l->slots[s];
        if (j && j->deadline && !j->timed_out && j->deadline < next)
            next = j->deadline;
        if (j && j->kill_at && j->kill_at < next)
            next = j->kill_at;
    }
    if (!l->stopping && l->running < l->o->jobs) {
        if (l->o->delay && l->next_start > t && l->next_start < next)
            next = l->next_start;
        if (l->retry_at && l->retry_at < next)
            next = l->retry_at;
    }
    if (progress_on(l->o) && t + 0.2 < next)
        next = t + 0.2;
    if (next == INFINITY)
        return -1;
    double ms = ceil((next - t) * 1000);
    return ms < 0 ? 0 : ms > 1e6 ? 1000000 : (int)ms;
}

static int loop_body(struct loop *l)
{
    const struct run_opts *o = l->o;
    size_t nfds = 3 + 3 * (size_t)o->jobs;
    struct pollfd *pfd = calloc(nfds, sizeof *pfd);
    struct job **owner = calloc(nfds, sizeof *owner);
    if (!pfd || !owner) {
        free(pfd);
        free(owner);
        return -ENOMEM;
    }
    for (;;) {
        start_jobs(l);
        if (out_error())
            break;
        if (!l->running && (l->stopping || l->input_done)) {
            bool retrying = false;
            for (struct job *j = l->head; j && !retrying; j = j->next)
                retrying = j->retry;
            if (l->stopping || !retrying)
                break;
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){.fd = l->sfd, .events = POLLIN};
        int ifd = -1;
        if (!l->stopping && !l->input_done && l->running < o->jobs &&
            (ifd = input_fd(l->in)) >= 0)
            pfd[n++] = (struct pollfd){.fd = ifd, .events = POLLIN};
        /* A pipe on stdout whose reader is gone shows POLLERR: mproc run
           then stops at once, as a write would have told it, rather than
           running commands whose output has nowhere to go. */
        size_t out_at = n;
        pfd[n++] =
            (struct pollfd){.fd = 1, .events = l->out_stalled ? POLLOUT : 0};
        size_t first_job = n;
        for (int s = 0; s < o->jobs; s++) {
            struct job *j = l->slots[s];
            if (!j)
                continue;
            if (j->out >= 0) {
                owner[n] = j;
                pfd[n++] = (struct pollfd){
                    .fd = j->out,
                    .events = l->out_stalled && j->live ? 0 : POLLIN};
            }
            if (j->err >= 0) {
                owner[n] = j;
                pfd[n++] = (struct pollfd){.fd = j->err, .events = POLLIN};
            }
            if (j->in >= 0) {
                owner[n] = j;
                pfd[n++] = (struct pollfd){.fd = j->in, .events = POLLOUT};
            }
        }
        double t = now_mono();
        if (progress_on(o))
            progress_draw(o, &l->pr, t, false);
        int r = poll(pfd, n, wait_ms(l, t));
        if (r < 0 && errno != EINTR)
            break;
        for (size_t i = first_job; r > 0 && i < n; i++) {
            struct job *j = owner[i];
            if (!pfd[i].revents)
                continue;
            if (pfd[i].fd == j->out && !pfd[i].events)
                continue; /* a hang-up while stdout is full: its end waits */
            if (pfd[i].fd == j->out)
                drain(l, j, 1, false);
            else if (pfd[i].fd == j->err)
                drain(l, j, 2, false);
            else if (pfd[i].fd == j->in) {
                ssize_t w = write(j->in, j->block + j->block_off,
                                  j->block_len - j->block_off);
                if (w > 0)
                    j->block_off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
                    j->block_off == j->block_len) {
                    close(j->in);
                    j->in = -1;
                }
            }
        }
        if (r > 0 && ifd >= 0 && pfd[1].revents && input_fill(l->in)) {
            l->broke = true;
            l->input_done = true;
        }
        if (r > 0 && (pfd[out_at].revents & POLLERR))
            out_broken(-EPIPE);
        if (r > 0 && (pfd[out_at].revents & (POLLOUT | POLLERR)))
            l->out_stalled = false;
        if (r > 0 && pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(l->sfd, &si, sizeof si) == (ssize_t)sizeof si)
                on_signal(l, (int)si.ssi_signo);
        }
        timers(l, now_mono());
        if (o->order)
            print_ready(l);
        out_flush();
        if (out_error())
            break;
    }
    free(pfd);
    free(owner);
    return 0;
}

int run_loop(const struct run_opts *o)
{
    struct loop l = {.o = o, .devnull = -1, .sfd = -1};
    int status = RUN_BROKE;
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        /* A signal mproc run was started ignoring (nohup, a background job
           of a shell without job control) stays ignored, for it and for
           its commands, as the shell meant. */
        struct sigaction old;
        if (sigs[i] != SIGCHLD && sigaction(sigs[i], NULL, &old) == 0 &&
            old.sa_handler == SIG_IGN)
            continue;
        sigaddset(&set, sigs[i]);
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    spawn_init();
    l.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    l.devnull = open(o->tty ? "/dev/tty" : "/dev/null", O_RDWR | O_CLOEXEC);
    l.slots = calloc((size_t)o->jobs, sizeof *l.slots);
    if (l.sfd < 0 || l.devnull < 0 || !l.slots) {
        fprintf(stderr, "mproc run: %s: %s\n",
                l.devnull < 0 && o->tty ? "/dev/tty" : "setting up",
                strerror(errno));
        goto out;
    }
    if (input_open(&l.in, o))
        goto out;
    if (joblog_open(&l.jl, o))
        goto out;
    if (!o->dry_run) {
        int e = guard_start(o->jobs);
        if (e) {
            fprintf(stderr, "mproc run: starting the guard: %s\n",
                    strerror(-e));
            goto out;
        }
    }
    l.pr.begin = now_mono();
    if ((l.pr.total = input_total(l.in)))
        l.pr.total_known = true;
    if (loop_body(&l)) {
        fprintf(stderr, "mproc run: out of memory\n");
        goto out;
    }
    int werr = out_flush();
    if (werr) {
        /* Nothing more can be printed: end the commands, then say why. */
        kill_all(&l, SIGTERM);
        while (l.running) {
            struct signalfd_siginfo si;
            struct pollfd p = {.fd = l.sfd, .events = POLLIN};
            double t = now_mono();
            timers(&l, t);
            poll(&p, 1, wait_ms(&l, t));
            while (read(l.sfd, &si, sizeof si) == (ssize_t)sizeof si)
                if (si.ssi_signo == SIGCHLD)
                    reap(&l);
        }
        if (werr == -EPIPE) {
            /* As a program killed by SIGPIPE ends: the shell's convention
               for a reader that went away. */
            signal(SIGPIPE, SIG_DFL);
            sigset_t p;
            sigemptyset(&p);
            sigaddset(&p, SIGPIPE);
            sigprocmask(SIG_UNBLOCK, &p, NULL);
            raise(SIGPIPE);
        }
        fprintf(stderr, "mproc run: writing the output: %s\n", strerror(-werr));
        goto out;
    }
    if (progress_on(o))
        progress_draw(o, &l.pr, now_mono(), true);
    if (l.stop_sig) {
        joblog_close(l.jl);
        l.jl = NULL;
        signal(l.stop_sig, SIG_DFL);
        sigset_t p;
        sigemptyset(&p);
        sigaddset(&p, l.stop_sig);
        sigprocmask(SIG_UNBLOCK, &p, NULL);
        raise(l.stop_sig);
    }
    if (l.broke)
        status = RUN_BROKE;
    else if (l.halted)
        status = l.halt_status;
    else
        status = l.failed > 100 ? 101 : (int)l.failed;
out:
    /* Jobs that will not run again (stopped while waiting for a retry)
       hold back those behind them: print what is done. */
    while (l.head) {
        struct job *j = l.head;
        l.head = j->next;
        if (j->done)
            print_job(&l, j);
        job_free(j);
    }
    out_flush();
    free(l.slots);
    input_close(l.in);
    joblog_close(l.jl);
    if (l.devnull >= 0)
        close(l.devnull);
    if (l.sfd >= 0)
        close(l.sfd);
    return status;
}
