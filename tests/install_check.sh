#!/bin/sh
# Install the build into a scratch prefix, then build a user's program against
# it twice, as the README says: with pkg-config and with find_package(mproc).
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name mproc.pc | head -n 1)
[ -n "$pc" ] || { echo "no mproc.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$(dirname "$pc")"
cc "$here/install/user.c" $(pkg-config --cflags --libs mproc) \
   -Wl,-rpath,"$libdir" -o "$tmp/user-pc"
"$tmp/user-pc"
cmake -S "$here/install" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/user"
