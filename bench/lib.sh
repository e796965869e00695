# shellcheck shell=bash
# bench/lib.sh - what the benchmark scripts share; sourced, never run.
#
# bench_init NAME makes the private directory $work and the list $pids of
# the processes started (each is stopped by PID on exit, also on failure,
# last started first); the helpers below speak as NAME in their messages.
# Everything listens on and talks to 127.0.0.1.

bench_init() {
    me=$1
    work=$(mktemp -d "${TMPDIR:-/tmp}/parley-$me.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# stop PID...: TERM, wait, forget.
stop() {
    local pid keep=() p
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        [[ " $* " == *" $p "* ]] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

bench_cleanup() {
    local i
    # The last started first: a proxy before its servers, Redis last.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
    rm -rf "$work"
}

# bench_tool BUILD SRC NAME LIBS...: BUILD/bench/NAME, compiled from
# SRC/bench/NAME.c if it is missing or older than its source.
bench_tool() {
    local out=$1/bench/$3 in=$2/bench/$3.c
    shift 3
    if [ ! -x "$out" ] || [ "$in" -nt "$out" ]; then
        mkdir -p "$(dirname "$out")"
        gcc -O2 -g -Wall -Wextra -o "$out" "$in" "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_status PORT PATH: the status code of a GET, or nothing.
http_status() {
    (
        exec 3<> "/dev/tcp/127.0.0.1/$1" || exit 0
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
        read -r -t 2 _ code _ <&3 || true
        echo "${code:-}"
    ) 2> /dev/null
}

# wait_http PORT PATH CODE PID WHAT: until GET PATH answers CODE.
wait_http() {
    for _ in $(seq 200); do
        [ "$(http_status "$1" "$2")" = "$3" ] && return 0
        kill -0 "$4" 2> /dev/null || { echo "$me: $5 exited during start-up" >&2; return 1; }
        sleep 0.05
    done
    echo "$me: $5 not ready on port $1" >&2
    return 1
}

# start_redis DIR: a private redis-server on DIR/redis.sock, persistence
# off; sets redis_pid.
start_redis() {
    redis-server --port 0 --unixsocket "$1/redis.sock" --save "" --appendonly no \
        --loglevel warning --logfile "$1/redis.log" &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 100); do [ -S "$1/redis.sock" ] && return 0; sleep 0.05; done
    echo "$me: redis-server did not start: $(cat "$1/redis.log")" >&2
    return 1
}

# run_result OUT CMD...: runs CMD (stopped by PID, also on failure), shows
# its RESULT lines and appends them to OUT.
run_result() {
    local out=$1
    shift
    "$@" > "$work/run.txt" &
    local pid=$!
    pids+=("$pid")
    if ! wait "$pid"; then
        stop "$pid"
        cat "$work/run.txt"
        echo "$me: $* failed" >&2
        exit 1
    fi
    stop "$pid"
    sed -n 's/^RESULT /    /p' "$work/run.txt"
    grep '^RESULT ' "$work/run.txt" >> "$out"
}

# wait_quiet: the machine is shared; before a measured run, wait while its
# 1-minute load is above MAX_LOAD (0.7), for at most LOAD_WAIT s (900).
# Prints the load the run starts at.
wait_quiet() {
    local max=${MAX_LOAD:-0.7} limit=${LOAD_WAIT:-900} load waited=0
    read -r load _ < /proc/loadavg
    while awk -v l="$load" -v m="$max" 'BEGIN {exit !(l > m)}'; do
        if [ "$waited" -ge "$limit" ]; then
            echo "$me: load still $load after ${limit} s; measuring anyway" >&2
            break
        fi
        [ "$waited" -eq 0 ] && echo "   (load $load > $max: waiting)" >&2
        sleep 5
        waited=$((waited + 5))
        read -r load _ < /proc/loadavg
    done
    # shellcheck disable=SC2034  # read by the caller
    quiet_load=$load
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
total() { awk '{s+=$1} END {print s+0}'; }
# values FILE MATCH KEY: KEY's value on every line of FILE containing MATCH.
values() { { grep -F -- "$2" "$1" || true; } | sed -nE "s/.* $3=([^ ]+).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "nan"}'; }
