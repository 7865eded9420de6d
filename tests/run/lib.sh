# Shared by the mproc run tests: `. lib.sh` after setting mproc=path.
# check NAME WANT GOT prints ok or FAIL with both sides; finish exits 1 if
# any check failed. Tests never assert timing: where they must wait, they
# wait for an event (a file, a process gone) with a generous bound.
set -u
case $mproc in /*) ;; *) mproc=$(pwd)/$mproc ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {
    if [ "$2" != "$3" ]; then
        printf 'FAIL %s\n  want: %s\n  got:  %s\n' "$1" "$2" "$3"
        fails=$((fails + 1))
    else
        printf 'ok   %s\n' "$1"
    fi
}
# until_true SECONDS COMMAND...: runs COMMAND until it succeeds, up to
# SECONDS; returns its last status.
until_true() {
    n=$(($1 * 20))
    shift
    while ! "$@"; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        sleep 0.05
    done
}
# Lines in a file (0 when missing).
lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
finish() {
    [ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
    exit 0
}
