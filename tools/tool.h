/* The mproc command-line tool: one file per verb (bench's is in bench/). */
#ifndef MPROC_TOOL_H
#define MPROC_TOOL_H

#include <stdbool.h>

/* Each verb: argv[0] is its name, its options follow; returns the exit
   status. Each parses its options with getopt_long from argv[1]. */
int tool_demo(int argc, char **argv);
/* mproc run (tools/run/): the shell's Pool.map. */
int tool_run(int argc, char **argv);

/* A usage error of `verb`: "mproc VERB: " and the message (fmt NULL: none,
   getopt_long has said what is wrong), then a hint to 'mproc VERB --help',
   on stderr. Returns 2, the exit status of a usage error. */
int tool_usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
