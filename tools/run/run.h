/*
 * mproc run's parts, one idea a file:
 *
 *   options.c   the command line, as GNU parallel means it (getopt_long)
 *   input.c     input sources: ::: :::: :::+ ::::+ -a, standard input,
 *               streamed; records, -N, --colsep; --pipe blocks
 *   template.c  replacement strings, shell quoting, the command of a job
 *   spawn.c     starting a command (vfork, its own process group, tied to
 *               mproc run by the kernel) and the guard that ends every
 *               group if mproc run dies
 *   output.c    each job's output: memory, then an unlinked temporary file;
 *               printing in order, --tag, --line-buffer, --results
 *   joblog.c    --joblog, --resume, --resume-failed
 *   progress.c  --bar, --progress, --eta on a terminal's stderr
 *   loop.c      the event loop: input, starts, outputs, exits, timeouts,
 *               signals, --halt, --retries
 *   mpi.c       --mpi: the commands spread over the ranks of mpirun
 *
 * mproc run is single-threaded: one poll loop owns every job, so nothing
 * here needs a lock.
 */
#ifndef MPROC_RUN_H
#define MPROC_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* mproc run's own exit status when it could not do its work. */
#define RUN_BROKE 255

/* ---- options.c ---- */

enum halt_when { HALT_NEVER, HALT_SOON, HALT_NOW };
enum halt_on { HALT_FAIL, HALT_SUCCESS, HALT_DONE };

/* A source of input values, in the order given. */
struct source_spec {
    const char *const *args; /* the values after ":::", or NULL */
    size_t nargs;
    const char *path; /* the file of "::::" or -a ("-": standard input) */
    bool linked;      /* ":::+" or "::::+": paired with the source before */
};

struct run_opts {
    int jobs;   /* commands at once, resolved from -j */
    char **cmd; /* the command's words, replacement strings in them */
    int ncmd;   /* how many */
    bool shell; /* run through /bin/sh -c (--shell, or one word of shell) */
    bool order; /* print in the inputs' order (default; --as-done: no) */
    bool ungroup, line_buffer;
    bool tag;
    const char *tagstring;
    bool dry_run;
    bool bar, progress, eta;
    const char *joblog;
    bool resume, resume_failed;
    int retries; /* attempts in all, at least 1 */
    enum halt_when halt_when;
    enum halt_on halt_on;
    double halt_count; /* a count, or a fraction of the jobs when halt_pct */
    bool halt_pct;
    double timeout; /* seconds, or a fraction of the median when timeout_pct */
    bool timeout_pct;
    double delay;
    const char *results;
    bool pipe;
    size_t block;
    bool tty;
    int delim;    /* the record separator of input files; -1: none */
    int max_args; /* -N: values a job takes, 0: one record */
    const char *colsep;
    struct source_spec *sources;
    size_t nsources;
    bool stdin_used; /* a source or --pipe reads standard input */
    bool mpi;        /* spread over the ranks of mpirun */
};

/* Parses argv into o. Returns -1 when mproc run should go on, else the
   exit status (0 after --help, RUN_BROKE after a message on stderr). */
int run_options(struct run_opts *o, int argc, char **argv);
void run_options_free(struct run_opts *o);
void run_usage(FILE *f);

/* ---- input.c ---- */

/* The values of one job: one per source, or -N's values, or the columns of
   --colsep. Owned by the job. */
struct values {
    char **v;
    size_t n;
};

struct input;

int input_open(struct input **in, const struct run_opts *o);
/* The descriptor to poll for more input, or -1 when next() can be called
   without waiting. */
int input_fd(const struct input *in);
/* How many jobs the input makes, when known before it is read (only :::
   values); 0 when not. */
size_t input_total(const struct input *in);
/* The next job's values: 1 (vals filled), 0 (poll input_fd first), -1 (no
   more), or RUN_BROKE-ish failure -2 after a message. */
int input_next(struct input *in, struct values *vals);
/* Reads what has arrived on input_fd, once; never blocks on a poll()ed
   descriptor. Returns 0 or -2 after a message. */
int input_fill(struct input *in);
void input_close(struct input *in);
void values_free(struct values *v);

/* --pipe: the next block of standard input, cut at a record's end. Same
   returns as input_next. */
int input_next_block(struct input *in, char **block, size_t *len);

/* ---- template.c ---- */

/* A job's command: the argv to execute and the line to show (--dry-run,
   --joblog), quoted as a shell reads it. */
struct command {
    char **argv;
    char *line;
};

int command_build(struct command *c, const struct run_opts *o,
                  const struct values *v, size_t seq, int slot);
void command_free(struct command *c);
/* str with every replacement string replaced (--tagstring); a new string. */
char *expand_string(const char *str, const struct values *v, size_t seq,
                    int slot);
/* s quoted for a POSIX shell; appended to *buf. Returns 0 or -1. */
int shell_quote(char **buf, size_t *len, size_t *cap, const char *s);
/* Whether one word holds shell syntax, so must run through /bin/sh. */
bool has_shell_syntax(const char *word);
/* Whether the words hold any replacement string. */
bool has_replacement(char *const *words, int n);

/* ---- spawn.c ---- */

struct spawn_req {
    char **argv;
    int in, out, err; /* descriptors for 0, 1, 2 */
    bool own_group;   /* in its own process group (all but --tty) */
    int slot;         /* where the guard's table keeps its group */
};

/* Starts the guard: a process that ends every running command's group when
   mproc run ends in any way. slots: the table's size. */
int guard_start(int slots);
/* Starts a command; returns its pid, or -errno with *what naming the call
   that failed ("fork", "exec", ...). */
pid_t spawn(const struct spawn_req *r, const char **what);
/* Forgets slot's group in the guard's table (its command was reaped). */
void guard_clear(int slot);
/* Restores what the commands must not inherit from mproc run. */
void spawn_init(void);

/* ---- output.c ---- */

/* One stream of one job's output: memory up to a bound, then an unlinked
   temporary file. */
struct spool {
    char *mem;
    size_t len, cap;
    int fd;       /* the temporary file, or -1 */
    size_t flen;  /* bytes in it */
    size_t total; /* all bytes received */
    bool bol;     /* the next byte printed starts a line (--tag) */
};

void spool_init(struct spool *s);
/* Keeps data; returns 0, or -errno when the spool file failed. */
int spool_add(struct spool *s, const char *data, size_t n);
void spool_free(struct spool *s);

struct printer; /* fd 1 and 2, buffered, with the first write error kept */

/* Writes len bytes to stream 1 or 2, prefixed at each line start with tag
   (may be NULL). *bol tracks line starts. */
void out_write(int stream, const char *data, size_t len, const char *tag,
               bool *bol);
/* Prints a spool to stream and empties it; returns 0 or -errno (the spool
   could not be read back). */
int out_spool(int stream, struct spool *s, const char *tag);
/* Prints the complete lines of a spool held in memory (--line-buffer),
   keeping the rest. */
void out_lines(int stream, struct spool *s, const char *tag);
int out_flush(void);
/* The first write error on mproc run's own output, 0 if none. */
int out_error(void);
/* Records e as the output's error (stdout's reader went away). */
void out_broken(int e);
extern size_t spool_memory; /* bytes held in memory by every spool */

/* --results DIR: writes a job's outputs under DIR. */
int results_save(const char *dir, const struct values *v, size_t seq,
                 struct spool *out, struct spool *err);

/* ---- joblog.c ---- */

struct joblog;
struct job_record {
    size_t seq;
    double start, runtime;
    size_t sent, received;
    int exitval, sig;
    const char *command;
};
/* Opens --joblog; with --resume or --resume-failed, reads what it holds
   first. */
int joblog_open(struct joblog **jl, const struct run_opts *o);
int joblog_write(struct joblog *jl, const struct job_record *r);
/* With --resume/--resume-failed: whether seq need not run again. */
bool joblog_skip(const struct joblog *jl, size_t seq);
void joblog_close(struct joblog *jl);

/* ---- progress.c ---- */

struct progress_state {
    size_t started, done, failed, running;
    bool total_known;
    size_t total;
    double begin;
    double runtime_sum;
};
bool progress_on(const struct run_opts *o);
void progress_draw(const struct run_opts *o, const struct progress_state *p,
                   double now, bool last);

/* ---- loop.c ---- */

int run_loop(const struct run_opts *o);
double now_mono(void);
double now_real(void);

/* ---- mpi.c ---- */

int run_mpi(const struct run_opts *o);

#endif
