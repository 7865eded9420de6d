#!/bin/sh
# The fault table of docs/reliability.md, measured on this machine: mproc
# (bench/faults.c) and, where python3 is present, Python's Pool and
# ProcessPoolExecutor (bench/faults.py) with the same faults.
#
#   bench/faults.sh            builds the library if needed, prints markdown
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build/release"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPROC_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target bench_faults >/dev/null
echo "mproc $(git -C "$top" describe --always 2>/dev/null || echo), $(uname -sr), $(nproc) CPUs"
"$build/bench/bench_faults"
if command -v python3 >/dev/null; then
    echo
    python3 "$top/bench/faults.py"
else
    echo "python3 not found: the Python side is not measured"
fi
