/*
 * mproc: the command-line tool.
 *
 *   mproc demo    the multiprocessing notebook, in C
 *   mproc run     a command per item, in parallel: the shell's Pool.map
 *   mproc bench   the measured comparison: mproc, OpenMP, Python
 *
 * This file finds the verb and hands it the rest of the command line; each
 * verb parses its own options (getopt_long) and keeps its own usage.
 */
#include "tool.h"

#ifdef MPROC_HAVE_BENCH
#include <mproc_bench.h>
#endif
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: mproc COMMAND [OPTION...]\n"
    "       mproc --help | --version\n"
    "\n"
    "  demo     the multiprocessing notebook's cells, in C\n"
    "  run      a command per item, in parallel: the shell's Pool.map\n"
    "  bench    the measured comparison: mproc, OpenMP, Python\n"
    "  version  print mproc's version\n"
    "\n"
    "'mproc COMMAND --help' describes the options of COMMAND.\n";

int tool_usage_error(const char *verb, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "mproc %s: ", verb);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fprintf(stderr, "try 'mproc %s --help'\n", verb);
    return 2;
}

/* The top-level usage: on stdout when asked for, after `error` on stderr
   otherwise. Returns the exit status. */
static int usage(const char *error)
{
    if (error) {
        fprintf(stderr, "mproc: %s\n%s", error, usage_text);
        return 2;
    }
    fputs(usage_text, stdout);
    return 0;
}

static int version(void)
{
    printf("mproc %s\n", MPROC_TOOL_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    /* '+': stop at the verb; what follows it is the verb's to parse.
       getopt_long names the program by argv[0] in its own errors. */
    argv[0] = "mproc";
    int c;
    while ((c = getopt_long(argc, argv, "+hV", longs, NULL)) != -1) {
        switch (c) {
        case 'h':
            return usage(NULL);
        case 'V':
            return version();
        default:
            fputs("try 'mproc --help'\n", stderr);
            return 2;
        }
    }
    if (optind == argc)
        return usage("no command given");
    const char *verb = argv[optind];
    argc -= optind;
    argv += optind;
    /* The verb's getopt_long starts afresh at its argv[1]. */
    optind = 0;
    if (!strcmp(verb, "demo"))
        return tool_demo(argc, argv);
    if (!strcmp(verb, "run"))
        return tool_run(argc, argv);
    if (!strcmp(verb, "bench")) {
#ifdef MPROC_HAVE_BENCH
        return bench_main(argc, argv);
#else
        return usage("bench was not built (configure with -DMPROC_BENCH=ON)");
#endif
    }
    if (!strcmp(verb, "version"))
        return version();
    if (!strcmp(verb, "help"))
        return usage(NULL);
    fprintf(stderr, "mproc: unknown command '%s'\ntry 'mproc --help'\n", verb);
    return 2;
}
