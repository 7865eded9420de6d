#!/bin/sh
# mproc run's outcomes are the truth: a job is decided by its command's
# exit, a signal is named as a signal, a command that cannot start says
# why, resource shortages are waited out, and mproc run's own write errors
# are errors. Each case failed before issue 11.
#
#   sh tests/run/outcomes.sh path/to/mproc
mproc=$1
. "$(dirname "$0")/lib.sh"
m() { "$mproc" run "$@"; }
col() { tail -n +2 "$1" | awk -F'\t' -v c="$2" '{print $c}' | tr '\n' ' ' | sed 's/ $//'; }

# A signal is a signal: on stderr and in the job log's Signal column, with
# Exitval 0 as GNU parallel writes it; a plain exit 139 is an exit.
m --joblog "$tmp/jl" sh -c 'kill -SEGV $$' ::: 1 2>"$tmp/e"
check "SIGSEGV: failed" 1 $?
check "SIGSEGV: named" 1 "$(grep -c 'killed by SIGSEGV' "$tmp/e")"
check "SIGSEGV: job log Exitval Signal" "0 11" "$(col "$tmp/jl" 7) $(col "$tmp/jl" 8)"
m --joblog "$tmp/jl" sh -c 'exit 139' ::: 1 2>"$tmp/e"
check "exit 139 is an exit" "1 139 0" "$(grep -c 'exit code 139' "$tmp/e") $(col "$tmp/jl" 7) $(col "$tmp/jl" 8)"

# A command that cannot start says why.
m --joblog "$tmp/jl" ./no-such-command ::: 1 2>"$tmp/e"
check "not started: failed" 1 $?
check "not started: why" 1 "$(grep -c 'not started: exec: No such file or directory' "$tmp/e")"
check "not started: Exitval 127" 127 "$(col "$tmp/jl" 7)"
m "$tmp" ::: 1 2>"$tmp/e"
check "a directory: why" 1 "$(grep -c 'not started: exec: Permission denied' "$tmp/e")"

# --timeout: the group ends; Exitval -1 and the signal, as GNU parallel.
out=$(m --joblog "$tmp/jl" --timeout 0.3 sh -c 'sleep $1 & wait; echo done $1' _ ::: 0 30 2>"$tmp/e"; echo "exit $?")
check "timeout" "done 0 exit 1" "$(echo $out)"
check "timeout named" 1 "$(grep -c 'timed out after 0.3 s' "$tmp/e")"
check "timeout in the log" "0 -1 0 15" "$(col "$tmp/jl" 7) $(col "$tmp/jl" 8)"

# Decided by the exit, not by the pipes: a background helper that holds
# stdout neither stalls the job nor makes it time out, and is ended with
# its command.
u=$$
m --timeout 100 sh -c "sleep 1000.$u & echo now" ::: 1 >"$tmp/o" 2>"$tmp/e"
check "helper: exit 0" 0 $?
check "helper: output" "now" "$(cat "$tmp/o")"
check "helper: not timed out" 0 "$(grep -c 'timed out' "$tmp/e")"
gone() { ! pgrep -f "sleep 1000.$u" >/dev/null; }
until_true 30 gone
check "helper: ended with its command" 0 $?

# Resources: more commands at once than descriptors allow are waited out
# (each command started when another's descriptors are free).
out=$( (ulimit -n 32 && ulimit -Hn 32 && m -j 60 sh -c 'echo $1' _ ::: $(seq 80)) | wc -l)
check "EMFILE waited out" 80 "$(echo $out)"
# mproc run needs four descriptors beyond those it inherits to set up (a
# signalfd, /dev/null, the guard's pipe), then two pipes per command.
# The limit leaves exactly four free descriptors, wherever the inherited
# ones are.
lim=0 free=0
while [ "$free" -lt 4 ]; do
    [ -e /proc/$$/fd/$lim ] || free=$((free + 1))
    lim=$((lim + 1))
done
(ulimit -n $lim && ulimit -Hn $lim && m echo ::: 1) 2>"$tmp/e"
check "EMFILE with nothing running: failed" 1 $?
check "EMFILE: why" 1 "$(grep -c 'not started: pipe: Too many open files' "$tmp/e")"

# mproc run's own write errors.
m echo ::: a b >/dev/full 2>"$tmp/e"
check "/dev/full: 255" 255 $?
check "/dev/full: said" 1 "$(grep -c 'writing the output: No space left on device' "$tmp/e")"

# A NUL in newline-delimited input is an error, not a cut.
printf 'ab\0cd\n' | m echo >"$tmp/o" 2>"$tmp/e"
check "NUL: 255" 255 $?
check "NUL: said" 1 "$(grep -c 'record 1 holds a NUL byte' "$tmp/e")"
check "NUL: no cut item run" "" "$(cat "$tmp/o")"

# A spool that cannot be written fails its job, and never hangs.
mkdir "$tmp/g"
TMPDIR=$tmp/none m -j2 sh -c 'if [ $1 = 1 ]; then while [ ! -f "$0/go" ]; do sleep 0.05; done; echo first; else head -c 5000000 /dev/zero; touch "$0/go"; fi' "$tmp/g" ::: 1 2 >"$tmp/o" 2>"$tmp/e"
check "spool failure: one failed" 1 $?
check "spool failure: said" 1 "$(grep -c 'output lost: spool: No such file or directory' "$tmp/e")"
check "spool failure: the other printed" "first" "$(head -c 5 "$tmp/o")"

# How many failed.
m -j 8 false ::: $(seq 150) 2>/dev/null
check "more than 100 failed" 101 $?

finish
