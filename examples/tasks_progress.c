/*
 * Asynchronous maps: mproc_submit returns at once; mproc_task_wait with a
 * timeout lets the caller print progress while items run; mproc_task_next
 * hands back each item as it finishes; mproc_task_cancel stops what has not
 * started. Items sleep a few milliseconds, standing in for real work.
 *
 *   cc tasks_progress.c $(pkg-config --cflags --libs mproc) -o tasks_progress
 */
#define _POSIX_C_SOURCE 200809L
#include <mproc.h>
#include <stdio.h>
#include <time.h>

enum { N = 100 };

static int nap(const void *in, void *out, void *arg) /* *in milliseconds */
{
    (void)arg;
    nanosleep(&(struct timespec){.tv_nsec = *(const int *)in * 1000000L}, NULL);
    *(int *)out = *(const int *)in * 2;
    return 0;
}

static int fail(const char *what, int r)
{
    fprintf(stderr, "%s: %s\n", what,
            r < 0 ? mproc_strerror(r) : "wrong result");
    return 1;
}

int main(void)
{
    static int ms[N], out[N], status[N];
    mproc_pool *pool;
    int r = mproc_pool_open(&pool, &(mproc_options){.workers = 4});
    if (r < 0)
        return fail("open", r);
    mproc_job job = {.fn = nap,
                     .in = ms,
                     .in_size = sizeof ms[0],
                     .out = out,
                     .out_size = sizeof out[0],
                     .status = status,
                     .chunk = 1};
    mproc_task *t;
    size_t done, n, i, seen = 0;
    for (int k = 0; k < N; k++)
        ms[k] = 20;

    job.n = 32; /* 1. wait with a timeout, print progress meanwhile */
    if ((r = mproc_submit(pool, &job, &t)) < 0)
        return fail("submit", r);
    while ((r = mproc_task_wait(t, 0.1)) == MPROC_ETIMEDOUT)
        if (mproc_task_progress(t, &done, &n) == 0)
            printf("%zu of %zu items done\n", done, n);
    mproc_task_free(t);
    if (r != 0)
        return fail("wait", r);

    job.n = 12; /* 2. items as they finish: the slowest are the first */
    for (int k = 0; k < 12; k++)
        ms[k] = 5 * (12 - k);
    if ((r = mproc_submit(pool, &job, &t)) < 0)
        return fail("submit", r);
    while ((r = mproc_task_next(t, &i, -1)) == 0) {
        printf("item %zu finished: %d\n", i, out[i]);
        seen += status[i] == 0 && out[i] == ms[i] * 2;
    }
    int w = mproc_task_wait(t, -1); /* the count of failed items */
    mproc_task_free(t);
    if (r != MPROC_EOF || w != 0 || seen != 12)
        return fail("next", r != MPROC_EOF ? r : w);

    job.n = N; /* 3. take four results, cancel the rest */
    for (int k = 0; k < 12; k++)
        ms[k] = 20;
    if ((r = mproc_submit(pool, &job, &t)) < 0)
        return fail("submit", r);
    for (int k = 0; k < 4 && r == 0; k++)
        r = mproc_task_next(t, &i, -1);
    if (r < 0 || (r = mproc_task_cancel(t)) < 0 ||
        (w = mproc_task_wait(t, -1)) < 0)
        return fail("cancel",
                    r < 0 ? r : w); /* else w: how many items failed */
    int cancelled = 0, ran = 0;
    for (int k = 0; k < N; k++) {
        cancelled += status[k] == MPROC_ECANCELED;
        ran += status[k] == 0 && out[k] == 40;
    }
    mproc_task_free(t);
    printf("cancelled %d of %d items, %d ran\n", cancelled, N, ran);
    if ((r = mproc_pool_close(pool)) < 0)
        return fail("close", r);
    return cancelled > 0 && cancelled == w && cancelled + ran == N ? 0 : 1;
}
