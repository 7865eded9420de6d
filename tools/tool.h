/* The mproc command-line tool: one file per verb. */
#ifndef MPROC_TOOL_H
#define MPROC_TOOL_H

#include <stdbool.h>

/* Print the usage (after `error`, if any) and return the exit status. */
int tool_usage(const char *error);

int mproc__demo(int argc, char **argv);
/* mproc run (tools/run/): the shell's Pool.map. */
int tool_run(int argc, char **argv);
int mproc__bench(int argc, char **argv);

#endif
