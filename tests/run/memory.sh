#!/bin/sh
# Streaming and bounded memory: commands start as input arrives, endless
# input is fine, and RSS stays bounded whatever the commands print (1 GiB
# from one command, 2 GiB waiting behind a slow first one). Each case
# failed before issue 11. Needs GNU time for the RSS cases.
#
#   sh tests/run/memory.sh path/to/mproc
mproc=$1
. "$(dirname "$0")/lib.sh"

# The first item runs before the second is written: the writer waits for
# the first command's mark (30 s at most, then says "late").
gate_a() { [ -f "$tmp/gate_a" ]; }
out=$( { echo a; until_true 30 gate_a && echo b || echo late; } |
    "$mproc" run sh -c 'touch "$0/gate_$1"; echo $1' "$tmp" | tr '\n' ' ')
check "starts as input arrives" "a b " "$out"

# A command that ends while mproc run's stdout is full (its reader asleep)
# loses nothing of what is still in its pipe: 120 KiB fill stdout's pipe and
# its own, and it exits at once (before, the last 56 KiB were lost).
out=$("$mproc" run sh -c 'head -c 122880 /dev/zero' ::: 1 | (sleep 1; wc -c))
check "ended while stdout was full: all of it" 122880 "$(echo $out)"

# Endless input: read only as jobs start, so --halt ends it.
yes | "$mproc" run -j 2 --halt soon,done=50 true 2>/dev/null
check "endless input" 0 $?

# AddressSanitizer's quarantine holds freed memory: the RSS bound is for
# plain builds; the outputs are checked in every build.
limit=65536
if grep -q __asan_init "$mproc" 2>/dev/null; then
    echo "sanitized build: RSS not bounded here"
    limit=4194304
fi
if [ -x /usr/bin/time ]; then
    rss() { tail -n 1 "$1"; }
    /usr/bin/time -f %M -o "$tmp/t1" "$mproc" run sh -c 'head -c 1073741824 /dev/zero' ::: 1 |
        wc -c >"$tmp/n1"
    check "1 GiB from one command: all of it" 1073741824 "$(tr -d ' ' <"$tmp/n1")"
    check "1 GiB from one command: RSS under 64 MiB" 1 \
        "$([ "$(rss "$tmp/t1")" -lt $limit ] && echo 1 || echo "$(rss "$tmp/t1") KiB")"
    # 40 x 50 MiB finish while the first waits for the last one's mark.
    mkdir "$tmp/g"
    /usr/bin/time -f %M -o "$tmp/t2" "$mproc" run -j 4 sh -c '
        if [ $1 = 0 ]; then
            while [ ! -f "$0/go" ]; do sleep 0.05; done; echo first
        else
            head -c 52428800 /dev/zero; if [ $1 = 40 ]; then touch "$0/go"; fi
        fi' "$tmp/g" ::: $(seq 0 40) | wc -c >"$tmp/n2"
    check "2 GiB behind a slow first: all of it" 2097152006 "$(tr -d ' ' <"$tmp/n2")"
    check "2 GiB behind a slow first: RSS under 64 MiB" 1 \
        "$([ "$(rss "$tmp/t2")" -lt $limit ] && echo 1 || echo "$(rss "$tmp/t2") KiB")"
else
    echo "skip RSS cases: no /usr/bin/time"
fi

finish
