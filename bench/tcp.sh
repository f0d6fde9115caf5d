#!/usr/bin/env bash
# TCP and UDP echo benchmark: srv (process mode and base mode, worker_num = 1, reactor_num = 1)
# running the demo's "frames" TCP listener (4-byte big-endian length, then the body; each frame
# echoed whole) and its UDP listener (each datagram echoed), loaded by bench/loadgen.c (epoll, one
# thread, ping-pong: each connection sends the next message when its echo came back; every echo
# checked byte for byte). Server on CPU 0, loadgen on CPU 1. The ranking figure is server CPU per
# message: busy jiffies of CPU 0 (/proc/stat user+nice+system+irq+softirq) over the window /
# echoed messages; proc us/msg (utime+stime of the server's process tree) is the cross-check.
#   usage: bench/tcp.sh [BUILD_DIR=/work/main/build-bench]   (needs BUILD_DIR/srv, examples/demo.so)
# Env: DURATION (10 s per run), ROUNDS (3), WARMUP (1 s, unmeasured, same connections),
#      MODES ("process base"), LOADS ("tcp udp"), CONNS (64), SIZE (64: body bytes per message),
#      SERVER_CPU (0), CLIENT_CPU (1), QUIET_PCT (10) / QUIET_WAIT (30 s) / NOISE_PCT (15) /
#      TRIES (3) as in bench/http.sh; BUSY_WAIT (900 s): each run first waits while another bench
#      script runs (they share CPUs 0/1); KEEP=1 keeps the temp dir, REPORT_FROM=<kept dir> only
#      re-reports its results, WRITE_RESULTS=1 writes the
#      "## TCP and UDP echo" section of bench/RESULTS.md (replacing an earlier one).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$(cd "${1:-$root/build-bench}" && pwd)"
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
warmup="${WARMUP:-1}"
modes="${MODES:-process base}"
loads="${LOADS:-tcp udp}"
conns="${CONNS:-64}"
size="${SIZE:-64}"
scpu="${SERVER_CPU:-0}"
ccpu="${CLIENT_CPU:-1}"
hz="$(getconf CLK_TCK)"
bench_self=tcp
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

for f in "$build/srv" "$build/examples/demo.so"; do
    [[ -e "$f" ]] || { echo "tcp.sh: missing $f; build: cmake --build $build --target srv demo" >&2; exit 1; }
done
grep -qE '^SRV_(ASAN|TSAN):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null &&
    echo "tcp.sh: note: $build is a sanitizer build; numbers will be pessimistic" >&2
taskset -cp "$ccpu" $$ >/dev/null

tmp="$(mktemp -d /tmp/srv-tcp-bench.XXXXXX)"
srv_conf="" root_pid=""
cleanup() {
    stop_srv
    if [[ "${KEEP:-0}" == 1 ]]; then echo "tcp.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

cc -O2 -Wall -o "$tmp/loadgen" "$here/loadgen.c" -lcrypto


start_srv() { # mode
    local d="$tmp/srv-$1"
    hport="$(free_port)" tport="$(free_port)" uport="$(free_port)"
    srv_config "$d" "$1" "$hport"
    cat >>"$d/srv.toml" <<EOF

[[listen]]
name = "frames"
handler = "frames"
type = "tcp"
host = "127.0.0.1"
port = $tport
open_length_check = true
package_length_type = "N"
package_length_offset = 0
package_body_offset = 4

[[listen]]
name = "udp"
type = "udp"
host = "127.0.0.1"
port = $uport
EOF
    launch_srv "$d" "$hport"
}

run_load() { # round mode load: one measured run, its line to $tmp/row
    local port idle out
    [[ "$3" == udp ]] && port=$uport || port=$tport
    idle="$(wait_quiet)"
    out="$(taskset -c "$ccpu" "$tmp/loadgen" -m "$3" -p "$port" -c "$conns" -s "$size" \
        -d "$duration" -w "$warmup" -C "$scpu" -P "$root_pid" 2>>"$tmp/loadgen.log" | grep '^RESULT ' || true)"
    [[ -n "$out" ]] || out="RESULT msgs=0 secs=1 error=\"loadgen failed\""
    echo "round=$1 server=$2 load=$3 idle=$idle hz=$hz ${out#RESULT }" >"$tmp/row"
    python3 - "$tmp/row" <<'EOF' >&2
import shlex, sys
r = dict(kv.split("=", 1) for kv in shlex.split(open(sys.argv[1]).read()))
f = lambda k: float(r.get(k, 0))
secs = f("secs") or 1
noise = 100 * (f("cpu_ticks") - f("proc_ticks")) / f("hz") / secs
print(f"  {r['server']:<7} {r['load']:<4} round {r['round']}: {f('rate'):8.0f} msg/s  p50 {f('p50_us'):7.1f} us"
      f"  p99 {f('p99_us'):8.1f} us  cpu0 {f('cpu_us_per_msg'):6.2f} us/msg ({f('cpu_busy_pct'):3.0f}% busy,"
      f" {noise:3.0f}% not server, {r['idle']}% before)  proc {f('proc_us_per_msg'):6.2f} us/msg"
      f"  mismatches {r.get('mismatches')} closed {r.get('closed')} lost {r.get('lost')} {r.get('error', '')}")
EOF
}

noise_of() { # not-server % of CPU $scpu in the run in $tmp/row
    python3 -c 'import shlex,sys; r=dict(kv.split("=",1) for kv in shlex.split(open(sys.argv[1]).read()));
f=lambda k: float(r.get(k,0)); print(int(100*(f("cpu_ticks")-f("proc_ticks"))/f("hz")/(f("secs") or 1)))' "$tmp/row"
}

load_avg="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "tcp.sh: $rounds round(s) x modes [$modes] x loads [$loads], ${duration}s each; server on CPU $scpu," \
    "loadgen on CPU $ccpu; load average $load_avg" >&2
if [[ -n "${REPORT_FROM:-}" ]]; then # only re-report a kept run
    for f in results; do cp "$REPORT_FROM/$f" "$tmp/$f"; done
else
    : >"$tmp/results"
    for ((r = 1; r <= rounds; r++)); do
        for m in $modes; do
            start_srv "$m"
            for l in $loads; do
                best="" best_noise=1000
                for ((try = 1; try <= ${TRIES:-3}; try++)); do
                    run_load "$r" "$m" "$l"
                    noise="$(noise_of)"
                    if ((noise < best_noise)); then best="$(cat "$tmp/row")" best_noise=$noise; fi
                    ((noise <= ${NOISE_PCT:-15})) && break
                    ((try < ${TRIES:-3})) && echo "  (CPU $scpu ${noise}% busy with other work: redoing)" >&2
                done
                echo "$best" >>"$tmp/results"
            done
            if ! kill -0 "$root_pid" 2>/dev/null; then echo "tcp.sh: srv ($m) died during the run" >&2; fi
            stop_srv
        done
    done
fi

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$tmp/results" "$commit" "$load_avg" "$duration" "$warmup" "$conns" "$size" "$scpu" "$ccpu" \
    >"$tmp/report.md" <<'EOF'
import os, shlex, statistics, sys, time
path, commit, load_avg, dur, warm, conns, size, scpu, ccpu = sys.argv[1:]
rows = [dict(kv.split("=", 1) for kv in shlex.split(l)) for l in open(path) if l.strip()]
f = lambda r, k: float(r.get(k, 0) or 0)
for r in rows:
    r["noise"] = 100 * (f(r, "cpu_ticks") - f(r, "proc_ticks")) / f(r, "hz") / (f(r, "secs") or 1)
osr = dict(l.split("=", 1) for l in open("/etc/os-release").read().split("\n") if "=" in l)
print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()}-core "
      f"{osr['NAME'].strip(chr(34))} {osr['VERSION_ID'].strip(chr(34))} VM, kernel {os.uname().release}; commit: {commit}")
print(f"- {len(set(r['round'] for r in rows))} round(s) of {dur}s per run after a {warm}s warm-up on the same "
      f"connections; load average at start: {load_avg}")
print(f"- srv with worker_num = 1, reactor_num = 1, pinned to CPU {scpu}; `bench/loadgen` (epoll, one thread) "
      f"pinned to CPU {ccpu}; {conns} connections (UDP: {conns} connected sockets), ping-pong, {size}-byte "
      f"bodies (TCP frames are 4 + {size} bytes)")
print(f"- CPU us/msg = busy time of CPU {scpu} (/proc/stat user+nice+system+irq+softirq) / echoed messages; "
      "proc us/msg = utime+stime of the server's process tree / messages; not server = CPU 0 busy time "
      "outside the server's own CPU time (other jobs, softirq work charged to no task), % of the run; on this "
      "shared 2-core VM other jobs land on CPU 0 while loadgen keeps CPU 1 busy, so CPU us/msg is inflated by them: "
      "the best run and proc us/msg are the less disturbed figures")
print("- figures are medians over rounds; errors (mismatched echoes, closed connections, lost datagrams) are totals")
print()
print("| load | mode | msg/s | p50 | p99 | CPU us/msg | best run: CPU us/msg (not server) | proc us/msg | not server | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
med, best = {}, {}
for load in ("tcp", "udp"):
    for mode in ("process", "base"):
        g = [r for r in rows if r["load"] == load and r["server"] == mode]
        if not g:
            continue
        m = lambda k: statistics.median(f(r, k) for r in g)
        errs = sum(int(f(r, "mismatches") + f(r, "closed") + f(r, "connect_errs") + f(r, "lost")) for r in g)
        med[load, mode] = m("cpu_us_per_msg")
        b = min(g, key=lambda r: f(r, "cpu_us_per_msg"))
        best[load, mode] = f(b, "cpu_us_per_msg")
        print(f"| {load.upper()} echo | {mode} | {m('rate'):.0f} | {m('p50_us'):.0f} us | {m('p99_us'):.0f} us | "
              f"{m('cpu_us_per_msg'):.2f} | {f(b, 'cpu_us_per_msg'):.2f} ({b['noise']:.0f}%) | {m('proc_us_per_msg'):.2f} | "
              f"{statistics.median(r['noise'] for r in g):.0f}% | {errs} |")
print()
print("Targets (issue 5, server CPU per echoed message):")
for load in ("tcp", "udp"):
    for mode, lim in (("base", 7), ("process", 11)):
        if (load, mode) in med:
            v = med[load, mode]
            b = best[load, mode]
            print(f"- {load.upper()} {mode} mode: median {v:.2f} us/msg, best run {b:.2f} (target <= {lim} us): "
                  f"{'met' if v <= lim else ('met in the least disturbed run only' if b <= lim else 'NOT met')}")
print()
print("<details><summary>Raw runs</summary>\n\n```")
for r in rows:
    print(" ".join(f"{k}={v}" for k, v in r.items() if k not in ("hz", "noise") and (k != "error" or v)))
print("```\n\n</details>")
EOF
cat "$tmp/report.md"

if [[ "${WRITE_RESULTS:-0}" == 1 ]]; then
    write_section "TCP and UDP echo" \
        "\`bench/tcp.sh\` (load tool \`bench/loadgen.c\`, built by the script with \`cc -O2\`)." \
        "$tmp/report.md"
fi
