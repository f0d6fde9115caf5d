#!/usr/bin/env bash
# Task benchmark: srv (worker_num = 1, reactor_num = 1, task_worker_num = 1 and 2; process mode and
# base mode) with the demo app, loaded by `wrk -t1` on two endpoints:
#   GET /task?ms=0   the worker delivers a task ("sleep 0") and waits for its result: one full round
#                    trip worker -> task queue -> task worker -> result -> worker per request, so
#                    requests/s = tasks delivered and finished per second;
#   GET /task/async  the worker delivers a task and answers at once: requests/s = tasks delivered
#                    per second. The demo's async task sleeps 10 ms, so task workers finish at most
#                    ~100/s each and the queue only grows: these runs are short (ASYNC_DURATION) with
#                    task_max_queue = ASYNC_QUEUE so the queue (an 8 MiB ring) still has room; a full
#                    queue answers 503 (counted apart). Finished tasks (GET /task/finished) too.
# Every response is checked by a wrk Lua script (status, body shape). Every server process on CPU 0,
# wrk on CPU 1; CPU us/task = busy time of CPU 0 (/proc/stat) / tasks answered 200.
#   usage: bench/task.sh [BUILD_DIR=/work/main/build-bench]   (needs BUILD_DIR/srv, examples/demo.so)
# Env: DURATION (10 s per sync run), ASYNC_DURATION (2 s), ASYNC_QUEUE (1000000), ROUNDS (2),
#      WARMUP (1 s, sync only), CONNS (64), MODES ("process base"), TASK_WORKERS ("1 2"), LOADS ("sync async"), SERVER_CPU (0), CLIENT_CPU (1),
#      QUIET_PCT (10) / QUIET_WAIT (30 s) as in bench/http.sh; BUSY_WAIT (900 s): each run first
#      waits while another bench script runs (they share CPUs 0/1); KEEP=1 keeps the temp dir,
#      REPORT_FROM=<kept dir> only re-reports its results,
#      WRITE_RESULTS=1 writes the "## Tasks" section of bench/RESULTS.md (replacing an earlier one).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
duration="${DURATION:-10}"
async_duration="${ASYNC_DURATION:-2}"
async_queue="${ASYNC_QUEUE:-1000000}"
rounds="${ROUNDS:-2}"
warmup="${WARMUP:-1}"
conns="${CONNS:-64}"
modes="${MODES:-process base}"
tws="${TASK_WORKERS:-1 2}"
loads="${LOADS:-sync async}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
hz="$(getconf CLK_TCK)"
bench_self=task
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so" "$(command -v wrk || true)"; do
    [[ -n "$f" && -e "$f" ]] || { echo "task.sh: missing ${f:-wrk}; build: cmake --build $build --target srv demo" >&2; exit 1; }
done
grep -qE '^SRV_(ASAN|TSAN):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null &&
    echo "task.sh: note: $build is a sanitizer build; numbers will be pessimistic" >&2
taskset -cp "$ccpu" $$ >/dev/null

tmp="$(mktemp -d /tmp/srv-task-bench.XXXXXX)"
srv_conf="" root_pid=""
cleanup() {
    stop_srv
    if [[ "${KEEP:-0}" == 1 ]]; then echo "task.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# wrk script: sync bodies look like "task N done by task worker K (attempt 1)", async bodies are
# the task id; 503 (queue full) is counted apart from other bad statuses.
cat >"$tmp/check.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; full = 0; bad_status = 0; bad_body = 0; first_bad = "" end
function response(status, headers, body)
    if status == 503 then
        full = full + 1
    elseif status ~= 200 then
        bad_status = bad_status + 1
        if first_bad == "" then first_bad = "status " .. status .. " " .. (body or "") end
    elseif not (string.match(body, "^task %d+ done by task worker %d+") or string.match(body, "^%d+\n$")) then
        bad_body = bad_body + 1
        if first_bad == "" then first_bad = "body " .. string.format("%q", body or "nil") end
    else
        ok = ok + 1
    end
end
function done(summary, latency, requests)
    local o, f, s, b, fb = 0, 0, 0, 0, ""
    for _, t in ipairs(threads) do
        o = o + t:get("ok"); f = f + t:get("full"); s = s + t:get("bad_status"); b = b + t:get("bad_body")
        if fb == "" then fb = t:get("first_bad") end
    end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d ok=%d full=%d " ..
        "bad_status=%d bad_body=%d sockerr=%d\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), o, f, s, b,
        e.connect + e.read + e.write + e.timeout))
    if fb ~= "" then io.write("FIRST_BAD " .. fb .. "\n") end
end
EOF

# One run's line -> a progress line on stderr.
cat >"$tmp/row.py" <<'EOF'
import sys
r = dict(kv.split("=", 1) for kv in sys.stdin.read().split())
f = lambda k: float(r.get(k, 0))
secs = f("duration_us") / 1e6 or 1
print(f"  {r['server']:<7} tw={r['tw']} {r['load']:<5} round {r['round']}: {f('requests') / secs:7.0f} req/s,"
      f" {f('ok') / secs:7.0f} ok/s  p50 {f('p50_us'):6.0f} us  p99 {f('p99_us'):7.0f} us"
      f"  cpu0 {f('cpu_ticks') * 1e6 / f('hz') / max(f('ok'), 1):6.2f} us/task  503 {r.get('full')}"
      f"  bad {int(f('bad_status') + f('bad_body'))} sockerr {r.get('sockerr')} finished {r['finished']}"
      f" ({r['idle']}% before)")
EOF


start_srv() { # mode task_workers task_max_queue
    local d="$tmp/srv-$1-$2-$3"
    port="$(free_port)"
    srv_config "$d" "$1" "$port" "task_worker_num = $2
task_max_queue = $3"
    launch_srv "$d" "$port"
}

run_load() { # round mode tw load
    local url log="$tmp/wrk-$1-$2-$3-$4.log" idle b0 b1 fin0 fin1 res secs="$duration"
    [[ "$4" == sync ]] && url="http://127.0.0.1:$port/task?ms=0" || url="http://127.0.0.1:$port/task/async"
    [[ "$4" == sync ]] || secs="$async_duration"
    if [[ "$4" == sync ]] && ((warmup > 0)); then
        taskset -c "$ccpu" wrk -t1 -c"$conns" -d"${warmup}s" "$url" >/dev/null 2>&1 || true
    fi
    idle="$(wait_quiet)"
    fin0="$(curl -s --max-time 5 "http://127.0.0.1:$port/task/finished" || echo 0)"
    b0="$(cpu_busy)"
    taskset -c "$ccpu" wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$tmp/check.lua" "$url" \
        >"$log" 2>&1 || echo "task.sh: wrk exited with $? ($log)" >&2
    b1="$(cpu_busy)"
    fin1="$(curl -s --max-time 5 "http://127.0.0.1:$port/task/finished" || echo 0)"
    res="$(grep '^RESULT ' "$log" || echo 'RESULT requests=0 duration_us=1')"
    grep '^FIRST_BAD ' "$log" | sed "s/^/task.sh: $2 tw=$3 $4 round $1: /" >&2 || true
    echo "round=$1 server=$2 tw=$3 load=$4 idle=$idle cpu_ticks=$((b1 - b0)) hz=$hz" \
        "finished=$((${fin1:-0} - ${fin0:-0})) ${res#RESULT }" >>"$tmp/results"
    tail -1 "$tmp/results" | python3 "$tmp/row.py" >&2
}

load_avg="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "task.sh: $rounds round(s) x modes [$modes] x task workers [$tws] x loads [$loads], ${duration}s each;" \
    "server on CPU $scpu, wrk on CPU $ccpu; load average $load_avg" >&2
if [[ -n "${REPORT_FROM:-}" ]]; then # only re-report a kept run
    for f in results; do cp "$REPORT_FROM/$f" "$tmp/$f"; done
else
    : >"$tmp/results"
    for ((r = 1; r <= rounds; r++)); do
        for m in $modes; do
            for t in $tws; do
                for l in $loads; do
                    # A fresh server per run: the async run leaves a long queue behind.
                    if [[ "$l" == sync ]]; then start_srv "$m" "$t" 65536; else start_srv "$m" "$t" "$async_queue"; fi
                    run_load "$r" "$m" "$t" "$l"
                    kill -0 "$root_pid" 2>/dev/null || echo "task.sh: srv ($m) died during the run" >&2
                    stop_srv
                done
            done
        done
    done
fi

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$tmp/results" "$commit" "$load_avg" "$duration" "$warmup" "$conns" "$scpu" "$ccpu" \
    "$async_duration" "$async_queue" >"$tmp/report.md" <<'EOF'
import os, statistics, sys, time
path, commit, load_avg, dur, warm, conns, scpu, ccpu, adur, aq = sys.argv[1:]
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(path) if l.strip()]
f = lambda r, k: float(r.get(k, 0) or 0)
for r in rows:
    secs = f(r, "duration_us") / 1e6 or 1
    r["rate"] = f(r, "requests") / secs
    r["okrate"] = f(r, "ok") / secs
    r["finrate"] = f(r, "finished") / secs
    r["cpu"] = f(r, "cpu_ticks") * 1e6 / f(r, "hz") / max(f(r, "ok"), 1)
osr = dict(l.split("=", 1) for l in open("/etc/os-release").read().split("\n") if "=" in l)
print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()}-core "
      f"{osr['NAME'].strip(chr(34))} {osr['VERSION_ID'].strip(chr(34))} VM, kernel {os.uname().release}; commit: {commit}")
print(f"- {len(set(r['round'] for r in rows))} round(s); sync runs {dur}s after a {warm}s warm-up, async runs {adur}s; "
      f"a fresh server per run; load average at start: {load_avg}")
print(f"- srv worker_num = 1, reactor_num = 1, every server process (task workers included) pinned to CPU {scpu}; "
      f"`wrk -t1 -c{conns} --latency` pinned to CPU {ccpu}; medians over rounds, error counts are totals")
print("- sync = GET /task?ms=0: deliver + wait for the result, so tasks/s = finished round trips/s; "
      "async = GET /task/async: deliver and answer the id at once, so tasks/s = deliveries/s; its tasks sleep "
      "10 ms (the demo), so task workers finish only ~100/s each and the queue grows: async runs are short, "
      f"with task_max_queue = {aq}, so the 8 MiB queue ring keeps room; a full queue answers 503 "
      "(\"queue full\", not counted as errors)")
print("- CPU us/task = busy time of CPU 0 (/proc/stat) / tasks answered 200 (includes the HTTP request around it)")
print()
print("| endpoint | mode | task workers | req/s | tasks/s (200) | p50 | p99 | CPU us/task | queue full (503) | finished during run | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for load in ("sync", "async"):
    for mode in ("process", "base"):
        for tw in sorted(set(r["tw"] for r in rows)):
            g = [r for r in rows if r["load"] == load and r["server"] == mode and r["tw"] == tw]
            if not g:
                continue
            m = lambda k: statistics.median(r[k] if k in ("rate", "okrate", "cpu", "finrate") else f(r, k) for r in g)
            errs = sum(int(f(r, "bad_status") + f(r, "bad_body") + f(r, "sockerr")) for r in g)
            ep = "GET /task?ms=0" if load == "sync" else "GET /task/async"
            print(f"| {ep} | {mode} | {tw} | {m('rate'):.0f} | {m('okrate'):.0f} | {m('p50_us'):.0f} us | "
                  f"{m('p99_us'):.0f} us | {m('cpu'):.2f} | {sum(int(f(r, 'full')) for r in g)} | "
                  f"{sum(int(f(r, 'finished')) for r in g) if load == 'async' else '-'} | {errs} |")
print()
print("<details><summary>Raw runs</summary>\n\n```")
for r in rows:
    print(" ".join(f"{k}={v}" for k, v in r.items() if k not in ("hz", "rate", "okrate", "finrate", "cpu")))
print("```\n\n</details>")
EOF
cat "$tmp/report.md"

if [[ "${WRITE_RESULTS:-0}" == 1 ]]; then
    write_section "Tasks" "\`bench/task.sh\`." "$tmp/report.md"
fi
