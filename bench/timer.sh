#!/usr/bin/env bash
# Timer precision: lateness (p50/p99/max) of a 10 ms interval job run through the cron engine
# for 1000 ticks (~10 s), pinned to one CPU, no other load. Writes the "## Timers" section of
# bench/RESULTS.md (replacing an earlier one in place, leaving other sections alone).
#   usage: bench/timer.sh [BUILD_DIR=/work/main/build]   (needs BUILD_DIR/timer/libsrv_timer.a)
# Env: INTERVAL_MS (10), RUNS (1000), CPU (last CPU), NO_RESULTS=1 to only print.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${1:-/work/main/build}"
lib="$build/timer/libsrv_timer.a"
interval="${INTERVAL_MS:-10}"
runs="${RUNS:-1000}"
cpu="${CPU:-$(($(nproc) - 1))}"

if [[ ! -f "$lib" ]]; then
    echo "timer.sh: $lib not found; build it: cmake --build $build --target srv_timer" >&2
    exit 1
fi
# A sanitizer build's library needs the same runtime at link time.
cflags=(-O2 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -I"$root")
if grep -q '^SRV_ASAN:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    cflags+=("-fsanitize=address,undefined")
    echo "timer.sh: note: $build is an ASan build; numbers will be pessimistic" >&2
fi
if grep -q '^SRV_TSAN:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    cflags+=(-fsanitize=thread)
    echo "timer.sh: note: $build is a TSan build; numbers will be pessimistic" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cc "${cflags[@]}" -o "$tmp/timer_bench" "$here/timer_bench.c" "$lib" "$build/config/libsrv_config.a" -lpthread

load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "timer.sh: ${runs} ticks of ${interval} ms on CPU ${cpu} (~$((runs * interval / 1000)) s)" >&2
out="$(taskset -c "$cpu" "$tmp/timer_bench" "$interval" "$runs")"
echo "$out"

[[ "${NO_RESULTS:-0}" == 1 ]] && exit 0

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
p50="$(field p50)"
p99="$(field p99)"
max="$(field max)"
skips="$(field skips)"
verdict="met"
awk -v p="$p99" 'BEGIN { exit !(p <= 1000) }' || verdict="NOT met"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- timer bench/timer_bench.c 2>/dev/null)" ]]; then
    commit="$commit + uncommitted timer/ changes"
fi
btype="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt" 2>/dev/null || true)"

section="$(cat <<EOF
## Timers

Lateness of a ${interval} ms interval cron job (\`timer/cron_sched.c\`: one thread per job,
absolute \`pthread_cond_timedwait\` on CLOCK_MONOTONIC, timer slack 1 ns, 100 us EEVDF slice),
measured as start time minus due beat over ${runs} ticks, pinned with \`taskset -c ${cpu}\`.
The bench adds no load of its own; machine load average at start: ${load} (2 CPUs).
Run by \`bench/timer.sh ${build}\` (build type ${btype:-unknown}).

- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: 2-core Debian 12 VM; commit: ${commit}

| ticks | p50 | p99 | max | skipped beats | target p99 <= 1 ms |
| ---: | ---: | ---: | ---: | ---: | --- |
| ${runs} | ${p50} us | ${p99} us | ${max} us | ${skips} | ${verdict} |

Raw: \`${out}\`
EOF
)"

results="$here/RESULTS.md"
if [[ ! -f "$results" ]]; then
    printf '# srv benchmark results\n' >"$results"
fi
printf '%s\n' "$section" >"$tmp/section"
if grep -qx '## Timers' "$results"; then
    # Replace the earlier "## Timers" section in place (up to the next "## " heading).
    awk -v sec="$tmp/section" '
        /^## / && skip { skip = 0; print "" }
        $0 == "## Timers" { while ((getline l < sec) > 0) print l; skip = 1; next }
        !skip' "$results" >"$tmp/results"
    # If ours was the last section, drop the trailing blank lines the old one left.
    sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$tmp/results" >"$results"
else
    { printf '\n'; cat "$tmp/section"; } >>"$results"
fi
echo "timer.sh: wrote the Timers section of $results" >&2
