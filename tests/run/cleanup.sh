#!/bin/sh
# Nothing left running, however mproc run ends: SIGKILL, a crash, the
# signals that ask it to stop (also while it is starting commands, tried
# many times), a reader that goes away. Each command starts a child of its
# own, which PR_SET_PDEATHSIG alone would not reach. Each case failed
# before issue 11.
#
#   sh tests/run/cleanup.sh path/to/mproc [TRIES]
mproc=$1
tries=${2:-20}
. "$(dirname "$0")/lib.sh"
# Under AddressSanitizer and ThreadSanitizer, SIGSEGV must stay a death by
# signal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}handle_segv=0"
export TSAN_OPTIONS="${TSAN_OPTIONS:-}${TSAN_OPTIONS:+:}handle_segv=0"
u=$$
# A command that starts a child and waits: both recognisable by "$u".
cat >"$tmp/sleeper" <<EOS
#!/bin/sh
echo \$\$ >>"$tmp/started"
sleep 1000.$u &
wait
EOS
chmod +x "$tmp/sleeper"
# A background job of a shell without job control ignores SIGINT and
# SIGQUIT, and mproc run keeps ignored signals ignored: start it with them
# at their defaults, as from a terminal.
bg_run() { env --default-signal=INT,QUIT "$mproc" run "$@" >/dev/null 2>&1 & }
alive() { pgrep -f "sleep 1000.$u|$tmp/sleeper" | wc -l | tr -d ' '; }
none_left() { [ "$(alive)" = 0 ]; }
three_started() { [ "$(lines "$tmp/started")" -ge 3 ]; }

# mproc run ended by SIG once its commands run: none survives.
for sig in KILL SEGV TERM INT QUIT HUP; do
    rm -f "$tmp/started"
    bg_run -j 3 "$tmp/sleeper" ::: 1 2 3 4
    pid=$!
    until_true 60 three_started
    kill -s "$sig" "$pid"
    wait "$pid"
    status=$?
    until_true 30 none_left
    check "SIG$sig: nothing left" 0 "$(alive)"
    check "SIG$sig: mproc run died of it" 1 \
        "$([ "$status" -gt 128 ] && echo 1 || echo "status $status")"
done

# An ignored signal stays ignored.
rm -f "$tmp/started"
"$mproc" run -j 3 "$tmp/sleeper" ::: 1 2 3 >/dev/null 2>&1 &
pid=$!
until_true 60 three_started
kill -s INT "$pid"
kill -s TERM "$pid"
wait "$pid"
until_true 30 none_left
check "SIGINT ignored by the shell: ignored, SIGTERM ends all" 0 "$(alive)"

# Ctrl-Z (SIGTSTP) stops the commands with mproc run; SIGCONT continues
# them all.
state() { sed -n 's/^State:\t\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
rm -f "$tmp/started"
"$mproc" run -j 3 "$tmp/sleeper" ::: 1 2 3 >/dev/null 2>&1 &
pid=$!
until_true 60 three_started
kill -s TSTP "$pid"
all_stopped() {
    [ "$(state "$pid")" = T ] || return 1
    for c in $(cat "$tmp/started"); do [ "$(state "$c")" = T ] || return 1; done
}
until_true 30 all_stopped
check "SIGTSTP: mproc run and its commands stopped" 0 $?
kill -s CONT "$pid"
none_stopped() {
    for c in $pid $(cat "$tmp/started"); do [ "$(state "$c")" != T ] || return 1; done
}
until_true 30 none_stopped
check "SIGCONT: all continued" 0 $?
kill -s TERM "$pid"
wait "$pid"
until_true 30 none_left
check "SIGTSTP: nothing left after" 0 "$(alive)"

# Signals while commands are being started, many times over.
left=0
i=0
while [ "$i" -lt "$tries" ]; do
    # Not INT: a background job starts with it ignored, and a SIGINT that
    # came before env restored its default would be rightly lost.
    for sig in TERM HUP KILL; do
        bg_run -j 4 "$tmp/sleeper" ::: 1 2 3 4 5 6
        pid=$!
        [ $((i % 2)) = 0 ] || sleep 0.0$i
        kill -s "$sig" "$pid"
        wait "$pid"
        until_true 30 none_left || left=$((left + 1))
    done
    i=$((i + 1))
done
check "signals during start-up ($tries x TERM HUP KILL): nothing left" 0 "$left"

# A reader that goes away: mproc run stops at once and ends its commands,
# dying of SIGPIPE as a shell pipeline expects.
rm -f "$tmp/started"
{ "$mproc" run -j 2 sh -c 'echo $1; exec "$0"' "$tmp/sleeper" ::: 1 2 3 2>/dev/null
  echo $? >"$tmp/rc"; } | head -n 1 >"$tmp/o"
check "head -n 1: its line" 1 "$(cat "$tmp/o")"
check "head -n 1: SIGPIPE" 141 "$(cat "$tmp/rc")"
until_true 30 none_left
check "head -n 1: nothing left" 0 "$(alive)"

finish
