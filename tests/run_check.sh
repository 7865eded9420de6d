#!/bin/sh
# mproc run, as a user runs it: order, substitution, items from stdin, exit
# codes, timeouts, commands that cannot start, stdout and stderr apart,
# commands that run at the same time, big outputs. Never timing.
#
#   sh tests/run_check.sh path/to/mproc
set -u
mproc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # name, expected, actual
    if [ "$2" != "$3" ]; then
        printf 'FAIL %s\n  want: %s\n  got:  %s\n' "$1" "$2" "$3"
        fails=$((fails + 1))
    else
        printf 'ok   %s\n' "$1"
    fi
}

# Output in the items' order, though the later items finish first.
out=$("$mproc" run -j 5 sh -c 'sleep 0.$1; echo $1' _ ::: 5 4 3 2 1 | tr '\n' ' ')
check "order kept" "5 4 3 2 1 " "$out"

# --as-done: every item once, whatever the order.
out=$("$mproc" run -j 5 --as-done sh -c 'sleep 0.$1; echo $1' _ ::: 3 1 2 | sort | tr '\n' ' ')
check "as done, each once" "1 2 3 " "$out"

# {} anywhere, more than once; without {}, the item is the last argument.
out=$("$mproc" run echo "a{}b" "{}" ::: 1 2 | tr '\n' ' ')
check "placeholder" "a1b 1 a2b 2 " "$out"
out=$("$mproc" run echo x ::: 1 2 | tr '\n' ' ')
check "appended" "x 1 x 2 " "$out"

# Items from standard input, an empty line included; no items, no output.
out=$(printf 'p\n\nq\n' | "$mproc" run echo "<{}>" | tr '\n' ' ')
check "stdin items" "<p> <> <q> " "$out"
out=$(printf '' | "$mproc" run echo x; echo "exit $?")
check "no items" "exit 0" "$out"

# Exit status: how many failed; each failure named on stderr.
"$mproc" run sh -c 'exit $1' _ ::: 0 1 0 2 3 2>"$tmp/err"
check "failed count" 3 $?
check "failures named" 3 "$(grep -c 'exit code' "$tmp/err")"
"$mproc" run -j 8 false ::: $(seq 150) 2>/dev/null
check "more than 100 failed" 101 $?

# A timeout kills the command and everything it started.
out=$("$mproc" run --timeout 0.3 sh -c 'sleep $1 & wait; echo done $1' _ ::: 0 30 2>"$tmp/err"
      echo "exit $?")
check "timeout" "done 0 exit 1" "$(echo $out)"
check "timeout named" 1 "$(grep -c 'timed out after 0.3 s' "$tmp/err")"

# A command that cannot start: a failure, and why, on stderr.
"$mproc" run ./no-such-command ::: 1 2>"$tmp/err"
check "not started" 1 $?
check "not started named" 1 "$(grep -c 'not started: exec: No such file or directory' "$tmp/err")"

# stdout and stderr stay apart.
"$mproc" run sh -c 'echo out $1; echo err $1 >&2' _ ::: 1 2 >"$tmp/o" 2>"$tmp/e"
check "stdout" "out 1 out 2" "$(echo $(cat "$tmp/o"))"
check "stderr" "err 1 err 2" "$(echo $(cat "$tmp/e"))"

# -j 4: four commands that finish only when all four have started.
mkdir "$tmp/meet"
"$mproc" run -j 4 --timeout 60 sh -c \
    'touch "$0/$1"; while [ $(ls "$0" | wc -l) -lt 4 ]; do sleep 0.01; done' \
    "$tmp/meet" ::: a b c d
check "four at once" 0 $?

# A big output comes through whole.
"$mproc" run -j 3 sh -c 'head -c 1000000 /dev/zero | tr "\0" "$1"' _ ::: a b c >"$tmp/big"
check "big outputs" 3000000 "$(wc -c <"$tmp/big" | tr -d ' ')"
check "big outputs in order" "a b c" "$(echo $(tr -s 'abc' <"$tmp/big" | fold -w1))"

# Usage errors: 255.
"$mproc" run -j x echo ::: 1 2>/dev/null
check "bad -j" 255 $?
"$mproc" run ::: 1 2>/dev/null
check "no command" 255 $?
"$mproc" run --timeout -1 echo ::: 1 2>/dev/null
check "bad timeout" 255 $?

[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
