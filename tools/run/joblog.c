/*
 * --joblog FILE: one line per command run, in GNU parallel's columns, so
 * that scripts reading GNU parallel's job logs read mproc run's:
 *
 *   Seq Host Starttime JobRuntime Send Receive Exitval Signal Command
 *
 * Host is ":" (this machine), Starttime seconds since the epoch, Send the
 * bytes given to the command's stdin (--pipe), Receive the bytes of its
 * stdout. A command killed by a signal has Exitval 0 and the signal in
 * Signal (GNU parallel's convention); one killed by --timeout, Exitval -1;
 * one that could not start, Exitval 127. Each attempt of --retries is a
 * line. Lines are written as commands end, one write(2) each, so the log
 * is whole up to the moment mproc run is stopped.
 *
 * --resume skips the job numbers the log holds; --resume-failed runs again
 * those whose every line says it failed and skips the others. Both append.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char header[] = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive"
                             "\tExitval\tSignal\tCommand\n";

struct joblog {
    int fd;
    bool resume_failed;
    unsigned char *seen, *ok; /* bitmaps by job number: logged, succeeded */
    size_t seen_bits, ok_bits;
};

static int mark(unsigned char **map, size_t *bits, size_t seq)
{
    if (seq >= *bits) {
        size_t n = *bits ? *bits : 1024;
        while (n <= seq)
            n *= 2;
        unsigned char *m = realloc(*map, n / 8);
        if (!m)
            return -1;
        memset(m + *bits / 8, 0, (n - *bits) / 8);
        *map = m;
        *bits = n;
    }
    (*map)[seq / 8] |= (unsigned char)(1u << (seq % 8));
    return 0;
}

static bool test(const unsigned char *map, size_t bits, size_t seq)
{
    return map && seq < bits && (map[seq / 8] >> (seq % 8)) & 1;
}

static int read_log(struct joblog *jl, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *cols[8], *save = NULL, *p = line;
        int n = 0;
        for (; n < 8 && (cols[n] = strtok_r(p, "\t", &save)); n++)
            p = NULL;
        if (n < 8 || !strcmp(cols[0], "Seq"))
            continue;
        char *end;
        size_t seq = strtoull(cols[0], &end, 10);
        if (*end)
            continue;
        if (mark(&jl->seen, &jl->seen_bits, seq) ||
            (atoi(cols[6]) == 0 && atoi(cols[7]) == 0 &&
             mark(&jl->ok, &jl->ok_bits, seq)))
            goto oom;
    }
    free(line);
    fclose(f);
    return 0;
oom:
    free(line);
    fclose(f);
    return -ENOMEM;
}

int joblog_open(struct joblog **out, const struct run_opts *o)
{
    *out = NULL;
    if (!o->joblog)
        return 0;
    struct joblog *jl = calloc(1, sizeof *jl);
    if (!jl)
        return -ENOMEM;
    jl->fd = -1;
    jl->resume_failed = o->resume_failed;
    bool resume = o->resume || o->resume_failed;
    int e = resume ? read_log(jl, o->joblog) : 0;
    if (e) {
        fprintf(stderr, "mproc run: --joblog %s: %s\n", o->joblog,
                strerror(-e));
        joblog_close(jl);
        return e;
    }
    jl->fd = open(
        o->joblog,
        O_WRONLY | O_CREAT | O_CLOEXEC | (resume ? O_APPEND : O_TRUNC), 0666);
    if (jl->fd < 0) {
        e = -errno;
        fprintf(stderr, "mproc run: --joblog %s: %s\n", o->joblog,
                strerror(errno));
        free(jl);
        return e;
    }
    if (lseek(jl->fd, 0, SEEK_END) == 0 &&
        write(jl->fd, header, sizeof header - 1) !=
            (ssize_t)sizeof header - 1) {
        e = -errno;
        fprintf(stderr, "mproc run: --joblog %s: %s\n", o->joblog,
                strerror(errno));
        joblog_close(jl);
        return e;
    }
    *out = jl;
    return 0;
}

bool joblog_skip(const struct joblog *jl, size_t seq)
{
    if (!jl)
        return false;
    if (jl->resume_failed)
        return test(jl->ok, jl->ok_bits, seq);
    return test(jl->seen, jl->seen_bits, seq);
}

int joblog_write(struct joblog *jl, const struct job_record *r)
{
    if (!jl)
        return 0;
    char *line = NULL;
    int n = asprintf(&line, "%zu\t:\t%.3f\t%10.3f\t%zu\t%zu\t%d\t%d\t%s\n",
                     r->seq, r->start, r->runtime, r->sent, r->received,
                     r->exitval, r->sig, r->command ? r->command : "");
    if (n < 0)
        return -ENOMEM;
    ssize_t w = write(jl->fd, line, (size_t)n);
    free(line);
    return w == n ? 0 : -errno;
}

void joblog_close(struct joblog *jl)
{
    if (!jl)
        return;
    if (jl->fd >= 0)
        close(jl->fd);
    free(jl->seen);
    free(jl->ok);
    free(jl);
}
