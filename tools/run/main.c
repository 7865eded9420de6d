/*
 * mproc run: the shell's Pool.map. Runs a command once per input, N at a
 * time, each command's output printed whole and in the inputs' order; the
 * options mean what GNU parallel's do. run.h lists the parts.
 */
#include "run.h"
#include "../tool.h"

int tool_run(int argc, char **argv)
{
    struct run_opts o;
    int r = run_options(&o, argc, argv);
    if (r == -1)
        r = o.mpi ? run_mpi(&o) : run_loop(&o);
    run_options_free(&o);
    return r;
}
