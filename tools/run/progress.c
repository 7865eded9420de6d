/*
 * --bar, --progress, --eta: one line on stderr, redrawn in place, and only
 * when stderr is a terminal: in a log file or a pipe a redrawn line is
 * noise, so there they print nothing (GNU parallel prints them anyway).
 */
#define _GNU_SOURCE
#include "run.h"

#include <string.h>
#include <unistd.h>

bool progress_on(const struct run_opts *o)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(2);
    return (o->bar || o->progress || o->eta) && tty;
}

void progress_draw(const struct run_opts *o, const struct progress_state *p,
                   double now, bool last)
{
    static double drawn;
    if (!last && now - drawn < 0.2)
        return;
    drawn = now;
    char line[256];
    size_t n = 0;
    double avg = p->done ? p->runtime_sum / (double)p->done : 0;
    double left = p->total_known ? (double)(p->total - p->done) : -1;
    double took = now - p->begin;
    double eta = p->done && left >= 0 ? took / (double)p->done * left : -1;
    n += (size_t)snprintf(line + n, sizeof line - n, "\r");
    if (o->bar && p->total_known && p->total) {
        int pct = (int)(100.0 * (double)p->done / (double)p->total);
        char bar[41];
        int fill = pct * 40 / 100;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(40 - fill));
        bar[40] = 0;
        n += (size_t)snprintf(line + n, sizeof line - n, "%3d%% [%s] ", pct,
                              bar);
    }
    n += (size_t)snprintf(
        line + n, sizeof line - n, "%zu done, %zu running, %zu failed", p->done,
        p->started > p->done ? p->started - p->done : 0, p->failed);
    if (p->total_known)
        n += (size_t)snprintf(line + n, sizeof line - n, " of %zu", p->total);
    if ((o->eta || o->progress) && eta >= 0)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              ", ETA %.0f s, %.2f s a job", eta, avg);
    n += (size_t)snprintf(line + n, sizeof line - n, "\033[K%s",
                          last ? "\n" : "");
    if (n > sizeof line)
        n = sizeof line - 1;
    if (write(2, line, n) < 0) {
        /* A terminal that fails a write: nothing to say it on. */
    }
}
