#!/usr/bin/env bash
# Chaos drills against a Release build, in process and base mode; each prints one verdict line
# with its figures (and, with WRITE_RESULTS=1, they go to the "## Chaos" section of
# bench/RESULTS.md):
#   reload    `srv reload` every 2 s under load, keep-alive and a new connection per request:
#             target 0 failed requests
#   kill      kill -9 of a random worker every second under keep-alive load: process mode,
#             every request answered (a 503 is an answer; a socket error is not); base mode,
#             what is lost is counted and reported
#   slowloris slowhttptest (2,000 slow-header connections) beside normal load: normal-load p99
#             at most 2x its baseline
#   slowread  50 clients reading a streamed 20 MB response 4 KiB every 50 ms beside normal load:
#             p99 at most 2x its baseline
#   nofile    srv under `ulimit -n 256` with 1,000 clients: it keeps serving (accept backs off)
#   soak      mixed HTTP, WebSocket, task and table load for SOAK seconds, RSS of the tree
#             sampled every 10 s: flat within 10 % after the first minute
# usage: bench/chaos.sh [BUILD_DIR=build-bench]
# Env: MODES ("process base"), DRILLS ("reload kill slowloris slowread nofile soak"),
#      DURATION (30 s per load), SOAK (600 s), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1 keeps logs,
#      WRITE_RESULTS=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
modes="${MODES:-process base}"
drills="${DRILLS:-reload kill slowloris slowread nofile soak}"
duration="${DURATION:-30}"
soak="${SOAK:-600}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
hz="$(getconf CLK_TCK)"
bench_self=chaos
srv_conf=""
root_pid=""
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for t in wrk slowhttptest curl python3; do
    command -v "$t" >/dev/null || { echo "chaos.sh: missing $t (apt-get install $t)" >&2; exit 1; }
done
[[ -x "$build/srv" && -e "$build/examples/demo.so" ]] ||
    { echo "chaos.sh: build srv and the demo in $build first" >&2; exit 1; }
taskset -cp "$ccpu" $$ >/dev/null
tmp="$(mktemp -d /tmp/srv-chaos.XXXXXX)"
report="$tmp/report"
: >"$report"
cleanup() {
    stop_srv
    pkill -f "slowhttptest.*$tmp" 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 ]]; then echo "chaos.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# wrk script: 200 with the demo's body is ok; 503 is counted apart (an answer, not a success);
# one RESULT line with wrk's socket errors and latency percentiles (us).
cat >"$tmp/check.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; s503 = 0; bad = 0 end
function response(status, headers, body)
    if status == 200 then ok = ok + 1 elseif status == 503 then s503 = s503 + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
    local o, f, b = 0, 0, 0
    for _, t in ipairs(threads) do o = o + t:get("ok"); f = f + t:get("s503"); b = b + t:get("bad") end
    local e = summary.errors
    io.write(string.format("RESULT requests=%d ok=%d s503=%d bad=%d sockerr=%d p50_us=%d " ..
        "p99_us=%d\n", summary.requests, o, f, b, e.connect + e.read + e.write + e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
EOF

# field NAME FILE: a RESULT field.
field() { grep -o "$1=[0-9]*" "$2" | tail -1 | cut -d= -f2; }

# load OUT CONNS SECS [close]: wrk on the client CPU against GET /.
load() {
    local hdr=()
    [[ "${4:-}" == close ]] && hdr=(-H "Connection: close")
    taskset -c "$ccpu" wrk -t1 -c"$2" -d"$3"s --timeout 10s --latency -s "$tmp/check.lua" \
        "${hdr[@]}" "http://127.0.0.1:$port/" >"$1" 2>&1 || true
}

# start MODE [SERVER_KEYS [LISTENER_KEYS]]: srv with two workers (so a reload or a kill leaves
# one serving) and a task worker.
start() {
    stop_srv
    port="$(free_port)"
    srv_config "$tmp/$1" "$1" "$port" "$(printf 'task_worker_num = 1\n%s' "${2:-}")"
    sed -i 's/^worker_num = 1$/worker_num = 2/' "$tmp/$1/srv.toml"
    [[ -n "${3:-}" ]] && echo "$3" >>"$tmp/$1/srv.toml"
    launch_srv "$tmp/$1" "$port"
}

verdict() { echo "$*" | tee -a "$report"; }

workers_json() { "$build/srv" info --json -c "$srv_conf" 2>/dev/null; }

drill_reload() {
    local m=$1 kind out n
    for kind in keepalive close; do
        start "$m"
        out="$tmp/reload-$m-$kind"
        load "$out" 32 "$duration" "$([[ $kind == close ]] && echo close)" &
        local wl=$! reloads=0 refused=0 end=$((SECONDS + duration))
        while ((SECONDS < end - 1)); do
            sleep 2
            if "$build/srv" reload -c "$srv_conf" >/dev/null 2>&1; then
                reloads=$((reloads + 1))
            else refused=$((refused + 1)); fi
        done
        wait "$wl"
        n=$(($(field bad "$out") + $(field s503 "$out") + $(field sockerr "$out")))
        verdict "reload $m $kind: $(field requests "$out") requests, $n failed, $reloads reloads" \
            "($refused refused) -> $([[ $n -eq 0 && $refused -eq 0 ]] && echo PASS || echo FAIL)"
    done
}

drill_kill() {
    local m=$1 out="$tmp/kill-$m" kills=0
    start "$m"
    load "$out" 32 "$duration" &
    local wl=$! end=$((SECONDS + duration))
    while ((SECONDS < end - 1)); do
        sleep 1
        local pid
        pid="$(workers_json | python3 -c 'import json,random,sys
ws=[w["pid"] for w in json.load(sys.stdin)["workers"] if w["type"]=="worker" and w["pid"]>0]
print(random.choice(ws) if ws else 0)' || echo 0)"
        [[ "$pid" -gt 0 ]] && kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    done
    wait "$wl"
    local lost answered
    lost=$(($(field sockerr "$out") + $(field bad "$out")))
    answered="$(field s503 "$out") answered 503"
    if [[ $m == process ]]; then
        verdict "kill $m: $(field requests "$out") requests, $kills workers killed, $answered," \
            "$lost unanswered -> $([[ $lost -eq 0 ]] && echo PASS || echo FAIL)"
    else
        verdict "kill $m: $(field requests "$out") requests, $kills workers killed, $answered," \
            "$lost lost with the killed workers' connections (base mode: reported)"
    fi
}

# p99 of normal load (16 keep-alive connections) while `$@` runs beside it, against a baseline.
beside() {
    local name=$1 m=$2
    shift 2
    start "$m" "max_conn = 20000"
    load "$tmp/$name-$m-base" 16 "$duration"
    "$@" &
    local bg=$!
    sleep 5 # let the attack ramp up before measuring
    load "$tmp/$name-$m-under" 16 "$duration"
    kill "$bg" 2>/dev/null || true
    wait "$bg" 2>/dev/null || true
    pkill -f "slowhttptest.*$tmp" 2>/dev/null || true
    local b u
    b="$(field p99_us "$tmp/$name-$m-base")"
    u="$(field p99_us "$tmp/$name-$m-under")"
    local ratio
    ratio="$(python3 -c "print(f'{$u / max($b, 1):.1f}')")"
    verdict "$name $m: normal-load p99 $u us against $b us alone (${ratio}x)," \
        "$(field sockerr "$tmp/$name-$m-under") socket errors ->" \
        "$(python3 -c "print('PASS' if $u <= 2 * max($b, 1) else 'FAIL')")"
}

slowloris() {
    ulimit -n 8192
    slowhttptest -H -c 2000 -i 10 -r 400 -l $((duration + 20)) -s 8192 -t GET \
        -u "http://127.0.0.1:$port/" -p 3 -o "$tmp/slowhttptest" >/dev/null 2>&1
}

slowread() {
    python3 - "$port" <<'EOF'
import socket, sys, threading, time
port = int(sys.argv[1])
def reader():
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            s.sendall(b"GET /big?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            while s.recv(4096):
                time.sleep(0.05)
        except OSError:
            time.sleep(0.1)
for _ in range(50):
    threading.Thread(target=reader, daemon=True).start()
time.sleep(10 ** 6)
EOF
}

drill_nofile() {
    local m=$1 out="$tmp/nofile-$m.wrk"
    stop_srv
    port="$(free_port)"
    srv_config "$tmp/nofile-$m" "$m" "$port"
    sed -i 's/^worker_num = 1$/worker_num = 2/' "$tmp/nofile-$m/srv.toml"
    (ulimit -n 256 && launch_srv "$tmp/nofile-$m" "$port" && wait "$root_pid") &
    local runner=$!
    wait_ready "$port"
    srv_conf="$tmp/nofile-$m/srv.toml"
    ulimit -n 8192
    load "$out" 1000 "$duration"
    local after
    after="$(curl -s --max-time 5 "http://127.0.0.1:$port/" || true)"
    "$build/srv" stop -c "$srv_conf" >/dev/null 2>&1 || true
    wait "$runner" 2>/dev/null || true
    srv_conf=""
    verdict "nofile $m: 1000 clients on 256 descriptors: $(field ok "$out") answered," \
        "$(field sockerr "$out") socket errors (clients over the limit wait or time out)," \
        "serving afterwards: $([[ $after == "Hello, World!" ]] && echo PASS || echo FAIL)"
}

drill_soak() {
    local m=$1 out="$tmp/soak-$m"
    start "$m" "max_conn = 20000" "websocket = true"
    load "$out" 16 "$soak" &
    local wl=$!
    python3 - "$port" "$soak" >"$tmp/soak-$m-clients" 2>&1 <<'EOF' &
import asyncio, sys, time, urllib.request
import websockets
port, secs = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + secs
async def ws():
    n = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as c:
        while time.monotonic() < end:
            await c.send("x" * 64)
            await c.recv()
            n += 1
    return n
def http(path):
    n = 0
    while time.monotonic() < end:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
        n += 1
    return n
async def main():
    loop = asyncio.get_running_loop()
    jobs = [ws() for _ in range(8)]
    jobs += [loop.run_in_executor(None, http, p) for p in ("/task?ms=1", "/table/incr?key=k")]
    print("clients", await asyncio.gather(*jobs))
asyncio.run(main())
EOF
    local cl=$! samples=()
    local end=$((SECONDS + soak))
    while ((SECONDS < end)); do
        sleep 10
        samples+=("$(for p in $(tree_pids "$root_pid"); do
            awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null; done |
            awk '{s += $1} END {print s + 0}')")
    done
    wait "$wl" || true
    wait "$cl" || true
    local v
    v="$(python3 -c "
s=[int(x) for x in '${samples[*]}'.split()]
w=s[6:] if len(s) > 8 else s[len(s)//2:]
lo,hi=min(w),max(w)
print(f'{lo/1024:.1f}-{hi/1024:.1f} MB after warm-up ({(hi-lo)*100/lo:.1f} %), first {s[0]/1024:.1f} MB', 'PASS' if (hi-lo) <= lo*0.10 else 'FAIL')")"
    verdict "soak $m: ${soak}s mixed load ($(field requests "$out") HTTP, $(tail -1 "$tmp/soak-$m-clients")), RSS ${v% *} -> ${v##* }"
}

for m in $modes; do
    for d in $drills; do
        case $d in
        reload) drill_reload "$m" ;;
        kill) drill_kill "$m" ;;
        slowloris) beside slowloris "$m" slowloris ;;
        slowread) beside slowread "$m" slowread ;;
        nofile) drill_nofile "$m" ;;
        soak) drill_soak "$m" ;;
        *) echo "chaos.sh: unknown drill $d" >&2; exit 2 ;;
        esac
    done
done
stop_srv

if [[ "${WRITE_RESULTS:-0}" == 1 ]]; then
    commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    intro="$(date -u +%Y-%m-%d), $(nproc) CPUs ($(uname -r)), commit $commit; \`bench/chaos.sh\`"
    intro+=" (DURATION=$duration, SOAK=$soak); srv on CPU $scpu, load on CPU $ccpu."
    sed 's/^/    /' "$report" >"$tmp/report.md"
    write_section "Chaos" "$intro" "$tmp/report.md"
fi
