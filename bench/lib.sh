# shellcheck shell=bash
# shellcheck disable=SC2154 # build, scpu, hz, bench_self, srv_conf, root_pid: set by the caller
# Shell helpers shared by bench/tcp.sh, ws.sh and task.sh (sourced, not run). The caller sets
# bench_self (its own name: tcp, ws, task), build, scpu, hz, and srv_conf/root_pid for the
# server it started.

# stop_srv: stop the server the script started (srv stop, else SIGTERM), and reap it.
stop_srv() {
    [[ -z "$srv_conf" ]] && return 0
    "$build/srv" stop -c "$srv_conf" >/dev/null 2>&1 || kill -TERM "$root_pid" 2>/dev/null || true
    wait "$root_pid" 2>/dev/null || true
    srv_conf=""
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# cpu_busy: busy jiffies of CPU $scpu (user+nice+system+irq+softirq).
cpu_busy() { awk -v c="cpu$scpu" '$1 == c {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# wait_quiet: wait until no other benchmark script runs (they pin to the same CPUs; up to
# BUSY_WAIT s) and CPU $scpu is at most QUIET_PCT % busy for a second (up to QUIET_WAIT s);
# prints that last second's busy %.
wait_quiet() {
    local deadline a b pct busy_until=$((SECONDS + ${BUSY_WAIT:-900}))
    local others
    others="$(printf '%s\n' http tcp ws task table timer | grep -vx "$bench_self" | paste -sd'|')"
    while pgrep -f "($others)\\.sh" >/dev/null && ((SECONDS < busy_until)); do
        sleep 5
    done
    deadline=$((SECONDS + ${QUIET_WAIT:-30}))
    while :; do
        a="$(cpu_busy)"; sleep 1; b="$(cpu_busy)"
        pct=$(((b - a) * 100 / hz))
        if ((pct <= ${QUIET_PCT:-10} || SECONDS >= deadline)); then echo "$pct"; return; fi
    done
}
