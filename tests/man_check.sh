#!/bin/sh
# The man pages as man shows them: each renders without a warning (groff
# -ww, every warning on) and through man -l; every function and macro that
# mproc.h declares has a page or a link to one.
#   man_check.sh PAGES_DIR MPROC_H
set -eu
dir=$1
header=$2
status=0
for page in "$dir"/*.[0-9]; do
    [ -L "$page" ] && continue
    if ! groff -ww -man -Tutf8 -z "$page" >"$dir/check.err" 2>&1 ||
        [ -s "$dir/check.err" ]; then
        echo "FAIL: $page: groff -ww:"
        cat "$dir/check.err"
        status=1
    fi
    if ! MANWIDTH=80 man -l "$page" >"$dir/check.out" 2>"$dir/check.err" ||
        [ -s "$dir/check.err" ] || ! grep -q '^NAME' "$dir/check.out"; then
        echo "FAIL: $page: man -l:"
        cat "$dir/check.err"
        status=1
    fi
done
names=$(sed -n 's/^MPROC_API [^(]*[ *]\(mproc_[a-z_]*\)(.*/\1/p' "$header")
[ -n "$names" ] || { echo "FAIL: no MPROC_API declaration found in $header"; exit 1; }
for name in $names MPROC_MAP; do
    if [ ! -e "$dir/$name.3" ]; then
        echo "FAIL: $name (mproc.h) has no man page: add it to a NAME line in man/"
        status=1
    fi
done
rm -f "$dir/check.out" "$dir/check.err"
[ $status = 0 ] && echo "$(ls "$dir"/*.[0-9] | wc -l) pages and links, every name in mproc.h covered"
exit $status
