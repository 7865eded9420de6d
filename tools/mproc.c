/*
 * mproc: the command-line tool.
 *
 *   mproc demo    the multiprocessing notebook, in C
 *   mproc run     a command per item, in parallel: the shell's Pool.map
 *   mproc bench   the measured comparison: mproc, OpenMP, Python
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: mproc demo [--kind processes|threads|mpi] [--workers N] [--quick]\n"
    "       mproc run [OPTION...] COMMAND [ARG...] [::: VALUE...] [:::: "
    "FILE...]\n"
    "       mproc bench [--quick] [--reps N] [--csv FILE] [--plot DIR]\n"
    "                   [--only WORKLOAD,...] [--no-python]\n"
    "\n"
    "  demo   the multiprocessing notebook's cells, in C, each with its\n"
    "         results, its time and its lesson. --kind and --workers set the\n"
    "         pool of the Pool cells; --quick shortens sleeps and loops.\n"
    "         --kind mpi runs under mpirun -np N: the Pool cells use the\n"
    "         N-1 ranks other than 0.\n"
    "  run    COMMAND once per input (after ':::', the lines of the files\n"
    "         after '::::', or of standard input, read as they arrive), N at\n"
    "         a time, each output whole and in order; GNU parallel's options\n"
    "         and replacement strings ({} {.} {/} {//} {/.} {#} {%} {1}).\n"
    "         mproc run --help lists them; docs/run.md explains them.\n"
    "  bench  each workload (sleep, cpu, trivial, latency, cancel, open,\n"
    "         uneven, large) on each system (serial C, OpenMP, mproc threads\n"
    "         and processes, Python's Pool and ThreadPool), median and spread "
    "of\n"
    "         --reps runs (5; 3 with --quick, which takes under a minute),\n"
    "         against the targets. --csv writes every figure, --plot draws\n"
    "         PNG charts with gnuplot, --only runs some workloads.\n";

int tool_usage(const char *error)
{
    if (error) {
        fprintf(stderr, "mproc: %s\n%s", error, usage);
        return 2;
    }
    fputs(usage, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return tool_usage("no command given");
    if (!strcmp(argv[1], "demo"))
        return mproc__demo(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return tool_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) {
#ifdef MPROC_HAVE_BENCH
        return mproc__bench(argc - 1, argv + 1);
#else
        return tool_usage(
            "bench was not built (configure with -DMPROC_BENCH=ON)");
#endif
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help"))
        return tool_usage(NULL);
    return tool_usage("unknown command");
}
