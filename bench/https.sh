#!/usr/bin/env bash
# HTTPS benchmark: srv (process mode and base mode, 1 worker, 1 reactor) against nginx (1 worker)
# terminating TLS with the same certificate, for an ECDSA P-256 and an RSA 2048 certificate
# (made by the script with the openssl command). Every server process runs on CPU 0, the load
# on CPU 1. Loads, each in one run per server, servers alternating within each load and round:
#   ka      keep-alive GET / -> "Hello, World!" over TLS, 64 connections (h2load --h1 -t1):
#           CPU us per request
#   full    a new connection per request (GET /, Connection: close), no resumption: handshakes/s
#           and CPU us per handshake (bench/tlsload.c -m hs)
#   resume  the same, each connection offering the session it got last (tickets): resumed
#           handshakes/s, CPU us per handshake, and the share the server really resumed
#   wss     WebSocket echo over TLS, 64 connections, masked 64-byte text frames, every echo
#           checked (bench/tlsload.c -m wss): CPU us per message. srv serves /ws itself; nginx
#           terminates TLS and proxies /ws to srv (base mode, plain ws) on CPU 0 too: the
#           deployment srv's own TLS replaces, so the nginx row counts both processes.
# CPU us per unit = busy jiffies of CPU 0 (/proc/stat) over the run / units served, as
# bench/http.sh; proc us = utime+stime of the server's process trees only (the cross-check).
#   usage: bench/https.sh [BUILD_DIR=/work/main/build-bench]   (needs BUILD_DIR/srv and
#          examples/demo.so, nginx, h2load (Debian: nghttp2-client), openssl, cc and libssl-dev)
# Env: DURATION (10 s per run), ROUNDS (3), WARMUP (1 s, unmeasured, before each run),
#      CERTS ("ecdsa rsa"), LOADS ("ka full resume wss"), SERVERS ("nginx srv-process srv-base"),
#      CONNS (64: ka and wss), HS_CONNS (32: full and resume), SIZE (64: wss message bytes),
#      WSS_BACKEND (base: srv's mode behind nginx for wss), SERVER_CPU (0), CLIENT_CPU (1),
#      NGINX (/usr/sbin/nginx), QUIET_PCT / QUIET_WAIT / NOISE_PCT / TRIES / BUSY_WAIT as in
#      bench/http.sh, KEEP=1 keeps the temp dir (configs, certificates, logs), REPORT_FROM=<kept
#      dir> only re-reports its results.
#      The figures go to bench/RESULTS.md by hand (the "## HTTPS" section).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
warmup="${WARMUP:-1}"
certs="${CERTS:-ecdsa rsa}"
loads="${LOADS:-ka full resume wss}"
servers="${SERVERS:-nginx srv-process srv-base}"
conns="${CONNS:-64}"
hs_conns="${HS_CONNS:-32}"
size="${SIZE:-64}"
wss_backend="${WSS_BACKEND:-base}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
nginx="${NGINX:-/usr/sbin/nginx}"
hz="$(getconf CLK_TCK)"
bench_self=https
srv_conf=""
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so" "$nginx" "$(command -v h2load || true)" \
    "$(command -v openssl || true)" "$(command -v cc || true)"; do
    if [[ -z "$f" || ! -e "$f" ]]; then
        echo "https.sh: missing ${f:-a tool}; needs srv and demo (cmake --build $build --target srv demo)," \
            "nginx, h2load (apt-get install nghttp2-client), openssl, cc and libssl-dev" >&2
        exit 1
    fi
done
grep -qE '^SRV_(ASAN|TSAN):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null &&
    echo "https.sh: note: $build is a sanitizer build; srv's numbers will be pessimistic" >&2
taskset -cp "$ccpu" $$ >/dev/null

tmp="$(mktemp -d /tmp/srv-https-bench.XXXXXX)"
roots=() tl_pid=""
cleanup() {
    if [[ -n "$tl_pid" ]]; then kill "$tl_pid" 2>/dev/null || true; fi
    stop_servers
    if [[ "${KEEP:-0}" == 1 ]]; then echo "https.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

cc -O2 -Wall -o "$tmp/tlsload" "$here/tlsload.c" -lssl -lcrypto

# The certificates: self-signed for localhost, made now (nothing secret is kept).
mkdir -p "$tmp/certs"
for c in $certs; do
    case "$c" in
    ecdsa) kopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) kopt=(-newkey rsa:2048) ;;
    *) echo "https.sh: unknown certificate $c (ecdsa, rsa)" >&2; exit 2 ;;
    esac
    openssl req -x509 "${kopt[@]}" -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$tmp/certs/$c.key" -out "$tmp/certs/$c.crt" 2>/dev/null
done

# utime+stime (ticks) over the process trees rooted at the arguments.
ticks_of() {
    local p
    for p in $(tree_pids "$@"); do cat "/proc/$p/stat" 2>/dev/null || true; done |
        awk '{sub(/^.*\) /, ""); s += $12 + $13} END {print s + 0}'
}

port="" tport=""

# srv DIR MODE [CERT]: srv with the demo app; a plain listener on $port (for wait_ready) and,
# with CERT, a TLS listener on $tport (WebSocket on); the tree's root joins roots.
start_one_srv() {
    port="$(free_port)"
    srv_config "$1" "$2" "$port"
    if [[ -n "${3:-}" ]]; then
        tport="$(free_port)"
        cat >>"$1/srv.toml" <<EOF

[[listen]]
name = "https"
type = "http"
host = "127.0.0.1"
port = $tport
websocket = true
ssl = true
ssl_cert_file = "$tmp/certs/$3.crt"
ssl_key_file = "$tmp/certs/$3.key"
EOF
    else
        echo "websocket = true" >>"$1/srv.toml"
    fi
    launch_srv "$1" "$port"
    roots+=("$root_pid")
}

start_nginx() { # cert load: TLS on $tport; /ws goes to a plain srv behind it for wss
    local d="$tmp/nginx-$1" backend=""
    if [[ "$2" == wss ]]; then
        start_one_srv "$tmp/backend" "$wss_backend"
        backend="$port"
        srv_conf="" # stopped with the other roots
    fi
    mkdir -p "$d/logs"
    port="$(free_port)" tport="$(free_port)"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $tmp/certs/$1.crt;
    ssl_certificate_key $tmp/certs/$1.key;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tport ssl;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
        location /ws {
            proxy_pass http://127.0.0.1:${backend:-1};
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }
    }
}
EOF
    taskset -c "$scpu" "$nginx" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        -g 'daemon off;' >>"$d/logs/stdout.log" 2>&1 &
    roots+=("$!")
    wait_ready "$port" || { echo "https.sh: nginx did not come up" >&2; cat "$d/logs/error.log" >&2; exit 1; }
}

stop_servers() {
    local p
    for p in "${roots[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    roots=() srv_conf=""
}

start_server() { # server cert load
    case "$1" in
    nginx) start_nginx "$2" "$3" ;;
    srv-process) start_one_srv "$tmp/srv-process-$2" process "$2" ;;
    srv-base) start_one_srv "$tmp/srv-base-$2" base "$2" ;;
    *) echo "https.sh: unknown server $1" >&2; exit 2 ;;
    esac
}

# ka: a warm-up run, then the measured one; sets count, secs, errors (and the CPU samples).
load_ka() {
    local url="https://127.0.0.1:$tport/" log="$1"
    taskset -c "$ccpu" h2load --h1 -c"$conns" -t1 -D "$warmup" "$url" >/dev/null 2>&1 || true
    b0="$(cpu_busy)" t0="$(ticks_of "${roots[@]}")"
    taskset -c "$ccpu" h2load --h1 -c"$conns" -t1 -D "$duration" "$url" >"$log" 2>&1 ||
        echo "https.sh: h2load exited with $? ($log)" >&2
    b1="$(cpu_busy)" t1="$(ticks_of "${roots[@]}")"
    count="$(sed -n 's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1/p' "$log")"
    errors="$(sed -n 's/^requests: .* succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1 \2/p' "$log" |
        awk '{print $1 + $2}')"
    secs="$(sed -n 's/^finished in \([0-9.]*\)s,.*/\1/p' "$log")"
    extra=""
}

# full, resume, wss: tlsload warms up, says READY, and measures from SIGUSR1 on.
load_tlsload() { # load log
    local args=(-p "$tport" -d "$duration" -w "$warmup" -W) i
    case "$1" in
    full) args+=(-m hs -c "$hs_conns") ;;
    resume) args+=(-m hs -r -c "$hs_conns") ;;
    wss) args+=(-m wss -u /ws -c "$conns" -s "$size") ;;
    esac
    taskset -c "$ccpu" "$tmp/tlsload" "${args[@]}" >"$2" 2>&1 &
    tl_pid=$!
    for ((i = 0; i < 600; i++)); do
        grep -q '^READY' "$2" && break
        kill -0 "$tl_pid" 2>/dev/null || break
        sleep 0.05
    done
    b0="$(cpu_busy)" t0="$(ticks_of "${roots[@]}")"
    kill -USR1 "$tl_pid" 2>/dev/null || true
    wait "$tl_pid" || echo "https.sh: tlsload exited with $? ($2)" >&2
    b1="$(cpu_busy)" t1="$(ticks_of "${roots[@]}")"
    tl_pid=""
    local res
    res="$(grep '^RESULT ' "$2" || echo 'RESULT count=0 secs=1 errors=1 error="no result"')"
    count="$(sed -n 's/.* count=\([0-9]*\).*/\1/p' <<<"$res")"
    secs="$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$res")"
    errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$res")"
    extra=""
    [[ "$1" == wss ]] || extra="$(grep -o 'handshakes=[0-9]* resumed=[0-9]*' <<<"$res" || true)"
    grep -q 'error=""' <<<"$res" || echo "https.sh: $1: $(grep -o 'error=.*' <<<"$res")" >&2
}

# One measured run against the servers up now; its line to $tmp/row.
run_load() { # round cert load server
    local idle log="$tmp/$3-r$1-$2-$4.log" b0 b1 t0 t1 count secs errors extra
    idle="$(wait_quiet)"
    if [[ "$3" == ka ]]; then load_ka "$log"; else load_tlsload "$3" "$log"; fi
    echo "round=$1 cert=$2 load=$3 server=$4 count=${count:-0} secs=${secs:-1} errors=${errors:-0}" \
        "cpu_ticks=$((b1 - b0)) proc_ticks=$((t1 - t0)) hz=$hz idle=$idle $extra" >"$tmp/row"
    python3 - "$tmp/row" <<'EOF' >&2
import sys
r = dict(kv.split("=", 1) for kv in open(sys.argv[1]).read().split())
f = lambda k: float(r.get(k, 0))
n, secs, hz = f("count") or 1, f("secs") or 1, f("hz")
res = f" resumed {f('resumed'):.0f}/{f('handshakes'):.0f}" if "resumed" in r else ""
print(f"  {r['server']:<11} {r['cert']:<5} {r['load']:<6} round {r['round']}: {f('count') / secs:8.0f}/s"
      f"  cpu0 {f('cpu_ticks') * 1e6 / hz / n:7.2f} us ({100 * f('cpu_ticks') / hz / secs:3.0f}% busy,"
      f" {100 * (f('cpu_ticks') - f('proc_ticks')) / hz / secs:3.0f}% not server, {r['idle']}% before)"
      f"  proc {f('proc_ticks') * 1e6 / hz / n:7.2f} us  errors {r['errors']}{res}")
EOF
}

noise_of() {
    awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}}
         END {s = v["secs"] > 0 ? v["secs"] : 1; printf "%d\n", 100 * (v["cpu_ticks"] - v["proc_ticks"]) / v["hz"] / s}' "$tmp/row"
}

load_avg="$(cut -d' ' -f1-3 /proc/loadavg)"
total=$((rounds * $(wc -w <<<"$certs") * $(wc -w <<<"$loads") * $(wc -w <<<"$servers") * (duration + warmup + 2)))
echo "https.sh: $rounds round(s) x certs [$certs] x loads [$loads] x servers [$servers], ${duration}s each" \
    "(~${total}s); servers on CPU $scpu, load on CPU $ccpu; load average $load_avg" >&2
if [[ -n "${REPORT_FROM:-}" ]]; then # only re-report a kept run (also one stopped early)
    cp "$REPORT_FROM/results" "$tmp/results"
    rounds=0
else
    : >"$tmp/results"
fi
for ((r = 1; r <= rounds; r++)); do
    for c in $certs; do
        for l in $loads; do
            for s in $servers; do
                start_server "$s" "$c" "$l"
                best="" best_noise=1000
                for ((try = 1; try <= ${TRIES:-3}; try++)); do
                    run_load "$r" "$c" "$l" "$s"
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
done

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$tmp/results" "$commit" "$load_avg" "$duration" "$warmup" "$conns" "$hs_conns" "$size" \
    "$scpu" "$ccpu" "$wss_backend" <<'EOF' | tee "$tmp/report.md"
import os, statistics, sys, time
path, commit, load_avg, dur, warm, conns, hs_conns, size, scpu, ccpu, backend = sys.argv[1:]
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
print(f"- servers pinned to CPU {scpu} (srv: worker_num = 1, reactor_num = 1; nginx: 1 worker, ssl_protocols "
      f"TLSv1.2 TLSv1.3, ssl_session_tickets on, access_log off), load pinned to CPU {ccpu}; "
      "OpenSSL's defaults on both sides (TLS 1.3, X25519)")
print(f"- ka: `h2load --h1 -t1 -c{conns}`, keep-alive GET / over TLS; full / resume: `bench/tlsload.c -m hs`, "
      f"{hs_conns} connections each doing handshake, GET / with Connection: close, read to the end, again "
      "(resume: offering the session it got last); wss: `bench/tlsload.c -m wss`, "
      f"{conns} connections, ping-pong of masked {size}-byte text frames, every echo checked. "
      f"nginx's wss row is nginx terminating TLS in front of srv ({backend} mode, plain ws), both on CPU {scpu}")
print(f"- CPU us = busy time of CPU {scpu} (/proc/stat user+nice+system+irq+softirq) / units (requests, "
      "handshakes, messages); proc us = utime+stime of the server process trees / units; not server = CPU "
      f"{scpu} busy time outside the servers' own, % of the run. Medians over rounds; errors are totals")
units = {"ka": ("req/s", "request"), "full": ("handshakes/s", "handshake"),
         "resume": ("handshakes/s", "handshake"), "wss": ("msg/s", "message")}
titles = {"ka": f"keep-alive, {conns} connections", "full": "full handshakes (new connection per request)",
          "resume": "resumed handshakes (new connection per request, session tickets)",
          "wss": f"WSS echo, {conns} connections"}
targets = []
for cert in dict.fromkeys(r["cert"] for r in rows):
    for load in dict.fromkeys(r["load"] for r in rows):
        g = [r for r in rows if r["cert"] == cert and r["load"] == load]
        if not g:
            continue
        rate_u, unit = units[load]
        print(f"\n### {'ECDSA P-256' if cert == 'ecdsa' else 'RSA 2048'}: {titles[load]}\n")
        extra = " resumed |" if load == "resume" else ""
        print(f"| server | {rate_u} | CPU us/{unit} | vs nginx | proc us/{unit} | vs nginx | not server | errors |{extra}")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if extra else ""))
        med = {}
        for s in dict.fromkeys(r["server"] for r in g):
            h = [r for r in g if r["server"] == s]
            med[s] = {k: statistics.median(r[k] for r in h) for k in ("rate", "cpu", "proc", "noise")}
            med[s]["errors"] = sum(int(f(r, "errors")) for r in h)
            hs = sum(f(r, "handshakes") for r in h)
            med[s]["resumed"] = 100 * sum(f(r, "resumed") for r in h) / hs if hs else 0
        n = med.get("nginx")
        for s, m in med.items():
            vs = lambda k: f"{m[k] / n[k]:.2f}x" if n and n[k] else "-"
            res = f" {m['resumed']:.0f}% |" if extra else ""
            print(f"| {s} | {m['rate']:.0f} | {m['cpu']:.2f} | {vs('cpu')} | {m['proc']:.2f} | {vs('proc')} | "
                  f"{m['noise']:.0f}% | {m['errors']} |{res}")
            if n and s != "nginx" and load == "ka":
                targets.append(f"- {cert} ka: {s} CPU/request {m['cpu'] / n['cpu']:.2f}x nginx (target <= 1.1x): "
                               f"{'met' if m['cpu'] <= 1.1 * n['cpu'] else 'NOT met'}")
            if n and s != "nginx" and load in ("full", "resume"):
                targets.append(f"- {cert} {load}: {s} {m['rate']:.0f} handshakes/s vs nginx {n['rate']:.0f} "
                               f"(target >=): {'met' if m['rate'] >= n['rate'] else 'NOT met'}; CPU/handshake "
                               f"{m['cpu'] / n['cpu']:.2f}x nginx")
if targets:
    print("\nTargets (issue 13):")
    print("\n".join(targets))
print("\n<details><summary>Raw runs</summary>\n\n```")
for r in rows:
    print(" ".join(f"{k}={v}" for k, v in r.items() if k not in ("rate", "cpu", "proc", "noise")))
print("```\n\n</details>")
EOF
