#!/usr/bin/env bash
# Cluster benchmark (cluster = true, issue 18): two srv instances (process mode, one worker and one
# reactor each) sharing a redis-server of the script's own, with the demo app. bench/loadgen.c
# opens BC_CONNS /chat WebSocket clients spread over both instances (even-numbered ones on A, odd
# ones on B); one client on A sends a 64-byte message, the demo pushes it to A's /chat clients
# and publishes it through Redis, where B's worker 0 pushes it to B's. For BC_ROUNDS rounds:
# p50/p99 arrival on A's clients (local, the in-instance path) and on B's (remote, across
# Redis), same run, and the ratio. Both instances on CPU SERVER_CPU, redis-server and loadgen on
# CLIENT_CPU. (The durable task queue's throughput joins this script when that queue exists.)
#   usage: bench/cluster.sh [BUILD_DIR=/work/main/build-bench]  (needs BUILD_DIR/srv, demo.so)
# Env: BC_CONNS (1000), BC_ROUNDS (20), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1 keeps the temp
#      dir, WRITE_RESULTS=1 writes the "## Cluster" section of bench/RESULTS.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
bc_conns="${BC_CONNS:-1000}"
bc_rounds="${BC_ROUNDS:-20}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
hz="$(getconf CLK_TCK)"
bench_self=cluster
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so" /usr/bin/redis-server; do
    [[ -e "$f" ]] || { echo "cluster.sh: missing $f" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

tmp="$(mktemp -d /tmp/srv-cluster-bench.XXXXXX)"
srv_conf="" root_pid="" redis_pid="" conf_a="" pid_a=""
cleanup() {
    stop_srv
    if [[ -n "$conf_a" ]]; then
        "$build/srv" stop -c "$conf_a" >/dev/null 2>&1 || kill -TERM "$pid_a" 2>/dev/null || true
        wait "$pid_a" 2>/dev/null || true
    fi
    [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    [[ -n "${KEEP:-}" ]] && echo "cluster.sh: kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -Wall -o "$tmp/loadgen" "$here/loadgen.c" -lcrypto

rport="$(free_port)"
taskset -c "$ccpu" /usr/bin/redis-server --port "$rport" --bind 127.0.0.1 --save "" \
    --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 &
redis_pid=$!
for ((i = 0; i < 100; i++)); do
    redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done

start_instance() { # name: sets hport, srv_conf, root_pid (launch_srv)
    local d="$tmp/srv-$1"
    hport="$(free_port)"
    srv_config "$d" process "$hport" "redis = \"127.0.0.1:$rport\"
cluster = true
instance_id = \"$1\""
    cat >>"$d/srv.toml" <<EOF
websocket = true

[[table]]
name = "chat"
size = 65536
columns = [{name = "joined", type = "int"}]
EOF
    launch_srv "$d" "$hport"
}
start_instance a
port_a="$hport" conf_a="$srv_conf" pid_a="$root_pid"
srv_conf="" root_pid=""
start_instance b
port_b="$hport"

wait_quiet >/dev/null
out="$tmp/loadgen.out"
taskset -c "$ccpu" "$tmp/loadgen" -m wsbcast -u /chat -p "$port_a" -q "$port_b" \
    -c "$bc_conns" -s 64 -r "$bc_rounds" -i 256 >"$out" 2>"$tmp/loadgen.log" || true
grep -q '^ROUND' "$out" || { echo "cluster.sh: loadgen failed" >&2; cat "$out" "$tmp/loadgen.log" >&2; exit 1; }

python3 - "$out" "$tmp/report" "$bc_conns" "$bc_rounds" <<'EOF'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(sys.argv[1]) if l.startswith("ROUND")]
res = next((l for l in open(sys.argv[1]) if l.startswith("RESULT")), "").strip()
med = lambda k: statistics.median(float(r[k]) for r in rows)
full = sum(1 for r in rows if int(r["received"]) == int(r["clients"]))
lines = [
    f"{sys.argv[3]} /chat clients over two instances, {len(rows)} rounds (every client got every "
    f"round in {full} of them). Median over the rounds:",
    "",
    "| clients on | received per round | p50 arrival | p99 arrival |",
    "| --- | --- | --- | --- |",
    f"| A, the sender's instance (local push) | {med('local_received'):.0f} | {med('local_p50_ms'):.2f} ms | {med('local_p99_ms'):.2f} ms |",
    f"| B, across Redis pub/sub | {med('remote_received'):.0f} | {med('remote_p50_ms'):.2f} ms | {med('remote_p99_ms'):.2f} ms |",
    "",
    f"Remote / local: p50 {med('remote_p50_ms') / max(med('local_p50_ms'), 1e-3):.2f}x, "
    f"p99 {med('remote_p99_ms') / max(med('local_p99_ms'), 1e-3):.2f}x. loadgen: `{res}`",
]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

if [[ -n "${WRITE_RESULTS:-}" ]]; then
    commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    write_section "Cluster" \
        "\`bench/cluster.sh\` ($(date -u +%F), commit $commit, $(nproc) CPUs, kernel $(uname -r)): cross-instance broadcast latency with \`cluster = true\`, instances on CPU $scpu, redis-server and the load tool on CPU $ccpu." \
        "$tmp/report"
fi
