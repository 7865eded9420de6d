/*
 * mproc bench, as the mproc tool reaches it: the one entry into bench/.
 * The harness, the workloads and the systems behind it are private to
 * bench/ (bench.h); the tool knows this function only.
 */
#ifndef MPROC_BENCH_MAIN_H
#define MPROC_BENCH_MAIN_H

/* Run `mproc bench`: argv[0] is the verb ("bench"), its options follow.
   Prints the tables on stdout and what went wrong on stderr. Returns the
   exit status: 0; 1 when the CSV or the charts could not be written; 2 for
   a usage error, before any workload runs. A failed map or a wrong result
   makes every figure meaningless: it exits 1 at once. Not reentrant: it
   opens pools of its own and reports to stdout. */
int bench_main(int argc, char **argv);

#endif
