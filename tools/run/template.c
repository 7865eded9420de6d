/*
 * Replacement strings and the command of a job.
 *
 *   {}  the values, joined by spaces     {N}  the value of source N (or
 *   {.} without the extension                 column N, or -N's Nth)
 *   {/} basename   {//} dirname           {N.} {N/} {N//} {N/.}
 *   {/.} basename without extension       {#} job number  {%} job slot
 *
 * The path operations follow GNU parallel's rules, so the same inputs give
 * the same commands: {.} drops the last ".ext" of the last path component
 * only, {//} is POSIX dirname (of "x" and "x/": "."; of "/x": "/").
 *
 * Without a shell, each word of the command becomes one argument, values
 * inserted verbatim: no quoting can go wrong because nothing parses them.
 * With a shell, each inserted value is quoted, so that a value is never
 * read as shell syntax ("a b", "$(rm -rf ~)", "it's").
 */
#define _GNU_SOURCE
#include "run.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static bool plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("_/.+-", c);
}

int shell_quote(char **buf, size_t *len, size_t *cap, const char *s)
{
    bool quote = !*s;
    for (const char *p = s; *p && !quote; p++)
        quote = !plain((unsigned char)*p);
    if (!quote)
        return put(buf, len, cap, s, strlen(s));
    if (put(buf, len, cap, "'", 1))
        return -1;
    for (const char *p = s; *p; p++) {
        int r = *p == '\'' ? put(buf, len, cap, "'\"'\"'", 5)
                           : put(buf, len, cap, p, 1);
        if (r)
            return -1;
    }
    return put(buf, len, cap, "'", 1);
}

bool has_shell_syntax(const char *w)
{
    return strpbrk(w, " \t\n;&|<>()$`\\\"'*?[~") != NULL;
}

/* A replacement string at s: its length (0: none), the source it names
   (0: all), and its operation (one of "", ".", "/", "//", "/.", "#", "%"). */
static size_t token(const char *s, int *src, const char **op)
{
    if (s[0] != '{')
        return 0;
    const char *p = s + 1;
    if ((p[0] == '#' || p[0] == '%') && p[1] == '}') {
        *src = 0;
        *op = p[0] == '#' ? "#" : "%";
        return 3;
    }
    long n = 0;
    while (*p >= '0' && *p <= '9' && n < 100000)
        n = n * 10 + (*p++ - '0');
    if (p > s + 1 && n == 0)
        return 0;
    static const char *const ops[] = {"//", "/.", "/", ".", ""};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        size_t k = strlen(ops[i]);
        if (!strncmp(p, ops[i], k) && p[k] == '}') {
            *src = (int)n;
            *op = ops[i];
            return (size_t)(p + k + 1 - s);
        }
    }
    return 0;
}

bool has_replacement(char *const *words, int n)
{
    for (int i = 0; i < n; i++)
        for (const char *p = words[i]; (p = strchr(p, '{')); p++) {
            int src;
            const char *op;
            if (token(p, &src, &op))
                return true;
        }
    return false;
}

/* The operation op applied to value s, appended (quoted if asked). */
static int apply(char **buf, size_t *len, size_t *cap, const char *s,
                 const char *op, bool quote)
{
    /* Room for dirname's "." of an empty value. */
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    if (!t)
        return -1;
    memcpy(t, s, n + 1);
    char *base = strrchr(t, '/');
    if (!strcmp(op, "/") || !strcmp(op, "/.")) {
        if (base)
            memmove(t, base + 1, strlen(base + 1) + 1);
    } else if (!strcmp(op, "//")) {
        /* POSIX dirname(3), as GNU parallel's: "dir/" is in ".". */
        char *d = dirname(t);
        memmove(t, d, strlen(d) + 1);
    }
    if (!strcmp(op, ".") || !strcmp(op, "/.")) {
        char *dot = strrchr(t, '.'), *slash = strrchr(t, '/');
        if (dot && (!slash || dot > slash))
            *dot = 0;
    }
    int r = quote ? shell_quote(buf, len, cap, t)
                  : put(buf, len, cap, t, strlen(t));
    free(t);
    return r;
}

static char *joined(const struct values *v)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    if (put(&b, &len, &cap, "", 0))
        return NULL;
    for (size_t k = 0; k < v->n; k++)
        if ((k && put(&b, &len, &cap, " ", 1)) ||
            put(&b, &len, &cap, v->v[k], strlen(v->v[k]))) {
            free(b);
            return NULL;
        }
    return b;
}

static int expand(char **buf, size_t *len, size_t *cap, const char *w,
                  const struct values *v, size_t seq, int slot, bool quote)
{
    if (put(buf, len, cap, "", 0))
        return -1;
    while (*w) {
        int src;
        const char *op;
        size_t k = token(w, &src, &op);
        if (!k) {
            const char *next = strchr(w + 1, '{');
            size_t n = next ? (size_t)(next - w) : strlen(w);
            if (put(buf, len, cap, w, n))
                return -1;
            w += n;
            continue;
        }
        w += k;
        int r;
        if (!strcmp(op, "#") || !strcmp(op, "%")) {
            char num[32];
            snprintf(num, sizeof num, "%zu", op[0] == '#' ? seq : (size_t)slot);
            r = put(buf, len, cap, num, strlen(num));
        } else if (src == 0) {
            char *all = joined(v);
            r = all ? apply(buf, len, cap, all, op, quote) : -1;
            free(all);
        } else {
            r = apply(buf, len, cap, (size_t)src <= v->n ? v->v[src - 1] : "",
                      op, quote);
        }
        if (r)
            return -1;
    }
    return 0;
}

char *expand_string(const char *str, const struct values *v, size_t seq,
                    int slot)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    if (expand(&b, &len, &cap, str, v, seq, slot, false)) {
        free(b);
        return NULL;
    }
    return b;
}

int command_build(struct command *c, const struct run_opts *o,
                  const struct values *v, size_t seq, int slot)
{
    *c = (struct command){0};
    bool append = !has_replacement(o->cmd, o->ncmd);
    char *line = NULL;
    size_t len = 0, cap = 0;
    if (o->shell) {
        for (int i = 0; i < o->ncmd; i++)
            if ((i && put(&line, &len, &cap, " ", 1)) ||
                expand(&line, &len, &cap, o->cmd[i], v, seq, slot, true))
                goto fail;
        for (size_t k = 0; append && k < v->n; k++)
            if (put(&line, &len, &cap, " ", 1) ||
                shell_quote(&line, &len, &cap, v->v[k]))
                goto fail;
        if (!(c->argv = calloc(4, sizeof *c->argv)) ||
            !(c->argv[0] = strdup("/bin/sh")) || !(c->argv[1] = strdup("-c")) ||
            !(c->argv[2] = strdup(line)))
            goto fail;
        c->line = line;
        return 0;
    }
    size_t n = (size_t)o->ncmd + (append ? v->n : 0);
    if (!(c->argv = calloc(n + 1, sizeof *c->argv)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        char *b = NULL;
        size_t bl = 0, bc = 0;
        if ((int)i < o->ncmd) {
            if (expand(&b, &bl, &bc, o->cmd[i], v, seq, slot, false)) {
                free(b);
                goto fail;
            }
        } else if (!(b = strdup(v->v[i - (size_t)o->ncmd]))) {
            goto fail;
        }
        c->argv[i] = b;
        if ((i && put(&line, &len, &cap, " ", 1)) ||
            shell_quote(&line, &len, &cap, b))
            goto fail;
    }
    c->line = line;
    return 0;
fail:
    free(line);
    command_free(c);
    return -1;
}

void command_free(struct command *c)
{
    if (c->argv)
        for (char **a = c->argv; *a; a++)
            free(*a);
    free(c->argv);
    if (c->line != NULL)
        free(c->line);
    *c = (struct command){0};
}
