# shellcheck shell=bash
# shellcheck disable=SC2154 # build, scpu, hz, bench_self, srv_conf, root_pid: set by the caller
# Shell helpers shared by the bench scripts (sourced, not run). The caller sets bench_self (its
# own name: http, tcp, ws, task), here, build, scpu, hz; srv_conf/root_pid are set by launch_srv.

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
    others="$(printf '%s\n' http https h2 tcp ws task table timer | grep -vx "$bench_self" | paste -sd'|')"
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

# tree_pids PID...: every pid of the trees rooted at the arguments (the roots included).
tree_pids() {
    local p c
    for p in "$@"; do
        echo "$p"
        for c in $(pgrep -P "$p" || true); do tree_pids "$c"; done
    done
}

# wait_ready PORT: poll until GET / on PORT answers the demo's body (10 s deadline).
wait_ready() {
    local i
    for ((i = 0; i < 200; i++)); do
        [[ "$(curl -s --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null)" == "Hello, World!" ]] && return 0
        sleep 0.05
    done
    return 1
}

# srv_config DIR MODE PORT [SERVER_KEYS]: DIR/srv.toml with the demo app, one worker and one
# reactor (plus SERVER_KEYS, TOML lines for [server]) and an HTTP listener on PORT, which is the
# last table: the caller may append keys of that listener, then sections of its own.
srv_config() {
    mkdir -p "$1"
    cat >"$1/srv.toml" <<EOF
[server]
app = "$build/examples/demo.so"
mode = "$2"
worker_num = 1
reactor_num = 1
log_level = "warn"
pid_file = "$1/srv.pid"
log_file = "$1/srv.log"
${4:-}

[[listen]]
name = "http"
type = "http"
host = "127.0.0.1"
port = $3
EOF
}

# launch_srv DIR PORT: start srv with DIR/srv.toml in the foreground under taskset, so every
# process of the tree (master, reactor thread, manager, workers) inherits CPU $scpu and this
# shell is the master's parent; set root_pid and srv_conf; wait until it answers on PORT, or
# print its logs and exit.
launch_srv() {
    taskset -c "$scpu" "$build/srv" start -c "$1/srv.toml" >>"$1/stderr.log" 2>&1 &
    root_pid=$!
    srv_conf="$1/srv.toml"
    wait_ready "$2" && return 0
    echo "$bench_self.sh: srv ($1) did not come up" >&2
    cat "$1/stderr.log" "$1/srv.log" >&2
    exit 1
}

# write_section TITLE INTRO REPORT: replace (or append) the "## TITLE" section of
# bench/RESULTS.md with INTRO and the REPORT file; other sections belong to other benchmarks.
write_section() {
    python3 - "$here/RESULTS.md" "$1" "$2" "$3" <<'EOF'
import re, sys
path, title, intro, rep = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4]).read()
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# srv benchmark results\n"
section = f"## {title}\n\n{intro}\n\n" + rep.rstrip("\n") + "\n"
m = re.search(r"^## " + re.escape(title) + r"\n.*?(?=^## |\Z)", text, re.S | re.M)
if m:
    text = text[:m.start()] + section + ("\n" if text[m.end():] else "") + text[m.end():]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
    echo "$bench_self.sh: wrote the $1 section of $here/RESULTS.md" >&2
}
