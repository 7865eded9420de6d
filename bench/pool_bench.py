#!/usr/bin/env python3
"""The Python side of `mproc bench`: the same workloads on Python's
multiprocessing.Pool and multiprocessing.pool.ThreadPool, as a user writes
them (default start method, default chunksize, `map`).

Run by the bench as a child, one workload at a time:

    python3 pool_bench.py WORKLOAD [--reps R] [--workers W] [...]

and prints one line per system and parameter: the system ("pool" or
"threadpool"; for kill, "pool-METHOD" per start method), the parameter,
then the seconds of each repetition. Lines starting with # are comments.
The uneven workload also prints "ideal N SECONDS", the sum of its items'
costs.
"""
import argparse
import random
import statistics
import sys
import time
import multiprocessing
from multiprocessing import Pool
from multiprocessing.pool import ThreadPool

now = time.perf_counter  # CLOCK_MONOTONIC on Linux

SYSTEMS = [("pool", Pool), ("threadpool", ThreadPool)]


def slow_add(xy):
    """The notebook's In [3]: a slow add (it returns y + y, sic)."""
    time.sleep(0.1)
    return xy[1] + xy[1]


def cpu_add(xyl):
    """The notebook's In [6]: a loop (3 million steps there), then x + y.
    The loop's length travels with the item, for any start method."""
    for _ in range(xyl[2]):
        pass
    return xyl[0] + xyl[1]


def add(xy):
    return xy[0] + xy[1]


def spin(seconds):
    end = now() + seconds
    while now() < end:
        pass
    return seconds


PLUS_ONE = bytes((i + 1) & 255 for i in range(256))


def big(b):
    return b.translate(PLUS_ONE)


def noop(x):
    return x


def n_param(n):
    """n=10^6 for powers of ten, as the bench writes them."""
    k = len(str(n)) - 1
    return "n=10^%d" % k if n == 10 ** k else "n=%d" % n


def emit(system, param, samples):
    print(system, param, " ".join("%.9g" % s for s in samples), flush=True)


def timed(f, reps):
    out = []
    for _ in range(reps):
        t0 = now()
        f()
        out.append(now() - t0)
    return out


def check(ok, what):
    if not ok:
        sys.exit("pool_bench.py: wrong results in " + what)


def sleep_cell(a):
    pairs = [(10, i) for i in range(1, 11)]
    for name, P in SYSTEMS:
        # As the notebook: the clock starts inside the with block, on a pool
        # whose workers may still be starting.
        with P(5) as p:
            emit(name, "workers=5",
                 timed(lambda: check(p.map(slow_add, pairs)[-1] == 20, "sleep"),
                       a.reps))


def cpu_cell(a):
    pairs = [(10, i, a.loop) for i in range(1, 11)]
    for name, P in SYSTEMS:
        for w in range(1, a.max_workers + 1):
            with P(w) as p:
                p.map(noop, range(w))
                emit(name, "workers=%d" % w,
                     timed(lambda: check(p.map(cpu_add, pairs)[-1] == 20, "cpu"),
                           a.reps))


def trivial(a):
    for n in a.n:
        data = [(i, 1) for i in range(n)]
        for name, P in SYSTEMS:
            with P(a.workers) as p:
                p.map(add, data[:1000])
                emit(name, n_param(n),
                     timed(lambda: check(p.map(add, data)[-1] == n, "trivial"),
                           a.reps))


def latency(a):
    for name, P in SYSTEMS:
        with P(a.workers) as p:
            for i in range(100):
                p.map(noop, [i])
            medians = []
            for _ in range(a.reps):
                calls = []
                for i in range(a.calls):
                    t0 = now()
                    p.map(noop, [i])
                    calls.append(now() - t0)
                medians.append(statistics.median(calls))
            emit(name, "n=1", medians)


def open_close(a):
    # Pool's other start methods, as mproc's spawn start is measured too.
    starts = [(n, lambda w, m=m: multiprocessing.get_context(m).Pool(w))
              for n, m in (("pool-spawn", "spawn"),
                           ("pool-forkserver", "forkserver"))]
    for name, P in list(SYSTEMS) + starts:
        for w in a.n:
            def once():
                p = P(w)
                p.close()
                p.join()
            emit(name, "workers=%d" % w, timed(once, a.reps))


def uneven(a):
    n = a.n[0]
    rng = random.Random(1)
    costs = [rng.uniform(1e-6, 100e-6) for _ in range(n)]
    print("ideal", n_param(n), "%.9g" % sum(costs))
    for name, P in SYSTEMS:
        with P(a.workers) as p:
            p.map(noop, range(a.workers))
            emit(name, n_param(n),
                 timed(lambda: check(p.map(spin, costs)[-1] == costs[-1], "uneven"),
                       a.reps))


def large(a):
    n = a.n[0]
    data = [bytes([i & 255]) * 4096 for i in range(n)]
    for name, P in SYSTEMS:
        with P(a.workers) as p:
            p.map(big, data[:a.workers])
            emit(name, n_param(n),
                 timed(lambda: check(p.map(big, data)[1][0] == 2, "large"),
                       a.reps))


def hang_init(started):
    global _started
    _started = started


def hang(i):
    """A task that never returns, once it has counted itself running."""
    with _started.get_lock():
        _started.value += 1
    while True:
        time.sleep(3600)


def kill(a):
    """Pool.terminate() then join() with every worker in a hung task, in
    each start method: Python's Pool has no kill of one task. The clock
    starts once every hung task runs; a repetition's figure is the median
    of its calls."""
    import multiprocessing
    for method in ("fork", "spawn", "forkserver"):
        if method not in multiprocessing.get_all_start_methods():
            continue
        ctx = multiprocessing.get_context(method)
        reps = []
        for _ in range(a.reps):
            calls = []
            for _ in range(a.calls):
                started = ctx.Value("i", 0)
                p = ctx.Pool(a.workers, initializer=hang_init,
                             initargs=(started,))
                p.map_async(hang, range(a.workers), chunksize=1)
                until = now() + 60
                while started.value < a.workers:
                    if now() > until:
                        sys.exit("pool_bench.py: kill: the hung tasks never "
                                 "started")
                    time.sleep(0.0005)
                t0 = now()
                p.terminate()
                p.join()
                calls.append(now() - t0)
            reps.append(statistics.median(calls))
        emit("pool-" + method, "terminate", reps)


WORKLOADS = {
    "sleep": sleep_cell,
    "cpu": cpu_cell,
    "trivial": trivial,
    "latency": latency,
    "kill": kill,
    "open": open_close,
    "uneven": uneven,
    "large": large,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-workers", type=int, default=4)
    ap.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1000])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--loop", type=int, default=3000000)
    a = ap.parse_args()
    WORKLOADS[a.workload](a)


if __name__ == "__main__":
    main()
