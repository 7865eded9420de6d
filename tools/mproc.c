/*
 * mproc: the command-line tool.
 *
 *   mproc demo    the multiprocessing notebook, in C
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: mproc demo [--kind processes|threads] [--workers N] [--quick]\n"
    "\n"
    "  demo   the multiprocessing notebook's cells, in C, each with its\n"
    "         results, its time and its lesson. --kind and --workers set the\n"
    "         pool of the Pool cells; --quick shortens sleeps and loops.\n";

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
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help"))
        return tool_usage(NULL);
    return tool_usage("unknown command");
}
