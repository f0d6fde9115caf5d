#!/usr/bin/env bash
# HTTP/2 benchmark: srv (process mode and base mode, 1 worker, 1 reactor, open_http2_protocol)
# against nginx's http2 (1 worker, `return 200`) on GET / -> "Hello, World!", with h2load
# (Debian: nghttp2-client) keeping CONNS connections with STREAMS concurrent streams each
# (-c64 -m10 -t1). Every server process runs on CPU 0, h2load on CPU 1. Loads, each in one run
# per server, servers alternating within each load and round:
#   h2c   cleartext h2 by prior knowledge (h2load's http://; nginx: `listen ... http2` without ssl)
#   h2    h2 over TLS, ALPN offering only h2 (self-signed ECDSA P-256 certificate made by the
#         script with the openssl command; CERT=rsa for RSA 2048)
# CPU us per request = busy jiffies of CPU 0 (/proc/stat) over the run / requests served, as
# bench/http.sh; proc us = utime+stime of the server's process trees only (the cross-check).
# Every run checks that h2load spoke h2 (or h2c), that every response was a 2xx and that the
# response bodies add up to 13 bytes ("Hello, World!") per request.
#   usage: bench/h2.sh [BUILD_DIR=<repo>/build-bench]   (needs BUILD_DIR/srv and
#          examples/demo.so, nginx with http_v2, h2load (apt-get install nghttp2-client) and openssl)
# Env: DURATION (10 s per run), ROUNDS (3), WARMUP (1 s, unmeasured, before each run),
#      QUICK=1 (a smoke run: DURATION=2 ROUNDS=1 TRIES=1 unless set),
#      LOADS ("h2c h2"), SERVERS ("nginx srv-process srv-base"), CONNS (64), STREAMS (10),
#      CERT (ecdsa; or rsa), SERVER_CPU (0), CLIENT_CPU (1), NGINX (/usr/sbin/nginx),
#      QUIET_PCT / QUIET_WAIT / NOISE_PCT / TRIES / BUSY_WAIT as in bench/http.sh, KEEP=1 keeps
#      the temp dir (configs, certificate, logs), REPORT_FROM=<kept dir> only re-reports its
#      results, WRITE_RESULTS=1 writes the "## HTTP/2" section of bench/RESULTS.md.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
if [[ "${QUICK:-0}" == 1 ]]; then
    : "${DURATION:=2}" "${ROUNDS:=1}" "${TRIES:=1}"
fi
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
warmup="${WARMUP:-1}"
loads="${LOADS:-h2c h2}"
servers="${SERVERS:-nginx srv-process srv-base}"
conns="${CONNS:-64}"
streams="${STREAMS:-10}"
cert="${CERT:-ecdsa}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
nginx="${NGINX:-/usr/sbin/nginx}"
hz="$(getconf CLK_TCK)"
bench_self=h2
srv_conf=""
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so" "$nginx" "$(command -v h2load || true)" \
    "$(command -v openssl || true)"; do
    if [[ -z "$f" || ! -e "$f" ]]; then
        echo "h2.sh: missing ${f:-a tool}; needs srv and demo (cmake --build $build --target srv demo)," \
            "nginx, h2load (apt-get install nghttp2-client) and openssl" >&2
        exit 1
    fi
done
"$nginx" -V 2>&1 | grep -q http_v2_module || { echo "h2.sh: $nginx has no http_v2_module" >&2; exit 1; }
grep -qE '^SRV_(ASAN|TSAN):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null &&
    echo "h2.sh: note: $build is a sanitizer build; srv's numbers will be pessimistic" >&2
# The script itself (parsing) and h2load stay off the servers' CPU.
taskset -cp "$ccpu" $$ >/dev/null

tmp="$(mktemp -d /tmp/srv-h2-bench.XXXXXX)"
roots=()
cleanup() {
    stop_servers
    if [[ "${KEEP:-0}" == 1 ]]; then echo "h2.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The certificate: self-signed for localhost, made now (nothing secret is kept).
case "$cert" in
ecdsa) kopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
rsa) kopt=(-newkey rsa:2048) ;;
*) echo "h2.sh: unknown CERT $cert (ecdsa, rsa)" >&2; exit 2 ;;
esac
openssl req -x509 "${kopt[@]}" -nodes -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$tmp/cert.key" -out "$tmp/cert.crt" 2>/dev/null

# utime+stime (ticks) over the process trees rooted at the arguments.
ticks_of() {
    local p
    for p in $(tree_pids "$@"); do cat "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{sub(/^.*\) /, ""); s += $12 + $13} END {print s + 0}'
}

# The servers listen on $port (HTTP/1.1 for wait_ready; srv: also h2c), $hport (h2c by prior
# knowledge) and $tport (TLS, ALPN h2).
port="" hport="" tport=""

# srv DIR MODE: srv with the demo app; open_http2_protocol on a plain listener (h2c and the
# HTTP/1.1 of wait_ready on the same port) and on a TLS listener; the tree's root joins roots.
start_one_srv() {
    port="$(free_port)" tport="$(free_port)"
    hport="$port"
    srv_config "$1" "$2" "$port"
    cat >>"$1/srv.toml" <<EOF
open_http2_protocol = true

[[listen]]
name = "https"
type = "http"
host = "127.0.0.1"
port = $tport
ssl = true
ssl_cert_file = "$tmp/cert.crt"
ssl_key_file = "$tmp/cert.key"
open_http2_protocol = true
EOF
    launch_srv "$1" "$port"
    roots+=("$root_pid")
}

# nginx 1.22: `http2` on a listen without ssl is h2c by prior knowledge only, hence a separate
# HTTP/1.1 port for wait_ready. keepalive_requests also bounds the requests of an h2 connection
# (it replaced http2_max_requests, 1000 by default): raised so no connection ends mid-run.
start_nginx() {
    local d="$tmp/nginx"
    mkdir -p "$d/logs"
    port="$(free_port)" hport="$(free_port)" tport="$(free_port)"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    http2_max_concurrent_streams 128;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $tmp/cert.crt;
    ssl_certificate_key $tmp/cert.key;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$hport http2;
        listen 127.0.0.1:$tport ssl http2;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
EOF
    taskset -c "$scpu" "$nginx" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        -g 'daemon off;' >>"$d/logs/stdout.log" 2>&1 &
    roots+=("$!")
    wait_ready "$port" || { echo "h2.sh: nginx did not come up" >&2; cat "$d/logs/error.log" >&2; exit 1; }
}

stop_servers() {
    local p
    for p in "${roots[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    roots=() srv_conf=""
}

start_server() { # server
    case "$1" in
    nginx) start_nginx ;;
    srv-process) start_one_srv "$tmp/srv-process" process ;;
    srv-base) start_one_srv "$tmp/srv-base" base ;;
    *) echo "h2.sh: unknown server $1" >&2; exit 2 ;;
    esac
}

# h2load LOAD SECONDS LOG: one h2load run against the server up now.
h2load_run() {
    local url args=(-c"$conns" -m"$streams" -t1 -D "$2")
    case "$1" in
    h2) url="https://127.0.0.1:$tport/" args+=(--npn-list=h2) ;;
    h2c) url="http://127.0.0.1:$hport/" ;;
    *) echo "h2.sh: unknown load $1 (h2c, h2)" >&2; exit 2 ;;
    esac
    taskset -c "$ccpu" h2load "${args[@]}" "$url" >"$3" 2>&1
}

# A warm-up run, then the measured one; sets count, secs, errors, proto, body (the CPU samples).
load_h2() { # load log
    h2load_run "$1" "$warmup" "$2.warmup" || true
    b0="$(cpu_busy)" t0="$(ticks_of "${roots[@]}")"
    h2load_run "$1" "$duration" "$2" || echo "h2.sh: h2load exited with $? ($2)" >&2
    b1="$(cpu_busy)" t1="$(ticks_of "${roots[@]}")"
    count="$(sed -n 's/^requests: .* \([0-9]*\) succeeded, .*/\1/p' "$2")"
    # errors: failed + errored + responses that were not 2xx
    errors="$(sed -n 's/^requests: .* succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1 \2/p;
        s/^status codes: [0-9]* 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/\1 \2 \3/p' "$2" |
        awk '{for (i = 1; i <= NF; i++) s += $i} END {print s + 0}')"
    secs="$(sed -n 's/^finished in \([0-9.]*\)s,.*/\1/p' "$2")"
    proto="$(sed -n 's/^Application protocol: *\([^ ]*\).*/\1/p' "$2" | head -n1)"
    body="$(sed -n 's/^traffic: .* (\([0-9]*\)) data.*/\1/p' "$2")"
    local want=h2
    [[ "$1" == h2c ]] && want=h2c
    [[ "$proto" == "$want" ]] || echo "h2.sh: $1: h2load spoke '${proto:-nothing}', not $want" \
        "($2: $(grep -m1 -i 'error\|fail' "$2" || true))" >&2
    [[ "${body:-0}" == "$((13 * ${count:-0}))" ]] ||
        echo "h2.sh: $1: ${body:-0} body bytes for ${count:-0} requests, not 13 each ($2)" >&2
}

# One measured run against the server up now; its line to $tmp/row.
run_load() { # round load server
    local idle log="$tmp/$2-r$1-$3.log" b0 b1 t0 t1 count secs errors proto body
    idle="$(wait_quiet)"
    load_h2 "$2" "$log"
    echo "round=$1 load=$2 server=$3 count=${count:-0} secs=${secs:-1} errors=${errors:-0}" \
        "proto=${proto:-none} body=${body:-0} cpu_ticks=$((b1 - b0)) proc_ticks=$((t1 - t0)) hz=$hz" \
        "idle=$idle" >"$tmp/row"
    python3 - "$tmp/row" <<'EOF' >&2
import sys
r = dict(kv.split("=", 1) for kv in open(sys.argv[1]).read().split())
f = lambda k: float(r.get(k, 0))
n, secs, hz = f("count") or 1, f("secs") or 1, f("hz")
print(f"  {r['server']:<11} {r['load']:<4} round {r['round']}: {f('count') / secs:8.0f}/s"
      f"  cpu0 {f('cpu_ticks') * 1e6 / hz / n:7.2f} us ({100 * f('cpu_ticks') / hz / secs:3.0f}% busy,"
      f" {100 * (f('cpu_ticks') - f('proc_ticks')) / hz / secs:3.0f}% not server, {r['idle']}% before)"
      f"  proc {f('proc_ticks') * 1e6 / hz / n:7.2f} us  errors {r['errors']} ({r['proto']})")
EOF
}

noise_of() {
    awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
         END {s = v["secs"] > 0 ? v["secs"] : 1; printf "%d\n", 100 * (v["cpu_ticks"] - v["proc_ticks"]) / v["hz"] / s}' "$tmp/row"
}

load_avg="$(cut -d' ' -f1-3 /proc/loadavg)"
total=$((rounds * $(wc -w <<<"$loads") * $(wc -w <<<"$servers") * (2 * warmup + duration + 2)))
echo "h2.sh: $rounds round(s) x loads [$loads] x servers [$servers], ${duration}s each (~${total}s);" \
    "h2load -c$conns -m$streams; servers on CPU $scpu, load on CPU $ccpu; load average $load_avg" >&2
asked="DURATION=$duration ROUNDS=$rounds"
if [[ -n "${REPORT_FROM:-}" ]]; then # only re-report a kept run (also one stopped early)
    cp "$REPORT_FROM/results" "$tmp/results"
    rounds=0
else
    : >"$tmp/results"
fi
for ((r = 1; r <= rounds; r++)); do
    for l in $loads; do
        for s in $servers; do
            start_server "$s"
            best="" best_noise=1000
            for ((try = 1; try <= ${TRIES:-3}; try++)); do
                run_load "$r" "$l" "$s"
                noise="$(noise_of)"
                if ((noise < best_noise)); then best="$(cat "$tmp/row")" best_noise=$noise; fi
                ((noise <= ${NOISE_PCT:-10})) && break
                ((try < ${TRIES:-3})) && echo "  (CPU $scpu ${noise}% busy with other work: redoing)" >&2
            done
            echo "$best" >>"$tmp/results"
            stop_servers
        done
    done
done

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$tmp/results" "$commit" "$load_avg" "$duration" "$warmup" "$conns" "$streams" "$cert" \
    "$scpu" "$ccpu" "$("$nginx" -v 2>&1 | sed 's/.*\///')" "$(h2load --version | sed -n '1s/.* //p')" \
    <<'EOF' | tee "$tmp/report.md"
import os, statistics, sys, time
path, commit, load_avg, dur, warm, conns, streams, cert, scpu, ccpu, ngv, h2v = sys.argv[1:]
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(path) if l.strip()]
f = lambda r, k: float(r.get(k, 0) or 0)
for r in rows:
    n, secs, hz = f(r, "count") or 1, f(r, "secs") or 1, f(r, "hz")
    r["rate"] = f(r, "count") / secs
    r["cpu"] = f(r, "cpu_ticks") * 1e6 / hz / n
    r["proc"] = f(r, "proc_ticks") * 1e6 / hz / n
    r["noise"] = 100 * (f(r, "cpu_ticks") - f(r, "proc_ticks")) / hz / secs
osr = dict(l.split("=", 1) for l in open("/etc/os-release").read().split("\n") if "=" in l)
print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()}-core "
      f"{osr['NAME'].strip(chr(34))} {osr['VERSION_ID'].strip(chr(34))} VM, kernel {os.uname().release}; commit: {commit}")
print(f"- {len(set(r['round'] for r in rows))} round(s) of {dur}s per run after a {warm}s warm-up, servers "
      f"alternated within each load; load average at start: {load_avg}")
print(f"- servers pinned to CPU {scpu} (srv: worker_num = 1, reactor_num = 1, open_http2_protocol = true, "
      f"HTTP/2 settings at their defaults; nginx {ngv}: 1 worker, `return 200`, access_log off, "
      f"keepalive_requests 100000000, http2 defaults), load pinned to CPU {ccpu}: "
      f"`h2load {h2v} -t1 -c{conns} -m{streams}`, GET / -> \"Hello, World!\"; h2: ALPN h2 only, {'ECDSA P-256' if cert == 'ecdsa' else 'RSA 2048'} "
      "certificate, OpenSSL's defaults (TLS 1.3, X25519); h2c: prior knowledge (nginx: `listen ... http2` "
      "without ssl)")
print(f"- CPU us = busy time of CPU {scpu} (/proc/stat user+nice+system+irq+softirq) / requests; proc us = "
      f"utime+stime of the server process trees / requests; not server = CPU {scpu} busy time outside the "
      "servers' own, % of the run. Medians over rounds; errors (failed, errored, not 2xx) are totals")
titles = {"h2": f"h2 over TLS, {conns} connections x {streams} streams",
          "h2c": f"h2c (prior knowledge), {conns} connections x {streams} streams"}
targets = []
for load in dict.fromkeys(r["load"] for r in rows):
    g = [r for r in rows if r["load"] == load]
    print(f"\n### {titles.get(load, load)}\n")
    print("| server | req/s | CPU us/request | vs nginx | proc us/request | vs nginx | not server | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    med = {}
    for s in dict.fromkeys(r["server"] for r in g):
        h = [r for r in g if r["server"] == s]
        med[s] = {k: statistics.median(r[k] for r in h) for k in ("rate", "cpu", "proc", "noise")}
        med[s]["errors"] = sum(int(f(r, "errors")) for r in h)
    n = med.get("nginx")
    for s, m in med.items():
        vs = lambda k: f"{m[k] / n[k]:.2f}x" if n and n[k] else "-"
        print(f"| {s} | {m['rate']:.0f} | {m['cpu']:.2f} | {vs('cpu')} | {m['proc']:.2f} | {vs('proc')} | "
              f"{m['noise']:.0f}% | {m['errors']} |")
        if n and n["cpu"] and s != "nginx":
            targets.append(f"- {load}: {s} CPU/request {m['cpu'] / n['cpu']:.2f}x nginx (target <= 1.0x): "
                           f"{'met' if m['cpu'] <= n['cpu'] else 'NOT met'}")
if targets:
    print("\nTargets (issue 14):")
    print("\n".join(targets))
print("\n<details><summary>Raw runs</summary>\n\n```")
for r in rows:
    print(" ".join(f"{k}={v}" for k, v in r.items() if k not in ("rate", "cpu", "proc", "noise")))
print("```\n\n</details>")
EOF
if [[ "${WRITE_RESULTS:-0}" == 1 ]]; then
    write_section "HTTP/2" \
        "\`$asked bench/h2.sh\` (Release build at the commit below)." \
        "$tmp/report.md"
fi
