/*
 * Python's Pool().map(count_words, paths), in C: a list of file paths in,
 * for each file its line, word and byte counts and its whole longest line
 * out, however long. The paths are strings (MPROC_IN_STRINGS) and each
 * result is a byte run of its own length (MPROC_OUT_BYTES, mproc_result),
 * so the same program is right on threads, processes and MPI ranks, with
 * paths read after the pool opened.
 *
 *   cc word_count.c $(pkg-config --cflags --libs mproc) -o word_count
 *   ./word_count processes *.c        # or threads; mpirun -np 3 ... mpi
 *   ./word_count                      # checks itself on 200 files it writes
 *
 * With no file given it writes 200 files in a temporary directory, counts
 * them in parallel and serially, and exits 0 only if both agree.
 */
#define _GNU_SOURCE
#include <mproc.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A result: the counts, then the longest line's bytes (no newline). */
struct counts {
    size_t lines, words, bytes, longest;
};

/* Count one file into `c` and return its longest line (malloc'd), or NULL
   with errno set. */
static char *count_file(const char *path, struct counts *c)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    memset(c, 0, sizeof *c);
    char *line = NULL, *best = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        c->bytes += (size_t)len;
        bool nl = len > 0 && line[len - 1] == '\n';
        c->lines += nl;
        size_t text = (size_t)len - nl;
        for (size_t i = 0; i < text; i++)
            c->words += line[i] != ' ' && line[i] != '\t' &&
                        (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t');
        if (!best || text > c->longest) {
            free(best);
            best = strndup(line, text);
            c->longest = text;
        }
    }
    free(line);
    fclose(f);
    if (!best)
        best = strdup("");
    return best;
}

static int count_words(const void *in, void *out, void *arg)
{
    (void)out, (void)arg;
    const char *path = *(const char *const *)in;
    struct counts c;
    char *longest = count_file(path, &c);
    if (!longest)
        return errno; /* the item's code: this file could not be read */
    char *r = mproc_result(sizeof c + c.longest);
    if (r) {
        memcpy(r, &c, sizeof c);
        memcpy(r + sizeof c, longest, c.longest);
    }
    free(longest);
    return r ? 0 : errno;
}

/* 200 files of a few lines each; file i's longest line is 100 + 7 * i bytes
   (1,493 for the last). */
static int write_files(char *dir, char **paths, int n)
{
    if (!mkdtemp(dir))
        return -1;
    for (int i = 0; i < n; i++) {
        if (asprintf(&paths[i], "%s/file%03d.txt", dir, i) < 0)
            return -1;
        FILE *f = fopen(paths[i], "w");
        if (!f)
            return -1;
        fprintf(f, "file %d has a short line\n", i);
        for (int k = 0; k < 100 + 7 * i; k++)
            fputc(k % 6 == 5 ? ' ' : 'a' + (k + i) % 26, f);
        fprintf(f, "\nand a last one without a newline");
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *word = argc > 1 ? argv[1] : "processes";
    if (strcmp(word, "processes") && strcmp(word, "threads") &&
        strcmp(word, "mpi")) {
        fprintf(stderr,
                "usage: word_count [processes|threads|mpi [FILE...]]\n"
                "  (the first word is the pool's kind: '%s' is not "
                "one)\n",
                word);
        return 2;
    }
    mproc_options opt = {.kind = !strcmp(word, "threads") ? MPROC_THREADS
                                 : !strcmp(word, "mpi")   ? MPROC_MPI
                                                          : MPROC_PROCESSES};
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &opt);
    if (r) {
        fprintf(stderr, "open: %s\n", mproc_strerror(r));
        return 1;
    }

    /* The paths are read after the open: process workers get copies. */
    enum { SELF = 200 };
    char dir[] = "/tmp/word_count-XXXXXX";
    char *own[SELF];
    char **paths = argc > 2 ? argv + 2 : own;
    size_t n = argc > 2 ? (size_t)(argc - 2) : SELF;
    if (argc <= 2 && write_files(dir, own, SELF) != 0) {
        perror("writing the test files");
        return 1;
    }

    mproc_bytes *out = calloc(n, sizeof *out);
    int *status = calloc(n, sizeof *status);
    mproc_job job = {.fn = count_words,
                     .in = paths,
                     .out = out,
                     .n = n,
                     .status = status,
                     .flags = MPROC_IN_STRINGS | MPROC_OUT_BYTES};
    r = mproc_map(pool, &job);
    if (r < 0) {
        fprintf(stderr, "map: %s\n", mproc_strerror(r));
        return 1;
    }

    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        if (status[i]) {
            fprintf(stderr, "%s: %s\n", paths[i],
                    status[i] > 0 ? strerror(status[i])
                                  : mproc_strerror(status[i]));
            wrong += argc <= 2;
            continue;
        }
        struct counts c;
        memcpy(&c, out[i].data, sizeof c);
        const char *longest = (const char *)out[i].data + sizeof c;
        if (argc > 2) {
            printf("%7zu %7zu %7zu %s: longest line %zu bytes\n", c.lines,
                   c.words, c.bytes, paths[i], c.longest);
        } else {
            /* The check: the same counts and line as a serial loop. */
            struct counts s;
            char *line = count_file(paths[i], &s);
            wrong += !line || memcmp(&s, &c, sizeof c) != 0 ||
                     memcmp(line, longest, c.longest) != 0 ||
                     out[i].size != sizeof c + c.longest;
            free(line);
            unlink(paths[i]);
            free(paths[i]);
        }
        free(out[i].data);
    }
    if (argc <= 2) {
        rmdir(dir);
        printf("%zu files on %s: %s\n", n, word,
               wrong ? "MISMATCH"
                     : "same counts and longest lines as a "
                       "serial loop");
    }
    free(out);
    free(status);
    mproc_pool_close(pool);
    return wrong != 0;
}
