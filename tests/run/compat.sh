#!/bin/sh
# The compatibility suite: the same invocations through GNU parallel and
# through mproc run, comparing standard output, exit status and job log
# columns, for everything the two are meant to agree on. GNU parallel runs
# with -k (mproc run keeps the inputs' order by default) and --will-cite
# (which mproc run accepts and ignores), with HOME in a scratch directory so
# that it leaves nothing on the machine. The deliberate differences are
# listed in docs/run.md. Skipped (77) without GNU parallel.
#
#   sh tests/run/compat.sh path/to/mproc
mproc=$1
. "$(dirname "$0")/lib.sh"
command -v parallel >/dev/null || { echo "skip: no GNU parallel"; exit 77; }
export HOME=$tmp/home
mkdir -p "$HOME" "$tmp/w"
cd "$tmp/w" || exit 1
printf 'f1\nf2 x\nf3\n' >file
printf 'a/b.c\nd.e\n' >paths

# same NAME STDIN ARGS...: both outputs and statuses equal.
same() {
    name=$1 input=$2
    shift 2
    g=$(parallel --will-cite -k "$@" <"$input" 2>/dev/null; echo "exit $?")
    m=$("$mproc" run --will-cite "$@" <"$input" 2>/dev/null; echo "exit $?")
    check "$name" "$g" "$m"
}
# same_sorted: the same, whatever the order of the lines.
same_sorted() {
    name=$1 input=$2
    shift 2
    g=$(parallel --will-cite "$@" <"$input" 2>/dev/null | sort; echo "exit $?")
    m=$("$mproc" run --will-cite "$@" <"$input" 2>/dev/null | sort; echo "exit $?")
    check "$name" "$g" "$m"
}
n=/dev/null

same "values" $n echo ::: a b c
same "replacement strings" $n echo {} {.} {/} {//} {/.} ::: a/b.c/d.e x.tar.gz plain /abs dir/ .hidden
same "{#}" $n echo {#} ::: a b c
same "{%} with -j1" $n -j1 echo {%} ::: a b
same "two sources: every combination" $n echo ::: a b ::: 1 2
same "{2} {1}" $n echo {2} {1} ::: a b ::: 1 2
same "{1.} {2/} {2//} {1/.}" $n echo {1.} {2/} {2//} {1/.} ::: x/y.z ::: p/q/r.s
same ":::+ pairs" $n echo ::: a b :::+ 1 2
same ":::+ pairs, shorter decides" $n echo ::: a b c :::+ 1 2
same ":::: file" $n echo :::: file
same ":::: file with :::" $n echo {1}={2} :::: file ::: u v
same ":::: - and a file" paths echo :::: - :::: file
same "::::+ pairs files" paths echo :::: file ::::+ -
same "-a file" $n -a file echo
same "standard input" file echo
same "standard input, replacement strings" paths echo {.} {/} {//}
printf 'a\0b c\0' >nul
same "-0" nul -0 echo
printf 'x:y:z' >colon
same "-d :" colon echo
same "-N2 {1}-{2}" $n -N2 echo {1}-{2} ::: a b c d e
same "-N3 appended" $n -N3 echo ::: 1 2 3 4 5 6 7
same "-N2 {}" $n -N2 echo {} ::: a b c
printf 'a,b\nc,d\n' >csv
same "--colsep" csv --colsep , echo {2} {1}
same "--tag" $n --tag echo ::: a b ::: 1 2
same "--tagstring" $n --tagstring 'T{}' echo ::: a b
same "--dry-run quoting" $n --dry-run echo ::: 'a b' "c'd" 'a=b' 'a+b' -x '' 'a*b'
same "values are not shell code" $n echo ::: 'a b' "c'd" '$HOME' '`id`' ';' '*'
same "one-word shell command" $n 'echo {}; echo {.}' ::: a.b c
same "exit status: how many failed" $n 'exit {}' ::: 0 1 2 0 3
same "exit status: more than 100" $n false ::: $(seq 101)
same "--halt now,fail=1" $n -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 3 0 5
same "--halt soon,fail=1" $n -j1 --halt soon,fail=1 'echo {}; exit {}' ::: 0 4 0 5
same "--halt soon,success=1" $n -j1 --halt soon,success=1 'exit {}' ::: 1 0 2
same "--halt never" $n -j1 --halt never 'exit {}' ::: 1 0 2
same "--timeout" $n --timeout 0.5 'sleep {}; echo {}' ::: 0 30 0.1
seq 100000 >nums
same "--pipe --block 100k" nums --pipe --block 100k wc -l
same "--pipe -0" nul --pipe -0 --block 1 cat
same "--bar (stdout)" $n --bar echo ::: a b c
same "--progress --eta (stdout)" $n --progress --eta echo ::: a b c
same "empty input" $n echo x :::: /dev/null
same "empty standard input" $n echo x
same "-k and sleeps" $n -j3 -k 'sleep {}; echo {}' ::: 0.3 0.1 0.2
same_sorted "--ungroup" $n -u 'echo {}' ::: a b c
same_sorted "--line-buffer" $n --line-buffer 'echo {}1; echo {}2' ::: a b

# cp {} dst/{.}.bak in both.
for t in g m; do
    mkdir -p "$t/dst" && touch "$t/a.txt" "$t/b.txt"
done
(cd g && parallel --will-cite cp {} dst/{.}.bak ::: a.txt b.txt)
(cd m && "$mproc" run cp {} dst/{.}.bak ::: a.txt b.txt)
check "cp {} dst/{.}.bak" "$(ls g/dst)" "$(ls m/dst)"

# --results: the same tree, the same files.
parallel --will-cite --results gres 'echo out {}; echo err {} >&2' ::: a b/c >/dev/null 2>&1
"$mproc" run --results mres 'echo out {}; echo err {} >&2' ::: a b/c >/dev/null 2>&1
check "--results tree" "$(cd gres && find . | sort)" "$(cd mres && find . | sort)"
catall() { find . -type f | sort | while read -r f; do echo "$f:"; cat "$f"; done; }
check "--results files" "$(cd gres && catall)" "$(cd mres && catall)"

# --joblog: every column but the times, and --resume after it.
cols() { awk -F'\t' '{print $1, $2, $5, $6, $7, $8, $9}' "$1" | sort -n; }
log() { # name, standard input, then arguments
    name=$1 input=$2
    shift 2
    rm -f gl ml
    parallel --will-cite --joblog gl "$@" <"$input" >/dev/null 2>&1
    "$mproc" run --joblog ml "$@" <"$input" >/dev/null 2>&1
    check "$name" "$(cols gl)" "$(cols ml)"
}
log "--joblog" $n 'echo {}; exit {}' ::: 0 1 2
log "--joblog: signals" $n 'kill -{} $$' ::: SEGV TERM KILL
log "--joblog: timeout" $n --timeout 0.3 'sleep {}' ::: 0 30
log "--joblog: not found" $n no-such-command-here ::: 1
seq 30 >few
log "--joblog: --pipe Send" few --pipe --block 20 cat
rm -f gl ml
parallel --will-cite --joblog gl 'exit {}' ::: 0 1 >/dev/null 2>&1
"$mproc" run --joblog ml 'exit {}' ::: 0 1 >/dev/null 2>&1
g=$(parallel --will-cite -k --joblog gl --resume 'echo {}' ::: 0 1 2 3 2>/dev/null)
m=$("$mproc" run --joblog ml --resume 'echo {}' ::: 0 1 2 3 2>/dev/null)
check "--resume" "$g" "$m"
g=$(parallel --will-cite -k --joblog gl --resume-failed 'echo {}' ::: 0 1 2 3 4 2>/dev/null)
m=$("$mproc" run --joblog ml --resume-failed 'echo {}' ::: 0 1 2 3 4 2>/dev/null)
check "--resume-failed" "$g" "$m"
check "--joblog after resuming" "$(cols gl)" "$(cols ml)"

finish
