#!/bin/sh
# mproc run --mpi under mpirun: the commands spread over the ranks (two
# commands meet from two ranks), outputs back in order on rank 0, exit
# status, job log, standard input, outputs cut at the result size.
#
#   sh tests/run/mpi.sh path/to/mproc path/to/mpirun
mproc=$1
mpirun=$2
. "$(dirname "$0")/lib.sh"
run() { "$mpirun" -np 3 "$mproc" run --mpi "$@"; }

# Each command marks its rank and waits (60 s at most) for a mark from
# another rank: two ranks serve at once, or it says "alone".
cat >"$tmp/meet" <<EOS
#!/bin/sh
touch "$tmp/rank_\$OMPI_COMM_WORLD_RANK"
n=1200
while [ \$(ls "$tmp" | grep -c '^rank_') -lt 2 ] && [ \$n -gt 0 ]; do
    sleep 0.05; n=\$((n - 1))
done
[ \$n -gt 0 ] && echo "\$1" || echo "\$1 alone"
EOS
chmod +x "$tmp/meet"
out=$(run "$tmp/meet" ::: 1 2 3 4 | tr '\n' ' ')
check "spread over two ranks, in order" "1 2 3 4 " "$out"
check "ranks 1 and 2 served" "rank_1 rank_2" "$(ls "$tmp" | grep '^rank_' | tr '\n' ' ' | sed 's/ $//')"

run --joblog "$tmp/jl" sh -c 'exit $1' _ ::: 0 3 0 2>"$tmp/e" >/dev/null
check "exit status: how many failed" 1 $?
check "failure named" 1 "$(grep -c 'exit code 3' "$tmp/e")"
check "job log" "0 3 0" "$(tail -n +2 "$tmp/jl" | cut -f 7 | tr '\n' ' ' | sed 's/ $//')"
check "standard input" "in 1 in 2" "$(seq 2 | run echo in | tr '\n' ' ' | sed 's/ $//')"
check "--tag" "a	a" "$(run --tag echo ::: a)"
out=$(run sh -c 'head -c 100000 /dev/zero' ::: 1 2>"$tmp/e" | wc -c)
check "output cut at the result size" 65488 "$(echo $out)"
check "cut said" 1 "$(grep -c 'output cut: 34512 bytes of stdout' "$tmp/e")"
run --pipe cat </dev/null 2>"$tmp/e"
# (Every rank says it.)
check "--pipe refused" "255 1" "$? $(grep -q -- '--pipe is not supported with --mpi' "$tmp/e" && echo 1)"
"$mproc" run --mpi echo ::: 1 2>"$tmp/e"
check "without mpirun: 255" 255 $?

finish
