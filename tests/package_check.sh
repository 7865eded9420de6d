#!/bin/sh
# The Debian packages as a user gets them: cpack -G DEB makes them, each
# holds what its name says with its dependencies pinned, apt accepts them
# (simulated), and, unpacked into a scratch root (dpkg -x), they serve a
# program built with pkg-config and one with CMake, the tool and its man
# pages; with MPI, a program on 3 ranks.
#   package_check.sh BUILD WORK [MPIEXEC]
set -eu
build=$1
work=$2
mpiexec=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
rm -rf "$work"
mkdir -p "$work/root"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack -G DEB"; }

deb() {
    set -- "$work"/"$1"_*.deb
    [ -f "$1" ] || fail "no package $1"
    echo "$1"
}
# has PACKAGE PATTERN: the package holds a file matching PATTERN.
has() {
    dpkg-deb -c "$(deb "$1")" | grep -q -- "$2" || fail "$1 has no $2"
}
hasnt() {
    ! dpkg-deb -c "$(deb "$1")" | grep -q -- "$2" || fail "$1 holds $2"
}
depends() {
    dpkg-deb -f "$(deb "$1")" Depends | grep -q -- "$2" ||
        fail "$1 does not depend on $2"
}
has libmproc0 '/libmproc\.so\.0 '
hasnt libmproc0 'mproc\.h'
hasnt libmproc0 'libmpi'
has libmproc-dev '/include/mproc\.h'
has libmproc-dev '/libmproc\.a'
has libmproc-dev '/pkgconfig/mproc\.pc'
has libmproc-dev '/cmake/mproc/mprocConfig\.cmake'
has libmproc-dev '/man3/mproc_map\.3'
depends libmproc-dev 'libmproc0 (= '
has mproc '/bin/mproc$'
has mproc '/man1/mproc\.1'
has mproc '/man1/mproc-run\.1'
has mproc '/libexec/mproc/mproc-open-probe$'
debs="$(deb libmproc0) $(deb libmproc-dev) $(deb mproc)"
if [ -n "$mpiexec" ]; then
    has libmproc-mpi0 '/libmproc_mpi\.so\.0 '
    depends libmproc-mpi0 'libmproc0 (= '
    has libmproc-mpi-dev '/pkgconfig/mproc_mpi\.pc'
    has libmproc-mpi-dev '/cmake/mproc/mprocMpiTargets\.cmake'
    depends libmproc-mpi-dev 'libmproc-mpi0 (= '
    debs="$debs $(deb libmproc-mpi0) $(deb libmproc-mpi-dev)"
fi

# What apt install ./*.deb would do, without doing it.
if command -v apt-get >/dev/null; then
    apt-get install -s $debs >"$work/apt.log" 2>&1 ||
        { cat "$work/apt.log"; fail "apt-get install -s refuses the packages"; }
fi

for d in $debs; do
    dpkg-deb -x "$d" "$work/root"
done
pc=$(find "$work/root" -name mproc.pc | head -n 1)
libdir=$(dirname "$(dirname "$pc")")
prefix=$(dirname "$libdir")
case $prefix in */lib) prefix=$(dirname "$prefix") ;; esac # lib/<multiarch>
export PKG_CONFIG_LIBDIR="$libdir/pkgconfig"
unset PKG_CONFIG_PATH

cc "$here/install/user.c" $(pkg-config --cflags --libs mproc) \
    -Wl,-rpath,"$libdir" -o "$work/user"
"$work/user"
cmake -S "$here/install" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON >"$work/cm.log" ||
    { cat "$work/cm.log"; fail "find_package(mproc) in the unpacked packages"; }
cmake --build "$work/cm" >/dev/null
"$work/cm/user"
LD_LIBRARY_PATH="$libdir" "$prefix/bin/mproc" --help | grep -q "multiprocessing notebook" ||
    fail "the packaged mproc --help"
MANWIDTH=80 man -M "$prefix/share/man" mproc_task_wait | grep -q mproc_submit ||
    fail "man mproc_task_wait in the unpacked packages"
if [ -n "$mpiexec" ]; then
    cmake -S "$here/install" -B "$work/cm-mpi" -DCMAKE_PREFIX_PATH="$prefix" \
        -DWITH_MPI=ON >"$work/cm-mpi.log" ||
        { cat "$work/cm-mpi.log"; fail "find_package(mproc COMPONENTS mpi)"; }
    cmake --build "$work/cm-mpi" >/dev/null
    "$mpiexec" -n 3 "$work/cm-mpi/user_mpi"
fi
echo "packages: $(for d in $debs; do basename "$d"; done | tr '\n' ' ')"
