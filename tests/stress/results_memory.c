/*
 * Memory per result of MPROC_OUT_BYTES on a process pool: maps n items that
 * each make a result of `size` bytes, either streamed (mproc_task_next,
 * each freed as handed out) or collected at the end (mproc_task_wait), and
 * prints the results file's peak (the system's Shmem, sampled every 20,000
 * items while streaming) and the caller's heap.
 *
 *   results_memory N SIZE STREAM      e.g. results_memory 1000000 1000 1
 */
#include <mproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long field(const char *file, const char *name)
{
    FILE *f = fopen(file, "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, name, n)) {
            kb = atol(line + n);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

static size_t size;

static int make(const void *in, void *out, void *arg)
{
    (void)in, (void)out, (void)arg;
    char *p = mproc_result(size);
    if (!p)
        return 1;
    memset(p, 'x', size);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: results_memory N SIZE STREAM\n");
        return 2;
    }
    size_t n = (size_t)atol(argv[1]);
    size = (size_t)atol(argv[2]);
    int stream = atoi(argv[3]);
    mproc_pool *p;
    if (mproc_pool_open(&p, &(mproc_options){.workers = 2}))
        return 1;
    mproc_bytes *out = malloc(n * sizeof *out);
    long shm0 = field("/proc/meminfo", "Shmem:");
    long anon0 = field("/proc/self/status", "RssAnon:");
    long peak_shm = 0, heap = 0;
    mproc_job j = {.fn = make, .out = out, .n = n, .flags = MPROC_OUT_BYTES};
    mproc_task *t;
    if (mproc_submit(p, &j, &t))
        return 1;
    size_t i, k = 0;
    if (stream) {
        while (mproc_task_next(t, &i, -1) == 0) {
            free(out[i].data);
            if (++k % 20000 == 0) {
                long s = field("/proc/meminfo", "Shmem:") - shm0;
                long a = field("/proc/self/status", "RssAnon:") - anon0;
                peak_shm = s > peak_shm ? s : peak_shm;
                heap = a > heap ? a : heap;
            }
        }
        mproc_task_wait(t, -1);
    } else {
        mproc_task_wait(t, -1);
        heap = field("/proc/self/status", "RssAnon:") - anon0;
        for (i = 0; i < n; i++)
            free(out[i].data);
    }
    printf("%zu results of %zu bytes (%.1f MiB), %s: results file peak %ld "
           "KiB; caller heap %s %ld KiB (%.1f bytes a result)\n",
           n, size, (double)n * (double)size / 1048576,
           stream ? "streamed and freed" : "collected at the end", peak_shm,
           stream ? "peak" : "after the wait", heap,
           stream ? 0.0 : (double)heap * 1024 / (double)n);
    mproc_task_free(t);
    mproc_pool_close(p);
    free(out);
    return 0;
}
