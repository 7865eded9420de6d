/*
 * Each job's output, and mproc run's own.
 *
 * A job's stdout and stderr are kept apart, each in a spool: memory up to
 * SPOOL_MEMORY bytes (and while all spools together hold less than
 * ALL_MEMORY), then an unlinked temporary file in $TMPDIR, so that what
 * the commands print never fills mproc run's memory however much it is or
 * however long it waits behind a slow first job. A spool that cannot be
 * written (disk full) is an error for its job, reported as such; the
 * command's pipe is still read to the end, so the command never hangs on a
 * full pipe.
 *
 * mproc run's own output goes through two buffers with write(2), so that a
 * write error (EPIPE, ENOSPC on > /dev/full) is seen and kept: the loop
 * then stops and mproc run exits nonzero and says why.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MEMORY (2u << 20)
#define ALL_MEMORY   (16u << 20)

size_t spool_memory;

void spool_init(struct spool *s)
{
    *s = (struct spool){.fd = -1, .bol = true};
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int tmpfile_open(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/mproc-run-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    int e = errno;
    if (fd >= 0)
        unlink(path);
    free(path);
    return fd >= 0 ? fd : -e;
}

int spool_add(struct spool *s, const char *data, size_t n)
{
    s->total += n;
    if (s->fd < 0 && s->len + n <= SPOOL_MEMORY &&
        spool_memory + n <= ALL_MEMORY) {
        if (s->len + n > s->cap) {
            size_t c = s->cap ? s->cap : 4096;
            while (c < s->len + n)
                c *= 2;
            char *m = realloc(s->mem, c);
            if (!m)
                goto file;
            s->mem = m;
            s->cap = c;
        }
        memcpy(s->mem + s->len, data, n);
        s->len += n;
        spool_memory += n;
        return 0;
    }
file:
    if (s->fd < 0) {
        int fd = tmpfile_open();
        if (fd < 0)
            return fd;
        int e = write_all(fd, s->mem, s->len);
        if (e) {
            close(fd);
            return e;
        }
        s->fd = fd;
        s->flen = s->len;
        spool_memory -= s->len;
        free(s->mem);
        s->mem = NULL;
        s->len = s->cap = 0;
    }
    int e = write_all(s->fd, data, n);
    if (e)
        return e;
    s->flen += n;
    return 0;
}

void spool_free(struct spool *s)
{
    spool_memory -= s->len;
    free(s->mem);
    if (s->fd >= 0)
        close(s->fd);
    spool_init(s);
}

/* mproc run's stdout and stderr, buffered. */
static struct {
    char buf[65536];
    size_t len;
} outs[3];
static int out_err;

static void flush(int stream)
{
    if (outs[stream].len && !out_err) {
        int e = write_all(stream, outs[stream].buf, outs[stream].len);
        if (e && stream == 1)
            out_err = e;
    }
    outs[stream].len = 0;
}

static void raw(int stream, const char *p, size_t n)
{
    if (out_err && stream == 1)
        return;
    if (outs[stream].len + n > sizeof outs[stream].buf) {
        flush(stream);
        if (n >= sizeof outs[stream].buf) {
            int e = out_err ? 0 : write_all(stream, p, n);
            if (e && stream == 1)
                out_err = e;
            return;
        }
    }
    memcpy(outs[stream].buf + outs[stream].len, p, n);
    outs[stream].len += n;
}

void out_write(int stream, const char *p, size_t n, const char *tag, bool *bol)
{
    if (!tag) {
        raw(stream, p, n);
        return;
    }
    while (n) {
        if (*bol) {
            raw(stream, tag, strlen(tag));
            raw(stream, "\t", 1);
            *bol = false;
        }
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) + 1 : n;
        raw(stream, p, k);
        p += k;
        n -= k;
        if (nl)
            *bol = true;
    }
}

int out_spool(int stream, struct spool *s, const char *tag)
{
    int r = 0;
    if (s->fd >= 0) {
        char chunk[65536];
        off_t off = 0;
        while ((size_t)off < s->flen) {
            ssize_t k = pread(s->fd, chunk, sizeof chunk, off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                r = k < 0 ? -errno : -EIO;
                break;
            }
            out_write(stream, chunk, (size_t)k, tag, &s->bol);
            off += k;
        }
        close(s->fd);
        s->fd = -1;
        s->flen = 0;
    }
    if (s->len)
        out_write(stream, s->mem, s->len, tag, &s->bol);
    spool_memory -= s->len;
    s->len = 0;
    return r;
}

void out_lines(int stream, struct spool *s, const char *tag)
{
    if (!s->len)
        return;
    char *nl = memrchr(s->mem, '\n', s->len);
    size_t k = nl ? (size_t)(nl - s->mem) + 1 : 0;
    if (!k && s->len < SPOOL_MEMORY)
        return;
    if (!k)
        k = s->len;
    out_write(stream, s->mem, k, tag, &s->bol);
    memmove(s->mem, s->mem + k, s->len - k);
    s->len -= k;
    spool_memory -= k;
}

int out_flush(void)
{
    flush(1);
    flush(2);
    return out_err;
}

void out_broken(int e)
{
    if (!out_err)
        out_err = e;
}

int out_error(void)
{
    return out_err;
}

/* A copy of a spool's bytes into fd, the spool unchanged. */
static int spool_copy(struct spool *s, int fd)
{
    if (s->fd >= 0) {
        char chunk[65536];
        off_t off = 0;
        while ((size_t)off < s->flen) {
            ssize_t k = pread(s->fd, chunk, sizeof chunk, off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return k < 0 ? -errno : -EIO;
            int e = write_all(fd, chunk, (size_t)k);
            if (e)
                return e;
            off += k;
        }
    }
    return write_all(fd, s->mem, s->len);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int save(const char *dir, const char *name, struct spool *s,
                const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    free(path);
    if (fd < 0)
        return -errno;
    int e = s ? spool_copy(s, fd) : write_all(fd, text, strlen(text));
    if (close(fd) != 0 && !e)
        e = -errno;
    return e;
}

/* GNU parallel's layout: DIR/1/VALUE1/2/VALUE2/.../{seq,stdout,stderr}
   (seq without a newline),
   '/' in a value written "\_" and '\' written "\\". */
int results_save(const char *dir, const struct values *v, size_t seq,
                 struct spool *out, struct spool *err)
{
    size_t cap = strlen(dir) + 1, len = strlen(dir);
    for (size_t k = 0; k < v->n; k++)
        cap += 24 + 2 * strlen(v->v[k]);
    char *path = malloc(cap);
    if (!path)
        return -ENOMEM;
    memcpy(path, dir, len + 1);
    int e = make_dir(path);
    for (size_t k = 0; !e && k < v->n; k++) {
        len += (size_t)snprintf(path + len, cap - len, "/%zu", k + 1);
        if ((e = make_dir(path)))
            break;
        path[len++] = '/';
        for (const char *c = v->v[k]; *c; c++) {
            if (*c == '/' || *c == '\\') {
                path[len++] = '\\';
                path[len++] = *c == '/' ? '_' : '\\';
            } else {
                path[len++] = *c;
            }
        }
        path[len] = 0;
        e = make_dir(path);
    }
    char num[32];
    snprintf(num, sizeof num, "%zu", seq);
    if (!e)
        e = save(path, "seq", NULL, num);
    if (!e)
        e = save(path, "stdout", out, NULL);
    if (!e)
        e = save(path, "stderr", err, NULL);
    free(path);
    return e;
}
