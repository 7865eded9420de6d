/*
 * The `claims` workload: a stand-in, on this machine, for what limits the
 * job board on many cores (docs/performance.md, "Scaling"). Every claim of
 * a chunk is one fetch-add on the job's claim counter, and every finish one
 * on its fin word: one cache line each, which every worker of the job
 * moves to its core. Here T threads claim for a fixed time, each claim a
 * fetch-add followed by a little work of the thread's own (a chain of 40
 * dependent multiplies, about 40 ns: far less than any chunk the board
 * makes), on one shared counter (the board as it is) and on a counter
 * each, on lines of their own (what per-worker claim ranges would make of
 * the common case); the figure is the millions of claims a second, all
 * threads together. With more threads than CPUs the threads share the
 * CPUs, as a pool's workers may. A third row times the handoff itself: two
 * threads that take turns incrementing one counter, nanoseconds per turn
 * (one cache-line transfer and the look that sees it).
 */
#include "bench.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct line {
    alignas(64) _Atomic uint64_t v;
};

struct claimer {
    pthread_t t;
    _Atomic uint64_t *counter;
    const _Atomic int *go, *stop;
    uint64_t done;
};

static void *claim_loop(void *p)
{
    struct claimer *c = p;
    /* Relaxed: the flags order nothing but the start and end of the run,
       and the counts are read after join. */
    while (!atomic_load_explicit(c->go, memory_order_relaxed))
        ;
    uint64_t k = 0, sink = 0;
    while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
        for (int i = 0; i < 16; i++) {
            atomic_fetch_add_explicit(c->counter, 1, memory_order_relaxed);
            sink += bench_chain(40);
        }
        k += 16;
    }
    c->done = k + (sink == 1); /* keep the work */
    return NULL;
}

/* Two threads taking turns on one counter: the one whose parity it is
   increments it. */
struct turns {
    _Atomic uint64_t *counter;
    uint64_t parity, rounds;
};

static void *take_turns(void *p)
{
    struct turns *t = p;
    for (uint64_t i = 0; i < t->rounds; i++) {
        uint64_t want = 2 * i + t->parity;
        /* Acquire/release: each turn hands the line over; nothing else
           is published, but the order of turns is the measure. */
        while (atomic_load_explicit(t->counter, memory_order_acquire) != want)
            ;
        atomic_store_explicit(t->counter, want + 1, memory_order_release);
    }
    return NULL;
}

static double handoff_ns(uint64_t rounds)
{
    struct line *l = aligned_alloc(64, sizeof *l);
    if (!l)
        bench_fail("claims: out of memory");
    atomic_init(&l->v, 0);
    struct turns a = {&l->v, 0, rounds}, b = {&l->v, 1, rounds};
    pthread_t ta, tb;
    double t0 = bench_now();
    if (pthread_create(&ta, NULL, take_turns, &a) ||
        pthread_create(&tb, NULL, take_turns, &b))
        bench_fail("claims: pthread_create failed");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    double t = bench_now() - t0;
    free(l);
    return t * 1e9 / (double)(2 * rounds);
}

/* Millions of fetch-adds a second by t threads, on one counter or each on
   its own, over `seconds`. */
static double rate(int t, bool shared, double seconds)
{
    struct line *lines = aligned_alloc(64, (size_t)t * sizeof *lines);
    struct claimer *c = calloc((size_t)t, sizeof *c);
    _Atomic int go = 0, stop = 0;
    if (!lines || !c)
        bench_fail("claims: out of memory");
    memset(lines, 0, (size_t)t * sizeof *lines);
    for (int i = 0; i < t; i++) {
        c[i].counter = &lines[shared ? 0 : i].v;
        c[i].go = &go;
        c[i].stop = &stop;
        if (pthread_create(&c[i].t, NULL, claim_loop, &c[i]))
            bench_fail("claims: pthread_create failed");
    }
    double t0 = bench_now();
    atomic_store_explicit(&go, 1, memory_order_relaxed);
    while (bench_now() - t0 < seconds)
        ;
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    uint64_t total = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(c[i].t, NULL);
        total += c[i].done;
    }
    double el = bench_now() - t0;
    free(lines);
    free(c);
    return (double)total / el / 1e6;
}

void bench_claims(struct bench *b)
{
    static const int ts[] = {1, 2, 4, 16};
    const double seconds = b->quick ? 0.02 : 0.1;
    double s[BENCH_MAX_REPS];
    char param[24];
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        snprintf(param, sizeof param, "threads=%d", ts[i]);
        for (int shared = 1; shared >= 0; shared--) {
            for (int r = 0; r < b->reps; r++) {
                bench_progress(b, "claims %s %s, run %d of %d",
                               shared ? "one counter" : "a counter each", param,
                               r + 1, b->reps);
                s[r] = rate(ts[i], shared, seconds);
            }
            bench_row("claims",
                      shared ? "one counter (the board)"
                             : "a counter each (per-worker ranges)",
                      param, "M/s", s, b->reps);
        }
    }
    for (int r = 0; r < b->reps; r++) {
        bench_progress(b, "claims: handoff, run %d of %d", r + 1, b->reps);
        s[r] = handoff_ns(b->quick ? 20000 : 100000);
    }
    bench_row("claims", "handoff of the line", "threads=2", "ns", s, b->reps);
}
