#!/bin/sh
# mproc run beside GNU parallel and xargs -P, the same commands timed by
# hyperfine in one run: the cost of a command, the notebook's sleep cell as
# commands, and CPU-bound commands. Installs parallel and hyperfine (Debian
# packages) when missing. Prints hyperfine's markdown tables.
#
#   bench/commands.sh [RUNS]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
build="$top/build/release"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPROC_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target mproc_tool >/dev/null
"$top/scripts/need" parallel hyperfine
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
bench "the notebook's sleep cell as commands: 10 x sleep 0.1, 5 at a time (ideal 0.2 s)" \
    "$m run -j 5 sleep ::: 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1" \
    "parallel -j 5 sleep ::: 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1 0.1" \
    "seq 10 | sed 's/.*/0.1/' | xargs -P 5 -n 1 sleep"
bench "20 CPU-bound commands (awk, 300000 additions each), 2 at a time" \
    "seq 20 | $m run -j 2 $out/burn" \
    "seq 20 | parallel -j 2 $out/burn" \
    "seq 20 | xargs -P 2 -n 1 $out/burn"
