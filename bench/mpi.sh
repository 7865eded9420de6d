#!/bin/sh
# mproc on MPI ranks, measured on this machine (bench/mpi.c): per-item cost,
# a warm map's latency, the CPU-bound and sleep cells, uneven items.
# Installs Open MPI (Debian packages) when missing. Prints markdown.
#
#   bench/mpi.sh [RANKS]      default 3: rank 0 and 2 worker ranks
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
ranks=${1:-3}
"$top/scripts/need" openmpi-bin libopenmpi-dev
build="$top/build/release"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPROC_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target bench_mpi >/dev/null
echo "mproc $(git -C "$top" describe --always 2>/dev/null || echo), $(mpirun --version | head -n 1), $(nproc) CPUs"
echo
# Root may run it (CI, containers); more ranks than CPUs are allowed.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
OMPI_MCA_rmaps_base_oversubscribe=1 \
    mpirun -np "$ranks" "$build/bench/bench_mpi"
