#!/bin/sh
# mproc run's options, replacement strings and input sources, as GNU
# parallel means them: each line a case that failed before issue 11.
#
#   sh tests/run/options.sh path/to/mproc
mproc=$1
. "$(dirname "$0")/lib.sh"
m() { "$mproc" run "$@"; }
flat() { tr '\n' ' ' | sed 's/ $//'; }

# -j in every spelling; options after the command are the command's.
check "-j4" "a b" "$(m -j4 echo ::: a b | flat)"
check "--jobs=2" "a b" "$(m --jobs=2 echo ::: a b | flat)"
check "--jobs 2" "a b" "$(m --jobs 2 echo ::: a b | flat)"
check "-j 0" "a b" "$(m -j 0 echo ::: a b | flat)"
check "-j 200%" "a b" "$(m -j 200% echo ::: a b | flat)"
check "-j +1 and -j -1" "a b" "$(m -j +1 -j -1 echo ::: a b | flat)"
m -j2 sh -c 'exit $1' _ ::: 0 1 2 2>/dev/null
check "options after the command are its own" 2 $?
m -j x echo ::: 1 2>"$tmp/e"
check "bad -j: 255" 255 $?
check "bad -j named" 1 "$(grep -c "^mproc run: -j 'x'" "$tmp/e")"
check "--timeout=1" "a" "$(m --timeout=1 echo ::: a)"

# Refused options are named, with a hint; unknown ones too.
m --sshlogin host echo ::: 1 2>"$tmp/e"
check "refused: 255" 255 $?
check "refused named with a hint" 1 \
    "$(grep -c 'option --sshlogin is not supported: no remote hosts' "$tmp/e")"
m -X echo ::: 1 2>"$tmp/e"
check "refused short named" 1 "$(grep -c 'option -X is not supported' "$tmp/e")"
m --no-such-option echo ::: 1 2>"$tmp/e"
check "unknown named" 1 "$(grep -c "unknown option '--no-such-option'" "$tmp/e")"
m --help >"$tmp/o"
check "--help: 0" 0 $?
check "--help is run's alone" "0 1" \
    "$(grep -c 'mproc demo' "$tmp/o") $(grep -c '^usage: mproc run' "$tmp/o")"
m --will-cite echo ::: ok >/dev/null
check "--will-cite accepted" 0 $?

# Replacement strings, GNU parallel's path rules.
check "{} {.} {/} {//} {/.}" "a/b.c/d.e a/b.c/d d.e a/b.c d" \
    "$(m echo {} {.} {/} {//} {/.} ::: a/b.c/d.e)"
check "{//} of a name and of /x" ". /" "$(m echo {//} ::: plain /x | flat)"
check "{.} keeps dots of directories" "x.tar a.b/c" \
    "$(m echo {.} ::: x.tar.gz a.b/c | flat)"
check "{#}" "1 2 3" "$(m echo {#} ::: a b c | flat)"
check "{%} with -j1" "1 1" "$(m -j1 echo {%} ::: a b | flat)"
check "{1} {2} and {2.} {1/}" "a/x d/y.z d/y x" \
    "$(m echo {1} {2} {2.} {1/} ::: a/x ::: d/y.z | flat)"
mkdir "$tmp/dst"
(cd "$tmp" && touch a.txt b.txt && m cp {} dst/{.}.bak ::: a.txt b.txt)
check "cp {} dst/{.}.bak" "a.bak b.bak" "$(ls "$tmp/dst" | flat)"
check "{} inside a word, twice" "a1b1" "$(m echo a{}b{} ::: 1)"
check "no replacement string: appended" "x 1" "$(m echo x ::: 1)"
check "several sources appended as arguments" "x a 1" "$(m echo x ::: a ::: 1)"
check "not a replacement string" "{a} {1}" "$(m echo {a} {{}} ::: 1)"

# Sources: combinations, pairs, files, standard input.
check "::: ::: is every combination" "a 1 a 2 b 1 b 2" \
    "$(m echo ::: a b ::: 1 2 | flat)"
check ":::+ pairs (the shorter decides)" "a 1 b 2" \
    "$(m echo ::: a b :::+ 1 2 3 | flat)"
printf 'f1\nf2\n' >"$tmp/f"
check ":::: file" "f1 f2" "$(m echo :::: "$tmp/f" | flat)"
check "-a file" "f1 f2" "$(m -a "$tmp/f" echo | flat)"
check ":::: - is standard input" "s f1 s f2" \
    "$(echo s | m echo :::: - :::: "$tmp/f" | flat)"
check "::: then ::::" "a f1 a f2" "$(m echo ::: a :::: "$tmp/f" | flat)"
check "::::+ pairs files" "f1 a f2 b" \
    "$(printf 'a\nb\n' | m echo :::: "$tmp/f" ::::+ - | flat)"
check "stdin lines" "<p> <> <q>" "$(printf 'p\n\nq\n' | m echo '<{}>' | flat)"
check "last line without newline" "a b" "$(printf 'a\nb' | m echo | flat)"
check "-0" "<a> <b c>" "$(printf 'a\0b c\0' | m -0 echo '<{}>' | flat)"
check "--null" "<a>" "$(printf 'a\0' | m --null echo '<{}>' | flat)"
check "-d :" "x y z" "$(printf 'x:y:z' | m -d : echo | flat)"
check "-d '\\t'" "x y" "$(printf 'x\ty' | m -d '\t' echo | flat)"
check "-N2" "a-b c-d e-" "$(m -N2 echo {1}-{2} ::: a b c d e | flat)"
check "-N2 appended" "a b c" "$(m -N2 echo ::: a b c | flat)"
check "--colsep" "b a d c" "$(m --colsep , echo {2} {1} ::: a,b c,d | flat)"
check "--colsep regex" "1 2 3" "$(echo '1 ; 2;3' | m --colsep ' *; *' echo | flat)"
check "no items, no output" "exit 0" "$(printf '' | m echo x; echo "exit $?")"
check ":::: missing file" 255 "$(m echo :::: "$tmp/none" 2>/dev/null; echo $?)"

# The shell: a one-word command with shell syntax, or --shell.
check "one word with shell syntax" "0.2 0.1" \
    "$(m 'sleep {}; echo {}' ::: 0.2 0.1 | flat)"
check "values quoted for the shell" "a b;\$(echo no) it's" \
    "$(m 'echo {}' ::: 'a b;$(echo no)' "it's" | flat)"
check "--shell joins the words" "A" "$(m --shell echo {} '|' tr a A ::: a)"
check "no shell otherwise" "a|b" "$(m echo 'a|b' ::: | flat; m echo {} ::: 'a|b')"

# Output: order by default, --as-done, -u, --line-buffer, --tag.
check "-k: order kept" "3 2 1" \
    "$(m -j3 -k sh -c 'sleep 0.$1; echo $1' _ ::: 3 2 1 | flat)"
check "--as-done: each once" "1 2 3" \
    "$(m -j3 --as-done echo ::: 3 2 1 | sort | flat)"
check "-u: each once" "1 2 3" "$(m -u echo ::: 3 2 1 | sort | flat)"
check "--line-buffer: each line once" "a1 a2 b1 b2" \
    "$(m --line-buffer sh -c 'echo "$1"1; echo "$1"2' _ ::: a b | sort | flat)"
check "--tag" "a 1	x a 1" "$(m --tag echo x ::: a ::: 1)"
check "--tag, stderr too" "a	e" "$(m --tag sh -c 'echo e >&2' _ ::: a 2>&1)"
check "--tagstring" "[1:a]	a" "$(m --tagstring '[{#}:{}]' echo ::: a)"
check "--tagstring {%}" "1	a" "$(m -j1 --tagstring '{%}' echo ::: a)"
check "--dry-run" "echo 'a b' echo 'c'\"'\"'d'" \
    "$(m --dry-run echo ::: 'a b' "c'd" | flat)"
check "--dry-run runs nothing" "" "$(m --dry-run touch "$tmp/dry" ::: 1 >/dev/null; ls "$tmp" | grep dry)"

# --pipe: blocks of records on the commands' standard input.
check "--pipe --block" "3 3 3 1" "$(seq 10 | m --pipe --block 6 wc -l | flat)"
check "--pipe whole" "100000" "$(seq 100000 | m --pipe --block 100k wc -l | awk '{s+=$1} END {print s}')"
check "--pipe keeps records whole" "$(seq 100000 | md5sum)" \
    "$(seq 100000 | m --pipe --block 10k cat | md5sum)"

# --results DIR: GNU parallel's layout.
m --results "$tmp/res" sh -c 'echo out $1; echo err $1 >&2' _ ::: a b/c 2>/dev/null >/dev/null
check "--results stdout" "out a" "$(cat "$tmp/res/1/a/stdout")"
check "--results stderr" "err b/c" "$(cat "$tmp/res/1/b\\_c/stderr")"
check "--results seq" "2" "$(cat "$tmp/res/1/b\\_c/seq")"

# --joblog, --resume, --resume-failed, --retries.
m --joblog "$tmp/jl" sh -c 'exit $1' _ ::: 0 3 2>/dev/null
check "--joblog header" "Seq Host Starttime JobRuntime Send Receive Exitval Signal Command" \
    "$(head -n 1 "$tmp/jl" | tr '\t' ' ')"
check "--joblog lines" "1 : 0 0 0 0 sh -c 'exit \$1' _ 0|2 : 0 0 3 0 sh -c 'exit \$1' _ 3" \
    "$(tail -n +2 "$tmp/jl" | sort -n | awk -F'\t' '{printf "%s%s %s %s %s %s %s %s", (NR>1?"|":""), $1, $2, $5, $6, $7, $8, $9}')"
m --joblog "$tmp/jl" --resume sh -c 'echo $1; exit $1' _ ::: 0 3 4 2>/dev/null >"$tmp/o"
check "--resume runs the rest" "4" "$(cat "$tmp/o")"
m --joblog "$tmp/jl" --resume-failed sh -c 'echo $1; exit $1' _ ::: 0 3 4 2>/dev/null >"$tmp/o"
check "--resume-failed runs the failed" "3 4" "$(cat "$tmp/o" | flat)"
m --retries 3 sh -c 'echo x >>"$0"; exit 1' "$tmp/tries" ::: 1 2>/dev/null
check "--retries 3: three attempts" 3 "$(lines "$tmp/tries")"
m --retries 3 sh -c 'echo x >>"$0"; [ $(wc -l <"$0") -ge 2 ]' "$tmp/tries2" ::: 1
check "--retries: a success ends it" "0 2" "$? $(lines "$tmp/tries2")"
# Only the last attempt's output is printed, also for the job whose output
# would otherwise go out as it comes (the first, in order).
out=$(m -k --retries 3 sh -c 'echo try $1; exit 1' _ ::: a b 2>/dev/null | flat)
check "--retries: the last attempt's output only" "try a try b" "$out"

# --halt.
m -j1 --halt now,fail=1 sh -c 'echo $1; exit $1' _ ::: 0 3 0 5 >"$tmp/o" 2>/dev/null
check "--halt now,fail=1: the failing status" "3 0 3" "$? $(cat "$tmp/o" | flat)"
m -j1 --halt soon,success=1 sh -c 'exit $1' _ ::: 1 0 2 2>/dev/null
check "--halt soon,success=1" 0 $?
m -j1 --halt soon,fail=2 sh -c 'echo $1; exit $1' _ ::: 1 0 2 0 0 >"$tmp/o" 2>/dev/null
check "--halt soon,fail=2" "2 1 0 2" "$? $(cat "$tmp/o" | flat)"
m -j1 --halt now,done=50% echo ::: 1 2 3 4 >"$tmp/o" 2>/dev/null
check "--halt now,done=50%" "0 1 2" "$? $(cat "$tmp/o" | flat)"
m --halt sometimes echo ::: 1 2>/dev/null
check "bad --halt" 255 $?

# --tty: the command reads the terminal, in the foreground (not stopped by
# SIGTTIN), one at a time. script(1) gives a terminal; the terminal also
# echoes the typed line, before or after "tty" as the machine's load has it,
# so only the command's own lines are compared.
if command -v script >/dev/null; then
    out=$(echo hello | script -qec "'$mproc' run --tty sh -c 'test -t 0 && echo tty; read x; echo got \$x {%}' ::: 1" /dev/null | tr -d '\r' | grep -E '^(tty|got )' | tr '\n' ' ')
    check "--tty" "tty got hello 1 " "$out"
else
    echo "skip --tty: no script(1)"
fi

# --delay and --timeout P% run (their timing is the bench's business).
check "--delay" "1 2" "$(m --delay 0.01 echo ::: 1 2 | flat)"
check "--timeout 1000%" "1 2 3 4" "$(m --timeout 1000% echo ::: 1 2 3 4 | flat)"

finish
