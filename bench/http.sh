#!/usr/bin/env bash
# HTTP benchmark: srv (process mode and base mode, 1 worker, 1 reactor) against nginx (1 worker,
# `return 200`) on GET / -> "Hello, World!". Every server process runs on CPU 0, wrk -t1 on CPU 1.
# The figure that ranks fast servers is server CPU per request (busy jiffies of CPU 0 from
# /proc/stat over the run / requests served), because one wrk thread saturates first.
#   usage: bench/http.sh [BUILD_DIR=/work/main/build-bench]   (needs BUILD_DIR/srv, examples/demo.so)
# Env: DURATION (10 s per run), ROUNDS (3), WARMUP (1 s, unmeasured, before each run),
#      LOADS ("ka64 ka256 close"), SERVERS ("nginx srv-process srv-base"), CLOSE_CONNS (64),
#      SERVER_CPU (0), CLIENT_CPU (1), NGINX (/usr/sbin/nginx), KEEP=1 keeps the temp dir (logs),
#      QUIET_PCT (10) / QUIET_WAIT (30 s): before each run, wait up to QUIET_WAIT for a second in
#      which CPU 0 is at most QUIET_PCT % busy (other jobs on a shared machine skew CPU 0's figure),
#      NOISE_PCT (10) / TRIES (3): a run where more than NOISE_PCT % of CPU 0 went to something
#      other than the server is redone, up to TRIES runs; the least noisy one is kept,
#      WRITE_RESULTS=1 writes the "## HTTP" section of bench/RESULTS.md (replacing an earlier one;
#      RESULTS_TITLE names another section, for a partial run).
#      Servers srv-process-alog and srv-base-alog are srv with the JSON access log on (a file in the
#      temp dir): the report gives their CPU per request against the same mode without it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
warmup="${WARMUP:-1}"
loads="${LOADS:-ka64 ka256 close}"
servers="${SERVERS:-nginx srv-process srv-base}"
close_conns="${CLOSE_CONNS:-64}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
nginx="${NGINX:-/usr/sbin/nginx}"
hz="$(getconf CLK_TCK)"
bench_self=http
srv_conf=""
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so" "$nginx" "$(command -v wrk || true)"; do
    if [[ -z "$f" || ! -e "$f" ]]; then
        echo "http.sh: missing ${f:-wrk}; build srv and demo: cmake --build $build --target srv demo" >&2
        exit 1
    fi
done
if grep -qE '^SRV_(ASAN|TSAN):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "http.sh: note: $build is a sanitizer build; srv's numbers will be pessimistic" >&2
fi

# The script itself (RSS sampling, parsing) and wrk stay off the server's CPU.
taskset -cp "$ccpu" $$ >/dev/null

tmp="$(mktemp -d /tmp/srv-http-bench.XXXXXX)"
cur_stop=""
cleanup() {
    [[ -n "$cur_stop" ]] && $cur_stop >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" == 1 ]]; then echo "http.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# wrk script: checks every response (status 200, exact body), counts mismatches per thread, and
# prints one machine-readable line with wrk's own counters and latency percentiles (us).
cat >"$tmp/check.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad_status = 0; bad_body = 0; first_bad = "" end
function response(status, headers, body)
    if status ~= 200 then
        bad_status = bad_status + 1
        if first_bad == "" then first_bad = "status " .. status end
    elseif body ~= "Hello, World!" then
        bad_body = bad_body + 1
        if first_bad == "" then first_bad = "body " .. string.format("%q", body or "nil") end
    else
        ok = ok + 1
    end
end
function done(summary, latency, requests)
    local o, s, b, fb = 0, 0, 0, ""
    for _, t in ipairs(threads) do
        o = o + t:get("ok"); s = s + t:get("bad_status"); b = b + t:get("bad_body")
        if fb == "" then fb = t:get("first_bad") end
    end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d ok=%d " ..
        "bad_status=%d bad_body=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        o, s, b, e.connect, e.read, e.write, e.status, e.timeout))
    if fb ~= "" then io.write("FIRST_BAD " .. fb .. "\n") end
end
EOF

# Sum of VmRSS (kB) over the tree rooted at $1.
tree_rss_kb() {
    local sum=0 p v
    for p in $(tree_pids "$1"); do
        v="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# utime+stime (ticks) summed over the tree's live processes (all threads of each).
tree_ticks() {
    local sum=0 p v
    for p in $(tree_pids "$1"); do
        v="$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || true)"
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

root_pid="" port=""

start_nginx() {
    local d="$tmp/nginx"
    mkdir -p "$d/logs"
    port="$(free_port)"
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
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
EOF
    taskset -c "$scpu" "$nginx" -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" \
        -g 'daemon off;' >>"$d/logs/stdout.log" 2>&1 &
    root_pid=$!
    cur_stop=stop_nginx
    wait_ready "$port" || { echo "http.sh: nginx did not come up" >&2; cat "$d/logs/error.log" >&2; exit 1; }
}

stop_nginx() {
    kill -QUIT "$root_pid" 2>/dev/null || true
    wait "$root_pid" 2>/dev/null || true
    cur_stop=""
}

start_srv() { # mode [server keys]
    local d="$tmp/srv-$1${2:+-alog}"
    port="$(free_port)"
    srv_config "$d" "$1" "$port" "${2:-}"
    cur_stop=stop_srv
    launch_srv "$d" "$port"
}

# One measured run: server already up on $port, pid tree at $root_pid. Writes its row to $tmp/row.
run_load() { # round load server
    local conns hdr=()
    case "$2" in
    ka64) conns=64 ;;
    ka256) conns=256 ;;
    close) conns=$close_conns hdr=(-H 'Connection: close') ;;
    *) echo "http.sh: unknown load $2" >&2; exit 2 ;;
    esac
    local url="http://127.0.0.1:$port/" log="$tmp/wrk-r$1-$2-$3.log"
    if ((warmup > 0)); then
        taskset -c "$ccpu" wrk -t1 -c"$conns" -d"${warmup}s" "${hdr[@]}" "$url" >/dev/null 2>&1 || true
    fi
    local idle
    idle="$(wait_quiet)"
    # RSS sampler: max over samples taken during the load.
    rm -f "$tmp/stop-sampler" "$tmp/rss"
    (
        m=0
        sleep 0.5
        while [[ ! -e "$tmp/stop-sampler" ]]; do
            r="$(tree_rss_kb "$root_pid")"
            ((r > m)) && m=$r
            echo "$m" >"$tmp/rss"
            sleep 0.5
        done
    ) &
    local sampler=$!
    local b0 t0 b1 t1
    b0="$(cpu_busy)" t0="$(tree_ticks "$root_pid")"
    taskset -c "$ccpu" wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$tmp/check.lua" \
        "${hdr[@]}" "$url" >"$log" 2>&1 || echo "http.sh: wrk exited with $? ($log)" >&2
    b1="$(cpu_busy)" t1="$(tree_ticks "$root_pid")"
    touch "$tmp/stop-sampler"
    wait "$sampler" 2>/dev/null || true
    local rss
    rss="$(cat "$tmp/rss" 2>/dev/null || echo 0)"
    local res
    res="$(grep '^RESULT ' "$log" || true)"
    if [[ -z "$res" ]]; then
        echo "http.sh: no RESULT line from wrk for round $1 $2 $3:" >&2
        cat "$log" >&2
        res="RESULT requests=0 duration_us=1 p50_us=0 p99_us=0 ok=0 bad_status=0 bad_body=0 connect=0 read=0 write=0 status=0 timeout=0"
    fi
    grep '^FIRST_BAD ' "$log" | sed "s/^/http.sh: $3 $2 round $1: /" >&2 || true
    # Fields: round load server req/s p50 p99 cpu_us/req proc_us/req rss_kb cpu0_busy% non2xx
    #         bad_body sockerr requests not_server% (cpu0 busy minus the server's own CPU, % of
    #         the run) cpu0_busy%_before (the quiet check)
    echo "$res" | awk -v round="$1" -v load="$2" -v srv="$3" -v db=$((b1 - b0)) \
        -v dt=$((t1 - t0)) -v hz="$hz" -v rss="$rss" -v idle="$idle" '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        END {
            n = v["requests"]; secs = v["duration_us"] / 1e6
            cpu = n > 0 ? db * 1e6 / hz / n : 0
            proc = n > 0 ? dt * 1e6 / hz / n : 0
            util = secs > 0 ? 100 * db / hz / secs : 0
            sock = v["connect"] + v["read"] + v["write"] + v["timeout"]
            other = secs > 0 ? 100 * (db - dt) / hz / secs : 0
            printf "%s\t%s\t%s\t%.0f\t%d\t%d\t%.2f\t%.2f\t%d\t%.0f\t%d\t%d\t%d\t%d\t%.0f\t%d\n", round, load,
                srv, n / secs, v["p50_us"], v["p99_us"], cpu, proc, rss, util, v["bad_status"],
                v["bad_body"], sock, n, other, idle
        }' >"$tmp/row"
    awk -F'\t' '{
        printf "  %-11s %-6s round %s: %7d req/s  p50 %5d us  p99 %6d us  cpu0 %5.2f us/req (%3d%% busy, %2d%% not server, %2d%% before)  proc %5.2f us/req  rss %5.1f MB  non2xx %d badbody %d sockerr %d\n",
            $3, $2, $1, $4, $5, $6, $7, $10, $15, $16, $8, $9 / 1024, $11, $12, $13 }' "$tmp/row" >&2
}

load_avg="$(cut -d' ' -f1-3 /proc/loadavg)"
total=$((rounds * $(wc -w <<<"$loads") * $(wc -w <<<"$servers") * (duration + warmup + 1)))
echo "http.sh: $rounds round(s) x loads [$loads] x servers [$servers], ${duration}s each (~${total}s);" \
    "servers on CPU $scpu, wrk on CPU $ccpu; load average $load_avg" >&2
: >"$tmp/results.tsv"
for ((r = 1; r <= rounds; r++)); do
    for l in $loads; do
        for s in $servers; do
            case "$s" in
            nginx) start_nginx ;;
            srv-process) start_srv process ;;
            srv-base) start_srv base ;;
            srv-process-alog | srv-base-alog)
                m="${s#srv-}" m="${m%-alog}"
                start_srv "$m" "access_log = \"$tmp/access-$m.log\"
access_log_format = \"json\""
                ;;
            *) echo "http.sh: unknown server $s" >&2; exit 2 ;;
            esac
            # Redo a run other jobs disturbed; keep the least disturbed (column 15: not server %).
            best="" best_noise=1000
            for ((try = 1; try <= ${TRIES:-3}; try++)); do
                run_load "$r" "$l" "$s"
                noise="$(cut -f15 "$tmp/row")"
                if ((noise < best_noise)); then best="$(cat "$tmp/row")" best_noise=$noise; fi
                ((noise <= ${NOISE_PCT:-10})) && break
                ((try < ${TRIES:-3})) && echo "  (CPU $scpu ${noise}% busy with other work: redoing)" >&2
            done
            echo "$best" >>"$tmp/results.tsv"
            $cur_stop
        done
    done
done

# Tables: median over rounds of each figure (errors summed), ratio of CPU/request to nginx's.
report() {
    local commit kernel
    commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    kernel="$(uname -r)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc --all)-core $(. /etc/os-release && echo "$NAME $VERSION_ID") VM, kernel $kernel; commit: $commit"
    echo "- $rounds round(s) of ${duration}s per run (after a ${warmup}s warm-up), servers alternated within each load;" \
        "load average at start: $load_avg"
    echo "- servers pinned to CPU $scpu, \`wrk -t1 --latency\` pinned to CPU $ccpu; Connection: close load uses $close_conns connections"
    echo "- CPU us/req = busy time of CPU $scpu (/proc/stat user+nice+system+irq+softirq) / requests; it also counts anything" \
        "else that ran on CPU $scpu (other jobs, kernel threads). proc us/req = utime+stime of the server's processes only" \
        "(a cross-check less sensitive to other load; softirq work may be outside it)."
    echo "- CPU 0 not server = CPU 0 busy time that was not the server processes' own CPU time, in % of the run:" \
        "other jobs, plus kernel work for the server done outside its context (softirq in idle, kworkers)." \
        "Each run starts after waiting (up to ${QUIET_WAIT:-30}s) for CPU 0 to be at most ${QUIET_PCT:-10}% busy for 1 s."
    echo "- RSS = sum of VmRSS over the server's process tree (max of samples during the run)."
    echo "- figures are medians over rounds; non-2xx, bad body and socket errors are totals over rounds."
    echo
    awk -F'\t' -v servers="$servers" -v loads="$loads" '
    function median(key, col,   n, i, j, a, t) {
        n = cnt[key]
        for (i = 1; i <= n; i++) a[i] = val[key, i, col]
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $2 SUBSEP $3; k = ++cnt[key]
        for (c = 4; c <= 16; c++) val[key, k, c] = $c
        for (c = 11; c <= 13; c++) sum[key, c] += $c
    }
    END {
        names["ka64"] = "keep-alive, 64 connections"; names["ka256"] = "keep-alive, 256 connections"
        names["close"] = "Connection: close"
        nl = split(loads, L, " "); ns = split(servers, S, " ")
        for (i = 1; i <= nl; i++) {
            l = L[i]; nk = l SUBSEP "nginx"
            ncpu = (nk in cnt) ? median(nk, 7) : 0
            nproc_ = (nk in cnt) ? median(nk, 8) : 0
            printf "### %s\n\n", ((l in names) ? names[l] : l)
            print "| server | req/s | p50 | p99 | CPU us/req | vs nginx | proc us/req | vs nginx | RSS | non-2xx | bad body | socket errors | CPU 0 not server |"
            print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            for (j = 1; j <= ns; j++) {
                key = l SUBSEP S[j]
                if (!(key in cnt)) continue
                cpu = median(key, 7); pr = median(key, 8)
                printf "| %s | %d | %d us | %d us | %.2f | %s | %.2f | %s | %.1f MB | %d | %d | %d | %d%% |\n",
                    S[j], median(key, 4), median(key, 5), median(key, 6), cpu,
                    (ncpu > 0 ? sprintf("%.2fx", cpu / ncpu) : "-"), pr,
                    (nproc_ > 0 ? sprintf("%.2fx", pr / nproc_) : "-"), median(key, 9) / 1024,
                    sum[key, 11], sum[key, 12], sum[key, 13], median(key, 15)
            }
            print ""
        }
        # Targets (issue 3): base <= 0.90x nginx CPU/req and process <= 1.5x on keep-alive loads,
        # srv p99 at 256 connections <= nginx, base RSS < nginx RSS.
        print "Targets:"
        split("ka64 ka256", K, " ")
        for (i = 1; i <= 2; i++) {
            l = K[i]; nk = l SUBSEP "nginx"
            if (!(nk in cnt)) continue
            n = median(nk, 7)
            b = l SUBSEP "srv-base"; p = l SUBSEP "srv-process"
            if (b in cnt) printf "- %s: base CPU/req %.2fx nginx (target <= 0.90x): %s\n", l, median(b, 7) / n, (median(b, 7) / n <= 0.90 ? "met" : "NOT met")
            if (p in cnt) printf "- %s: process CPU/req %.2fx nginx (target <= 1.5x): %s\n", l, median(p, 7) / n, (median(p, 7) / n <= 1.5 ? "met" : "NOT met")
        }
        # Issue 15: the JSON access log costs at most 10 % CPU per request.
        for (i = 1; i <= nl; i++) {
            split("process base", M, " ")
            for (m = 1; m <= 2; m++) {
                a = L[i] SUBSEP "srv-" M[m] "-alog"; o = L[i] SUBSEP "srv-" M[m]
                if (!(a in cnt) || !(o in cnt)) continue
                r = median(a, 7) / median(o, 7)
                printf "- %s: %s with the JSON access log: CPU/req %.2fx without it (target <= 1.10x): %s\n", L[i], M[m], r, (r <= 1.10 ? "met" : "NOT met")
            }
        }
        nk = "ka256" SUBSEP "nginx"
        if (nk in cnt) {
            n = median(nk, 6)
            for (j = 1; j <= ns; j++) {
                key = "ka256" SUBSEP S[j]
                if (S[j] == "nginx" || !(key in cnt)) continue
                printf "- ka256: %s p99 %d us vs nginx %d us (target <=): %s\n", S[j], median(key, 6), n, (median(key, 6) <= n ? "met" : "NOT met")
            }
            b = "ka256" SUBSEP "srv-base"
            if (b in cnt) printf "- ka256: base RSS %.1f MB vs nginx %.1f MB (target <): %s\n", median(b, 9) / 1024, median(nk, 9) / 1024, (median(b, 9) < median(nk, 9) ? "met" : "NOT met")
        }
    }' "$tmp/results.tsv"
    echo
    echo "<details><summary>Raw runs</summary>"
    echo
    echo '```'
    printf 'round\tload\tserver\treq/s\tp50_us\tp99_us\tcpu_us/req\tproc_us/req\trss_kb\tcpu0_busy%%\tnon2xx\tbad_body\tsockerr\trequests\tnot_server%%\tbusy_before%%\n'
    cat "$tmp/results.tsv"
    echo '```'
    echo
    echo "</details>"
}

report | tee "$tmp/report.md"

if [[ "${WRITE_RESULTS:-0}" == 1 ]]; then
    write_section "${RESULTS_TITLE:-HTTP}" \
        "srv vs nginx on GET / -> \"Hello, World!\", run by \`bench/http.sh\` (see bench/README.md)." \
        "$tmp/report.md"
fi
