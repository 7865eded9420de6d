/*
 * mproc run's command line. The options mean what GNU parallel's mean (its
 * manual is the reference for meaning), parsed by getopt_long with "+": the
 * options end at the command, so a command's own options stay its own
 * (mproc run -j2 sh -c 'exit $1' _ ::: 0 1). After the command come the
 * input sources: ":::" values, "::::" files, ":::+" and "::::+" paired with
 * the source before them.
 *
 * GNU parallel options that mproc run does not have are refused by name,
 * with a hint, rather than taken as unknown: a script written for GNU
 * parallel then says at once what to change.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: mproc run [OPTION...] COMMAND [ARG...] [::: VALUE...] "
    "[:::: FILE...]\n"
    "\n"
    "Runs COMMAND once per input, N at a time, each command's output printed\n"
    "whole and in the inputs' order. Inputs: the values after ':::', the\n"
    "lines of the files after '::::' or -a, else the lines of standard input\n"
    "(read as they arrive). Several sources: every combination; ':::+' and\n"
    "'::::+' pair a source with the one before it instead.\n"
    "\n"
    "Replacement strings in COMMAND (without any, the values are appended):\n"
    "  {}  the input     {.}  without extension    {/}  basename\n"
    "  {//} dirname      {/.} basename, no extension\n"
    "  {#}  job number   {%}  job slot  {N} {N.} {N/} {N//} {N/.}: source N\n"
    "COMMAND runs without a shell, unless it is one word holding shell\n"
    "syntax ('sleep {}; echo {}') or --shell is given: then /bin/sh -c runs\n"
    "it, the values quoted.\n"
    "\n"
    "Jobs:\n"
    "  -j, --jobs N        N at once (default: the CPUs); 0: as many as\n"
    "                      possible; P%: of the CPUs; +N, -N: CPUs plus N\n"
    "      --delay S       at least S seconds between two starts\n"
    "      --timeout S     kill a command after S seconds; P%: P% of the\n"
    "                      median time of the commands that succeeded\n"
    "      --retries N     run a failing command up to N times\n"
    "      --halt WHEN,WHY=N  stop after N (or N%) fail|success|done;\n"
    "                      WHEN: soon (let running ones end) or now\n"
    "      --tty           commands get the terminal; implies -j1, -u\n"
    "      --shell         run COMMAND's words through /bin/sh -c\n"
    "      --mpi           under mpirun: spread the commands over the ranks\n"
    "Input:\n"
    "  -a, --arg-file FILE an input source (as :::: FILE)\n"
    "  -0, --null          inputs end with NUL, not newline\n"
    "  -d, --delimiter C   inputs end with C (\\n, \\t, \\0 understood)\n"
    "  -N, --max-args N    N inputs per command: {1}..{N}\n"
    "  -C, --colsep RE     split each input into columns {1}, {2}, ...\n"
    "      --pipe          standard input split into blocks, one per\n"
    "                      command's standard input\n"
    "      --block SIZE    --pipe's block size (default 1M; k, M, G)\n"
    "Output:\n"
    "  -k, --keep-order    in the inputs' order (the default)\n"
    "      --as-done       each command's output as it finishes\n"
    "  -u, --ungroup       commands write straight to the output\n"
    "      --line-buffer   whole lines, as they come, from any command\n"
    "      --tag           each line prefixed with its input and a tab\n"
    "      --tagstring STR each line prefixed with STR (replacement strings)\n"
    "      --results DIR   each output also in DIR/1/VALUE/{stdout,stderr}\n"
    "      --dry-run       print the commands, run nothing\n"
    "      --bar, --progress, --eta   progress on stderr, if a terminal\n"
    "      --joblog FILE   one line per command: GNU parallel's columns\n"
    "      --resume        skip the commands FILE lists\n"
    "      --resume-failed rerun those that failed, skip the others\n"
    "\n"
    "Exit status: 0 when all succeeded; 1 to 100: how many failed; 101: more;\n"
    "with --halt, the status of the command that halted; 255: mproc run\n"
    "could not run. See docs/run.md.\n";

void run_usage(FILE *f)
{
    fputs(usage_text, f);
}

enum {
    OPT_AS_DONE = 256,
    OPT_LINE_BUFFER,
    OPT_TAG,
    OPT_TAGSTRING,
    OPT_DRY_RUN,
    OPT_BAR,
    OPT_PROGRESS,
    OPT_ETA,
    OPT_JOBLOG,
    OPT_RESUME,
    OPT_RESUME_FAILED,
    OPT_RETRIES,
    OPT_HALT,
    OPT_TIMEOUT,
    OPT_DELAY,
    OPT_RESULTS,
    OPT_PIPE,
    OPT_BLOCK,
    OPT_TTY,
    OPT_SHELL,
    OPT_MPI,
    OPT_GROUP,
    OPT_IGNORED,
    OPT_REFUSED,
};

static const struct option longopts[] = {
    {"jobs", required_argument, NULL, 'j'},
    {"max-procs", required_argument, NULL, 'j'},
    {"keep-order", no_argument, NULL, 'k'},
    {"as-done", no_argument, NULL, OPT_AS_DONE},
    {"ungroup", no_argument, NULL, 'u'},
    {"group", no_argument, NULL, OPT_GROUP},
    {"line-buffer", no_argument, NULL, OPT_LINE_BUFFER},
    {"lb", no_argument, NULL, OPT_LINE_BUFFER},
    {"tag", no_argument, NULL, OPT_TAG},
    {"tagstring", required_argument, NULL, OPT_TAGSTRING},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"bar", no_argument, NULL, OPT_BAR},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"eta", no_argument, NULL, OPT_ETA},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"resume-failed", no_argument, NULL, OPT_RESUME_FAILED},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"halt", required_argument, NULL, OPT_HALT},
    {"halt-on-error", required_argument, NULL, OPT_HALT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"res", required_argument, NULL, OPT_RESULTS},
    {"pipe", no_argument, NULL, OPT_PIPE},
    {"spreadstdin", no_argument, NULL, OPT_PIPE},
    {"block", required_argument, NULL, OPT_BLOCK},
    {"block-size", required_argument, NULL, OPT_BLOCK},
    {"tty", no_argument, NULL, OPT_TTY},
    {"shell", no_argument, NULL, OPT_SHELL},
    {"mpi", no_argument, NULL, OPT_MPI},
    {"arg-file", required_argument, NULL, 'a'},
    {"null", no_argument, NULL, '0'},
    {"delimiter", required_argument, NULL, 'd'},
    {"max-args", required_argument, NULL, 'N'},
    {"colsep", required_argument, NULL, 'C'},
    {"help", no_argument, NULL, 'h'},
    /* Accepted for scripts written for GNU parallel; nothing to do. */
    {"will-cite", no_argument, NULL, OPT_IGNORED},
    {"no-notice", no_argument, NULL, OPT_IGNORED},
    {"bibtex", no_argument, NULL, OPT_IGNORED},
    /* GNU parallel's, refused by name: see refusals[]. */
    {"sshlogin", required_argument, NULL, OPT_REFUSED},
    {"sshloginfile", required_argument, NULL, OPT_REFUSED},
    {"slf", required_argument, NULL, OPT_REFUSED},
    {"xargs", no_argument, NULL, OPT_REFUSED},
    {"link", no_argument, NULL, OPT_REFUSED},
    {"xapply", no_argument, NULL, OPT_REFUSED},
    {"env", required_argument, NULL, OPT_REFUSED},
    {"nice", required_argument, NULL, OPT_REFUSED},
    {"header", required_argument, NULL, OPT_REFUSED},
    {"semaphore", no_argument, NULL, OPT_REFUSED},
    {"fg", no_argument, NULL, OPT_REFUSED},
    {"bg", no_argument, NULL, OPT_REFUSED},
    {"max-lines", optional_argument, NULL, OPT_REFUSED},
    {"recend", required_argument, NULL, OPT_REFUSED},
    {"recstart", required_argument, NULL, OPT_REFUSED},
    {"roundrobin", no_argument, NULL, OPT_REFUSED},
    {"round-robin", no_argument, NULL, OPT_REFUSED},
    {"files", no_argument, NULL, OPT_REFUSED},
    {"compress", no_argument, NULL, OPT_REFUSED},
    {"memfree", required_argument, NULL, OPT_REFUSED},
    {"load", required_argument, NULL, OPT_REFUSED},
    {"transfer", no_argument, NULL, OPT_REFUSED},
    {"return", required_argument, NULL, OPT_REFUSED},
    {"cleanup", no_argument, NULL, OPT_REFUSED},
    {"onall", no_argument, NULL, OPT_REFUSED},
    {"nonall", no_argument, NULL, OPT_REFUSED},
    {"quote", no_argument, NULL, OPT_REFUSED},
    {"verbose", no_argument, NULL, OPT_REFUSED},
    {"csv", no_argument, NULL, OPT_REFUSED},
    {"version", no_argument, NULL, OPT_REFUSED},
    {NULL, 0, NULL, 0},
};

/* Why a GNU parallel option is refused, and what to do instead. */
static const struct {
    const char *name, *hint;
} refusals[] = {
    {"sshlogin", "no remote hosts; under mpirun, --mpi spreads the "
                 "commands over the ranks"},
    {"sshloginfile", "no remote hosts; under mpirun, use --mpi"},
    {"slf", "no remote hosts; under mpirun, use --mpi"},
    {"S", "no remote hosts; under mpirun, use --mpi"},
    {"xargs", "one command per input; -N N passes N inputs"},
    {"X", "one command per input; -N N passes N inputs"},
    {"m", "one command per input; -N N passes N inputs"},
    {"link", "pair the sources with :::+ or ::::+"},
    {"xapply", "pair the sources with :::+ or ::::+"},
    {"env", "commands inherit mproc run's environment already"},
    {"nice", "run mproc run itself under nice"},
    {"header", "no header lines; drop them before (tail -n +2)"},
    {"semaphore", "not a semaphore; run the commands as inputs"},
    {"fg", "not a semaphore"},
    {"bg", "not a semaphore"},
    {"max-lines", "-N N for N inputs, --pipe for blocks of records"},
    {"L", "-N N for N inputs, --pipe for blocks of records"},
    {"recend", "--pipe cuts blocks after a newline (or NUL with -0)"},
    {"recstart", "--pipe cuts blocks after a newline (or NUL with -0)"},
    {"roundrobin", "--pipe gives each block to a new command"},
    {"round-robin", "--pipe gives each block to a new command"},
    {"files", "outputs are printed; --results DIR keeps them in files"},
    {"compress", "large outputs go to temporary files already"},
    {"memfree", "not supported; choose -j"},
    {"load", "not supported; choose -j"},
    {"transfer", "no remote hosts"},
    {"return", "no remote hosts"},
    {"cleanup", "no remote hosts"},
    {"onall", "no remote hosts"},
    {"nonall", "no remote hosts"},
    {"quote", "without a shell, values are passed verbatim already"},
    {"q", "without a shell, values are passed verbatim already"},
    {"verbose", "--dry-run prints the commands"},
    {"v", "--dry-run prints the commands"},
    {"csv", "--colsep ',' splits simple CSV"},
    {"version", "mproc --version (or mproc run --help)"},
};

static int refuse(const char *name)
{
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++)
        if (!strcmp(refusals[i].name, name)) {
            fprintf(stderr, "mproc run: option %s%s is not supported: %s\n",
                    strlen(name) > 1 ? "--" : "-", name, refusals[i].hint);
            return RUN_BROKE;
        }
    fprintf(stderr,
            "mproc run: unknown option '%s%s' (mproc run --help lists them)\n",
            strlen(name) > 1 ? "--" : "-", name);
    return RUN_BROKE;
}

static int bad(const char *opt, const char *arg, const char *want)
{
    fprintf(stderr, "mproc run: %s '%s': %s\n", opt, arg, want);
    return RUN_BROKE;
}

/* CPUs this process may run on. */
static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* "As many as possible": what the descriptor limit allows, each command
   holding up to four descriptors (two pipes' ends, two spool files). */
static int most_jobs(void)
{
    struct rlimit rl;
    long n = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = ((long)rl.rlim_cur - 32) / 4;
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static bool number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && *v == *v;
}

static int parse_jobs(const char *s, int *jobs)
{
    double v;
    size_t len = strlen(s);
    int n = cpus();
    if (len > 1 && s[len - 1] == '%') {
        char *t = strndup(s, len - 1);
        bool ok = t && number(t, &v) && v > 0;
        free(t);
        if (!ok)
            return -1;
        v = n * v / 100;
        *jobs = v < 1 ? 1 : v > 65536 ? 65536 : (int)v;
        return 0;
    }
    if (!number(s, &v) || v != (long)v)
        return -1;
    if (s[0] == '+' || s[0] == '-')
        v += n;
    else if (v == 0)
        v = most_jobs();
    else if (v < 0)
        return -1;
    *jobs = v < 1 ? 1 : v > 65536 ? 65536 : (int)v;
    return 0;
}

/* "now,fail=1", "soon,success=20%", "never", and GNU's old numbers. */
static int parse_halt(struct run_opts *o, const char *s)
{
    if (!strcmp(s, "never") || !strcmp(s, "0")) {
        o->halt_when = HALT_NEVER;
        return 0;
    }
    if (!strcmp(s, "1") || !strcmp(s, "2")) {
        o->halt_when = s[0] == '1' ? HALT_SOON : HALT_NOW;
        o->halt_on = HALT_FAIL;
        o->halt_count = 1;
        return 0;
    }
    const char *comma = strchr(s, ',');
    if (!comma)
        return -1;
    size_t wl = (size_t)(comma - s);
    if (wl == 3 && !strncmp(s, "now", 3))
        o->halt_when = HALT_NOW;
    else if (wl == 4 && !strncmp(s, "soon", 4))
        o->halt_when = HALT_SOON;
    else
        return -1;
    const char *why = comma + 1, *eq = strchr(why, '=');
    if (!eq)
        return -1;
    size_t yl = (size_t)(eq - why);
    if (yl == 4 && !strncmp(why, "fail", 4))
        o->halt_on = HALT_FAIL;
    else if (yl == 7 && !strncmp(why, "success", 7))
        o->halt_on = HALT_SUCCESS;
    else if (yl == 4 && !strncmp(why, "done", 4))
        o->halt_on = HALT_DONE;
    else
        return -1;
    char *t = strdup(eq + 1);
    if (!t)
        return -1;
    size_t tl = strlen(t);
    if ((o->halt_pct = tl > 1 && t[tl - 1] == '%'))
        t[tl - 1] = 0;
    double v;
    bool ok = number(t, &v) && v > 0 && (!o->halt_pct || v <= 100);
    free(t);
    if (!ok)
        return -1;
    o->halt_count = o->halt_pct ? v / 100 : v;
    return 0;
}

/* "1M", "100k": uppercase counts in 1024s, lowercase in 1000s. */
static int parse_size(const char *s, size_t *size)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0))
        return -1;
    const char *units = "kmgtKMGT";
    if (*end) {
        const char *u = strchr(units, *end);
        if (!u || end[1])
            return -1;
        int k = (int)(u - units);
        for (int i = 0; i <= k % 4; i++)
            v *= k < 4 ? 1000 : 1024;
    }
    if (v < 1 || v > (double)(SIZE_MAX / 4))
        return -1;
    *size = (size_t)v;
    return 0;
}

static int parse_delim(const char *s)
{
    if (s[0] && !s[1])
        return (unsigned char)s[0];
    if (s[0] == '\\' && s[1] && !s[2])
        switch (s[1]) {
        case 'n':
            return '\n';
        case 't':
            return '\t';
        case '0':
            return 0;
        case '\\':
            return '\\';
        case 'r':
            return '\r';
        }
    return -1;
}

static bool is_sep(const char *s)
{
    return !strcmp(s, ":::") || !strcmp(s, "::::") || !strcmp(s, ":::+") ||
           !strcmp(s, "::::+");
}

static int add_source(struct run_opts *o, struct source_spec s)
{
    struct source_spec *more =
        realloc(o->sources, (o->nsources + 1) * sizeof *more);
    if (!more)
        return -1;
    o->sources = more;
    o->sources[o->nsources++] = s;
    if (s.path && !strcmp(s.path, "-"))
        o->stdin_used = true;
    return 0;
}

static int sources(struct run_opts *o, int argc, char **argv, int i)
{
    while (i < argc) {
        const char *sep = argv[i++];
        int first = i;
        while (i < argc && !is_sep(argv[i]))
            i++;
        bool linked = sep[strlen(sep) - 1] == '+';
        if (linked && o->nsources == 0) {
            fprintf(stderr, "mproc run: %s needs a source before it\n", sep);
            return RUN_BROKE;
        }
        if (!strncmp(sep, "::::", 4)) {
            if (i == first) {
                fprintf(stderr, "mproc run: %s needs a file\n", sep);
                return RUN_BROKE;
            }
            for (int k = first; k < i; k++)
                if (add_source(o, (struct source_spec){.path = argv[k],
                                                       .linked = linked &&
                                                                 k == first}))
                    return RUN_BROKE;
        } else if (add_source(o, (struct source_spec){
                                     .args = (const char *const *)argv + first,
                                     .nargs = (size_t)(i - first),
                                     .linked = linked})) {
            return RUN_BROKE;
        }
    }
    return -1;
}

int run_options(struct run_opts *o, int argc, char **argv)
{
    *o = (struct run_opts){
        .order = true, .retries = 1, .delim = '\n', .block = 1000000};
    const char **files = NULL;
    size_t nfiles = 0;
    int r = -1;
    bool jobs_set = false;
    o->jobs = cpus();
    opterr = 0;
    optind = 0; /* glibc: start afresh (the tool's own parse came first) */
    for (;;) {
        int li = -1;
        int c =
            getopt_long(argc, argv, "+:j:P:kua:0d:N:C:hSXmLqv", longopts, &li);
        if (c == -1)
            break;
        const char *name = li >= 0 ? longopts[li].name : NULL;
        double v;
        switch (c) {
        case 'j':
        case 'P':
            if (parse_jobs(optarg, &o->jobs))
                return bad("-j", optarg,
                           "want N, 0, P%, +N or -N (N a whole number)");
            jobs_set = true;
            break;
        case 'k':
            o->order = true;
            break;
        case OPT_AS_DONE:
            o->order = false;
            break;
        case OPT_GROUP:
            break;
        case 'u':
            o->ungroup = true;
            o->order = false;
            break;
        case OPT_LINE_BUFFER:
            o->line_buffer = true;
            break;
        case OPT_TAG:
            o->tag = true;
            break;
        case OPT_TAGSTRING:
            o->tagstring = optarg;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_BAR:
            o->bar = true;
            break;
        case OPT_PROGRESS:
            o->progress = true;
            break;
        case OPT_ETA:
            o->eta = true;
            break;
        case OPT_JOBLOG:
            o->joblog = optarg;
            break;
        case OPT_RESUME:
            o->resume = true;
            break;
        case OPT_RESUME_FAILED:
            o->resume_failed = true;
            break;
        case OPT_RETRIES:
            if (!number(optarg, &v) || v != (int)v || v < 0 || v > 1e6)
                return bad("--retries", optarg, "want a whole number");
            o->retries = v < 1 ? 1 : (int)v;
            break;
        case OPT_HALT:
            if (parse_halt(o, optarg))
                return bad("--halt", optarg,
                           "want now|soon,fail|success|done=N or N%, or "
                           "never");
            break;
        case OPT_TIMEOUT: {
            size_t l = strlen(optarg);
            char *t = strdup(optarg);
            if (!t)
                return RUN_BROKE;
            if ((o->timeout_pct = l > 1 && t[l - 1] == '%'))
                t[l - 1] = 0;
            bool ok = number(t, &v) && v > 0 && v <= 1e9;
            free(t);
            if (!ok)
                return bad("--timeout", optarg,
                           "want seconds (more than 0) or P%");
            o->timeout = o->timeout_pct ? v / 100 : v;
            break;
        }
        case OPT_DELAY:
            if (!number(optarg, &v) || v < 0 || v > 1e9)
                return bad("--delay", optarg, "want seconds");
            o->delay = v;
            break;
        case OPT_RESULTS:
            o->results = optarg;
            break;
        case OPT_PIPE:
            o->pipe = true;
            break;
        case OPT_BLOCK:
            if (parse_size(optarg, &o->block))
                return bad("--block", optarg, "want a size: 1M, 100k, 4096");
            break;
        case OPT_TTY:
            o->tty = true;
            break;
        case OPT_SHELL:
            o->shell = true;
            break;
        case OPT_MPI:
            o->mpi = true;
            break;
        case 'a': {
            const char **more = realloc(files, (nfiles + 1) * sizeof *more);
            if (!more)
                return RUN_BROKE;
            files = more;
            files[nfiles++] = optarg;
            break;
        }
        case '0':
            o->delim = 0;
            break;
        case 'd':
            if ((o->delim = parse_delim(optarg)) < 0)
                return bad("-d", optarg, "want one character, or \\n \\t \\0");
            break;
        case 'N':
            if (!number(optarg, &v) || v != (int)v || v < 1 || v > 100000)
                return bad("-N", optarg, "want a whole number from 1");
            o->max_args = (int)v;
            break;
        case 'C':
            o->colsep = optarg;
            break;
        case 'h':
            run_usage(stdout);
            free(files);
            return 0;
        case OPT_IGNORED:
            break;
        case OPT_REFUSED:
            free(files);
            return refuse(name);
        case 'S':
        case 'X':
        case 'm':
        case 'L':
        case 'q':
        case 'v':
            free(files);
            return refuse((char[]){(char)c, 0});
        case ':':
            free(files);
            fprintf(stderr, "mproc run: option '%s' needs a value\n",
                    argv[optind - 1]);
            return RUN_BROKE;
        default: {
            free(files);
            if (optopt && optopt != '?')
                return refuse((char[]){(char)optopt, 0});
            const char *a = argv[optind - 1];
            while (*a == '-')
                a++;
            char *n = strndup(a, strcspn(a, "="));
            r = n ? refuse(n) : RUN_BROKE;
            free(n);
            return r;
        }
        }
    }
    for (size_t k = 0; k < nfiles; k++)
        if (add_source(o, (struct source_spec){.path = files[k]})) {
            free(files);
            return RUN_BROKE;
        }
    free(files);

    int i = optind;
    o->cmd = argv + i;
    while (i < argc && !is_sep(argv[i]))
        i++;
    o->ncmd = (int)(i - optind);
    if (o->ncmd == 0) {
        fprintf(stderr, "mproc run: no command given (mproc run --help)\n");
        return RUN_BROKE;
    }
    if ((r = sources(o, argc, argv, i)) != -1)
        return r;
    if (o->pipe) {
        if (o->nsources) {
            fprintf(stderr, "mproc run: --pipe reads standard input: no "
                            "::: or :::: sources with it\n");
            return RUN_BROKE;
        }
        if (o->max_args || o->colsep) {
            fprintf(stderr, "mproc run: --pipe cuts blocks by --block; -N "
                            "and --colsep do not apply\n");
            return RUN_BROKE;
        }
        o->stdin_used = true;
    } else if (o->nsources == 0) {
        if (add_source(o, (struct source_spec){.path = "-"}))
            return RUN_BROKE;
    }
    if (o->max_args > 1 && o->nsources > 1) {
        fprintf(stderr, "mproc run: -N with several input sources is not "
                        "supported: give one source\n");
        return RUN_BROKE;
    }
    if (o->max_args > 1 && o->colsep) {
        fprintf(stderr, "mproc run: -N and --colsep together are not "
                        "supported\n");
        return RUN_BROKE;
    }
    if (o->tty) {
        if (jobs_set && o->jobs != 1)
            fprintf(stderr, "mproc run: --tty runs one command at a time\n");
        o->jobs = 1;
        o->ungroup = true;
        o->order = false;
    }
    if (o->ungroup && (o->tag || o->tagstring)) {
        fprintf(stderr, "mproc run: --tag and --tagstring need the output "
                        "through mproc run: not with -u or --tty\n");
        return RUN_BROKE;
    }
    if ((o->resume || o->resume_failed) && !o->joblog) {
        fprintf(stderr, "mproc run: --resume and --resume-failed need "
                        "--joblog FILE\n");
        return RUN_BROKE;
    }
    if (o->colsep && o->nsources > 1) {
        fprintf(stderr, "mproc run: --colsep splits one source: give one\n");
        return RUN_BROKE;
    }
    if (o->line_buffer)
        o->order = false;
    if (!o->shell && o->ncmd == 1 && has_shell_syntax(o->cmd[0]))
        o->shell = true;
    return -1;
}

void run_options_free(struct run_opts *o)
{
    free(o->sources);
    o->sources = NULL;
}
