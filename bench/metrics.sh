#!/usr/bin/env bash
# Cost of a /metrics scrape: srv with 8 workers, 2 task workers, 4 listeners (3 HTTP, 1 TCP),
# two tables and a cron job, after some traffic; SCRAPES sequential GET /metrics on one
# keep-alive connection. Prints wall-clock us per scrape (client side) and the master's own CPU
# us per scrape (utime+stime from /proc, the process that answers), and the size of a scrape.
#   usage: bench/metrics.sh [BUILD_DIR=/work/main/build-bench]
# Env: SCRAPES (2000), SERVER_CPU (0), CLIENT_CPU (1), WRITE_RESULTS=1 writes the
#      "## Metrics scrape" section of bench/RESULTS.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
scrapes="${SCRAPES:-2000}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
hz="$(getconf CLK_TCK)"
bench_self=metrics
srv_conf=""
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

taskset -cp "$ccpu" $$ >/dev/null
tmp="$(mktemp -d /tmp/srv-metrics-bench.XXXXXX)"
cleanup() { stop_srv >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

port="$(free_port)" admin="$(free_port)"
p2="$(free_port)" p3="$(free_port)" p4="$(free_port)"
srv_config "$tmp" process "$port" "admin_server = \"127.0.0.1:$admin\""
sed -i 's/^worker_num = 1$/worker_num = 8\ntask_worker_num = 2/' "$tmp/srv.toml"
cat >>"$tmp/srv.toml" <<EOT
[[listen]]
name = "api"
port = $p2
[[listen]]
name = "ws"
port = $p3
websocket = true
[[listen]]
name = "lines"
type = "tcp"
handler = "lines"
port = $p4
open_eof_check = true
package_eof = "\r\n"
[[table]]
name = "kv"
size = 1024
columns = [{ name = "value", type = "string", size = 256 }, { name = "hits", type = "int" }]
[[table]]
name = "chat"
size = 1024
columns = [{ name = "joined", type = "int" }]
[[cron]]
name = "tick"
handler = "demo_cron_tick"
interval_ms = 1000
EOT
launch_srv "$tmp" "$port"
for p in "$port" "$p2" "$p3"; do
    for _ in $(seq 20); do curl -s "http://127.0.0.1:$p/" >/dev/null; done
done
master="$(cat "$tmp/srv.pid")"
python3 - "$admin" "$scrapes" "$master" "$hz" <<'PY'
import http.client, sys, time
port, n, master, hz = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def ticks():
    f = open(f"/proc/{master}/stat").read()
    v = f[f.rindex(")") + 2:].split()
    return int(v[11]) + int(v[12])

c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(50):  # warm-up
    c.request("GET", "/metrics"); body = c.getresponse().read()
t0, k0 = time.perf_counter(), ticks()
for _ in range(n):
    c.request("GET", "/metrics")
    r = c.getresponse(); body = r.read()
    assert r.status == 200
t1, k1 = time.perf_counter(), ticks()
lines = [l for l in body.decode().splitlines() if l and not l.startswith("#")]
print(f"RESULT scrapes={n} wall_us={(t1 - t0) * 1e6 / n:.0f} master_cpu_us={(k1 - k0) * 1e6 / hz / n:.0f} "
      f"bytes={len(body)} samples={len(lines)}")
PY
