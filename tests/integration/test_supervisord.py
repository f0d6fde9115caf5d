"""supervisord, black-box: Debian's supervisord runs deploy/supervisord.conf (paths rewritten to
the test's: the built srv, its own config, log and socket in the temp folder); srv serves;
`supervisorctl stop` ends the whole tree (no orphans), `start` serves again, `restart` brings a
new master; at supervisord's shutdown nothing it started remains. SIGTERM is the stop: the
master logs a graceful stop."""
import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from srvtest import SLOW, SOURCE_DIR, SRV, Server, children_of, pid_alive, run, wait_for

SUPERVISORD = shutil.which("supervisord") or "/usr/bin/supervisord"
SUPERVISORCTL = shutil.which("supervisorctl") or "/usr/bin/supervisorctl"


def program_section(s):
    """deploy/supervisord.conf's [program:srv] with the test's paths."""
    cp = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    cp.read(os.path.join(SOURCE_DIR, "deploy/supervisord.conf"))
    prog = dict(cp["program:srv"])
    cmd = prog["command"].split()
    assert cmd[1:3] == ["start", "-c"] and "-d" not in cmd, prog["command"]
    prog["command"] = f"{SRV} start -c {s.config}"
    prog["directory"] = s.dir
    prog["stdout_logfile"] = os.path.join(s.dir, "supervisor-srv.log")
    return prog


def write_conf(s):
    sock = os.path.join(s.dir, "supervisor.sock")
    lines = ["[unix_http_server]", f"file={sock}", "chmod=0700", "",
             "[supervisord]", f"logfile={os.path.join(s.dir, 'supervisord.log')}",
             f"pidfile={os.path.join(s.dir, 'supervisord.pid')}",
             f"childlogdir={s.dir}", "nodaemon=true", "",
             "[rpcinterface:supervisor]",
             "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
             "[supervisorctl]", f"serverurl=unix://{sock}", "", "[program:srv]"]
    lines += [f"{k}={v}" for k, v in program_section(s).items()]
    conf = os.path.join(s.dir, "supervisord.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def ctl(conf, *args):
    return subprocess.run([SUPERVISORCTL, "-c", conf, *args], capture_output=True, text=True,
                          timeout=90 * SLOW)


def ours(s):
    """Live processes of this test's srv: the config path in their command line (every srv
    process of the tree is the master or a fork of it), or a pid seen before."""
    found = {p for p in s.known_pids if pid_alive(p)}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if s.config.encode() in cmdline and SRV.encode() in cmdline and pid_alive(int(d)):
            found.add(int(d))
    return found


def serving(s):
    """srv answers and every worker is ready: its info (pids remembered)."""
    info = wait_for(lambda: s.get("/")[0] == 200 and s.wait_ready(), 30, "srv serving")
    return info


def test_stop_start_restart():
    s = Server(name="supervisord", server={"task_worker_num": 1})
    conf = write_conf(s)
    out = open(os.path.join(s.dir, "supervisord.out"), "w")
    sup = subprocess.Popen([SUPERVISORD, "-n", "-c", conf], stdout=out, stderr=subprocess.STDOUT)
    try:
        info = serving(s)
        first = info["pid"]
        assert first in children_of({sup.pid}), "srv runs under supervisord, in the foreground"
        tree = {first, info["manager_pid"]} | {w["pid"] for w in info["workers"] if w["pid"]}
        assert tree <= ours(s), (tree, ours(s))

        r = ctl(conf, "stop", "srv")
        assert r.returncode == 0 and "stopped" in r.stdout, (r.returncode, r.stdout, r.stderr)
        wait_for(lambda: not ours(s), 10, "every srv process gone after stop")
        assert re.search(r"stopping \(Terminated\)", s.log()), "a graceful stop (SIGTERM)"
        assert "manager did not stop" not in s.log()

        r = ctl(conf, "start", "srv")
        assert r.returncode == 0 and "started" in r.stdout, (r.returncode, r.stdout, r.stderr)
        second = serving(s)["pid"]
        assert second != first

        r = ctl(conf, "restart", "srv")
        assert r.returncode == 0 and "started" in r.stdout, (r.returncode, r.stdout, r.stderr)
        info = serving(s)
        assert info["pid"] not in (first, second)
        assert not pid_alive(second)
        # The previous tree is gone, only the new one runs.
        now = {info["pid"], info["manager_pid"]} | {w["pid"] for w in info["workers"] if w["pid"]}
        wait_for(lambda: ours(s) == now, 10, "only the new tree left")

        r = ctl(conf, "shutdown")
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        sup.wait(timeout=60 * SLOW)
        wait_for(lambda: not ours(s), 10, "nothing left after supervisord's shutdown")
        assert not children_of({sup.pid})
    except BaseException:
        for name in ("supervisord.out", "supervisord.log", "supervisor-srv.log"):
            try:
                print(f"---- {name} ----\n" + open(os.path.join(s.dir, name)).read()[-4000:],
                      file=sys.stderr)
            except OSError:
                pass
        print("---- srv log ----\n" + s.log()[-6000:], file=sys.stderr)
        raise
    finally:
        if sup.poll() is None:
            sup.send_signal(signal.SIGTERM)
            try:
                sup.wait(timeout=60 * SLOW)
            except subprocess.TimeoutExpired:
                sup.kill()
                sup.wait()
        left = ours(s)
        for p in left:
            os.kill(p, signal.SIGKILL)
        out.close()
        s.cleanup()
        assert not left, f"srv processes left behind: {sorted(left)}"


if __name__ == "__main__":
    if not os.path.exists(SUPERVISORD) or not os.path.exists(SUPERVISORCTL):
        print("supervisord not installed (scripts/deps.sh --test installs supervisor): skipped")
        print("0 passed, 0 failed")
        sys.exit(0)
    run([test_stop_start_restart])
