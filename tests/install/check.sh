#!/bin/sh
# The library as its users get it: installed into a scratch prefix, then
# used by programs built the ways README.md shows. One step per ctest test:
#
#   check.sh install BUILD PREFIX      install the build (the tests' fixture)
#   check.sh core PREFIX               libmproc.so needs libc, libm, pthread only
#   check.sh pkg-config PREFIX WORK    programs built with pkg-config (C, C++), rpath
#   check.sh static PREFIX WORK        the same, linked -static (pkg-config --static)
#   check.sh cmake PREFIX WORK         find_package(mproc), MPI hidden from CMake
#   check.sh cmake-mpi PREFIX WORK MPIEXEC
#                                      find_package(mproc COMPONENTS mpi), and
#                                      pkg-config mproc_mpi under --as-needed,
#                                      each run on 3 ranks
#   check.sh man PREFIX                man finds the installed pages
set -eu
here=$(cd "$(dirname "$0")" && pwd)
step=$1
prefix=$2
work=${3:-}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# The MPI libraries among those ldd lists for $1 (by name: paths may say
# anything).
mpi_loaded() {
    ldd "$1" | awk '{print $1}' | grep -E '^lib(mpi|open-pal|open-rte|mproc_mpi)[._]'
}

if [ "$step" = install ]; then
    build=$2
    prefix=$3
    rm -rf "$prefix"
    cmake --install "$build" --prefix "$prefix" >/dev/null
    exit 0
fi

pc=$(find "$prefix" -name mproc.pc | head -n 1)
[ -n "$pc" ] || fail "no mproc.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
# Only the prefix's .pc files: whatever MPI the system has stays unseen.
export PKG_CONFIG_LIBDIR="$libdir/pkgconfig"
unset PKG_CONFIG_PATH
if [ -n "$work" ]; then
    rm -rf "$work"
    mkdir -p "$work"
fi

case $step in
core)
    # What the loader would bring in, and what the file asks for.
    if mpi_loaded "$libdir/libmproc.so"; then
        fail "libmproc.so loads MPI"
    fi
    needed=$(readelf -d "$libdir/libmproc.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p')
    for lib in $needed; do
        case $lib in
        libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | ld-linux*) ;;
        libasan.so.* | libubsan.so.* | libtsan.so.*) ;; # under the sanitizers
        *) fail "libmproc.so needs $lib" ;;
        esac
    done
    echo "libmproc.so needs: $needed"
    ;;
pkg-config)
    cc "$here/user.c" $(pkg-config --cflags --libs mproc) \
        -Wl,-rpath,"$libdir" -o "$work/user"
    "$work/user"
    # And from C++, as examples/squares.cpp says, where there is a c++.
    if command -v c++ >/dev/null; then
        c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "$here/../../examples/squares.cpp" \
            $(pkg-config --cflags --libs mproc) -Wl,-rpath,"$libdir" -o "$work/squares"
        "$work/squares"
    fi
    ;;
static)
    cc -static "$here/user.c" $(pkg-config --static --cflags --libs mproc) \
        -o "$work/user"
    if readelf -d "$work/user" | grep -q NEEDED; then
        fail "the static program needs shared libraries"
    fi
    "$work/user"
    ;;
cmake)
    cmake -S "$here" -B "$work" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON >"$work/configure.log" ||
        { cat "$work/configure.log"; fail "find_package(mproc) without MPI"; }
    cmake --build "$work" >/dev/null
    "$work/user"
    if mpi_loaded "$work/user"; then
        fail "a program without MPI loads it"
    fi
    ;;
cmake-mpi)
    mpiexec=$4
    cmake -S "$here" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" -DWITH_MPI=ON \
        >"$work/configure.log" ||
        { cat "$work/configure.log"; fail "find_package(mproc COMPONENTS mpi)"; }
    cmake --build "$work/cm" >/dev/null
    "$mpiexec" -n 3 "$work/cm/user_mpi"
    # --as-needed would drop a library the program names nothing of; the
    # -u that mproc_mpi.pc adds keeps it.
    cc "$here/user_mpi.c" -Wl,--as-needed $(pkg-config --cflags --libs mproc_mpi) \
        -Wl,-rpath,"$libdir" -o "$work/user_mpi"
    "$mpiexec" -n 3 "$work/user_mpi"
    mpi_loaded "$work/user_mpi" >/dev/null || fail "mpi_loaded finds no MPI in user_mpi"
    ;;
man)
    # man finds the installed pages by name, links included.
    for name in mproc mproc_map mproc_task_wait mproc-run; do
        man -M "$prefix/share/man" -w "$name" >/dev/null ||
            fail "man $name: not found under $prefix/share/man"
    done
    MANWIDTH=80 man -M "$prefix/share/man" 3 mproc_task_wait >"$prefix/man.txt"
    grep -q "mproc_submit, mproc_task_wait" "$prefix/man.txt" ||
        fail "man mproc_task_wait does not show mproc_submit(3)"
    ;;
*)
    fail "unknown step $step"
    ;;
esac
