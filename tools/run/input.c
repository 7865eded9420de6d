/*
 * Input sources and the values of each job.
 *
 * Sources come in groups: a source and the ":::+" or "::::+" sources paired
 * with it. The jobs are every combination of one entry of each group, the
 * first group varying slowest (GNU parallel's order). So that a long or
 * endless input starts commands at once and never fills memory, the first
 * group is streamed when it is a single source: its records are read as
 * they arrive, only when a job is about to start. The other groups are read
 * whole first (every one of their entries is needed for each entry of the
 * first).
 *
 * Records end with the delimiter (newline; -0: NUL; -d C). A NUL inside a
 * newline-delimited record is an error, not a cut: a file name with a NUL
 * cannot exist, so the input is not what it seems.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct reader {
    int fd;
    const char *name;
    char *buf;
    size_t off, len, cap;
    size_t records;
    int delim;
    bool eof;
};

struct group {
    size_t first, n; /* its sources, in opts->sources */
    char ***tuples;  /* read whole: ntuples arrays of n values */
    size_t ntuples;
};

struct input {
    const struct run_opts *o;
    struct reader *rd; /* one per source; fd -1 for ::: values */
    size_t *pos;       /* the next ::: value of each source */
    struct group *groups;
    size_t ngroups;
    bool streamed;    /* group 0 is read as jobs start */
    size_t first_pos; /* else the entry of group 0 to take next */
    bool started, done;
    char **cur;  /* group 0's current entry, once per combination */
    size_t *odo; /* the entry of each other group */
    regex_t colsep;
    bool has_colsep;
    struct reader stdin_rd; /* --pipe */
    struct values pend;     /* -N's values gathered so far */
};

static int reader_open(struct reader *r, const char *path, int delim)
{
    *r = (struct reader){.fd = -1, .name = path, .delim = delim};
    if (!strcmp(path, "-")) {
        r->fd = 0;
        r->name = "standard input";
        return 0;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        fprintf(stderr, "mproc run: %s: %s\n", path, strerror(errno));
        return -2;
    }
    return 0;
}

static void reader_close(struct reader *r)
{
    if (r->fd > 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

/* One read(), appended to the buffer; room for `want` bytes at least. */
static int reader_fill(struct reader *r, size_t want)
{
    if (r->eof)
        return 0;
    if (r->off && r->off == r->len)
        r->off = r->len = 0;
    if (r->off > r->cap / 2) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (want < 65536)
        want = 65536;
    if (r->cap - r->len < want / 2 || r->cap < want) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + want)
            cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b) {
            fprintf(stderr, "mproc run: %s: out of memory\n", r->name);
            return -2;
        }
        r->buf = b;
        r->cap = cap;
    }
    ssize_t n;
    do
        n = read(r->fd, r->buf + r->len, r->cap - r->len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        fprintf(stderr, "mproc run: reading %s: %s\n", r->name,
                strerror(errno));
        return -2;
    }
    if (n == 0)
        r->eof = true;
    r->len += (size_t)n;
    return 0;
}

/* The next record: 1 (*rec, a new string), 0 (fill first), -1 (end), -2. */
static int reader_next(struct reader *r, char **rec)
{
    char *start = r->buf + r->off;
    size_t avail = r->len - r->off;
    char *end = avail ? memchr(start, r->delim, avail) : NULL;
    size_t n;
    if (end)
        n = (size_t)(end - start);
    else if (r->eof && avail)
        n = avail;
    else
        return r->eof ? -1 : 0;
    r->records++;
    if (r->delim != 0 && memchr(start, 0, n)) {
        fprintf(stderr,
                "mproc run: %s: record %zu holds a NUL byte (use -0 for "
                "NUL-separated input)\n",
                r->name, r->records);
        return -2;
    }
    if (!(*rec = strndup(start, n))) {
        fprintf(stderr, "mproc run: out of memory\n");
        return -2;
    }
    r->off += n + (end != NULL);
    return 1;
}

/* Every record of a source, blocking. */
static int read_whole(struct input *in, size_t s, char ***all, size_t *n)
{
    const struct source_spec *sp = &in->o->sources[s];
    size_t cap = 16, k = 0;
    char **v = malloc(cap * sizeof *v);
    int r = v ? 1 : -2;
    while (r >= 0) {
        char *rec = NULL;
        if (sp->path) {
            r = reader_next(&in->rd[s], &rec);
            if (r == 0) {
                r = reader_fill(&in->rd[s], 0);
                if (r == 0)
                    r = 1;
                continue;
            }
        } else if (in->pos[s] < sp->nargs) {
            rec = strdup(sp->args[in->pos[s]++]);
            r = rec ? 1 : -2;
        } else {
            r = -1;
        }
        if (r != 1)
            break;
        if (k == cap) {
            char **more = realloc(v, (cap *= 2) * sizeof *more);
            if (!more) {
                free(rec);
                r = -2;
                break;
            }
            v = more;
        }
        v[k++] = rec;
    }
    if (r == -2) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return -2;
    }
    *all = v;
    *n = k;
    return 0;
}

int input_open(struct input **inp, const struct run_opts *o)
{
    struct input *in = calloc(1, sizeof *in);
    if (!in)
        return -2;
    *inp = in;
    in->o = o;
    if (o->pipe)
        return reader_open(&in->stdin_rd, "-", o->delim);
    in->rd = calloc(o->nsources, sizeof *in->rd);
    in->pos = calloc(o->nsources, sizeof *in->pos);
    in->groups = calloc(o->nsources, sizeof *in->groups);
    in->odo = calloc(o->nsources, sizeof *in->odo);
    if (!in->rd || !in->pos || !in->groups || !in->odo)
        return -2;
    for (size_t s = 0; s < o->nsources; s++) {
        in->rd[s].fd = -1;
        if (o->sources[s].path &&
            reader_open(&in->rd[s], o->sources[s].path, o->delim))
            return -2;
        if (!o->sources[s].linked || s == 0)
            in->groups[in->ngroups++].first = s;
        in->groups[in->ngroups - 1].n++;
    }
    if (o->colsep) {
        int e = regcomp(&in->colsep, o->colsep, REG_EXTENDED);
        if (e) {
            char msg[256];
            regerror(e, &in->colsep, msg, sizeof msg);
            fprintf(stderr, "mproc run: --colsep '%s': %s\n", o->colsep, msg);
            return -2;
        }
        in->has_colsep = true;
    }
    in->streamed = in->groups[0].n == 1;
    /* Read whole every group but a streamed first one; a paired group's
       entries are as many as its shortest source's. */
    for (size_t g = in->streamed; g < in->ngroups; g++) {
        struct group *gr = &in->groups[g];
        char **all[gr->n];
        size_t len[gr->n], n = SIZE_MAX;
        for (size_t k = 0; k < gr->n; k++) {
            if (read_whole(in, gr->first + k, &all[k], &len[k])) {
                while (k--) {
                    for (size_t i = 0; i < len[k]; i++)
                        free(all[k][i]);
                    free(all[k]);
                }
                return -2;
            }
            n = len[k] < n ? len[k] : n;
        }
        gr->tuples = calloc(n ? n : 1, sizeof *gr->tuples);
        for (size_t t = 0; gr->tuples && t < n; t++) {
            gr->tuples[t] = malloc(gr->n * sizeof **gr->tuples);
            if (!gr->tuples[t])
                break;
            gr->ntuples++;
            for (size_t k = 0; k < gr->n; k++) {
                gr->tuples[t][k] = all[k][t];
                all[k][t] = NULL;
            }
        }
        for (size_t k = 0; k < gr->n; k++) {
            for (size_t i = 0; i < len[k]; i++)
                free(all[k][i]);
            free(all[k]);
        }
        if (gr->ntuples < n)
            return -2;
        if (n == 0)
            in->done = true;
    }
    return 0;
}

size_t input_total(const struct input *in)
{
    const struct run_opts *o = in->o;
    if (o->pipe)
        return 0;
    size_t total = 1;
    for (size_t g = 0; g < in->ngroups; g++) {
        size_t n = in->groups[g].ntuples;
        if (g == 0 && in->streamed) {
            const struct source_spec *sp = &o->sources[in->groups[0].first];
            if (sp->path)
                return 0;
            n = sp->nargs;
        }
        total *= n;
    }
    if (o->max_args > 1)
        total = (total + (size_t)o->max_args - 1) / (size_t)o->max_args;
    return total;
}

int input_fd(const struct input *in)
{
    if (in->o->pipe)
        return in->stdin_rd.eof ? -1 : in->stdin_rd.fd;
    if (!in->streamed || in->done)
        return -1;
    const struct reader *r = &in->rd[in->groups[0].first];
    return r->fd >= 0 && !r->eof ? r->fd : -1;
}

int input_fill(struct input *in)
{
    if (in->o->pipe)
        return reader_fill(&in->stdin_rd, in->o->block + 1);
    return reader_fill(&in->rd[in->groups[0].first], 0);
}

/* The next entry of the first group into in->cur. */
static int next_first(struct input *in)
{
    struct group *g = &in->groups[0];
    if (!in->streamed) {
        if (in->first_pos >= g->ntuples)
            return -1;
        in->cur = g->tuples[in->first_pos++];
        return 1;
    }
    size_t s = g->first;
    const struct source_spec *sp = &in->o->sources[s];
    char *rec;
    if (sp->path) {
        int r = reader_next(&in->rd[s], &rec);
        if (r != 1)
            return r;
    } else {
        if (in->pos[s] >= sp->nargs)
            return -1;
        if (!(rec = strdup(sp->args[in->pos[s]++])))
            return -2;
    }
    char **cur = malloc(sizeof *cur);
    if (!cur) {
        free(rec);
        return -2;
    }
    cur[0] = rec;
    in->cur = cur;
    return 1;
}

static int push(struct values *v, char *s)
{
    if (!s)
        return -2;
    char **more = realloc(v->v, (v->n + 1) * sizeof *more);
    if (!more) {
        free(s);
        return -2;
    }
    v->v = more;
    v->v[v->n++] = s;
    return 0;
}

/* One combination: group 0's current entry and the odometer's. */
static int next_combination(struct input *in, struct values *v)
{
    if (in->done)
        return -1;
    if (!in->cur) {
        int r = next_first(in);
        if (r != 1) {
            if (r == -1)
                in->done = true;
            return r;
        }
    }
    *v = (struct values){0};
    for (size_t k = 0; k < in->groups[0].n; k++)
        if (push(v, strdup(in->cur[k])))
            return -2;
    for (size_t g = 1; g < in->ngroups; g++)
        for (size_t k = 0; k < in->groups[g].n; k++)
            if (push(v, strdup(in->groups[g].tuples[in->odo[g]][k])))
                return -2;
    /* The last group varies fastest. */
    size_t g = in->ngroups;
    while (--g >= 1) {
        if (++in->odo[g] < in->groups[g].ntuples)
            break;
        in->odo[g] = 0;
    }
    if (g == 0) {
        if (in->streamed) {
            free(in->cur[0]);
            free(in->cur);
        }
        in->cur = NULL;
    }
    return 1;
}

static int split_columns(struct input *in, struct values *v)
{
    char *line = v->v[0];
    struct values cols = {0};
    const char *p = line;
    regmatch_t m;
    int flags = 0;
    while (*p && regexec(&in->colsep, p, 1, &m, flags) == 0 && m.rm_eo > 0) {
        if (push(&cols, strndup(p, (size_t)m.rm_so)))
            goto fail;
        p += m.rm_eo;
        flags = REG_NOTBOL;
    }
    if (push(&cols, strdup(p)))
        goto fail;
    values_free(v);
    *v = cols;
    return 1;
fail:
    values_free(&cols);
    return -2;
}

int input_next(struct input *in, struct values *v)
{
    *v = (struct values){0};
    if (in->o->max_args > 1) {
        /* -N: the values of several records, gathered in in->pend while
           the records arrive; fewer at the end. */
        while (in->pend.n < (size_t)in->o->max_args) {
            struct values one;
            int r = next_combination(in, &one);
            if (r == -1 && in->pend.n)
                break;
            if (r != 1) {
                if (r == -2)
                    values_free(&in->pend);
                return r;
            }
            for (size_t k = 0; k < one.n; k++) {
                int e = push(&in->pend, one.v[k]);
                one.v[k] = NULL;
                if (e) {
                    values_free(&one);
                    return -2;
                }
            }
            values_free(&one);
        }
        *v = in->pend;
        in->pend = (struct values){0};
        return 1;
    }
    int r = next_combination(in, v);
    if (r == 1 && in->has_colsep)
        return split_columns(in, v);
    return r;
}

int input_next_block(struct input *in, char **block, size_t *len)
{
    struct reader *r = &in->stdin_rd;
    size_t avail = r->len - r->off;
    if (!avail && r->eof)
        return -1;
    char *start = r->buf + r->off;
    size_t n = 0;
    if (avail >= in->o->block) {
        /* The last record end within the block, else the first after. */
        char *cut = memrchr(start, r->delim, in->o->block);
        if (!cut)
            cut = memchr(start + in->o->block, r->delim, avail - in->o->block);
        if (cut)
            n = (size_t)(cut - start) + 1;
    }
    if (!n && r->eof)
        n = avail;
    if (!n)
        return 0;
    if (!(*block = malloc(n))) {
        fprintf(stderr, "mproc run: out of memory\n");
        return -2;
    }
    memcpy(*block, start, n);
    *len = n;
    r->off += n;
    return 1;
}

void values_free(struct values *v)
{
    for (size_t k = 0; k < v->n; k++)
        free(v->v[k]);
    free(v->v);
    *v = (struct values){0};
}

void input_close(struct input *in)
{
    if (!in)
        return;
    if (in->rd)
        for (size_t s = 0; s < in->o->nsources; s++)
            reader_close(&in->rd[s]);
    if (in->streamed && in->cur) {
        free(in->cur[0]);
        free(in->cur);
    }
    for (size_t g = 0; in->groups && g < in->ngroups; g++) {
        for (size_t t = 0; t < in->groups[g].ntuples; t++) {
            for (size_t k = 0; k < in->groups[g].n; k++)
                free(in->groups[g].tuples[t][k]);
            free(in->groups[g].tuples[t]);
        }
        free(in->groups[g].tuples);
    }
    values_free(&in->pend);
    if (in->has_colsep)
        regfree(&in->colsep);
    reader_close(&in->stdin_rd);
    free(in->rd);
    free(in->pos);
    free(in->groups);
    free(in->odo);
    free(in);
}
