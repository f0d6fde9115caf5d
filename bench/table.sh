#!/bin/sh
# Table benchmark: srv shared-memory tables (get / set / incr, small and 1 KiB rows, one process
# and one per core, hot key) and, in the same run, redis-server driven by redis-benchmark
# (pipelined GET/SET/INCR) as the out-of-process alternative. Builds its own driver from the
# sources with -O2 (no CMake build needed). Usage: bench/table.sh [seconds per case, default 1]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-1}
CC=${CC:-cc}
TMP=$(mktemp -d)
REDIS_PID=
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

NCPU=$(nproc)
echo "# srv table benchmark"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); kernel $(uname -r)"
echo

$CC -O2 -std=gnu11 -D_GNU_SOURCE -I"$ROOT" -I"$ROOT/include" -o "$TMP/table_bench" \
    "$ROOT/bench/table_bench.c" "$ROOT/core/shm/shm.c" "$ROOT/core/shm/table.c" "$ROOT/core/shm/atomic.c" \
    "$ROOT/core/base/log.c" -lpthread
echo "## srv tables (in-process, shared memory)"
"$TMP/table_bench" "$SECS"
echo

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "redis-server / redis-benchmark not installed: no comparison"
    exit 0
fi
# A free loopback port: let redis try a few and keep the one it got.
PORT=$((20000 + $$ % 20000))
for try in 1 2 3 4 5 6 7 8; do
    taskset -c 0 redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP" --logfile "$TMP/redis.log" --daemonize no &
    REDIS_PID=$!
    n=0
    while [ $n -lt 50 ]; do
        if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
        if ! kill -0 "$REDIS_PID" 2>/dev/null; then break; fi
        sleep 0.1
        n=$((n + 1))
    done
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
    PORT=$((PORT + 1))
done
[ -n "$REDIS_PID" ] || { echo "redis-server did not start"; exit 1; }

# redis-server on CPU 0, the client on the last CPU: the server gets one whole core.
CLIENT_CPU=$((NCPU - 1))
echo "## redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') (one core, loopback, redis-benchmark -P 16 -c 50 -r 16384)"
echo
echo "| command | value size | requests/s |"
echo "| --- | --- | ---: |"
for SIZE in 16 1024; do
    redis-cli -p "$PORT" flushall >/dev/null
    taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get,incr \
        -n 1000000 -P 16 -c 50 -r 16384 -d "$SIZE" -q --csv |
        sed 1d | tr -d '"' | while IFS=, read -r cmd rps _rest; do
            echo "| $cmd | $SIZE B | $(awk "BEGIN{printf \"%.2f M\", $rps/1e6}") |"
        done
done
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait "$REDIS_PID" 2>/dev/null || true
REDIS_PID=
