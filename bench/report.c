/*
 * Rows of figures, and what is made of them: a table per workload on
 * stdout, the targets, a CSV file, gnuplot charts; and the progress line.
 *
 * A row is one system's figure for one parameter of one workload: the
 * median of its repetitions and their spread (min-max), in the row's own
 * unit, a ratio to the workload's reference, and optionally a target.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static struct bench_row *rows;
static int nrows, caprows;
static bool line_shown; /* the progress line is on the terminal */

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_progress(const struct bench *b, const char *fmt, ...)
{
    if (!b->progress)
        return;
    fputs("\r\033[K", stderr);
    line_shown = fmt != NULL;
    if (fmt) {
        fprintf(stderr, "[%d/%d] %s: ", b->index + 1, b->count, b->title);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fflush(stderr);
}

_Noreturn void bench_fail(const char *fmt, ...)
{
    if (line_shown)
        fputs("\r\033[K", stderr);
    fputs("mproc bench: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_stats(double *v, int n, double *median, double *min, double *max)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    *min = v[0];
    *max = v[n - 1];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct bench_row *new_row(const char *workload, const char *system,
                                 const char *param)
{
    if (nrows == caprows) {
        caprows = caprows ? caprows * 2 : 64;
        rows = realloc(rows, (size_t)caprows * sizeof *rows);
        if (!rows)
            bench_fail("out of memory");
    }
    struct bench_row *r = &rows[nrows++];
    *r = (struct bench_row){.workload = workload, .ratio = NAN, .unit = ""};
    snprintf(r->system, sizeof r->system, "%s", system);
    snprintf(r->param, sizeof r->param, "%s", param);
    return r;
}

struct bench_row *bench_row(const char *workload, const char *system,
                            const char *param, const char *unit,
                            const double *v, int n)
{
    double s[BENCH_MAX_REPS];
    if (n < 1 || n > BENCH_MAX_REPS)
        bench_fail("%s, %s: %d samples", workload, system, n);
    memcpy(s, v, (size_t)n * sizeof *v);
    struct bench_row *r = new_row(workload, system, param);
    r->unit = unit;
    bench_stats(s, n, &r->median, &r->min, &r->max);
    return r;
}

void bench_row_missing(const char *workload, const char *system,
                       const char *param, const char *note)
{
    new_row(workload, system, param)->note = note;
}

struct bench_row *bench_find(const char *workload, const char *system,
                             const char *param)
{
    for (int i = 0; i < nrows; i++)
        if (!strcmp(rows[i].workload, workload) &&
            !strcmp(rows[i].system, system) && !strcmp(rows[i].param, param))
            return &rows[i];
    return NULL;
}

/* Did the runs of a row vary over 2x? Then its median says little: the
   machine was disturbed, or the system behaves so (see docs/performance.md
   on workers that start late). */
static bool wide(const struct bench_row *r)
{
    return r->min > 0 && r->max > 2 * r->min;
}

void bench_ratios(const char *workload, const char *ref, double value)
{
    for (int i = 0; i < nrows; i++) {
        struct bench_row *r = &rows[i];
        if (strcmp(r->workload, workload) || r->note)
            continue;
        double base = value;
        if (ref) {
            const struct bench_row *b = bench_find(workload, ref, r->param);
            base = b && !b->note ? b->median : NAN;
            r->ref_wide = b && !b->note && wide(b);
        }
        r->ratio = r->median / base;
    }
}

void bench_target(const char *workload, const char *system, const char *param,
                  enum bench_target t, double limit, double limit2)
{
    struct bench_row *r = bench_find(workload, system, param);
    /* No figure, or no reference to hold it to: no verdict. */
    if (!r || r->note || (t == BENCH_RATIO_AT_MOST && !isfinite(r->ratio)))
        return;
    r->target = t;
    r->limit = limit;
    r->limit2 = limit2;
    switch (t) {
    case BENCH_RATIO_AT_MOST:
        r->met = r->ratio <= limit;
        break;
    case BENCH_BELOW:
        r->met = r->median < limit;
        break;
    case BENCH_AT_LEAST:
        r->met = r->median >= limit;
        break;
    case BENCH_WITHIN:
        r->met = fabs(r->median - limit) <= limit2;
        break;
    case BENCH_NONE:
        break;
    }
}

/* ---- the table ---------------------------------------------------------- */

/* About four significant digits, never an exponent. */
static const char *num(char *buf, size_t size, double v)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "-");
        return buf;
    }
    int digits = 3 - (int)floor(log10(fabs(v) > 0 ? fabs(v) : 1));
    if (digits < 0)
        digits = 0;
    if (digits > 4)
        digits = 4;
    snprintf(buf, size, "%.*f", digits, v);
    return buf;
}

static const char *target_text(char *buf, size_t size,
                               const struct bench_row *r)
{
    char a[32], c[32];
    switch (r->target) {
    case BENCH_RATIO_AT_MOST:
        snprintf(buf, size, "<=%sx", num(a, sizeof a, r->limit));
        break;
    case BENCH_BELOW:
        snprintf(buf, size, "<%s %s", num(a, sizeof a, r->limit), r->unit);
        break;
    case BENCH_AT_LEAST:
        snprintf(buf, size, ">=%s%s%s", num(a, sizeof a, r->limit),
                 strcmp(r->unit, "%") ? " " : "", r->unit);
        break;
    case BENCH_WITHIN:
        snprintf(buf, size, "%s+-%s %s", num(a, sizeof a, r->limit),
                 num(c, sizeof c, r->limit2), r->unit);
        break;
    case BENCH_NONE:
        buf[0] = 0;
        break;
    }
    return buf;
}

static void print_row(const struct bench_row *r)
{
    char med[64], lo[32], hi[32], spread[80], ratio[48], tgt[96], m[32];
    if (r->note) {
        printf("%-34s %-11s %s\n", r->system, r->param, r->note);
        return;
    }
    snprintf(med, sizeof med, "%s %s", num(m, sizeof m, r->median), r->unit);
    snprintf(spread, sizeof spread, "%s-%s", num(lo, sizeof lo, r->min),
             num(hi, sizeof hi, r->max));
    if (isfinite(r->ratio))
        snprintf(ratio, sizeof ratio, "%sx", num(m, sizeof m, r->ratio));
    else
        snprintf(ratio, sizeof ratio, "-");
    printf("%-34s %-11s %14s  %-19s %7s", r->system, r->param, med, spread,
           ratio);
    if (r->target)
        printf("  %s %s", target_text(tgt, sizeof tgt, r),
               r->met ? "met" : "MISSED");
    putchar('\n');
}

void bench_table(const char *workload, const char *title,
                 const char *ratio_note)
{
    printf("\n== %s ==\n", title);
    if (ratio_note)
        printf("   ratio: %s\n", ratio_note);
    printf("%-34s %-11s %14s  %-19s %7s  %s\n", "system", "parameter", "median",
           "spread (min-max)", "ratio", "target");
    /* The rows of one param together, params in the order they first came,
       so that systems sit side by side. */
    const char *params[64];
    int np = 0;
    for (int i = 0; i < nrows && np < 64; i++) {
        if (strcmp(rows[i].workload, workload))
            continue;
        int k = 0;
        while (k < np && strcmp(params[k], rows[i].param))
            k++;
        if (k == np)
            params[np++] = rows[i].param;
    }
    for (int p = 0; p < np; p++) {
        for (int i = 0; i < nrows; i++)
            if (!strcmp(rows[i].workload, workload) &&
                !strcmp(rows[i].param, params[p]))
                print_row(&rows[i]);
    }
    fflush(stdout);
}

int bench_targets_summary(void)
{
    int n = 0, missed = 0;
    char tgt[96], m[32];
    printf("\n== targets ==\n");
    for (int i = 0; i < nrows; i++) {
        const struct bench_row *r = &rows[i];
        if (!r->target)
            continue;
        n++;
        missed += !r->met;
        char what[96];
        snprintf(what, sizeof what, "%s: %s%s%s", r->workload, r->system,
                 r->param[0] ? ", " : "", r->param);
        const char *shown =
            num(m, sizeof m,
                r->target == BENCH_RATIO_AT_MOST ? r->ratio : r->median);
        printf("%-6s %-52s %10s%s  (target %s)%s%s\n",
               r->met ? "met" : "MISSED", what, shown,
               r->target == BENCH_RATIO_AT_MOST ? "x"
               : r->unit[0] == '%'              ? "%"
                                                : "",
               target_text(tgt, sizeof tgt, r),
               wide(r) ? "; its runs varied over 2x" : "",
               r->target == BENCH_RATIO_AT_MOST && r->ref_wide
                   ? "; the reference's runs varied over 2x"
                   : "");
    }
    printf("%d of %d targets met\n", n - missed, n);
    return missed;
}

/* ---- CSV ----------------------------------------------------------------- */

int bench_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "workload,system,parameter,median,min,max,unit\n");
    for (int i = 0; i < nrows; i++) {
        const struct bench_row *r = &rows[i];
        if (r->note)
            continue;
        fprintf(f, "%s,\"%s\",\"%s\",%.6g,%.6g,%.6g,%s\n", r->workload,
                r->system, r->param, r->median, r->min, r->max, r->unit);
    }
    return fclose(f) ? -errno : 0;
}

/* ---- charts ---------------------------------------------------------------- */

/* The distinct systems of a workload's rows with figures, in row order. */
static int systems_of(const char *workload, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < nrows; i++) {
        if (strcmp(rows[i].workload, workload) || rows[i].note)
            continue;
        int k = 0;
        while (k < n && strcmp(out[k], rows[i].system))
            k++;
        if (k == n && n < max)
            out[n++] = rows[i].system;
    }
    return n;
}

static int params_of(const char *workload, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < nrows; i++) {
        if (strcmp(rows[i].workload, workload) || rows[i].note)
            continue;
        int k = 0;
        while (k < n && strcmp(out[k], rows[i].param))
            k++;
        if (k == n && n < max)
            out[n++] = rows[i].param;
    }
    return n;
}

/* A bar chart data file: one line per system, for each param the median
   and its min and max ("?" where missing). Returns the number of params. */
static int bars(FILE *f, const char *workload, const char **params, int max)
{
    const char *sys[32];
    int ns = systems_of(workload, sys, 32),
        np = params_of(workload, params, max);
    for (int s = 0; s < ns; s++) {
        fprintf(f, "\"%s\"", sys[s]);
        for (int p = 0; p < np; p++) {
            const struct bench_row *r = bench_find(workload, sys[s], params[p]);
            if (r && !r->note)
                fprintf(f, " %g %g %g", r->median, r->min, r->max);
            else
                fprintf(f, " ? ? ?");
        }
        fputc('\n', f);
    }
    return np;
}

static void bar_plot(FILE *gp, const char *dir, const char *workload,
                     const char *png, const char *title, const char *ylabel)
{
    char path[4096];
    const char *params[8], *sys[1];
    if (!systems_of(workload, sys, 1))
        return;
    snprintf(path, sizeof path, "%s/%s.dat", dir, workload);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    int np = bars(f, workload, params, 8);
    fclose(f);
    if (!np)
        return;
    fprintf(gp,
            "set output '%s/%s'\nset title '%s'\nset ylabel '%s'\n"
            "set logscale y\nset style data histogram\n"
            "set style histogram errorbars gap 1 lw 1\n"
            "set style fill solid 0.7 border -1\nset xtics rotate by 30 right\n"
            "set key top left\nunset xlabel\nplot ",
            dir, png, title, ylabel);
    for (int p = 0; p < np; p++)
        fprintf(gp, "%s'%s' using %d:%d:%d%s title '%s'", p ? ", " : "", path,
                2 + 3 * p, 3 + 3 * p, 4 + 3 * p, p ? "" : ":xtic(1)",
                params[p][0] ? params[p] : " ");
    fprintf(gp, "\nunset logscale y\n");
}

static void speedup_plot(FILE *gp, const char *dir, int cores)
{
    char path[4096];
    const char *sys[32];
    int ns = systems_of("cpu", sys, 32), maxw = 0;
    if (!ns)
        return;
    snprintf(path, sizeof path, "%s/speedup.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "workers");
    int used[32], nu = 0;
    for (int s = 0; s < ns; s++) {
        const struct bench_row *r = bench_find("cpu", sys[s], "workers=1");
        if (r && !strcmp(r->unit, "x")) {
            used[nu++] = s;
            fprintf(f, " \"%s\"", sys[s]);
        }
    }
    fputc('\n', f);
    for (int w = 1; w <= 64; w++) {
        char param[24];
        snprintf(param, sizeof param, "workers=%d", w);
        bool any = false;
        for (int u = 0; u < nu; u++)
            any |= bench_find("cpu", sys[used[u]], param) != NULL;
        if (!any)
            break;
        maxw = w;
        fprintf(f, "%d", w);
        for (int u = 0; u < nu; u++) {
            const struct bench_row *r = bench_find("cpu", sys[used[u]], param);
            if (r && !r->note)
                fprintf(f, " %g", r->median);
            else
                fprintf(f, " ?");
        }
        fputc('\n', f);
    }
    fclose(f);
    if (!nu)
        return;
    fprintf(gp,
            "set output '%s/speedup.png'\n"
            "set title 'CPU-bound cell: speedup against workers (%d cores)'\n"
            "set xlabel 'workers'\nset ylabel 'speedup over 1 worker'\n"
            "set xrange [0.5:%d.5]\nset yrange [0:*]\nset xtics 1 norotate\n"
            "set key bottom right\n"
            "plot for [i=2:%d] '%s' using 1:i with linespoints lw 2 "
            "title columnheader(i), (x < %d ? x : %d) with lines dt 2 lc "
            "'black' title 'ideal'\n"
            "set xrange [*:*]\nset yrange [*:*]\nset xtics autofreq\n",
            dir, cores, maxw, nu + 1, path, cores, cores);
}

int bench_plot_prepare(const char *dir)
{
    if (!bench_in_path("gnuplot")) {
        fprintf(stderr, "mproc bench: --plot needs gnuplot, which is not in "
                        "PATH (apt-get install gnuplot-nox)\n");
        return -1;
    }
    /* As mkdir -p: each missing parent in turn, then the directory. */
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        fprintf(stderr, "mproc bench: --plot %s: %s\n", dir,
                strerror(ENAMETOOLONG));
        return -1;
    }
    for (char *p = path + 1;; p++) {
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(path, 0777) && errno != EEXIST) {
            fprintf(stderr, "mproc bench: --plot %s: cannot create %s: %s\n",
                    dir, path, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c)
            break;
    }
    struct stat st;
    const char *why = NULL;
    if (stat(dir, &st))
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = "not a directory";
    else if (access(dir, W_OK | X_OK))
        why = strerror(errno);
    if (why)
        fprintf(stderr, "mproc bench: --plot %s: %s\n", dir, why);
    return why ? -1 : 0;
}

int bench_plot(const char *dir, int cores)
{
    char script[4096];
    snprintf(script, sizeof script, "%s/charts.gp", dir);
    FILE *gp = fopen(script, "w");
    if (!gp) {
        fprintf(stderr, "mproc bench: --plot %s: %s\n", dir, strerror(errno));
        return -1;
    }
    fprintf(gp, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
                "{ set terminal pngcairo size 1000,600 } "
                "else { set terminal png size 1000,600 }\n"
                "set datafile missing '?'\nset grid ytics\n");
    speedup_plot(gp, dir, cores);
    bar_plot(gp, dir, "trivial", "ns_per_item.png",
             "Trivial items (a + b): nanoseconds per item, by system",
             "ns per item (log)");
    bar_plot(gp, dir, "latency", "latency.png",
             "A map of one item on a warm pool: latency, by system",
             "microseconds (log)");
    bar_plot(gp, dir, "cancel", "cancel.png",
             "Cancelling a long map: microseconds until the wait returns",
             "microseconds (log)");
    bar_plot(gp, dir, "open", "open_close.png",
             "Opening and closing a pool, by workers", "milliseconds (log)");
    bar_plot(gp, dir, "large_open", "open_large_caller.png",
             "Opening and closing 8 process workers, by the size of the caller",
             "milliseconds (log)");
    bar_plot(gp, dir, "run", "run.png",
             "Commands, 2 at a time: us per command (true), s for 20 outputs "
             "of 10 MB, peak MB",
             "us, s or MB (log)");
    fclose(gp);

    pid_t pid;
    char *argv[] = {"gnuplot", script, NULL};
    int err = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ), st = 0;
    while (!err && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (err || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "mproc bench: gnuplot %s failed\n", script);
        return -1;
    }
    return 0;
}
