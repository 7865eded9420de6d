#!/bin/sh
# mproc run beside GNU parallel and xargs -P, the same commands timed by
# hyperfine in one run: the cost of a command, small outputs, 100 MiB
# outputs, the notebook's sleep cell as commands, and CPU-bound commands;
# then the peak memory (RSS) of each with large outputs. Installs parallel
# and hyperfine (Debian packages) when missing. Prints hyperfine's markdown
# tables. GNU parallel runs with -k where mproc run's output is ordered.
#
#   bench/commands.sh [RUNS]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
build="$top/build/release"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPROC_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target mproc_tool >/dev/null
"$top/scripts/need" parallel hyperfine time
m="$build/mproc"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "mproc $(git -C "$top" describe --always 2>/dev/null || echo), $(parallel --version | head -n 1), $(xargs --version | head -n 1), $(nproc) CPUs"

cat >"$out/burn" <<'BURN'
#!/bin/sh
# CPU-bound: about 20 ms of awk arithmetic.
exec awk 'BEGIN { for (i = 0; i < 300000; i++) s += i }'
BURN
chmod +x "$out/burn"
cat >"$out/big" <<'BIG'
#!/bin/sh
# 100 MiB on stdout.
exec head -c 104857600 /dev/zero
BIG
chmod +x "$out/big"

bench() { # title, then commands (hyperfine runs each through sh -c)
    title=$1
    shift
    echo
    echo "### $title"
    echo
    hyperfine --warmup 1 --runs "$runs" --style none \
        --export-markdown "$out/t.md" "$@" >/dev/null
    cat "$out/t.md"
}

bench "1000 commands that do nothing (true), 2 at a time" \
    "seq 1000 | $m run -j 2 true" \
    "seq 1000 | parallel -j 2 true" \
    "seq 1000 | xargs -P 2 -n 1 true"
bench "1000 commands printing one line each, 2 at a time (ordered: mproc run, parallel -k)" \
    "seq 1000 | $m run -j 2 echo >/dev/null" \
    "seq 1000 | parallel --will-cite -k -j 2 echo >/dev/null" \
    "seq 1000 | xargs -P 2 -n 1 echo >/dev/null"
bench "4 commands printing 100 MiB each, 2 at a time (ordered: mproc run, parallel -k)" \
    "$m run -j 2 $out/big ::: 1 2 3 4 | cat >/dev/null" \
    "parallel --will-cite -k -j 2 $out/big ::: 1 2 3 4 | cat >/dev/null" \
    "printf '1\\n2\\n3\\n4\\n' | xargs -P 2 -n 1 $out/big | cat >/dev/null"
bench "the notebook's sleep cell as commands: 10 x sleep 0.1, 5 at a time (ideal 0.2 s)" \
    "$m run -j 5 sleep ::: 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1" \
    "parallel -j 5 sleep ::: 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1" \
    "seq 10 | sed 's/.*/0.1/' | xargs -P 5 -n 1 sleep"
bench "20 CPU-bound commands (awk, 300000 additions each), 2 at a time" \
    "seq 20 | $m run -j 2 $out/burn" \
    "seq 20 | parallel -j 2 $out/burn" \
    "seq 20 | xargs -P 2 -n 1 $out/burn"

echo
echo "### peak memory (RSS), 4 commands printing 100 MiB each, 2 at a time"
echo
echo "| command | peak RSS |"
echo "|:---|---:|"
for c in "$m run -j 2" "parallel --will-cite -k -j 2"; do
    /usr/bin/time -f %M -o "$out/rss" sh -c "exec $c $out/big ::: 1 2 3 4 >/dev/null"
    echo "| \`$c\` | $(tail -n 1 "$out/rss") KiB |"
done
