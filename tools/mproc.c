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
    "       mproc run [-j N] [--timeout S] [--as-done] COMMAND [ARG...] [::: "
    "ITEM...]\n"
    "       mproc bench [--quick] [--reps N] [--csv FILE] [--plot DIR]\n"
    "                   [--only WORKLOAD,...] [--no-python]\n"
    "\n"
    "  demo   the multiprocessing notebook's cells, in C, each with its\n"
    "         results, its time and its lesson. --kind and --workers set the\n"
    "         pool of the Pool cells; --quick shortens sleeps and loops.\n"
    "         --kind mpi runs under mpirun -np N: the Pool cells use the\n"
    "         N-1 ranks other than 0.\n"
    "  run    COMMAND once per item (after ':::', or each line of standard\n"
    "         input), N at a time (-j; default: the CPUs), '{}' in an ARG\n"
    "         replaced by the item (else the item is the last argument); each\n"
    "         command's output printed whole, in the items' order (--as-done:\n"
    "         as they finish). --timeout kills a command after S seconds.\n"
    "         Exit status: the number of commands that failed (0 to 100;\n"
    "         101: more), 255 if run itself failed.\n"
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
